//! `--format json`: the machine-readable result.

use crate::verdict::RunResult;
use serde::Serialize;

#[derive(Serialize)]
struct Json<'a> {
    lab: &'a str,
    spec: &'a str,
    submission: &'a str,
    score: u32,
    max_score: u32,
    build: &'a crate::submission::Build,
    walls: &'a crate::verdict::WallsReport,
    scenarios: Vec<JsonScenario<'a>>,
}

#[derive(Serialize)]
struct JsonScenario<'a> {
    name: &'a str,
    tags: &'a [String],
    status: crate::verdict::Status,
    score: u32,
    max_score: u32,
    duration_ms: u64,
    visibility: crate::lang::Visibility,
    /// The failure as a student reads it; null for a pass.
    message: Option<String>,
    /// The structured failure, for tools.
    failure: &'a Option<crate::verdict::Failure>,
    transcript: &'a str,
}

pub fn render(report: &RunResult) -> String {
    let json = Json {
        lab: &report.lab,
        spec: &report.spec,
        submission: &report.submission,
        score: report.score,
        max_score: report.max_score,
        build: &report.build,
        walls: &report.walls,
        scenarios: report
            .scenarios
            .iter()
            .map(|s| JsonScenario {
                name: &s.name,
                tags: &s.tags,
                status: s.status,
                score: s.score,
                max_score: s.max_score,
                duration_ms: s.duration_ms,
                visibility: s.visibility,
                message: s.message(),
                failure: &s.failure,
                transcript: &s.transcript,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&json).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) + "\n"
}
