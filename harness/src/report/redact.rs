//! What students may see of a run. A scenario that is not `visible` keeps
//! its place, status and points (a platform that sums points must still
//! reach the grade) but loses everything that tells what it tests or how it
//! failed: name, clauses, failure, hint and transcript.
//!
//! Gradescope applies visibility itself and PrairieLearn's reporter leaves
//! such scenarios out; GitHub Classroom has no visibility and its readers
//! are the students, so its report is always redacted; the others (human,
//! JSON, JUnit) are when a run says it is `--for-students` (a student's own
//! CI, the job summary of a Classroom workflow).

use crate::lang::Visibility;
use crate::verdict::{RunResult, ScenarioResult, Status};

/// The run as students may see it.
pub fn for_students(run: &RunResult) -> RunResult {
    RunResult {
        lab: run.lab.clone(),
        spec: run.spec.clone(),
        submission: run.submission.clone(),
        score: run.score,
        max_score: run.max_score,
        build: run.build.clone(),
        scenarios: run
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.visibility == Visibility::Visible {
                    without_spec_lines(s)
                } else {
                    redacted(i + 1, s)
                }
            })
            .collect(),
        isolation: run.isolation.clone(),
        walls: run.walls.clone(),
        duration_ms: run.duration_ms,
    }
}

/// A visible scenario as students read it: its failure says the step in
/// words, and a line of a spec they never see would say nothing (`line` 0,
/// which the reports leave out).
fn without_spec_lines(s: &ScenarioResult) -> ScenarioResult {
    let mut s = s.clone();
    if let Some(f) = &mut s.failure {
        f.line = 0;
    }
    s
}

fn redacted(number: usize, s: &ScenarioResult) -> ScenarioResult {
    let when = match s.visibility {
        Visibility::Visible | Visibility::Hidden => "hidden",
        Visibility::AfterDueDate => "shown after the due date",
        Visibility::AfterPublished => "shown once grades are published",
    };
    ScenarioResult {
        name: format!("scenario {number} ({when})"),
        tags: Vec::new(),
        status: s.status,
        score: s.score,
        max_score: s.max_score,
        duration_ms: s.duration_ms,
        visibility: s.visibility,
        hint: None,
        failure: None,
        // `message()` says this instead of the failure.
        error: (s.status != Status::Passed).then(|| format!("The details of this scenario are {when}.")),
        transcript: String::new(),
        normalised: String::new(),
        events: Vec::new(),
        programs: Vec::new(),
    }
}
