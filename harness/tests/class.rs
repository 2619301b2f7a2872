//! `sockgrade grade` and `sockgrade summary`: a small class made of bundled
//! fixtures (a correct server, an iterative one, one that ignores SIGTERM,
//! one that does not build) graded with fixtures/specs/class.yaml, whose
//! three scenarios are quick. The summary holds only names and points, so
//! it is a snapshot as it is.

mod support;

use std::path::{Path, PathBuf};
use support::{copy, root, sockgrade};

const SPEC: &str = "fixtures/specs/class.yaml";

/// The class: a folder of submissions named as students would be.
fn class() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, fixture) in [
        ("alice", "fixtures/submissions/tcp-echo-fork"),
        ("bob", "fixtures/submissions/tcp-echo-iterative"),
        ("carol", "fixtures/submissions/tcp-echo-sigterm-ignored"),
        ("dave", "fixtures/broken/tcp-echo-build-error"),
    ] {
        copy(&root().join(fixture), &dir.path().join("subs").join(name));
    }
    dir
}

/// Runs `grade` of the class spec; returns the exit code and stderr.
fn grade(subs: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    grade_with(Path::new(SPEC), subs, out, extra)
}

fn summary(out: &Path) -> String {
    std::fs::read_to_string(out.join("summary.csv")).unwrap()
}

fn modified(path: PathBuf) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_class_is_graded_and_summed_up() {
    let class = class();
    let (subs, out) = (class.path().join("subs"), class.path().join("out"));
    let (code, stderr) = grade(&subs, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("4 graded, 0 unchanged"), "{stderr}");
    insta::assert_snapshot!(summary(&out));
    for name in ["alice", "bob", "carol", "dave"] {
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(name).join("report.json")).unwrap()).unwrap();
        assert_eq!(report["submission"], name);
        let human = std::fs::read_to_string(out.join(name).join("report.txt")).unwrap();
        assert!(human.contains(&format!("score: {}/6", report["score"])), "{human}");
        let html = std::fs::read_to_string(out.join(name).join("report.html")).unwrap();
        assert!(html.contains(&format!("{}/6</span>", report["score"])), "{html}");
    }
    let dave = std::fs::read_to_string(out.join("dave/report.txt")).unwrap();
    assert!(dave.contains("build failed"), "{dave}");

    // The class at a glance: a page a real parser accepts, that fetches
    // nothing, and whose every link opens a report of the class.
    let check = support::tool("python3")
        .arg(root().join("harness/tests/support/html_check.py"))
        .arg("index")
        .arg(out.join("index.html"))
        .output()
        .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(check.status.success(), "{page}");
    let links: Vec<&str> = page["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for name in ["alice", "bob", "carol", "dave"] {
        assert!(links.contains(&format!("{name}/report.html").as_str()), "{links:?}");
    }
    for link in &links {
        assert!(out.join(link).is_file(), "{link} leads nowhere");
    }
    let text = page["text"].as_str().unwrap();
    assert!(text.contains("4 submission(s)"), "{text}");
    // bob serves one client at a time: the concurrency clause lists him.
    assert!(text.contains("tcp-echo.server.concurrent"), "{text}");
    // dave did not build: counted apart, not as a failure of every clause,
    // and across the grid.
    assert!(
        text.contains("Did not build (1), and not counted above: dave"),
        "{text}"
    );
    assert!(text.contains("Submissions by clause"), "{text}");

    // Nothing changed: nothing is graded again, and the reports stay as
    // they were.
    let before = modified(out.join("bob/report.json"));
    let (code, stderr) = grade(&subs, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 graded, 4 unchanged"), "{stderr}");
    assert_eq!(modified(out.join("bob/report.json")), before);

    // Bob resubmits (one file changed): only bob is graded again.
    let source = subs.join("bob/echoserver.c");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, format!("{text}\n/* resubmitted */\n")).unwrap();
    let alice = modified(out.join("alice/report.json"));
    let (code, stderr) = grade(&subs, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 graded, 3 unchanged"), "{stderr}");
    assert_ne!(modified(out.join("bob/report.json")), before);
    assert_eq!(modified(out.join("alice/report.json")), alice);
    insta::assert_snapshot!("a_class_is_graded_and_summed_up", summary(&out));
}

