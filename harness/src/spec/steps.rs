//! The steps of a scenario. Each step is a one-key map: `- connect: a`,
//! `- send: { on: a, text: "hi" }`. Steps that take one name accept the name
//! alone as a shorthand for their map form.

use super::values::{Payload, PayloadSource, Size, Span};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::marker::PhantomData;

/// A name that points at a program, connection or listener, with where it was
/// written (unknown for shorthand forms; then the step's location is used).
pub type Name = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    // --- the programs under test -------------------------------------------
    #[serde(deserialize_with = "short")]
    Start(Start),
    #[serde(deserialize_with = "short")]
    Stop(Stop),
    #[serde(deserialize_with = "short")]
    Kill(ProgramRef),
    #[serde(deserialize_with = "short")]
    Restart(Start),
    Signal(SignalStep),
    #[serde(deserialize_with = "short")]
    ExpectRunning(ProgramRef),
    ExpectExit(ExpectExit),
    ExpectOutput(ExpectOutput),

    // --- the harness as a TCP client of the program ------------------------
    #[serde(deserialize_with = "short")]
    Connect(Connect),
    // --- the harness as a TCP server for the program -----------------------
    #[serde(deserialize_with = "short")]
    Listen(Listen),
    Accept(Accept),

    // --- one connection ----------------------------------------------------
    Send(Send),
    Expect(Expect),
    /// Plays an echo server on this connection: what arrives is checked
    /// against the payload and sent straight back, until all of it was.
    Echo(EchoBack),
    #[serde(deserialize_with = "short")]
    ExpectEof(ConnRef),
    #[serde(deserialize_with = "short")]
    ExpectReset(ConnRef),
    #[serde(deserialize_with = "short")]
    Shutdown(ConnRef),
    #[serde(deserialize_with = "short")]
    Close(ConnRef),
    #[serde(deserialize_with = "short")]
    Abort(ConnRef),
    ReadSlowly(ReadSlowly),
    /// Runs its steps for every connection of a group, all at once.
    Each(Each),
    /// Runs its steps again and again, one round after the other.
    Repeat(Repeat),

    // --- the kernel as witness ---------------------------------------------
    #[serde(deserialize_with = "short")]
    FdBaseline(ProgramRef),
    ExpectFds(ExpectFds),
    /// Notes the resident memory of the program and its descendants.
    #[serde(deserialize_with = "short")]
    MemoryBaseline(ProgramRef),
    ExpectMemory(ExpectMemory),
    ExpectReleased(ExpectReleased),
    ExpectZombies(ExpectZombies),
    ExpectIdle(ExpectIdle),
}

impl Step {
    /// The step's keyword, as written in the spec.
    pub fn keyword(&self) -> &'static str {
        match self {
            Step::Start(_) => "start",
            Step::Stop(_) => "stop",
            Step::Kill(_) => "kill",
            Step::Restart(_) => "restart",
            Step::Signal(_) => "signal",
            Step::ExpectRunning(_) => "expect_running",
            Step::ExpectExit(_) => "expect_exit",
            Step::ExpectOutput(_) => "expect_output",
            Step::Connect(_) => "connect",
            Step::Listen(_) => "listen",
            Step::Accept(_) => "accept",
            Step::Send(_) => "send",
            Step::Expect(_) => "expect",
            Step::Echo(_) => "echo",
            Step::ExpectEof(_) => "expect_eof",
            Step::ExpectReset(_) => "expect_reset",
            Step::Shutdown(_) => "shutdown",
            Step::Close(_) => "close",
            Step::Abort(_) => "abort",
            Step::ReadSlowly(_) => "read_slowly",
            Step::Each(_) => "each",
            Step::Repeat(_) => "repeat",
            Step::FdBaseline(_) => "fd_baseline",
            Step::ExpectFds(_) => "expect_fds",
            Step::MemoryBaseline(_) => "memory_baseline",
            Step::ExpectMemory(_) => "expect_memory",
            Step::ExpectReleased(_) => "expect_released",
            Step::ExpectZombies(_) => "expect_zombies",
            Step::ExpectIdle(_) => "expect_idle",
        }
    }
}

/// Arguments that can be written as a bare name.
pub trait FromName {
    fn from_name(name: Name) -> Self;
}

