//! A class graded in shards on the engines that run them: the GitHub
//! Actions matrix (`platforms/class-github-actions/grade-class.yml`) and the
//! Kubernetes Indexed Job (`platforms/kubernetes/`). Each shard is played
//! as a process of its own, all at once, with the engine's environment (the
//! matrix values in the workflow's expressions; `JOB_COMPLETION_INDEX` in
//! the pod's), then the engine's merge (artifacts downloaded into one
//! folder; the shared volume) and its summary step. The merged summary.csv
//! and index.html must equal a single machine's run.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use support::{copy, path_with_sudo, read_yaml, root, sockgrade};

const SPEC: &str = "fixtures/specs/class.yaml";

/// Submissions as students' folders: a correct server, an iterative one,
/// one that ignores SIGTERM, one that does not build.
const CLASS: [(&str, &str); 4] = [
    ("alice", "fixtures/submissions/tcp-echo-fork"),
    ("bob", "fixtures/submissions/tcp-echo-iterative"),
    ("carol", "fixtures/submissions/tcp-echo-sigterm-ignored"),
    ("dave", "fixtures/broken/tcp-echo-build-error"),
];

/// Waits for every shard; each must succeed.
fn all_succeed(shards: Vec<Child>) {
    for shard in shards {
        let out = shard.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a shard failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The class graded at once on one machine: its summary.csv and index.html.
fn single_machine(subs: &Path, out: &Path) -> (String, String) {
    let result = sockgrade()
        .args(["grade", SPEC, "--submissions"])
        .arg(subs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    files(out)
}

fn files(out: &Path) -> (String, String) {
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    (read("summary.csv"), read("index.html"))
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sockgrade"))
}

#[test]
fn a_github_actions_matrix_grades_the_same_class() {
    let workflow = read_yaml("platforms/class-github-actions/grade-class.yml");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".sockgrade")).unwrap();
    std::fs::copy(root().join(SPEC), repo.join(".sockgrade/spec.yaml")).unwrap();
    std::os::unix::fs::symlink(exe(), repo.join(".sockgrade/sockgrade")).unwrap();
    for (name, fixture) in CLASS {
        copy(&root().join(fixture), &repo.join("submissions").join(name));
    }
    let path = path_with_sudo(dir.path());

    let step = |job: &str, name: &str| -> String {
        workflow["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {job}"))["run"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let shards: Vec<String> = workflow["jobs"]["grade"]["strategy"]["matrix"]["shard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert!(shards.len() > 1, "a matrix of one shard proves nothing");
    let grade = step("grade", "Grade this shard");
    let running = shards
        .iter()
        .map(|k| {
            let script = grade
                .replace("${{ matrix.shard }}", k)
                .replace("${{ strategy.job-total }}", &shards.len().to_string());
            assert!(
                !script.contains("${{"),
                "an expression the test does not play: {script}"
            );
            Command::new("bash")
                .args(["-e", "-c", &script])
                .current_dir(&repo)
                .env("PATH", &path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    all_succeed(running);

    // download-artifact with merge-multiple: every shard's folder into one.
    for k in &shards {
        copy(&repo.join(format!("graded-{k}")), &repo.join("graded"));
    }
    let summary = step("summary", "Sum up the class");
    let out = Command::new("bash")
        .args(["-e", "-c", &summary])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let single = single_machine(&repo.join("submissions"), &dir.path().join("single"));
    assert_eq!(files(&repo.join("graded")), single);
}

#[test]
fn a_kubernetes_indexed_job_grades_the_same_class() {
    let job = read_yaml("platforms/kubernetes/grade-class-job.yaml");
    let summary = read_yaml("platforms/kubernetes/summary-job.yaml");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let completions = job["spec"]["completions"].as_u64().unwrap();
    assert!(completions > 1, "one pod proves nothing");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let env = |c: &Value, name: &str| -> String {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in the container's env"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        env(container, "SHARDS"),
        completions.to_string(),
        "SHARDS is the completions"
    );
    let command: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();

    // The shared volume, laid out as the manifest says.
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("class");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::copy(root().join(SPEC), class.join("spec.yaml")).unwrap();
    std::os::unix::fs::symlink(exe(), class.join("sockgrade")).unwrap();
    for (name, fixture) in CLASS {
        copy(&root().join(fixture), &class.join("submissions").join(name));
    }
    let pods = (0..completions)
        .map(|index| {
            Command::new(&command[0])
                .args(&command[1..])
                .env("CLASS", &class)
                .env("SHARDS", env(container, "SHARDS"))
                .env("JOB_COMPLETION_INDEX", index.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    all_succeed(pods);

    let container = &summary["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let out = Command::new(command[0])
        .args(&command[1..])
        .env("CLASS", &class)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let single = single_machine(&class.join("submissions"), &dir.path().join("single"));
    assert_eq!(files(&class.join("graded")), single);
}
