//! The ready-made platform files under platforms/, each run the way its
//! platform runs it, in a temporary directory standing for the platform's:
//!
//! - Gradescope: the zip built by make-zip.sh, unpacked into a fake
//!   /autograder, setup.sh then run_autograder as root without
//!   CAP_SYS_ADMIN (as in Gradescope's containers: no network namespace).
//! - PrairieLearn: run.sh in a fake /grade, in a network namespace with only
//!   IPv4 loopback and no CAP_SYS_ADMIN (as PrairieLearn's grader).
//! - GitHub Classroom, GitHub Actions, GitLab: the workflow files parsed, the
//!   steps wired to one another checked, and their shell commands run in a
//!   copy of a student repository (a stand-in `sudo`, since we are root).

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{copy, json_schema_errors, path_with_sudo, read_yaml, root};

const SPEC: &str = "fixtures/specs/class.yaml";
const CORRECT: &str = "fixtures/submissions/tcp-echo-fork";
const BROKEN: &str = "fixtures/broken/tcp-echo-build-error";

fn sockgrade_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sockgrade"))
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `command` as root without CAP_SYS_ADMIN, as in Gradescope's and
/// PrairieLearn's containers: sockgrade cannot make a network namespace
/// there and must fall back.
fn without_sys_admin(command: &Path) -> Command {
    let mut cmd = support::tool("setpriv");
    cmd.args(["--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin", "--"])
        .arg(command);
    cmd
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

// ---- Gradescope ----

/// Unpacks the zip as Gradescope does into `autograder/source` and returns
/// each entry's mode.
fn unzip(zip: &Path, into: &Path) -> Vec<(String, u32)> {
    let out = run(support::tool("python3").args([
        "-c",
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nz.extractall(sys.argv[2])\nfor i in z.infolist(): print(i.filename, i.external_attr >> 16 & 0o777)",
    ]).arg(zip).arg(into));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, mode) = l.split_once(' ').unwrap();
            (name.to_string(), mode.parse().unwrap())
        })
        .collect()
}

#[test]
fn gradescope_autograder_grades_from_its_zip() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("autograder.zip");
    run(Command::new(root().join("platforms/gradescope/make-zip.sh"))
        .arg(root().join(SPEC))
        .arg(&zip)
        .arg(sockgrade_exe()));
    let autograder = dir.path().join("autograder");
    let entries = unzip(&zip, &autograder.join("source"));
    assert_eq!(
        entries,
        [
            ("setup.sh".to_string(), 0o755),
            ("run_autograder".to_string(), 0o755),
            ("spec.yaml".to_string(), 0o644),
            ("sockgrade".to_string(), 0o755)
        ]
    );
    // Image build: once.
    run(Command::new("bash")
        .arg(autograder.join("source/setup.sh"))
        .env("AUTOGRADER_ROOT", &autograder));
    // Gradescope copies run_autograder to /autograder and runs it there.
    std::fs::copy(
        autograder.join("source/run_autograder"),
        autograder.join("run_autograder"),
    )
    .unwrap();
    let schema = read_json(&root().join("fixtures/platforms/gradescope-results.schema.json"));
    for (submission, score) in [(CORRECT, 6), (BROKEN, 0)] {
        let _ = std::fs::remove_dir_all(autograder.join("submission"));
        let _ = std::fs::remove_dir_all(autograder.join("results"));
        copy(&root().join(submission), &autograder.join("submission"));
        run(without_sys_admin(&autograder.join("run_autograder"))
            .current_dir(&autograder)
            .env("AUTOGRADER_ROOT", &autograder));
        let results = read_json(&autograder.join("results/results.json"));
        let errors = json_schema_errors(&schema, std::slice::from_ref(&results));
        assert!(errors[0].is_empty(), "{submission}: {:?}", errors[0]);
        assert_eq!(results["score"], score, "{submission}: {results:#}");
        assert_eq!(
            results["extra_data"]["isolation"], "none",
            "no CAP_SYS_ADMIN: fell back"
        );
        let visibility: Vec<&str> = results["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["visibility"].as_str().unwrap())
            .collect();
        assert_eq!(visibility, ["visible", "hidden", "after_due_date"], "passed through");
    }
}

/// A zip is only made for a spec that loads.
#[test]
fn gradescope_zip_refuses_a_broken_spec() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("platforms/gradescope/make-zip.sh"))
        .arg(root().join("fixtures/specs/invalid/unknown-connection.yaml"))
        .arg(dir.path().join("a.zip"))
        .arg(sockgrade_exe())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.path().join("a.zip").exists());
}

// ---- PrairieLearn ----

