//! Reporters: each turns a finished `RunResult` into text and runs nothing.
//! A new format is a file here, a variant of `Format` and a line in `render`.

pub mod cap;
pub mod classroom;
pub mod gradescope;
pub mod html;
pub mod human;
pub mod json;
pub mod junit;
pub mod prairielearn;
pub mod redact;

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
    /// One self-contained page: the verdicts, and a sequence diagram of
    /// each scenario.
    Html,
}

impl Format {
    /// Whether the run must exit 0 once this report is written, whatever the
    /// grade: PrairieLearn discards the results of a grader that exits
    /// non-zero, and Gradescope does not say that it doesn't.
    pub fn exits_zero(self) -> bool {
        match self {
            Format::Gradescope | Format::Prairielearn => true,
            Format::Human | Format::Json | Format::Junit | Format::Classroom | Format::Html => false,
        }
    }
}

/// How reports look, and the choices that depend on who reads them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Colour in the human report.
    pub color: bool,
    /// Show transcripts of failing scenarios.
    pub verbose: bool,
    /// Students read this run's reports: see `redact`.
    pub for_students: bool,
    /// How the PrairieLearn report grades a submission that does not build.
    pub build_failure: BuildFailure,
}

/// A course's policy for a submission that does not build, on platforms
/// where it is a choice (PrairieLearn): it is the course's, not the lab's,
/// so it is an option of the run rather than a field of the spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildFailure {
    /// `gradable: false`: the build output is shown and no attempt is used.
    #[default]
    Ungradable,
    /// A graded 0, the build output shown: the attempt counts.
    Zero,
}

pub fn render(format: Format, run: &RunResult, style: &Style) -> String {
    // Gradescope applies visibility itself and must see everything;
    // Classroom's readers are always the students.
    let redacted;
    let run = match format {
        Format::Classroom => {
            redacted = redact::for_students(run);
            &redacted
        }
        Format::Human | Format::Json | Format::Junit | Format::Prairielearn | Format::Html if style.for_students => {
            redacted = redact::for_students(run);
            &redacted
        }
        Format::Human | Format::Json | Format::Junit | Format::Prairielearn | Format::Html | Format::Gradescope => run,
    };
    match format {
        Format::Human => human::render(run, style),
        Format::Json => json::render(run),
        Format::Junit => junit::render(run),
        Format::Gradescope => gradescope::render(run),
        Format::Classroom => classroom::render(run),
        Format::Prairielearn => prairielearn::render(run, style.build_failure),
        Format::Html => html::render(run),
    }
}
