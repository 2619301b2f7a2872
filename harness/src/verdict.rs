//! What a scenario's run comes to: a status, points, and for a failure
//! everything a student needs to act on it without reading the spec.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    /// The scenario could not be run: the submission didn't build, or lacks
    /// the program the scenario needs.
    Error,
}

/// A step that failed, and the state of the programs at that moment.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// 1-based position among the scenario's steps (`each` steps count as
    /// their `each`).
    pub step: usize,
    /// The step as written: keyword and spec line.
    pub keyword: String,
    pub line: u64,
    /// What was expected and what arrived.
    pub detail: String,
    pub programs: Vec<ProgramState>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProgramState {
    pub name: String,
    /// `running`, `exited 1`, `killed by SIGPIPE`...
    pub state: String,
    /// Whether that end was asked for (stop, kill, restart) or expected (a
    /// passed `expect_exit`).
    pub end_expected: bool,
    pub stderr_tail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub tags: Vec<String>,
    pub status: Status,
    pub score: u32,
    pub max_score: u32,
    pub duration_ms: u64,
    pub visibility: crate::spec::Visibility,
    pub hint: Option<String>,
    pub failure: Option<Failure>,
    /// For `error`: why the scenario could not run.
    pub error: Option<String>,
    /// Full transcript, with times.
    pub transcript: String,
    /// Normalised transcript: stable across runs, for snapshots.
    #[serde(skip)]
    pub normalised: String,
}

impl ScenarioResult {
    /// The failure as a student reads it: the step, expected and got, how
    /// each program ended, the tail of its stderr, and the hint.
    pub fn message(&self) -> Option<String> {
        let mut out = String::new();
        if let Some(e) = &self.error {
            out.push_str(e);
            out.push('\n');
        }
        if let Some(f) = &self.failure {
            out.push_str(&format!(
                "step {} (`{}`, spec line {}) failed:\n",
                f.step, f.keyword, f.line
            ));
            for line in f.detail.lines() {
                out.push_str(&format!("  {line}\n"));
            }
            for p in &f.programs {
                let how = if p.end_expected || p.state == "running" {
                    p.state.clone()
                } else {
                    format!("{} (unexpectedly)", p.state)
                };
                out.push_str(&format!("{}: {how}\n", p.name));
                let tail = p.stderr_tail.trim_end();
                if !tail.is_empty() {
                    out.push_str(&format!("  last lines of {}'s stderr:\n", p.name));
                    for line in tail.lines() {
                        out.push_str(&format!("  | {line}\n"));
                    }
                }
            }
        }
        if self.status != Status::Passed {
            if let Some(h) = &self.hint {
                out.push_str(&format!("hint: {}\n", h.trim()));
            }
        }
        (!out.is_empty()).then_some(out)
    }
}
