//! The chat lab of the guide (docs/guide/writing-a-lab.md), a lab sockgrade does
//! not ship: its model solution passes every scenario; each buggy
//! submission fails exactly one, the one tagged with the clause its EXPECT
//! file names. Its handout's clause ids and the spec's tags agree.

mod support;

use std::collections::BTreeSet;
use support::{clauses_of, root, run_json};

const SPEC: &str = "fixtures/chat/chat.yaml";

fn grade(submission: &str) -> serde_json::Value {
    let dir = format!("fixtures/chat/{submission}");
    let (report, _) = run_json(&[SPEC, "--submission", &dir]);
    assert_eq!(
        report["build"]["status"], "ok",
        "{submission} did not build: {}",
        report["build"]["output"]
    );
    report
}

#[test]
fn the_model_solution_passes_every_scenario() {
    let report = grade("model");
    let failed: Vec<String> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] != "passed")
        .map(|s| format!("{}\n{}", s["name"], s["message"].as_str().unwrap_or("")))
        .collect();
    assert!(failed.is_empty(), "the model failed:\n{}", failed.join("\n"));
}

#[test]
fn each_buggy_submission_fails_exactly_its_one_scenario() {
    for submission in ["echo-to-sender", "chunks", "dies-on-reset", "eight-clients"] {
        let expect = std::fs::read_to_string(root().join("fixtures/chat").join(submission).join("EXPECT")).unwrap();
        let clause = expect.lines().next().unwrap().trim().to_string();
        let report = grade(submission);
        let failed: Vec<&serde_json::Value> = report["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] != "passed")
            .collect();
        let names: Vec<&str> = failed.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(failed.len(), 1, "{submission} failed {names:?}");
        assert_eq!(
            clauses_of(failed[0]),
            BTreeSet::from([clause.clone()]),
            "{submission} failed {names:?}, not the scenario of {clause}"
        );
    }
}

#[test]
fn the_handout_and_the_spec_name_the_same_clauses() {
    let handout = std::fs::read_to_string(root().join("fixtures/chat/chat.md")).unwrap();
    let clauses: BTreeSet<String> = handout
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect();
    let spec = harness::lang::load(&root().join(SPEC)).unwrap();
    let tagged: BTreeSet<String> = spec.scenarios.iter().flat_map(|s| s.tags.iter().cloned()).collect();
    assert_eq!(clauses, tagged);
}