/// A regrade after a fix to the spec takes each submission's kept build
/// (OUT/.builds) instead of running make again: a Makefile that prints the
/// time it ran prints it once. Changed sources are built again.
#[test]
fn a_regrade_after_a_spec_fix_reuses_the_builds() {
    let dir = tempfile::tempdir().unwrap();
    let (subs, out, spec) = (
        dir.path().join("subs"),
        dir.path().join("out"),
        dir.path().join("spec.yaml"),
    );
    let erin = subs.join("erin");
    copy(&root().join("fixtures/submissions/tcp-echo-fork"), &erin);
    let makefile = std::fs::read_to_string(erin.join("Makefile")).unwrap();
    let stamped = makefile.replace(
        "all: echoserver echoclient\n",
        "all: echoserver echoclient\n\t@echo made at $$(date +%s%N)\n",
    );
    assert_ne!(stamped, makefile);
    std::fs::write(erin.join("Makefile"), stamped).unwrap();
    std::fs::copy(root().join(SPEC), &spec).unwrap();
    let build_output = || {
        let (code, stderr) = grade_with(&spec, &subs, &out, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("1 graded"), "{stderr}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("erin/report.json")).unwrap()).unwrap();
        assert_eq!(report["score"], report["max_score"], "{report}");
        report["build"]["output"].as_str().unwrap().to_string()
    };
    let first = build_output();
    assert!(first.contains("made at"), "{first}");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, format!("{text}\n# a fix to the spec\n")).unwrap();
    assert_eq!(build_output(), first, "the build ran again");
    std::fs::write(erin.join("README"), "resubmitted").unwrap();
    assert_ne!(build_output(), first, "the changed sources were not built again");
}

/// Runs `grade SPEC` (any spec) over `subs` into `out`; returns the exit
/// code and stderr.
fn grade_with(spec: &Path, subs: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let result = sockgrade()
        .arg("grade")
        .arg(spec)
        .arg("--submissions")
        .arg(subs)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    (
        result.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&result.stderr).into_owned(),
    )
}

/// Two shards graded apart (as two CI jobs would), their folders gathered
/// in one place, make the same summary as the whole class graded at once.
#[test]
fn shards_gathered_make_the_same_summary() {
    let class = class();
    let subs = class.path().join("subs");
    let all = class.path().join("all");
    for k in ["1/2", "2/2"] {
        let shard = class.path().join(format!("shard-{}", &k[..1]));
        // One shard's human reports are for students; the summary, made
        // from the JSON records, must not notice.
        let students: &[&str] = if k == "1/2" { &["--for-students"] } else { &[] };
        let (code, stderr) = grade(&subs, &shard, &[&["--partition", k], students].concat());
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("2 submission(s): 2 graded"), "{stderr}");
        assert!(
            !shard.join("summary.csv").exists(),
            "a shard leaves the summary to `summary`"
        );
        copy(&shard, &all);
    }
    // Each submission's folder (the builds kept for a regrade are hidden).
    let names = |dir: &Path| {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&class.path().join("shard-1")), ["alice", "carol"]);
    assert_eq!(names(&class.path().join("shard-2")), ["bob", "dave"]);
    let carol = class.path().join("shard-1/carol");
    let human = std::fs::read_to_string(carol.join("report.txt")).unwrap();
    assert!(
        human.contains("scenario 3 (shown after the due date)") && !human.contains("SIGTERM"),
        "{human}"
    );
    let record = std::fs::read_to_string(carol.join("report.json")).unwrap();
    assert!(record.contains("the server exits on SIGTERM"), "the record is whole");
    let result = sockgrade().arg("summary").arg(&all).output().unwrap();
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    insta::assert_snapshot!("a_class_is_graded_and_summed_up", summary(&all));
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cases: [(&[&str], &str); 4] = [
        (&["--submissions", "/no/such/class"], "not a directory"),
        (&["--submissions", dir.path().to_str().unwrap()], "no submission"),
        (&["--submissions", ".", "--partition", "3/2"], "K/N"),
        (&["--submissions", ".", "--partition", "half"], "K/N"),
    ];
    for (args, says) in cases {
        sockgrade()
            .args(["grade", SPEC, "--out", out.to_str().unwrap()])
            .args(args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(says));
    }
    sockgrade()
        .args(["summary", "/no/such/out"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a directory"));
}
