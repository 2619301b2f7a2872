//! Reporters: each turns a finished `RunResult` into text and runs nothing.
//! A new format is a file here, a variant of `Format` and a line in `render`.

pub mod human;
pub mod json;

use crate::verdict::RunResult;

/// The formats `sockgrade run --format` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A line per scenario, each failure explained under it.
    Human,
    /// Everything, for tools.
    Json,
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
    }
}
