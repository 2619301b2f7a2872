//! The terminal report: a line per scenario, each failure explained under
//! it, the score last. Colour only on a terminal, and never with NO_COLOR.

use super::Style;
use crate::submission::BuildStatus;
use crate::verdict::{RunResult, Status};

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

pub fn render(report: &RunResult, style: &Style) -> String {
    let mut out = format!("{} — {}\n", report.lab, report.submission);
    match report.build.status {
        BuildStatus::Ok | BuildStatus::None => {}
        other @ (BuildStatus::Failed | BuildStatus::Timeout) => {
            out.push_str(&style.paint("31;1", &format!("build {}:", other.as_str())));
            out.push('\n');
            for line in report.build.output.lines() {
                out.push_str(&format!("  | {line}\n"));
            }
        }
    }
    for s in &report.scenarios {
        let (word, code) = match s.status {
            Status::Passed => ("PASS ", "32"),
            Status::Failed => ("FAIL ", "31;1"),
            Status::Error => ("ERROR", "33;1"),
        };
        out.push_str(&format!(
            "{} {} ({}/{}){}\n",
            style.paint(code, word),
            s.name,
            s.score,
            s.max_score,
            style.paint("2", &format!("  {}ms", s.duration_ms))
        ));
        if let Some(message) = s.message() {
            for line in message.lines() {
                out.push_str(&format!("      {line}\n"));
            }
            if !s.tags.is_empty() {
                out.push_str(&style.paint("2", &format!("      clauses: {}\n", s.tags.join(", "))));
            }
            if style.verbose && !s.transcript.is_empty() {
                out.push_str("      transcript:\n");
                for line in s.transcript.lines() {
                    out.push_str(&format!("        {line}\n"));
                }
            }
        }
    }
    let passed = report.scenarios.iter().filter(|s| s.status == Status::Passed).count();
    out.push_str(&format!(
        "\nscore: {}/{} ({} of {} scenarios passed)\n",
        report.score,
        report.max_score,
        passed,
        report.scenarios.len()
    ));
    out
}
