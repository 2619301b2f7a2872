//! `--format gradescope`: the `results.json` Gradescope reads from
//! /autograder/results after `run_autograder` (see docs/specs.md of
//! gradescope/autograder_samples). A test per scenario, in spec order.

use super::cap::{self, cap};
use crate::lang::Visibility;
use crate::submission::BuildStatus;
use crate::verdict::{RunResult, Status};
use serde::Serialize;

#[derive(Serialize)]
struct Results<'a> {
    score: u32,
    /// Only the build output, and only when the build did not succeed: the
    /// per-scenario failures are in the tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    /// Explicit, because Gradescope's default for the top-level output is
    /// `simple_format` (HTML), which would eat `#include <stdio.h>`.
    output_format: &'static str,
    test_output_format: &'static str,
    /// Seconds.
    execution_time: f64,
    extra_data: Extra<'a>,
    tests: Vec<Test<'a>>,
}

#[derive(Serialize)]
struct Extra<'a> {
    lab: &'a str,
    isolation: &'a str,
    walls_missing: &'a [String],
    version: &'static str,
}

#[derive(Serialize)]
struct Test<'a> {
    name: &'a str,
    /// Gradescope orders tests by this string.
    number: String,
    score: u32,
    max_score: u32,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    tags: &'a [String],
    /// Our four words are Gradescope's.
    visibility: Visibility,
}

pub fn render(report: &RunResult) -> String {
    let output = match report.build.status {
        BuildStatus::Ok | BuildStatus::None => None,
        BuildStatus::Failed | BuildStatus::Timeout => Some(format!(
            "The submission did not build (make {}):\n{}",
            report.build.status.as_str(),
            cap(&report.build.output, cap::MESSAGE)
        )),
    };
    let results = Results {
        score: report.score,
        output,
        output_format: "text",
        test_output_format: "text",
        execution_time: report.duration_ms as f64 / 1000.0,
        extra_data: Extra {
            lab: &report.lab,
            isolation: &report.isolation,
            walls_missing: &report.walls.missing,
            version: env!("CARGO_PKG_VERSION"),
        },
        tests: report
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| Test {
                name: &s.name,
                number: (i + 1).to_string(),
                score: s.score,
                max_score: s.max_score,
                // Gradescope has no error state: a scenario that could not
                // run earned nothing, like a failed one.
                status: match s.status {
                    Status::Passed => "passed",
                    Status::Failed | Status::Error => "failed",
                },
                output: s.message().map(|m| cap(&m, cap::MESSAGE)),
                tags: &s.tags,
                visibility: s.visibility,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&results).expect("plain data serialises") + "\n"
}
