//! `sockgrade schema`: the JSON Schema of the spec language, checked the way
//! an editor uses it, by a real validator (Python's jsonschema, which .ci/run
//! installs): every bundled spec is valid against it, and specs with the
//! mistakes an instructor makes are not.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{json_schema_errors, root, sockgrade};

fn schema() -> Value {
    let out = sockgrade().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

/// A YAML spec as the JSON value an editor's language server validates.
fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("the spec is YAML")
}

fn docs(instances: &[(String, Value)]) -> Vec<Value> {
    instances.iter().map(|(_, v)| v.clone()).collect()
}

fn bundled_specs() -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(root().join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    specs.extend(
        [
            "fixtures/specs/trivial.yaml",
            "fixtures/specs/class.yaml",
            "fixtures/sandbox/sandbox.yaml",
        ]
        .iter()
        .map(|p| root().join(p)),
    );
    specs.sort();
    specs
}

#[test]
fn every_bundled_spec_validates() {
    let specs = bundled_specs();
    assert!(specs.len() >= 4, "{specs:?}");
    let instances: Vec<(String, Value)> = specs
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                yaml_to_json(&std::fs::read_to_string(p).unwrap()),
            )
        })
        .collect();
    let results = json_schema_errors(&schema(), &docs(&instances));
    for ((name, _), errors) in instances.iter().zip(&results) {
        assert!(errors.is_empty(), "{name} breaks the schema:\n{}", errors.join("\n"));
    }
}

/// Mistakes an editor should underline, each in an otherwise valid spec.
#[test]
fn wrong_specs_fail() {
    let good = std::fs::read_to_string(root().join("fixtures/specs/trivial.yaml")).unwrap();
    let wrong = [
        ("a misspelled step", good.replace("- connect: a", "- conect: a")),
        (
            "an unknown key",
            good.replace("listens: tcp", "listens: tcp\n    port: 80"),
        ),
        (
            "points as words",
            good.replace("- name: start", "- points: two\n    name: start"),
        ),
        (
            "a duration without a unit",
            good.replace(
                "text: \"hello\\n\" }\n      - stop",
                "text: \"hello\\n\", within: 5 }\n      - stop",
            ),
        ),
        (
            "an unknown visibility",
            good.replace("- name: start", "- visibility: secret\n    name: start"),
        ),
        ("no scenarios", good.split("scenarios:").next().unwrap().to_string()),
        (
            "a step with two keywords",
            good.replace("- stop: server", "- stop: server\n        kill: server"),
        ),
    ];
    let instances: Vec<(String, Value)> = wrong
        .iter()
        .map(|(what, text)| (what.to_string(), yaml_to_json(text)))
        .collect();
    for (what, text) in &wrong {
        assert_ne!(text, &good, "{what}: the replacement did not apply");
    }
    let results = json_schema_errors(&schema(), &docs(&instances));
    for ((what, _), errors) in instances.iter().zip(&results) {
        assert!(!errors.is_empty(), "the schema accepts {what}");
    }
}

/// The schema's descriptions come from the language reference (the doc
/// comments of the step structs), so an editor's hover shows them.
#[test]
fn steps_carry_their_documentation() {
    let schema = schema();
    let start = &schema["definitions"]["Start"]["description"];
    assert!(start.as_str().is_some_and(|d| d.contains("start: server")), "{start}");
    let guide = root().join("docs/guide/writing-a-spec.md");
    assert!(Path::new(&guide).exists());
    let guide = std::fs::read_to_string(guide).unwrap();
    assert!(
        guide.contains("# yaml-language-server: $schema="),
        "the guide to writing a spec shows the editor line"
    );
}
