//! The `program` family: starting, stopping and signalling the programs under
//! test, and what they print and how they end. Run by `crate::steps::program`.

use super::check::{Checker, Scope};
use super::step::{Keyword, ScriptedWait};
use super::values::{Payload, TimeSpan};
use super::{FromName, Name};
use crate::matcher::Matcher;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_saphyr::Location;

/// `start: server`, or `start: { program: client, args: [...], stdin: "hi\n" }`.
/// A program that `listens` is started when the kernel shows it listening on
/// `{port}` (or bound to it, for udp). `restart` takes the same options, and
/// kills the program first if it still runs.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Start {
    #[schemars(with = "String")]
    pub program: Name,
    /// Replaces the program's arguments (not the executable) for this start.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// Fed to the program's standard input, which is then closed. Without
    /// it, standard input is empty.
    #[serde(default)]
    pub stdin: Option<Payload>,
    /// Bound on readiness for a program that `listens`.
    #[serde(default)]
    pub within: Option<TimeSpan>,
}
impl FromName for Start {
    fn from_name(program: Name) -> Self {
        Start {
            program,
            args: None,
            stdin: None,
            within: None,
        }
    }
}

/// `stop: server`: SIGTERM, then the program must exit `within` (2 s);
/// otherwise it is killed and the step fails.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    #[schemars(with = "String")]
    pub program: Name,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}
impl FromName for Stop {
    fn from_name(program: Name) -> Self {
        Stop { program, within: None }
    }
}

/// A step that names only a program: `kill`, `expect_running`, and the
/// witness family's `fd_baseline` and `memory_baseline`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramRef {
    #[schemars(with = "String")]
    pub program: Name,
}
impl FromName for ProgramRef {
    fn from_name(program: Name) -> Self {
        ProgramRef { program }
    }
}

/// `signal: { program: server, signal: STOP }`. STOP and CONT go to the
/// whole process group (a forking server's children are the server too),
/// other signals to the program's process. After CONT the step returns once
/// every thread that could run has had the CPU: what came while the program
/// was stopped (a reset that fails its blocked write) it has met before the
/// next step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalStep {
    #[schemars(with = "String")]
    pub program: Name,
    pub signal: SignalName,
}

/// A signal by name: `TERM`, `SIGTERM`, `STOP`, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalName(pub nix::sys::signal::Signal);

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let full = if text.starts_with("SIG") {
            text.clone()
        } else {
            format!("SIG{text}")
        };
        full.parse::<nix::sys::signal::Signal>().map(SignalName).map_err(|_| {
            de::Error::custom(format!(
                "expected a signal name such as `TERM`, `STOP`, `CONT`, `KILL`, found `{text}`"
            ))
        })
    }
}

/// `expect_exit: { program: client, status: 1, within: 6s, not_before: 4s }`:
/// the program ends within the bound (5 s), with this status or by this
/// signal (any end when neither is given), and not before `not_before`
/// (a client's own timeout). `not_before` counts from this step's start, or,
/// when the step before it received a datagram, from that datagram's
/// arrival as the kernel stamped it: a client that must wait 500 ms after
/// its last request is measured from that request, however late the grader
/// got to the next step on a busy machine.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawExpectExit")]
#[schemars(with = "RawExpectExit")]
pub struct ExpectExit {
    pub program: Name,
    pub ending: Ending,
    pub within: Option<TimeSpan>,
    pub not_before: Option<TimeSpan>,
}

/// How a program is expected to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Any,
    Status(i32),
    Signal(SignalName),
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpectExit {
    #[schemars(with = "String")]
    program: Name,
    #[serde(default)]
    status: Option<i32>,
    #[serde(default)]
    signal: Option<SignalName>,
    #[serde(default)]
    within: Option<TimeSpan>,
    #[serde(default)]
    not_before: Option<TimeSpan>,
}

