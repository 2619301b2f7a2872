//! Broken specs give a located error (file:line:column, the line, what was
//! expected) and exit 2; no input makes the loader panic.

mod support;

use std::path::Path;

#[test]
fn every_broken_spec_is_reported_with_its_location() {
    insta::glob!("../../fixtures/specs/invalid", "*.yaml", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = Path::new("fixtures/specs/invalid").join(path.file_name().unwrap());
        let err = harness::lang::load_str(&name, &source).expect_err("this spec is broken");
        assert!(err.line >= 1 && err.column >= 1, "no location: {err}");
        insta::assert_snapshot!(err.render(false));
    });
}

#[test]
fn check_exits_2_and_names_file_line_column() {
    support::sockgrade()
        .args(["check", "fixtures/specs/invalid/unknown-connection.yaml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "fixtures/specs/invalid/unknown-connection.yaml:9:21",
        ));
}

#[test]
fn run_refuses_a_broken_spec_before_running_anything() {
    support::sockgrade()
        .args(["run", "fixtures/specs/invalid/bad-duration.yaml", "--reference"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("expected a duration with a unit"));
}

#[test]
fn the_bundled_specs_are_valid() {
    for entry in std::fs::read_dir(support::root().join("specs")).unwrap() {
        let path = entry.unwrap().path();
        // Beside each spec is its handout (`<lab>.md`).
        if path.extension().is_some_and(|e| e == "yaml") {
            support::sockgrade().arg("check").arg(&path).assert().success();
        }
    }
}

/// Every prefix of a real spec, cut at any line, and with any one line
/// dropped: the loader answers with an error or a spec, never a panic.
#[test]
fn no_truncated_or_mangled_spec_panics() {
    for lab in ["tcp-echo", "udp-echo", "multicast", "rpc", "http"] {
        let source = std::fs::read_to_string(support::root().join(format!("specs/{lab}.yaml"))).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        let path = Path::new("mangled.yaml");
        for cut in 0..lines.len() {
            let _ = harness::lang::load_str(path, &lines[..cut].join("\n"));
            let mut dropped = lines.clone();
            dropped.remove(cut);
            let _ = harness::lang::load_str(path, &dropped.join("\n"));
        }
        for cut in (0..source.len()).step_by(97) {
            if source.is_char_boundary(cut) {
                let _ = harness::lang::load_str(path, &source[..cut]);
            }
        }
    }
}
