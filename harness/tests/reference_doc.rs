//! The documentation stays true: the step reference (`docs/reference/steps.md`)
//! is what `harness::spec::steps_markdown()` writes from the doc comments
//! today.

mod support;

use support::root;

const STEPS_MD: &str = "docs/reference/steps.md";

/// With `SOCKGRADE_BLESS=1` the file is written instead of compared.
#[test]
fn step_reference_is_current() {
    let generated = harness::spec::steps_markdown();
    let path = root().join(STEPS_MD);
    if std::env::var_os("SOCKGRADE_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let first = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "{STEPS_MD} is not what the doc comments say now (first difference at line {}: {:?} should be {:?}).\n\
             It is generated, not edited: run `SOCKGRADE_BLESS=1 cargo test -p harness --test reference_doc` \
             and commit the file.",
            first + 1,
            on_disk.lines().nth(first).unwrap_or(""),
            generated.lines().nth(first).unwrap_or(""),
        );
    }
}

/// A keyword added to the language gets a family in the reference.
#[test]
fn every_step_has_a_family() {
    let generated = harness::spec::steps_markdown();
    assert!(
        !generated.contains(&format!("## {}", harness::spec::STEPS_WITHOUT_FAMILY)),
        "a step keyword has no family: add it to FAMILIES in harness/src/spec/reference.rs"
    );
}
