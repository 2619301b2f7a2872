//! Shared by the harness's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

// `tool`, shared with the reference programs' tests.
include!("../../../reference/tests/support/tool.rs");

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

/// Validates each document against `schema` with a real JSON Schema
/// validator (Python's jsonschema; .ci/run installs python3-jsonschema),
/// after checking the schema against its metaschema. Per document, the
/// validator's errors (empty when valid).
pub fn json_schema_errors(schema: &serde_json::Value, docs: &[serde_json::Value]) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("schema.json");
    std::fs::write(&schema_file, schema.to_string()).unwrap();
    let docs_file = dir.path().join("docs.json");
    std::fs::write(&docs_file, serde_json::to_string(docs).unwrap()).unwrap();
    const SCRIPT: &str = r#"
import json, sys
from jsonschema.validators import validator_for
schema = json.load(open(sys.argv[1]))
cls = validator_for(schema)
cls.check_schema(schema)
v = cls(schema)
out = [[f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]
       for doc in json.load(open(sys.argv[2]))]
print(json.dumps(out))
"#;
    let out = tool("python3")
        .args(["-c", SCRIPT])
        .arg(&schema_file)
        .arg(&docs_file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3's jsonschema failed (apt-get install python3-jsonschema; .ci/run does):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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

/// Copies a directory tree (files and folders; the fixtures have nothing
/// else), as an instructor copies submissions into a class folder.
pub fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A YAML file of the repository (a platform's workflow or manifest), as
/// JSON values.
pub fn read_yaml(path: &str) -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

/// A `bin/sudo` under `dir` that runs its command as it is (the tests run
/// as root already), for the platforms' scripts that call `sudo`; returns
/// a PATH with that `bin` first.
pub fn path_with_sudo(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(bin.join("sudo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}