/// run.sh in a fake /grade, inside a network namespace with only IPv4
/// loopback (no ::1) and without CAP_SYS_ADMIN, like PrairieLearn's grader
/// container. Returns results.json.
fn prairielearn(submission: &str, build_failure: Option<&str>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let grade = dir.path().join("grade");
    std::fs::create_dir_all(grade.join("tests")).unwrap();
    std::fs::copy(root().join(SPEC), grade.join("tests/spec.yaml")).unwrap();
    let server_files = grade.join("serverFilesCourse/sockgrade");
    std::fs::create_dir_all(&server_files).unwrap();
    std::fs::copy(
        root().join("platforms/prairielearn/run.sh"),
        server_files.join("run.sh"),
    )
    .unwrap();
    std::os::unix::fs::symlink(sockgrade_exe(), server_files.join("sockgrade")).unwrap();
    copy(&root().join(submission), &grade.join("student"));
    let script = format!(
        "ip link set lo up \
         && {{ [ ! -d /proc/sys/net/ipv6 ] || for c in all lo; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done; }} \
         && ! ip -6 addr | grep -q inet6 \
         && exec setpriv --bounding-set -sys_admin --inh-caps -sys_admin -- {}",
        server_files.join("run.sh").display()
    );
    let mut cmd = support::tool("unshare");
    cmd.args(["--net", "sh", "-c", &script])
        .env("GRADE_ROOT", &grade)
        // sockgrade is not on PATH in the grader image: run.sh finds the
        // course's copy.
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    if let Some(b) = build_failure {
        cmd.env("SOCKGRADE_BUILD_FAILURE", b);
    }
    run(&mut cmd);
    read_json(&grade.join("results/results.json"))
}

#[test]
fn prairielearn_entrypoint_grades_on_ipv4_loopback_only() {
    let results = prairielearn(CORRECT, None);
    assert_eq!(results["gradable"], true, "{results:#}");
    assert_eq!(results["score"], 1.0, "{results:#}");
    let names: Vec<&str> = results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a line is echoed unchanged"], "only visible scenarios");
}

#[test]
fn prairielearn_entrypoint_applies_the_build_failure_policy() {
    let ungradable = prairielearn(BROKEN, None);
    assert_eq!(ungradable["gradable"], false, "{ungradable:#}");
    let zero = prairielearn(BROKEN, Some("zero"));
    assert_eq!(zero["gradable"], true, "{zero:#}");
    assert_eq!(zero["score"], 0.0);
    assert!(zero["output"].as_str().unwrap().contains("error"), "{zero:#}");
}

/// The question's info.json points at run.sh where docs/guide/platforms.md says to put
/// it, and ships it with the course's server files.
#[test]
fn prairielearn_question_points_at_the_entrypoint() {
    let info = read_json(&root().join("platforms/prairielearn/info.json"));
    let grading = &info["externalGradingOptions"];
    assert_eq!(grading["enabled"], true);
    assert_eq!(info["gradingMethod"], "External");
    assert_eq!(grading["entrypoint"], "/grade/serverFilesCourse/sockgrade/run.sh");
    assert_eq!(grading["serverFilesCourse"], serde_json::json!(["sockgrade/"]));
}

// ---- CI workflows in a student's repository ----

/// A student's repository with the files the workflows expect: the
/// submission at its root, .sockgrade/spec.yaml and .sockgrade/sockgrade;
/// and a `bin/sudo` that runs its command (`path_with_sudo`).
fn student_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    copy(&root().join(CORRECT), &repo);
    std::fs::create_dir_all(repo.join(".sockgrade")).unwrap();
    std::fs::copy(root().join(SPEC), repo.join(".sockgrade/spec.yaml")).unwrap();
    std::os::unix::fs::symlink(sockgrade_exe(), repo.join(".sockgrade/sockgrade")).unwrap();
    repo
}

/// The workflow's steps by name.
fn step<'a>(workflow: &'a Value, job: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| pred(s))
        .unwrap_or_else(|| panic!("no such step in {job}"))
}

/// The Classroom workflow's first step passes where the template's
/// executable runs, and stops the job with an annotation that says why
/// where it does not (an executable for another system).
#[test]
fn classroom_workflow_says_when_sockgrade_cannot_run() {
    let workflow = read_yaml("platforms/github-classroom/classroom.yml");
    let check = step(&workflow, "run-autograding-tests", |s| s["id"] == "runs");
    let script = check["run"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = student_repo(dir.path());
    run(Command::new("bash").args(["-e", "-c", script]).current_dir(&repo));

    // An executable this machine can't run: the bytes of another format.
    let exe = repo.join(".sockgrade/sockgrade");
    std::fs::remove_file(&exe).unwrap();
    std::fs::write(&exe, b"\x7fELF\x02\x01\x01 not for this machine").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("bash")
        .args(["-e", "-c", script])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("::error title=sockgrade cannot run on this runner::"),
        "{said}"
    );
    assert!(said.contains("this runner has"), "{said}");
}