impl TryFrom<RawExpectExit> for ExpectExit {
    type Error = String;
    fn try_from(raw: RawExpectExit) -> Result<Self, String> {
        let ending = match (raw.status, raw.signal) {
            (Some(_), Some(_)) => return Err("expected either `status` or `signal`, not both".into()),
            (Some(code), None) => Ending::Status(code),
            (None, Some(sig)) => Ending::Signal(sig),
            (None, None) => Ending::Any,
        };
        Ok(ExpectExit {
            program: raw.program,
            ending,
            within: raw.within,
            not_before: raw.not_before,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    #[default]
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// `expect_output: { program: client, stream: stderr, nonempty: true,
/// max_lines: 1 }`: what the program wrote on one stream meets exactly one
/// of `equals` (the whole stream), `contains`, `regex` (searches), `nonempty`,
/// `empty`; and holds at most `max_lines` lines once the program is done
/// writing. Waits up to `within` (2 s) for the output to arrive.
/// `precondition: <clause>`: a failure of this step is that clause's (the
/// scenario's own check comes later).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawExpectOutput")]
#[schemars(with = "RawExpectOutput")]
pub struct ExpectOutput {
    pub program: Name,
    pub stream: Stream,
    /// `None` when only `max_lines` is asked for.
    pub matcher: Option<Matcher>,
    pub max_lines: Option<usize>,
    pub within: Option<TimeSpan>,
    /// A clause this scenario relies on: a failure of this step means its
    /// own check was never reached, and is that clause's.
    pub precondition: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpectOutput {
    #[schemars(with = "String")]
    program: Name,
    #[serde(default)]
    stream: Stream,
    #[serde(default)]
    equals: Option<Payload>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    nonempty: Option<bool>,
    #[serde(default)]
    empty: Option<bool>,
    /// The most lines the stream may hold (`1` for "one line on stderr").
    #[serde(default)]
    max_lines: Option<usize>,
    #[serde(default)]
    within: Option<TimeSpan>,
    #[serde(default)]
    precondition: Option<String>,
}

impl TryFrom<RawExpectOutput> for ExpectOutput {
    type Error = String;
    fn try_from(raw: RawExpectOutput) -> Result<Self, String> {
        if raw.nonempty == Some(false) || raw.empty == Some(false) {
            return Err("expected `nonempty: true` or `empty: true`; `false` asks for nothing".into());
        }
        let regex = raw.regex.map(|r| compile(&r)).transpose()?;
        let matchers: Vec<Matcher> = [
            raw.equals.map(|p| Matcher::Exact(p.bytes().into())),
            raw.contains.map(|c| Matcher::Contains(c.into_bytes().into())),
            regex.map(Matcher::Regex),
            raw.nonempty.map(|_| Matcher::NonEmpty),
            raw.empty.map(|_| Matcher::Empty),
        ]
        .into_iter()
        .flatten()
        .collect();
        if matchers.len() > 1 || (matchers.is_empty() && raw.max_lines.is_none()) {
            return Err("expected exactly one of `equals`, `contains`, `regex`, `nonempty`, `empty` (and optionally `max_lines`)".into());
        }
        Ok(ExpectOutput {
            program: raw.program,
            stream: raw.stream,
            matcher: matchers.into_iter().next(),
            max_lines: raw.max_lines,
            within: raw.within,
            precondition: raw.precondition,
        })
    }
}

/// A regex of the spec, or what is wrong with it.
pub(super) fn compile(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(pattern).map_err(|e| format!("expected a valid regular expression: {e}"))
}

super::step::same_options! {
    /// `restart: server`: as `start`, killing the program first if it
    /// still runs; a server must bind the same port again.
    Restart(Start)
}
super::step::same_options! {
    /// `kill: server`: SIGKILL.
    Kill(ProgramRef)
}
super::step::same_options! {
    /// `expect_running: server`: the program has not ended.
    ExpectRunning(ProgramRef)
}

/// `start` and `restart`: the program is the spec's, and its command line
/// names only placeholders the scenario has.
fn check_start(s: &Start, checker: &mut Checker<'_>, scope: &Scope, at: Location) {
    checker.program(&s.program, at);
    let command = checker
        .programs
        .get(&s.program.value)
        .map(|p| p.command.clone())
        .unwrap_or_default();
    checker.known_placeholders(scope, command.iter().chain(s.args.iter().flatten()), at);
}

impl Keyword for Start {
    fn describe(&self) -> String {
        match &self.stdin {
            Some(p) => format!("start {} with {} on its stdin", self.program.value, p.describe()),
            None => format!("start {}", self.program.value),
        }
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        check_start(self, checker, scope, at)
    }
}

impl Keyword for Restart {
    fn describe(&self) -> String {
        format!("start {} again on the same port", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        check_start(self, checker, scope, at)
    }
}

impl Keyword for Stop {
    fn describe(&self) -> String {
        format!("stop {} with SIGTERM", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
}

impl Keyword for Kill {
    fn describe(&self) -> String {
        format!("kill {} (SIGKILL)", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
}

impl Keyword for SignalStep {
    fn describe(&self) -> String {
        format!("send {} to {}", self.signal.0.as_str(), self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
}

impl Keyword for ExpectRunning {
    fn describe(&self) -> String {
        format!("check that {} still runs", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
}

impl Keyword for ExpectExit {
    fn describe(&self) -> String {
        match &self.ending {
            Ending::Status(code) => format!("wait for {} to exit with status {code}", self.program.value),
            Ending::Signal(sig) => format!("wait for {} to be killed by {}", self.program.value, sig.0.as_str()),
            Ending::Any => format!("wait for {} to exit", self.program.value),
        }
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += self.not_before.map(|t| t.0).unwrap_or_default();
    }
}

impl Keyword for ExpectOutput {
    fn describe(&self) -> String {
        format!("check what {} wrote on {}", self.program.value, self.stream.as_str())
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
}
