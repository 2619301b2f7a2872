//! What a run comes to, the one result model every reporter reads: per
//! scenario a status, points, and for a failure everything a student needs
//! to act on it without reading the spec; for the run, the build and the
//! score. Results are built here and only here.

mod observed;

pub use observed::Observed;

use crate::lang::Keyword;
use crate::lang::{Scenario, Spec};
use crate::submission::Build;
use crate::transcript::{Event, Transcript};
use serde::Serialize;
use std::ops::Range;
use std::process::ExitStatus;

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
    /// The step as written: keyword and spec line (for instructors; 0 in
    /// a report for students, who never see the spec).
    pub keyword: String,
    pub line: u64,
    /// The step in words, for students, who don't see the spec.
    pub description: String,
    /// What was expected and what arrived.
    pub detail: String,
    /// The clause ids the failure is attributed to: the scenario's tags,
    /// unless a precondition of its check failed (see `precondition`).
    pub clauses: Vec<String>,
    /// When the scenario's own check was never reached: what failed first,
    /// in words (the server never listened, it closed a connection early).
    pub precondition: Option<String>,
    /// What the kernel showed of the cause, when the harness could look:
    /// the hint then speaks of it rather than of the scenario in general.
    pub observed: Option<Observed>,
    pub programs: Vec<ProgramState>,
    /// The events the failing step recorded: indices into the scenario's
    /// `events` (for a report that marks them; empty when the step failed
    /// before recording anything).
    #[serde(skip)]
    pub events: Range<usize>,
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
    /// How it ended, if it did.
    #[serde(skip)]
    pub exit: Option<ExitStatus>,
}

/// What `scenario` hands over when a step failed: which one (its index in
/// the scenario's steps), why, what a step saw of a precondition or of the
/// cause, and the programs at that moment.
pub struct StepFailure {
    pub index: usize,
    /// The transcript events the step recorded.
    pub events: Range<usize>,
    pub detail: String,
    pub precondition: Option<Precondition>,
    pub observed: Option<Observed>,
    pub programs: Vec<ProgramState>,
}

/// Something every scenario relies on, seen failing by a step (the spec's
/// `preconditions` say which clause each one is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// `start` did not see the program listen.
    Listening { program: String },
    /// The program ended a connection (EOF or reset) before the harness
    /// half-closed or closed it, and an expectation on it failed.
    KeepsConnections { program: String, connection: String },
    /// `start` saw the program bound, but not its membership of the group
    /// on `lo`.
    Joined { program: String },
    /// A member of the harness heard the program's datagram through another
    /// interface than `lo`.
    ThroughLoopback { program: String },
    /// A step the spec marks with `precondition: <clause>` failed.
    Stated { clause: String, step: String },
}

impl Precondition {
    /// The program it is about; none for a step's own precondition.
    fn program(&self) -> Option<&str> {
        match self {
            Precondition::Listening { program }
            | Precondition::KeepsConnections { program, .. }
            | Precondition::Joined { program }
            | Precondition::ThroughLoopback { program } => Some(program),
            Precondition::Stated { .. } => None,
        }
    }

