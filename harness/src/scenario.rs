//! Playing one scenario: its steps in order (each run by `crate::steps`),
//! against fresh processes on a fresh port, within the scenario's bound,
//! recording everything in the transcript; then the clean-up. The first step
//! that fails ends the scenario, and `verdict` turns it into a result.

use crate::conn::{Conn, Listener};
use crate::escape;
use crate::process::{describe_exit, Running};
use crate::program_time::Deadline;
use crate::spec::values::{DEFAULT_SCENARIO_TIMEOUT, DEFAULT_WITHIN};
use crate::spec::{Name, Scenario, Spec};
use crate::steps::{self, StepError};
use crate::transcript::Transcript;
use crate::verdict::{ProgramState, ScenarioResult, StepFailure};
use crate::witness;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

const STDERR_TAIL: usize = 1200;

/// Where and as whom a scenario runs.
pub struct Setting {
    pub dir: PathBuf,
    pub uid: Option<u32>,
    pub port: u16,
    /// A second port of the scenario's, `{port2}`: where a program behind a
    /// relay listens.
    pub port2: u16,
    /// The scenario has a network namespace of its own (its thread is in it).
    pub own_netns: bool,
    /// The grader's folder of the programs a spec marks `reference: true`
    /// (`crate::submission::REFERENCE_PROGRAMS`).
    pub reference_programs: PathBuf,
    /// What its programs see of the machine (`crate::room`).
    pub room: crate::room::Room,
    /// The programs of this submission that never listened in a scenario
    /// run before (shared by its scenarios), and this scenario's name.
    pub unready: Unready,
}

/// Programs of one submission that did not listen within their bound, by
/// their command line as the spec writes it (placeholders kept): a later
/// scenario that starts the same command fails at once with the same cause,
/// rather than wait out the same bound again. A program that can't get past
/// `start` costs a class one bound per slot, not one per scenario.
#[derive(Clone, Default)]
pub struct Unready {
    seen: std::sync::Arc<std::sync::Mutex<HashMap<String, String>>>,
    /// The scenario this handle is for: what a later one names.
    pub scenario: String,
    /// Its clauses: a scenario tagged with the clause of `listening` is
    /// always waited for, so that the report explains the cause there
    /// (how the program ended, its stderr, the hint).
    pub tags: Vec<String>,
}

impl Unready {
    /// A handle for `scenario`, sharing what the others saw.
    pub fn for_scenario(&self, scenario: &crate::spec::Scenario) -> Unready {
        Unready {
            seen: self.seen.clone(),
            scenario: scenario.name.clone(),
            tags: scenario.tags.clone(),
        }
    }

    /// The scenario in which `command` did not listen, if one did.
    pub fn seen(&self, command: &str) -> Option<String> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(command)
            .cloned()
    }

    /// `command` did not listen in this scenario.
    pub fn record(&self, command: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(command.to_string())
            .or_insert_with(|| self.scenario.clone());
    }
}

