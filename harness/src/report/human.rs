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
    // Failures by their cause, the first of each: a failure blamed on a
    // precondition that an earlier scenario already showed failing, or with
    // a cause the kernel showed under an earlier scenario, is said once,
    // there, and only pointed at here.
    let mut first_of: std::collections::HashMap<Cause, &str> = std::collections::HashMap::new();
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
        let cause = s.failure.as_ref().map(|f| match &f.observed {
            Some(o) if f.precondition.is_none() => Cause::Seen(o.advice.clone()),
            _ => Cause::Clauses(clauses.to_vec()),
        });
        let shared = s
            .failure
            .as_ref()
            .is_some_and(|f| f.precondition.is_some() || f.observed.is_some());
        if let Some(first) = cause.as_ref().filter(|_| shared).and_then(|c| first_of.get(c)) {
            let line = format!("      the same cause as \"{first}\" ({})\n", clauses.join(", "));
            out.push_str(&style.paint("2", &line));
            continue;
        }
        let message = s.message();
        if let Some(cause) = cause {
            first_of.entry(cause).or_insert(&s.name);
        }
        if let Some(message) = message {
            for line in message.lines() {
                out.push_str(&format!("      {line}\n"));
            }
            if !clauses.is_empty() {
                out.push_str(&style.paint("2", &format!("      clauses: {}\n", clauses.join(", "))));
            }
            if style.verbose && !s.transcript.is_empty() {
                match &s.failure {
                    Some(f) => out.push_str(&format!(
                        "      transcript (step {} is `{}` at spec line {}):\n",
                        f.step, f.keyword, f.line
                    )),
                    None => out.push_str("      transcript:\n"),
                }
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

/// What failures are grouped by: the clauses they are attributed to, or a
/// cause the kernel showed.
#[derive(PartialEq, Eq, Hash)]
enum Cause {
    Clauses(Vec<String>),
    Seen(String),
}
