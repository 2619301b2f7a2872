//! A scenario while it plays (`Play`): what its steps started and opened,
//! by name, and where it runs (`Setting`). Steps read and change it;
//! `crate::scenario` makes one, runs the steps on it, and cleans up after.

use super::StepError;
use crate::conn::{Conn, Listener};
use crate::escape;
use crate::lang::values::DEFAULT_WITHIN;
use crate::lang::{Name, Spec};
use crate::process::Running;
use crate::transcript::Transcript;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

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
    pub fn for_scenario(&self, scenario: &crate::lang::Scenario) -> Unready {
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
    /// The round of each `repeat` the step is in, outermost first: the
    /// innermost is `{round}`.
    pub rounds: Vec<usize>,
}

impl Play<'_> {
    /// A program the scenario started. One it never started is the spec's
    /// to fix (a step on it before its `start`): an error.
    pub fn program(&self, name: &str) -> Result<&Running, StepError> {
        self.programs
            .get(name)
            .ok_or_else(|| StepError::cannot_run(format!("{name} was never started")))
    }

    /// A program that must still run for the step to make sense: one that
    /// ended fails the step.
    pub fn running(&mut self, name: &str) -> Result<&mut Running, StepError> {
        let prog = self
            .programs
            .get_mut(name)
            .ok_or_else(|| StepError::cannot_run(format!("{name} was never started")))?;
        match prog.exit_status() {
            None => Ok(prog),
            Some(s) => Err(StepError::failed(format!(
                "expected {name} to be running, but it {}",
                crate::process::ended(&s)
            ))),
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
    /// (One the spec closed before, or never opened, is an error.)
    pub fn conn(&mut self, on: Option<&Name>) -> Result<&mut Conn, StepError> {
        let on = on.map(|n| n.value.as_str()).unwrap_or_default();
        self.conns
            .get_mut(on)
            .ok_or_else(|| StepError::cannot_run(format!("`{on}` is not open")))
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
    pub fn placeholders(&self) -> crate::lang::Placeholders {
        let mut others = vec![
            ("{port2}".to_string(), self.setting.port2.to_string()),
            (
                "{group}".to_string(),
                self.group_of(crate::lang::multicast::Group::Scenario).to_string(),
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
        crate::lang::Placeholders {
            port: self.setting.port,
            others,
        }
    }

    /// `{docroot}`: the scenario's own copy of the spec's document tree.
    pub fn docroot(&self) -> PathBuf {
        self.setting.dir.join(".sockgrade-docroot").join("www")
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