#[test]
fn classroom_workflow_reports_points_and_writes_the_summary() {
    let workflow = read_yaml("platforms/github-classroom/classroom.yml");
    let job = "run-autograding-tests";
    let grade = step(&workflow, job, |s| s["id"] == "sockgrade");
    let reporter = step(&workflow, job, |s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("classroom-resources/autograding-grading-reporter@"))
    });
    // The reporter reads `<RUNNER ID>_RESULTS` for each id in `runners`.
    assert_eq!(reporter["with"]["runners"], "sockgrade");
    assert_eq!(
        reporter["env"]["SOCKGRADE_RESULTS"],
        "${{ steps.sockgrade.outputs.result }}"
    );
    // Not bash -e: a grade below full marks must not end the step.
    assert_eq!(grade["shell"], "bash {0}");

    let dir = tempfile::tempdir().unwrap();
    let repo = student_repo(dir.path());
    let (output, summary, temp) = (
        dir.path().join("output"),
        dir.path().join("summary"),
        dir.path().join("tmp"),
    );
    std::fs::create_dir_all(&temp).unwrap();
    run(Command::new("bash")
        .args(["-c", grade["run"].as_str().unwrap()])
        .current_dir(&repo)
        .env("PATH", path_with_sudo(dir.path()))
        .env("RUNNER_TEMP", &temp)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary));
    let output = std::fs::read_to_string(&output).unwrap();
    let encoded = output.strip_prefix("result=").unwrap().trim_end();
    let decoded = run(Command::new("sh").args(["-c", &format!("printf %s '{encoded}' | base64 -d")])).stdout;
    let runner: Value = serde_json::from_slice(&decoded).unwrap();
    // What the reporter posts: Σ tests[].score out of max_score.
    let total: u64 = runner["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["score"].as_u64().unwrap())
        .sum();
    assert_eq!((total, runner["max_score"].as_u64().unwrap()), (6, 6));
    assert_eq!(runner["tests"][1]["name"], "scenario 2 (hidden)");
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.starts_with("```text\n") && summary.contains("score: 6/6"),
        "{summary}"
    );
    assert!(!summary.contains("two clients"), "hidden from students:\n{summary}");
}

/// The file the grading command writes is the one the publishing step reads.
fn junit_path_in(command: &str) -> &str {
    command
        .split_whitespace()
        .find_map(|w| w.strip_prefix("junit="))
        .unwrap_or_else(|| panic!("no --output junit= in {command}"))
}

fn run_and_read_junit(command: &str, path: &str) -> quick_junit::Report {
    let dir = tempfile::tempdir().unwrap();
    let repo = student_repo(dir.path());
    run(Command::new("bash")
        .args(["-e", "-c", command])
        .current_dir(&repo)
        .env("PATH", path_with_sudo(dir.path())));
    let xml = std::fs::read_to_string(repo.join(path)).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let cases = &report.test_suites[0].test_cases;
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[1].name.as_str(), "scenario 2 (hidden)", "--for-students");
    report
}

#[test]
fn github_actions_job_publishes_the_junit_report() {
    let workflow = read_yaml("platforms/github-actions/sockgrade.yml");
    let grade = step(&workflow, "grade", |s| s["name"] == "Grade with sockgrade");
    let publish = step(&workflow, "grade", |s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("mikepenz/action-junit-report@"))
    });
    assert_eq!(workflow["permissions"]["checks"], "write", "the report is a check run");
    // Published whether or not the grade step failed.
    assert_eq!(publish["if"], "${{ !cancelled() }}");
    let command = grade["run"].as_str().unwrap();
    let path = junit_path_in(command);
    assert_eq!(publish["with"]["report_paths"], path);
    run_and_read_junit(command, path);
}

#[test]
fn gitlab_job_publishes_the_junit_report() {
    let ci = read_yaml("platforms/gitlab/gitlab-ci.yml");
    let job = &ci["sockgrade"];
    let script: Vec<&str> = job["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(script.len(), 1);
    let path = junit_path_in(script[0]);
    assert_eq!(job["artifacts"]["reports"]["junit"], path);
    assert_eq!(
        job["artifacts"]["when"], "always",
        "published when a scenario fails too"
    );
    run_and_read_junit(script[0], path);
}