    /// The clause the spec names for it, if it names one.
    fn clause(&self, spec: &Spec) -> Option<String> {
        let program = match self {
            Precondition::Stated { clause, .. } => return Some(clause.clone()),
            other => other.program()?,
        };
        let p = &spec.programs.get(program)?.preconditions;
        match self {
            Precondition::Listening { .. } => p.listening.clone(),
            Precondition::KeepsConnections { .. } => p.keeps_connections.clone(),
            Precondition::Joined { .. } => p.joined.clone(),
            Precondition::ThroughLoopback { .. } => p.through_loopback.clone(),
            Precondition::Stated { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Precondition::Listening { program } => {
                format!("{program} never listened on its port, so this scenario could not begin")
            }
            Precondition::KeepsConnections { program, connection } => format!(
                "{program} ended connection `{connection}` while the grader was still sending on it, \
                 so this scenario's own check was never reached"
            ),
            Precondition::Joined { program } => format!(
                "{program} never joined the group on 127.0.0.1 (lo), so this scenario could not begin"
            ),
            Precondition::ThroughLoopback { program } => format!(
                "{program}'s datagrams did not come through 127.0.0.1 (lo), so this scenario's own check was never reached"
            ),
            Precondition::Stated { clause, step } => format!(
                "`{step}` failed where this scenario relies on {clause}, so its own check was never reached"
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub name: String,
    pub tags: Vec<String>,
    pub status: Status,
    pub score: u32,
    pub max_score: u32,
    pub duration_ms: u64,
    pub visibility: crate::lang::Visibility,
    pub hint: Option<String>,
    pub failure: Option<Failure>,
    /// For `error`: why the scenario could not run.
    pub error: Option<String>,
    /// Full transcript, with times.
    pub transcript: String,
    /// Normalised transcript: stable across runs, for snapshots.
    pub normalised: String,
    /// The transcript's events, for a report that draws them (html).
    pub events: Vec<Event>,
    /// The spec's programs that the transcript mentions, in the order they
    /// first appear: in a drawing, their lines are the programs', the
    /// others the harness's.
    pub programs: Vec<String>,
}

impl ScenarioResult {
    /// The result of a scenario that was played: failed if a step failed,
    /// an error if it could not run, passed otherwise.
    pub fn new(
        spec: &Spec,
        scenario: &Scenario,
        failure: Option<StepFailure>,
        error: Option<String>,
        transcript: &Transcript,
    ) -> ScenarioResult {
        let failure = failure.map(|f| Failure::of_step(spec, scenario, f));
        // A failure blamed on a precondition gets that clause's hint: the
        // scenario's own would send the student after the wrong bug.
        let hint = match &failure {
            Some(f) if f.precondition.is_some() => hint_of(spec, &f.clauses),
            Some(Failure { observed: Some(o), .. }) => Some(o.advice().to_string()),
            _ => scenario.hint.clone(),
        };
        let events = transcript.events();
        let mut programs: Vec<String> = Vec::new();
        for e in &events {
            if spec.programs.contains_key(&e.actor) && !programs.contains(&e.actor) {
                programs.push(e.actor.clone());
            }
        }
        let status = match (&error, &failure) {
            (Some(_), _) => Status::Error,
            (None, Some(_)) => Status::Failed,
            (None, None) => Status::Passed,
        };
        ScenarioResult {
            name: scenario.name.clone(),
            tags: scenario.tags.clone(),
            status,
            score: if status == Status::Passed { scenario.points } else { 0 },
            max_score: scenario.points,
            duration_ms: transcript.elapsed().as_millis() as u64,
            visibility: scenario.visibility,
            hint,
            failure,
            error,
            transcript: transcript.full(),
            normalised: transcript.normalised(),
            events,
            programs,
        }
    }

    /// A scenario that could not be run at all (the submission did not
    /// build, the harness could not set it up).
    pub fn errored(scenario: &Scenario, why: &str) -> ScenarioResult {
        ScenarioResult {
            name: scenario.name.clone(),
            tags: scenario.tags.clone(),
            status: Status::Error,
            score: 0,
            max_score: scenario.points,
            duration_ms: 0,
            visibility: scenario.visibility,
            hint: None,
            failure: None,
            error: Some(why.to_string()),
            transcript: String::new(),
            normalised: String::new(),
            events: Vec::new(),
            programs: Vec::new(),
        }
    }

    /// The failure as a student reads it: the step, expected and got, how
    /// each program ended, the tail of its stderr, and the hint.
    pub fn message(&self) -> Option<String> {
        let mut out = String::new();
        if let Some(e) = &self.error {
            out.push_str(e);
            out.push('\n');
        }
        if let Some(f) = &self.failure {
            out.push_str(&format!("step {} failed: {}\n", f.step, f.description));
            if let Some(why) = &f.precondition {
                out.push_str(&format!("  {why}.\n"));
            }
            for line in f.detail.lines() {
                out.push_str(&format!("  {line}\n"));
            }
            if let Some(o) = &f.observed {
                out.push_str(&format!("  What was seen: {}\n", o.seen()));
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
        // A scenario that could not run says why; the scenario's hint is
        // about a bug it never got to look for.
        if self.status == Status::Failed {
            if let Some(h) = &self.hint {
                out.push_str(&format!("hint: {}\n", h.trim()));
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

impl Failure {
    fn of_step(spec: &Spec, scenario: &Scenario, f: StepFailure) -> Failure {
        use std::os::unix::process::ExitStatusExt;
        let step = &scenario.steps[f.index];
        // A program that died on its own is the cause a student needs to
        // see first; the step's own complaint (a refused connection, an
        // EOF) is only its consequence. A server should run until stopped;
        // a client may end, but not by a signal.
        let deaths: Vec<String> = f
            .programs
            .iter()
            .filter(|p| !p.end_expected)
            .filter_map(|p| p.exit.map(|s| (p, s)))
            .filter(|(p, s)| spec.programs.get(&p.name).is_some_and(|d| d.listens.is_some()) || s.signal().is_some())
            .map(|(p, s)| format!("{} {} during this scenario.", p.name, crate::process::ended(&s)))
            .collect();
        let detail = if deaths.is_empty() {
            f.detail
        } else {
            format!("{}\n{}", deaths.join("\n"), f.detail)
        };
        // A program's death outranks a closed connection: the connection
        // ended because the server died, and that is what the student needs
        // to see under this scenario's own clauses. A server that died
        // before it listened, though, is the readiness clause's failure.
        let blamed = f
            .precondition
            .filter(|p| deaths.is_empty() || matches!(p, Precondition::Listening { .. } | Precondition::Joined { .. }))
            // A server the scenario stopped or killed ends its connections
            // as it was told to.
            .filter(|p| {
                !f.programs
                    .iter()
                    .any(|s| Some(s.name.as_str()) == p.program() && s.end_expected)
            })
            .and_then(|p| p.clause(spec).map(|c| (p, c)))
            .filter(|(_, clause)| !scenario.tags.contains(clause));
        let (clauses, precondition) = match blamed {
            Some((p, clause)) => (vec![clause], Some(p.describe())),
            None => (scenario.tags.clone(), None),
        };
        Failure {
            step: f.index + 1,
            keyword: step.value.keyword().to_string(),
            line: step.referenced.line(),
            description: step.value.describe(),
            detail,
            clauses,
            precondition,
            observed: f.observed,
            programs: f.programs,
            events: f.events,
        }
    }
}

/// The hint for a failure blamed on other clauses: that of the first
/// scenario tagged with exactly those clauses (the scenario that checks
/// them), so a spec states each hint once.
fn hint_of(spec: &Spec, clauses: &[String]) -> Option<String> {
    spec.scenarios
        .iter()
        .find(|s| s.tags == clauses)
        .and_then(|s| s.hint.clone())
}

/// The whole run as one value: what every reporter prints.
#[derive(Debug)]
pub struct RunResult {
    pub lab: String,
    pub spec: String,
    pub submission: String,
    pub score: u32,
    pub max_score: u32,
    pub build: Build,
    pub scenarios: Vec<ScenarioResult>,
    /// The isolation the scenarios ran with (`netns` or `none`): where the
    /// run happened matters to whoever reads a report from a platform.
    pub isolation: String,
    /// The walls the programs ran within, and those this machine lacks
    /// (`crate::room::Walls`), in words.
    pub walls: WallsReport,
    /// Wall-clock time of the whole run, build included.
    pub duration_ms: u64,
}

/// What kept the submission in its room, as a report says it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WallsReport {
    pub present: Vec<String>,
    pub missing: Vec<String>,
}

impl RunResult {
    pub fn new(
        spec: &Spec,
        submission: String,
        build: Build,
        scenarios: Vec<ScenarioResult>,
        isolation: &str,
        duration: std::time::Duration,
    ) -> RunResult {
        RunResult {
            lab: spec.lab.clone(),
            spec: spec.path.display().to_string(),
            submission,
            score: scenarios.iter().map(|s| s.score).sum(),
            max_score: scenarios.iter().map(|s| s.max_score).sum(),
            build,
            scenarios,
            isolation: isolation.to_string(),
            walls: {
                let walls = crate::room::Walls::here();
                let netns = isolation == "netns";
                WallsReport {
                    present: walls.present(netns),
                    missing: walls.missing(netns),
                }
            },
            duration_ms: duration.as_millis() as u64,
        }
    }

    pub fn all_passed(&self) -> bool {
        self.build.succeeded() && self.scenarios.iter().all(|s| s.status == Status::Passed)
    }
}
