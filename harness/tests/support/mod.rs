//! Shared by the harness's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace's root directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn sockgrade() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_sockgrade"));
    cmd.current_dir(root()).env("NO_COLOR", "1");
    cmd
}

/// Where cargo put the reference programs: beside `sockgrade`. `cargo test
/// --workspace` builds them (the reference crate has integration tests).
pub fn reference_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_sockgrade"))
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        dir.join("echoserver").exists(),
        "the reference programs are not built in {}: run `cargo test --workspace` (or `cargo build -p reference`) first",
        dir.display()
    );
    dir
}

/// Runs `sockgrade run` and returns the parsed JSON report and the exit code.
pub fn run_json(args: &[&str]) -> (serde_json::Value, i32) {
    let out = sockgrade()
        .arg("run")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "sockgrade printed no JSON ({e}); exit {code}\nstdout: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, code)
}

/// One line per scenario: status and name. What the snapshots keep.
pub fn verdict_table(report: &serde_json::Value) -> String {
    let mut out = format!("score {}/{}\n", report["score"], report["max_score"]);
    for s in report["scenarios"].as_array().unwrap() {
        // A failure blamed on a precondition says which clause it went to.
        let blamed = match s["failure"]["precondition"].as_str() {
            Some(_) => format!(
                "  [blamed on {}]",
                clauses_of(s).into_iter().collect::<Vec<_>>().join(", ")
            ),
            None => String::new(),
        };
        out.push_str(&format!(
            "{:<6} {}{blamed}\n",
            s["status"].as_str().unwrap(),
            s["name"].as_str().unwrap()
        ));
    }
    out
}

/// The clauses a scenario's result is attributed to: its failure's
/// `clauses` (a precondition's, when one failed first), else its tags.
pub fn clauses_of(s: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let list = match s["failure"]["clauses"].as_array() {
        Some(c) => c,
        None => s["tags"].as_array().expect("tags"),
    };
    list.iter().map(|t| t.as_str().unwrap().to_string()).collect()
}