/// A scenario while it plays: what its steps started and opened, by name.
/// Step functions (`crate::steps`) read and change it; nothing else does.
pub(crate) struct Play<'a> {
    pub spec: &'a Spec,
    pub setting: Setting,
    /// Where steps record; a `repeat` round or an `each` member records in
    /// a branch of it.
    pub transcript: Transcript,
    /// The programs under test, by their name in the spec; a program that
    /// ended stays here, so later steps and the report can say how.
    pub programs: HashMap<String, Running>,
    /// Programs in the order they were first started, for reports.
    pub order: Vec<String>,
    /// Every process ever started, for the clean-up.
    pub started: Vec<i32>,
    /// Open connections by name; a group's members are here as `g#1`, ...
    pub conns: HashMap<String, Conn>,
    /// The members of each group opened by `connect` with `count`.
    pub groups: HashMap<String, Vec<String>>,
    /// The harness's listeners, from `listen`.
    pub listeners: HashMap<String, Listener>,
    /// The harness's datagram endpoints, by name (`c#1`, ... for a count).
    pub endpoints: HashMap<String, crate::datagram::Endpoint>,
    /// Descriptors of a program from `fd_baseline`: number to target.
    pub fd_baselines: HashMap<String, BTreeMap<i32, String>>,
    /// Resident bytes of a program's process tree, from `memory_baseline`.
    pub memory_baselines: HashMap<String, u64>,
    /// What a failing step saw of a precondition (see `verdict`).
    pub precondition: Option<crate::verdict::Precondition>,
    /// What a failing step saw of the cause in the kernel (see `verdict`).
    pub observed: Option<crate::verdict::Observed>,
    /// The address of the decoy interface that holds the namespace's
    /// multicast route, where there is one (see `isolation::decoy`).
    pub decoy: Option<std::net::Ipv4Addr>,
    /// When the datagram the last step received arrived (the kernel's
    /// stamp): where `expect_exit`'s `not_before` counts from.
    pub datagram_arrived: Option<std::time::SystemTime>,
    /// A client's last request (to a `udp_bind` endpoint), and what the
    /// grader sent the client since: what it may have taken for its reply.
    pub request: Option<Vec<u8>>,
    pub offered: Vec<crate::steps::udp::Offered>,
    /// What a relay's plan does to replies other than passing them on, in
    /// words ("reply 2: duplicated"), for a client that printed one twice.
    pub relay_replies: Vec<String>,
    /// Datagrams a relay has taken and not yet sent on (see
    /// `steps::stillness`).
    pub relay_holds: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// When a failing step saw what failed it, where the kernel stamped it
    /// (a datagram's arrival); else the step's end. See `steps::run`.
    pub failure_seen_at: Option<std::time::SystemTime>,
    /// The round of each `repeat` the step is in, outermost first: the
    /// innermost is `{round}`.
    pub rounds: Vec<usize>,
}

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
        precondition: None,
        observed: None,
        decoy: None,
        datagram_arrived: None,
        request: None,
        offered: Vec::new(),
        relay_replies: Vec::new(),
        relay_holds: Default::default(),
        failure_seen_at: None,
        rounds: Vec::new(),
    };
    let bound = scenario.timeout.map(|t| t.0).unwrap_or(DEFAULT_SCENARIO_TIMEOUT);
    let mut failed: Option<(usize, usize, String)> = None;
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
            Some(Err(StepError::Failed(why))) => {
                failed = Some((i, first_event, why));
                break;
            }
            None => {
                failed = Some((
                    i,
                    first_event,
                    crate::program_time::with_busy_note(
                        format!("the scenario did not finish within its bound of {}s", bound.as_secs()),
                        &deadline,
                    ),
                ));
                break;
            }
        }
    }
    let failure = match failed {
        Some((i, first_event, detail)) => {
            play.settle().await;
            Some(StepFailure {
                index: i,
                events: first_event..transcript.len(),
                detail,
                precondition: play.precondition.take(),
                observed: play.observed.take(),
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
    pub fn program(&self, name: &str) -> Result<&Running, String> {
        self.programs
            .get(name)
            .ok_or_else(|| format!("{name} was never started"))
    }

    /// A program that must still run for the step to make sense.
    pub fn running(&mut self, name: &str) -> Result<&mut Running, String> {
        let prog = self
            .programs
            .get_mut(name)
            .ok_or_else(|| format!("{name} was never started"))?;
        match prog.exit_status() {
            None => Ok(prog),
            Some(s) => Err(format!(
                "expected {name} to be running, but it {}",
                crate::process::ended(&s)
            )),
        }
    }

    /// The name of the client under test: the program started last among
    /// those that don't listen.
    pub fn client_name(&self) -> Option<&str> {
        self.order
            .iter()
            .rev()
            .find(|n| self.spec.programs.get(*n).is_some_and(|p| p.listens.is_none()))
            .map(String::as_str)
    }

    /// The open connection a step names with `on`.
    pub fn conn(&mut self, on: Option<&Name>) -> Result<&mut Conn, String> {
        let on = on.map(|n| n.value.as_str()).unwrap_or_default();
        self.conns.get_mut(on).ok_or_else(|| format!("`{on}` is not open"))
    }

    /// How a program that the kernel shows dead ended, once its waiter has
    /// collected the status.
    pub async fn how_it_ended(&mut self, name: &str) -> String {
        match self.programs.get_mut(name) {
            Some(p) => p
                .wait(DEFAULT_WITHIN)
                .await
                .map(|s| crate::process::ended(&s))
                .unwrap_or("ended".into()),
            None => "was never started".into(),
        }
    }

    /// What a student reads says the ports, group and folder the programs
    /// were given, never `{port}` or `{group}`: the placeholders in the
    /// failure's words (steps write them so that the normalised transcript
    /// stays the same from run to run) filled in.
    /// What the spec's text may name, and its value in this scenario.
    pub fn placeholders(&self) -> crate::spec::Placeholders {
        let mut others = vec![
            ("{port2}".to_string(), self.setting.port2.to_string()),
            (
                "{group}".to_string(),
                self.group_of(crate::spec::multicast::Group::Scenario).to_string(),
            ),
            ("{docroot}".to_string(), self.docroot().display().to_string()),
        ];
        others.extend(
            self.listeners
                .iter()
                .filter(|(_, l)| l.own_port)
                .map(|(name, l)| (format!("{{port:{name}}}"), l.port().to_string())),
        );
        if let Some(round) = self.rounds.last() {
            others.push(("{round}".to_string(), round.to_string()));
        }
        crate::spec::Placeholders {
            port: self.setting.port,
            others,
        }
    }

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

    /// `{docroot}`: the scenario's own copy of the spec's document tree.
    pub fn docroot(&self) -> PathBuf {
        self.setting.dir.join(".sockgrade-docroot").join("www")
    }

    /// Writes the spec's `docroot` for this scenario: `files` under
    /// `{docroot}`, `outside` beside it; the scenario's user owns them.
    fn make_docroot(&self, docroot: &crate::spec::http::Docroot) -> std::io::Result<()> {
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

/// What a program printed, for the full transcript (the start and the end of
/// each stream when it is long).
pub(crate) fn record_output(t: &Transcript, p: &Running) {
    for (stream, captured) in [("stdout", &p.stdout), ("stderr", &p.stderr)] {
        let (tail, dropped) = captured.lock().unwrap_or_else(|e| e.into_inner()).last(400);
        if tail.is_empty() {
            continue;
        }
        let skipped = if dropped > 0 {
            format!("[{dropped} bytes before] ")
        } else {
            String::new()
        };
        t.record_full_only(&p.name, format!("{stream}: {skipped}{}", escape::quote(&tail, 400)));
    }
}
