//! `--format prairielearn`: the `results.json` PrairieLearn's external
//! grader reads from /grade/results (docs/externalGrading.md). The score is
//! a fraction in [0, 1]; tests carry points only for display.
//!
//! PrairieLearn has no per-test visibility, so scenarios that are not
//! `visible` are left out of `tests` (their points still count in `score`).
//! A submission that does not build is, as the course chooses
//! (`--build-failure`), `gradable: false` (the default: PrairieLearn shows
//! the build output and does not use up an attempt) or a graded 0 with the
//! build output. Files over 1 MiB are refused, so messages are capped harder
//! until the file fits.

use super::cap::{self, cap};
use super::BuildFailure;
use crate::lang::Visibility;
use crate::submission::BuildStatus;
use crate::verdict::RunResult;
use serde::Serialize;

/// PrairieLearn refuses results larger than this.
pub const LIMIT: usize = 1024 * 1024;

#[derive(Serialize)]
struct Results<'a> {
    gradable: bool,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format_errors: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    tests: Vec<Test<'a>>,
}

#[derive(Serialize)]
struct Test<'a> {
    name: &'a str,
    points: u32,
    max_points: u32,
    /// The failure as a student reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// The transcript of a scenario that did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

pub fn render(report: &RunResult, build_failure: BuildFailure) -> String {
    cap::fit(LIMIT, |max| render_capped(report, build_failure, max))
}

fn render_capped(report: &RunResult, build_failure: BuildFailure, max: usize) -> String {
    let results = match (report.build.status, build_failure) {
        (BuildStatus::Failed | BuildStatus::Timeout, BuildFailure::Zero) => Results {
            // Each scenario is then an error saying so, worth 0.
            output: Some(cap(&report.build.output, max)),
            message: Some(format!(
                "The submission did not build (make {}): see the build output.",
                report.build.status.as_str()
            )),
            ..graded(report, max)
        },
        (BuildStatus::Failed | BuildStatus::Timeout, BuildFailure::Ungradable) => Results {
            gradable: false,
            score: 0.0,
            message: None,
            format_errors: Some(vec![format!(
                "The submission did not build (make {}).",
                report.build.status.as_str()
            )]),
            output: Some(cap(&report.build.output, max)),
            tests: Vec::new(),
        },
        (BuildStatus::Ok | BuildStatus::None, _) => graded(report, max),
    };
    serde_json::to_string_pretty(&results).expect("plain data serialises") + "\n"
}

fn graded(report: &RunResult, max: usize) -> Results<'_> {
    let shown: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| s.visibility == Visibility::Visible)
        .collect();
    let unseen = report.scenarios.len() - shown.len();
    Results {
        gradable: true,
        score: fraction(report.score, report.max_score),
        message: (unseen > 0).then(|| format!("{unseen} more scenario(s), not shown here, count toward the score.")),
        format_errors: None,
        output: None,
        tests: shown
            .into_iter()
            .map(|s| Test {
                name: &s.name,
                points: s.score,
                max_points: s.max_score,
                message: s.message().map(|m| cap(&m, max)),
                output: s.message().map(|_| cap(&s.transcript, max)),
            })
            .collect(),
    }
}

/// The score as PrairieLearn wants it; a spec worth nothing is all earned.
fn fraction(score: u32, max: u32) -> f64 {
    if max == 0 {
        1.0
    } else {
        (f64::from(score) / f64::from(max)).clamp(0.0, 1.0)
    }
}
