//! The terminal report: a line per scenario, each failure explained under
//! it, the score last. Colour only on a terminal, and never with NO_COLOR.
//!
//! Text that came from the submission (its name, its build output, its
//! stderr and the bytes quoted in failures) goes through
//! `escape::for_terminal` before it is printed or coloured: a program's own
//! escape sequences must not rewrite the report's lines.

use super::Style;
use crate::escape::{for_terminal, for_terminal_line};
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
    let mut out = format!("{} — {}\n", report.lab, for_terminal_line(&report.submission));
    match report.build.status {
        BuildStatus::Ok | BuildStatus::None => {}
        other @ (BuildStatus::Failed | BuildStatus::Timeout) => {
            out.push_str(&style.paint("31;1", &format!("build {}:", other.as_str())));
            out.push('\n');
            for line in for_terminal(&report.build.output).lines() {
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
            Some(o) if f.precondition.is_none() => Cause::Seen(o.advice().to_string()),
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
            for line in for_terminal(&message).lines() {
                out.push_str(&format!("      {line}\n"));
            }
            if !clauses.is_empty() {
                out.push_str(&style.paint("2", &format!("      clauses: {}\n", clauses.join(", "))));
            }
            if style.verbose && !s.transcript.is_empty() {
                match &s.failure {
                    Some(f) if f.line > 0 => out.push_str(&format!(
                        "      transcript (step {} is `{}` at spec line {}):\n",
                        f.step, f.keyword, f.line
                    )),
                    Some(f) => out.push_str(&format!("      transcript (step {} failed):\n", f.step)),
                    None => out.push_str("      transcript:\n"),
                }
                for line in for_terminal(&s.transcript).lines() {
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
    // Said under the score, where whoever trusts the grade reads.
    for missing in &report.walls.missing {
        out.push_str(&format!("wall missing: {missing}\n"));
    }
    out
}

/// What failures are grouped by: the clauses they are attributed to, or a
/// cause the kernel showed.
#[derive(PartialEq, Eq, Hash)]
enum Cause {
    Clauses(Vec<String>),
    Seen(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Visibility;
    use crate::submission::Build;
    use crate::verdict::{Failure, ProgramState, ScenarioResult};

    const FORGED: &str = "\r\x1b[2K\x1b[1A\x1b[2KPASS  served (3/3)\nscore: 54/54\n\u{202e}05/45\u{9b}2J\n";

    fn run() -> RunResult {
        RunResult {
            lab: "tcp-echo".to_string(),
            spec: "specs/tcp-echo.yaml".to_string(),
            submission: "class/x\nscore: 54/54\x1b[0m".to_string(),
            score: 0,
            max_score: 3,
            build: Build {
                status: BuildStatus::Failed,
                output: format!("echoserver.c:1: error: {FORGED}"),
            },
            scenarios: vec![ScenarioResult {
                name: "served".to_string(),
                tags: vec!["tcp-echo.server.concurrent".to_string()],
                status: Status::Failed,
                score: 0,
                max_score: 3,
                duration_ms: 12,
                visibility: Visibility::Visible,
                hint: None,
                failure: Some(Failure {
                    step: 2,
                    keyword: "expect".to_string(),
                    line: 7,
                    description: "receive an echo".to_string(),
                    detail: format!("got \"ok\" then {FORGED}"),
                    clauses: vec!["tcp-echo.server.concurrent".to_string()],
                    precondition: None,
                    observed: None,
                    programs: vec![ProgramState {
                        name: "server".to_string(),
                        state: "running".to_string(),
                        end_expected: false,
                        stderr_tail: FORGED.to_string(),
                        exit: None,
                    }],
                    events: 0..0,
                }),
                error: None,
                transcript: format!("     1.0ms  server  stderr: {FORGED}"),
                normalised: String::new(),
                events: Vec::new(),
                programs: vec!["server".to_string()],
            }],
            isolation: "none".to_string(),
            walls: Default::default(),
            duration_ms: 100,
        }
    }

    #[test]
    fn submission_text_is_escaped_and_our_colours_kept() {
        let style = Style {
            color: true,
            verbose: true,
            ..Style::default()
        };
        let text = render(&run(), &style);
        // Our own colour codes are the only escape sequences left.
        let ours = ["\x1b[31;1m", "\x1b[2m", "\x1b[0m"];
        let mut rest = text.clone();
        for code in ours {
            rest = rest.replace(code, "");
        }
        assert!(text.contains("\x1b[31;1mbuild failed:\x1b[0m"), "{text}");
        assert!(!rest.contains(['\x1b', '\r', '\u{202e}', '\u{9b}']), "{text}");
        assert!(text.contains("\\r\\x1b[2K\\x1b[1A\\x1b[2KPASS"), "{text}");
        assert!(text.contains("\\u{202e}05/45\\u{9b}2J"), "{text}");
        assert!(
            text.starts_with("tcp-echo — class/x\\nscore: 54/54\\x1b[0m\n"),
            "{text}"
        );
        // The forged lines stay inside the lines that quote them.
        let scores: Vec<&str> = text.lines().filter(|l| l.starts_with("score:")).collect();
        assert_eq!(scores, ["score: 0/3 (0 of 1 scenarios passed)"], "{text}");
        assert!(!text.lines().any(|l| l.starts_with("PASS")), "{text}");
    }
}