fn short<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromName + Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: FromName + Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a name, or a map of the step's options")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            Ok(T::from_name(Spanned::new(
                v.to_string(),
                Location::UNKNOWN,
                Location::UNKNOWN,
            )))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V(PhantomData))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
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
    pub within: Option<Span>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    pub program: Name,
    /// How long the program has to exit after SIGTERM before it is killed
    /// and the step fails.
    #[serde(default)]
    pub within: Option<Span>,
}
impl FromName for Stop {
    fn from_name(program: Name) -> Self {
        Stop { program, within: None }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramRef {
    pub program: Name,
}
impl FromName for ProgramRef {
    fn from_name(program: Name) -> Self {
        ProgramRef { program }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalStep {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectExit {
    pub program: Name,
    /// The exit status expected; with neither `status` nor `signal`, any end.
    #[serde(default)]
    pub status: Option<i32>,
    #[serde(default)]
    pub signal: Option<SignalName>,
    #[serde(default)]
    pub within: Option<Span>,
    /// The program must not have exited before this long after the step began
    /// (e.g. a client's own timeout).
    #[serde(default)]
    pub not_before: Option<Span>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    #[default]
    Stdout,
    Stderr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectOutput {
    pub program: Name,
    #[serde(default)]
    pub stream: Stream,
    #[serde(default)]
    pub equals: Option<Payload>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub nonempty: Option<bool>,
    #[serde(default)]
    pub empty: Option<bool>,
    /// The most lines the stream may hold (`1` for "one line on stderr").
    #[serde(default)]
    pub max_lines: Option<usize>,
    #[serde(default)]
    pub within: Option<Span>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConnectOutcome {
    #[default]
    Established,
    Refused,
    /// The handshake does not complete within the bound (a full backlog).
    Pending,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    #[serde(rename = "as")]
    pub name: Name,
    /// Open this many connections, one after the other, as the group `as`.
    #[serde(default)]
    pub count: Option<usize>,
    #[serde(default)]
    pub expect: ConnectOutcome,
    #[serde(default)]
    pub within: Option<Span>,
    /// SO_RCVBUF before connecting: a small window makes the program's
    /// writes block early, which is how back-pressure is tested.
    #[serde(default)]
    pub rcvbuf: Option<Size>,
}
impl FromName for Connect {
    fn from_name(name: Name) -> Self {
        Connect {
            name,
            count: None,
            expect: ConnectOutcome::Established,
            within: None,
            rcvbuf: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(rename = "as")]
    pub name: Name,
}
impl FromName for Listen {
    fn from_name(name: Name) -> Self {
        Listen { name }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    pub on: Name,
    #[serde(rename = "as")]
    pub name: Name,
    #[serde(default)]
    pub within: Option<Span>,
}

/// The payload keys shared by `send` and `expect`: exactly one of `text`,
/// `hex`, `generate`, optionally `then`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub size: Size,
    #[serde(default)]
    pub repeat: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// With `seed`: random lines of letters and digits instead of random
    /// bytes, for scenarios about size and timing rather than byte values (a
    /// server that stops at a zero byte must fail the byte-value scenario,
    /// not every scenario that sends a megabyte).
    #[serde(default)]
    pub lines: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    #[serde(default)]
    pub on: Option<Name>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub hex: Option<String>,
    #[serde(default)]
    pub generate: Option<Generate>,
    #[serde(default)]
    pub then: Option<String>,
    /// Split into writes of this size...
    #[serde(default)]
    pub chunk: Option<Size>,
    /// ...or of these sizes (the rest in one write).
    #[serde(default)]
    pub sizes: Option<Vec<Size>>,
    /// Pause between writes, so each reaches the wire as its own segment.
    #[serde(default)]
    pub gap: Option<Span>,
    /// Wait until every byte is handed to the kernel before the next step.
    /// Off by default: a send goes on in the background while later steps
    /// read, so a megabyte can't deadlock against a correct echo server.
    #[serde(default)]
    pub wait: Option<bool>,
    /// Shut down the sending side right after, the FIN in the same segment
    /// as the last bytes (TCP_CORK): the program reads its last data and
    /// end-of-file in one go, which is when a half-close bug shows.
    #[serde(default)]
    pub shutdown: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub on: Option<Name>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub hex: Option<String>,
    #[serde(default)]
    pub generate: Option<Generate>,
    #[serde(default)]
    pub then: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    /// Everything sent on this connection and not yet echoed comes back.
    #[serde(default)]
    pub echo: Option<bool>,
    /// Any this many bytes.
    #[serde(default)]
    pub size: Option<Size>,
    #[serde(default)]
    pub within: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoBack {
    #[serde(default)]
    pub on: Option<Name>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub hex: Option<String>,
    #[serde(default)]
    pub generate: Option<Generate>,
    #[serde(default)]
    pub then: Option<String>,
    #[serde(default)]
    pub within: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnRef {
    #[serde(default)]
    pub on: Option<Name>,
    #[serde(default)]
    pub within: Option<Span>,
}
impl FromName for ConnRef {
    fn from_name(on: Name) -> Self {
        ConnRef {
            on: Some(on),
            within: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSlowly {
    #[serde(default)]
    pub on: Option<Name>,
    pub chunk: Size,
    pub gap: Span,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Each {
    /// The group opened by `connect` with `count`.
    pub connections: Name,
    pub steps: Vec<Spanned<Step>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    pub times: usize,
    /// Names opened inside belong to one round and are reused by the next.
    pub steps: Vec<Spanned<Step>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectFds {
    pub program: Name,
    /// Descriptors allowed above the `fd_baseline`.
    #[serde(default)]
    pub above_baseline: usize,
    #[serde(default)]
    pub within: Option<Span>,
}

/// The program's resident memory (with its descendants') is back within
/// `growth_at_most` of its `memory_baseline`: what clients cost it is given
/// back when they leave.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectMemory {
    pub program: Name,
    pub growth_at_most: Size,
    #[serde(default)]
    pub within: Option<Span>,
}

/// The program closes its end of a connection (after the harness closed or
/// reset its own): no descriptor of the program or its children refers to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectReleased {
    pub program: Name,
    pub connection: Name,
    #[serde(default)]
    pub within: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectZombies {
    pub program: Name,
    #[serde(default)]
    pub at_most: usize,
    #[serde(default)]
    pub within: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectIdle {
    pub program: Name,
    /// How long to watch. This step measures over time; it does not wait for
    /// anything to happen.
    #[serde(rename = "for")]
    pub duration: Span,
    /// The most CPU time used, as a percentage of the time watched.
    #[serde(default)]
    pub max_cpu_percent: Option<u32>,
    /// The most processes (the program and its descendants).
    #[serde(default)]
    pub max_processes: Option<usize>,
    /// The most growth of resident memory over the time watched.
    #[serde(default)]
    pub max_rss_growth: Option<Size>,
}

/// Turns the payload keys of `send`/`expect` into a payload. `Ok(None)` when
/// none is given.
pub fn payload_of(
    text: &Option<String>,
    hex: &Option<String>,
    generate: &Option<Generate>,
    then: &Option<String>,
) -> Result<Option<Payload>, String> {
    let source = match (text, hex, generate) {
        (None, None, None) => {
            return match then {
                Some(t) => Ok(Some(Payload::text(t))),
                None => Ok(None),
            }
        }
        (Some(t), None, None) => PayloadSource::Text(t.clone()),
        (None, Some(h), None) => PayloadSource::Hex(super::values::parse_hex(h)?),
        (None, None, Some(g)) => {
            let fill = match (&g.repeat, g.seed, g.lines) {
                (Some(r), None, false) if !r.is_empty() => super::Fill::Repeat(r.clone().into_bytes()),
                (None, Some(s), false) => super::Fill::Seed(s),
                (None, Some(s), true) => super::Fill::Lines(s),
                (_, _, true) => return Err("`generate` with `lines` needs a `seed` (and no `repeat`)".into()),
                _ => return Err("`generate` with exactly one of `repeat` (non-empty) or `seed`".into()),
            };
            PayloadSource::Generate { size: g.size.0, fill }
        }
        _ => return Err("only one of `text`, `hex` and `generate`".into()),
    };
    Ok(Some(Payload {
        source,
        then: then.clone(),
    }))
}
