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
    // Failures by the clauses they are blamed on, the first of each: a
    // failure blamed on a precondition that an earlier scenario already
    // showed failing is said once, there, and only pointed at here.
    let mut first_of: std::collections::HashMap<&[String], &str> = std::collections::HashMap::new();
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
        let clauses = s.failure.as_ref().map(|f| f.clauses.as_slice()).unwrap_or(&s.tags);
        let said = s
            .failure
            .as_ref()
            .and_then(|f| f.precondition.as_ref().zip(first_of.get(clauses)));
        if let Some((_, first)) = said {
            let line = format!("      the same cause as \"{first}\" ({})\n", clauses.join(", "));
            out.push_str(&style.paint("2", &line));
            continue;
        }
        let message = s.message();
        if s.failure.is_some() {
            first_of.entry(clauses).or_insert(&s.name);
        }
        if let Some(message) = message {
            for line in message.lines() {
                out.push_str(&format!("      {line}\n"));
            }
            if !clauses.is_empty() {
                out.push_str(&style.paint("2", &format!("      clauses: {}\n", clauses.join(", "))));
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
