//! Playing one scenario: its steps in order (each run by `crate::steps`),
//! against fresh processes on a fresh port, within the scenario's bound,
//! recording everything in the transcript; then the clean-up. The first step
//! that fails ends the scenario, and `verdict` turns it into a result.

use crate::lang::values::{DEFAULT_SCENARIO_TIMEOUT, DEFAULT_WITHIN};
use crate::lang::{Scenario, Spec};
use crate::process::describe_exit;
use crate::program_time::Deadline;
pub(crate) use crate::steps::play::{record_output, Play};
pub use crate::steps::play::{Setting, Unready};
use crate::steps::{self, StepError};
use crate::transcript::Transcript;
use crate::verdict::{ProgramState, ScenarioResult, StepFailure};
use crate::witness;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const STDERR_TAIL: usize = 1200;

/// Plays `scenario` and returns its result. Every process it started has
/// been killed when this returns, and the programs it started were reaped;
/// with a user of its own, `sandbox::end_all_of` waits until the rest
/// (their children, zombies) is gone too.
pub async fn play(spec: &Spec, scenario: &Scenario, setting: Setting) -> ScenarioResult {
    // Bounds from here on count the time this scenario's programs could run.
    let _programs = crate::program_time::Scenario::enter();
    let transcript = Transcript::new(setting.port);
    let mut play = Play {
        spec,
        setting,
        transcript: transcript.clone(),
        programs: HashMap::new(),
        order: Vec::new(),
        started: Vec::new(),
        conns: HashMap::new(),
        groups: HashMap::new(),
        listeners: HashMap::new(),
        endpoints: HashMap::new(),
        fd_baselines: HashMap::new(),
        memory_baselines: HashMap::new(),
        decoy: None,
        datagram_arrived: None,
        request: None,
        offered: Vec::new(),
        relay_replies: Vec::new(),
        relay_holds: Default::default(),
        rounds: Vec::new(),
    };
    let bound = scenario.timeout.map(|t| t.0).unwrap_or(DEFAULT_SCENARIO_TIMEOUT);
    let mut failed: Option<(usize, usize, steps::Failure)> = None;
    let mut error: Option<String> = None;
    // A guard over the steps' own bounds: stretched by load, but at most to
    // twice its length.
    let mut deadline = Deadline::after(bound).at_most(bound * 2);
    if spec.uses_multicast() {
        match crate::isolation::prepare_multicast(play.setting.own_netns) {
            Ok(decoy) => play.decoy = decoy,
            Err(why) => error = Some(why),
        }
    }
    if let Some(docroot) = &spec.docroot {
        if let Err(e) = play.make_docroot(docroot) {
            error = Some(format!("the harness could not make the scenario's docroot: {e}"));
        }
    }
    let steps = if error.is_some() { &[][..] } else { &scenario.steps[..] };
    for (i, step) in steps.iter().enumerate() {
        // Where this step's events begin, so that a failure can point at them.
        let first_event = transcript.len();
        match deadline.within(steps::run(&mut play, step)).await {
            Some(Ok(())) => {}
            Some(Err(StepError::CannotRun(why))) => {
                error = Some(why);
                break;
            }
            Some(Err(StepError::Failed(failure))) => {
                failed = Some((i, first_event, *failure));
                break;
            }
            None => {
                let detail = crate::program_time::with_busy_note(
                    format!("the scenario did not finish within its bound of {}s", bound.as_secs()),
                    &deadline,
                );
                failed = Some((i, first_event, steps::Failure::of(detail)));
                break;
            }
        }
    }
    let failure = match failed {
        Some((i, first_event, failure)) => {
            play.settle().await;
            Some(StepFailure {
                index: i,
                events: first_event..transcript.len(),
                detail: failure.detail,
                precondition: failure.precondition,
                observed: failure.observed,
                programs: play.program_states(),
            })
        }
        None => None,
    };
    play.teardown().await;
    if failure.is_none() && error.is_none() {
        transcript.record("", "pass");
    }
    let mut result = ScenarioResult::new(spec, scenario, failure, error, &transcript);
    play.fill_placeholders(&mut result);
    result
}

impl Play<'_> {
    fn fill_placeholders(&self, result: &mut ScenarioResult) {
        let placeholders = self.placeholders();
        let fill = |text: &mut String| *text = placeholders.fill(text);
        if let Some(f) = &mut result.failure {
            fill(&mut f.description);
            fill(&mut f.detail);
            if let Some(p) = &mut f.precondition {
                fill(p);
            }
        }
        if let Some(e) = &mut result.error {
            fill(e);
        }
        // What a report shows of the transcript (the text, the diagram's
        // marks); the normalised transcript, for snapshots, keeps them.
        fill(&mut result.transcript);
        for event in &mut result.events {
            fill(&mut event.text);
            if let Some(d) = &mut event.detail {
                fill(d);
            }
        }
    }

    /// Writes the spec's `docroot` for this scenario: `files` under
    /// `{docroot}`, `outside` beside it; the scenario's user owns them.
    fn make_docroot(&self, docroot: &crate::lang::http::Docroot) -> std::io::Result<()> {
        let www = self.docroot();
        let beside = www.parent().map(PathBuf::from).unwrap_or_default();
        std::fs::create_dir_all(&www)?;
        for (base, files) in [(&www, &docroot.files), (&beside, &docroot.outside)] {
            for (path, payload) in files {
                let file = base.join(path);
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&file, payload.bytes())?;
            }
        }
        if let Some(uid) = self.setting.uid {
            crate::sandbox::chown_tree(&beside, uid)?;
        }
        Ok(())
    }

    /// A program the kernel already shows dead may not have been reaped by
    /// its waiter yet, nor its last output read: give it a moment, so the
    /// report says how it died and what it said last.
    async fn settle(&mut self) {
        for p in self.programs.values_mut() {
            if p.is_running() && !witness::alive(p.pid) {
                p.wait(Duration::from_secs(1)).await;
            }
            p.output_drained().await;
        }
    }

    fn program_states(&self) -> Vec<ProgramState> {
        self.order
            .iter()
            .filter_map(|n| self.programs.get(n))
            .map(|p| ProgramState {
                name: p.name.clone(),
                state: p.exit_status().map(|s| describe_exit(&s)).unwrap_or("running".into()),
                end_expected: p.end_expected,
                stderr_tail: p.stderr_tail(STDERR_TAIL),
                exit: p.exit_status(),
            })
            .collect()
    }

    /// Ends everything: connections, then every process the scenario
    /// started, grandchildren included.
    async fn teardown(&mut self) {
        for (_, mut c) in self.conns.drain() {
            c.abort().await;
        }
        for name in self.order.clone() {
            if let Some(p) = self.programs.get(&name) {
                if p.is_running() {
                    self.transcript
                        .record(&name, "still running when the scenario ended: stopped by the grader");
                }
                // An ended program's last words may still be in its pipes.
                p.output_drained().await;
                record_output(&self.transcript, p);
            }
        }
        match self.setting.uid {
            // One SIGKILL to everything of the scenario's user; the runner
            // then makes sure, off the critical path, that nothing of it is
            // left before the user serves another scenario.
            Some(uid) => crate::sandbox::signal_all_as(uid, nix::libc::SIGKILL),
            None => {
                for &pid in &self.started {
                    crate::sandbox::kill_tree(pid);
                }
            }
        }
        for p in self.programs.values_mut() {
            p.wait(DEFAULT_WITHIN).await;
        }
    }
}
