//! `sockgrade list`: a spec's scenarios with points, visibility and clause
//! ids, and the totals, as a table and as JSON. It reads the spec only, so
//! the snapshots hold no port, pid or time.

mod support;

use support::sockgrade;

const SPEC: &str = "fixtures/specs/class.yaml";

#[test]
fn the_table_lists_every_scenario_and_the_totals() {
    let out = sockgrade().args(["list", SPEC]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

#[test]
fn the_json_says_the_same_for_tools() {
    let out = sockgrade().args(["list", SPEC, "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!(json);
}

/// The bundled lab's totals agree with its scenarios, whatever they become.
#[test]
fn totals_add_up_for_the_bundled_spec() {
    let out = sockgrade()
        .args(["list", "specs/tcp-echo.yaml", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["scenarios"].as_array().unwrap();
    let sum: u64 = rows.iter().map(|r| r["points"].as_u64().unwrap()).sum();
    assert_eq!(json["totals"]["points"].as_u64(), Some(sum));
    assert_eq!(json["totals"]["scenarios"].as_u64(), Some(rows.len() as u64));
    let by: u64 = json["totals"]["points_by_visibility"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by, sum);
    // Every precondition names a clause; the lab's server has some.
    let server = &json["preconditions"]["server"];
    assert!(server.as_object().is_some_and(|p| !p.is_empty()), "{json:#}");
    let human = sockgrade().args(["list", "specs/tcp-echo.yaml"]).output().unwrap();
    let human = String::from_utf8(human.stdout).unwrap();
    assert!(human.contains("preconditions of server: "), "{human}");
}

#[test]
fn a_missing_or_broken_spec_is_a_clear_error() {
    sockgrade()
        .args(["list", "no/such/spec.yaml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("cannot read the spec"));
    sockgrade()
        .args(["list", "fixtures/specs/invalid/unknown-connection.yaml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown-connection.yaml:9:21"));
}
