//! `--format classroom`: the runner result GitHub Classroom's
//! autograding-grading-reporter decodes from `<ID>_RESULTS` and sums (the
//! grade is Σ tests[].score over max_score). A test per scenario, so partial
//! credit survives.
//!
//! The document reaches the reporter base64-encoded in an environment
//! variable, which Linux caps at 128 KiB: the JSON must stay under `LIMIT`,
//! so messages are capped, and capped harder until it fits.

use super::cap::{self, cap};
use crate::submission::BuildStatus;
use crate::verdict::{RunResult, Status};
use serde::Serialize;

/// 128 KiB less base64's third, with room to spare.
pub const LIMIT: usize = 95 * 1024;

#[derive(Serialize)]
struct Runner<'a> {
    version: u32,
    status: &'static str,
    max_score: u32,
    tests: Vec<Test<'a>>,
}

#[derive(Serialize)]
struct Test<'a> {
    name: &'a str,
    status: &'static str,
    score: u32,
    /// The reporter shows it only for `error`; it is still the place a
    /// student looking at the raw result finds the reason.
    message: String,
}

pub fn render(report: &RunResult) -> String {
    cap::fit(LIMIT, |max| render_capped(report, max))
}

fn render_capped(report: &RunResult, max: usize) -> String {
    let runner = Runner {
        version: 1,
        status: status(report),
        max_score: report.max_score,
        tests: report
            .scenarios
            .iter()
            .map(|s| Test {
                name: &s.name,
                status: match s.status {
                    Status::Passed => "pass",
                    Status::Failed => "fail",
                    Status::Error => "error",
                },
                score: s.score,
                message: cap(&s.message().unwrap_or_default(), max),
            })
            .collect(),
    };
    serde_json::to_string(&runner).expect("plain data serialises") + "\n"
}

/// `error` when nothing could be graded (the build failed), `fail` when a
/// scenario did not pass, `pass` otherwise.
fn status(report: &RunResult) -> &'static str {
    match report.build.status {
        BuildStatus::Failed | BuildStatus::Timeout => "error",
        BuildStatus::Ok | BuildStatus::None if report.all_passed() => "pass",
        BuildStatus::Ok | BuildStatus::None => "fail",
    }
}
