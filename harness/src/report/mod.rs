//! Reporters: each turns a finished `RunResult` into text and runs nothing.
//! A new format is a file here, a variant of `Format` and a line in `render`.

pub mod cap;
pub mod classroom;
pub mod gradescope;
pub mod human;
pub mod json;
pub mod junit;
pub mod prairielearn;

use crate::verdict::RunResult;

/// The formats `sockgrade run --format` prints and `--output` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A line per scenario, each failure explained under it.
    Human,
    /// Everything, for tools.
    Json,
    /// JUnit XML, for CI test reports.
    Junit,
    /// Gradescope's results.json.
    Gradescope,
    /// GitHub Classroom's runner result (for autograding-grading-reporter).
    Classroom,
    /// PrairieLearn's results.json.
    Prairielearn,
}

impl Format {
    /// Whether the run must exit 0 once this report is written, whatever the
    /// grade: PrairieLearn discards the results of a grader that exits
    /// non-zero, and Gradescope does not say that it doesn't.
    pub fn exits_zero(self) -> bool {
        match self {
            Format::Gradescope | Format::Prairielearn => true,
            Format::Human | Format::Json | Format::Junit | Format::Classroom => false,
        }
    }
}

/// How the human report looks.
pub struct Style {
    pub color: bool,
    /// Show transcripts of failing scenarios.
    pub verbose: bool,
}

pub fn render(format: Format, run: &RunResult, style: &Style) -> String {
    match format {
        Format::Human => human::render(run, style),
        Format::Json => json::render(run),
        Format::Junit => junit::render(run),
        Format::Gradescope => gradescope::render(run),
        Format::Classroom => classroom::render(run),
        Format::Prairielearn => prairielearn::render(run),
    }
}
