//! The spec language: what an instructor writes.
//!
//! A spec names its lab, the programs a submission must provide (with their
//! command lines) and the scenarios that test them. Each scenario is a list of
//! steps played in order.
//!
//! Steps come in families, one file each, and the execution layer
//! (`crate::steps`) has a file of the same stem that runs them:
//!
//! - `program`: start, stop, kill, restart, signal, expect_running,
//!   expect_exit, expect_output;
//! - `tcp`: connect, listen, accept, send, expect, echo, expect_eof,
//!   expect_reset, shutdown, close, abort, read_slowly, expect_silence;
//!   fill (on a
//!   connection, until the program at its far end stops reading);
//! - `witness`: fd_baseline, expect_fds, memory_baseline, expect_memory,
//!   expect_accepted, expect_read, expect_released, expect_zombies, expect_idle;
//! - `udp`: udp_open, udp_bind, send_datagram, expect_datagram,
//!   expect_no_datagram (the harness's datagram endpoints), relay;
//! - `multicast`: join, multicast_sender, expect_members;
//! - `http`: send_request, expect_response, expect_request, send_response
//!   (HTTP/1.1 messages as parts, read by the harness's own parser; the
//!   files a server serves declared under `docroot`);
//! - `rpc`: send_message, expect_message (binary messages, field by field,
//!   in the format the spec declares under `frames`);
//! - `flow`: each, repeat.
//!
//! The doc comment of each step's struct is the language reference for it.
//! A step's own rules (one matcher, not two; a chunk of at least one byte)
//! are checked where the struct is declared, as serde builds it
//! (`#[serde(try_from)]`), so execution gets typed values; `check` then
//! checks what spans steps (that a name was opened by an earlier step).
//! Every error points at a file, line and column.

mod check;
mod describe;
pub mod flow;
pub mod http;
mod load;
pub mod multicast;
pub mod program;
mod reference;
pub mod rpc;
mod schema;
pub mod tcp;
pub mod udp;
pub mod values;
pub mod witness;

pub use load::{load, load_str, SpecError};
pub use reference::{steps_markdown, STEPS_WITHOUT_FAMILY};
pub use schema::schema;
pub use values::{Fill, Payload, PayloadSource, Size, TimeSpan};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

/// A whole spec file, validated.
#[derive(Debug)]
pub struct Spec {
    pub path: PathBuf,
    pub lab: String,
    pub programs: BTreeMap<String, Program>,
    /// The wire format of the `rpc` steps' messages, if the lab has one.
    pub frames: Option<rpc::Frames>,
    /// The files a server scenario serves, copied for each as `{docroot}`.
    pub docroot: Option<http::Docroot>,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub lab: String,
    pub programs: BTreeMap<String, Program>,
    /// The binary messages of the lab, for `send_message` and
    /// `expect_message`: `{ length: u32, messages: { request: [opcode: u8,
    /// a: i64, b: i64] } }`, integers big-endian.
    #[serde(default)]
    pub frames: Option<rpc::Frames>,
    /// The files server scenarios serve: `{ files: { index.html: "..." },
    /// outside: { secret.txt: "..." } }`; each scenario gets its own copy,
    /// passed to programs as `{docroot}` (`outside` goes beside it).
    #[serde(default)]
    pub docroot: Option<http::Docroot>,
    #[schemars(with = "Vec<Scenario>")]
    pub scenarios: Vec<Spanned<Scenario>>,
}

/// What `{host}` stands for in a command line: the address the harness
/// listens on and connects to.
pub const HOST: &str = "127.0.0.1";

/// `text` with `{port}` and `{host}` filled in, as a program or the
/// harness's own messages get them.
pub fn fill_port_and_host(text: &str, port: u16) -> String {
    text.replace("{port}", &port.to_string()).replace("{host}", HOST)
}

/// What a spec's text may name, with its value in one scenario: `{port}`
/// and `{host}`, and the scenario's others (`{port2}`, `{group}`,
/// `{docroot}`, and `{port:NAME}` for each of the grader's listeners with
/// a port of its own: `listen: { as: NAME, port: own }`).
#[derive(Clone, Debug, Default)]
pub struct Placeholders {
    /// The program's port, `{port}`.
    pub port: u16,
    /// The others, as (placeholder, value).
    pub others: Vec<(String, String)>,
}

impl Placeholders {
    pub fn fill(&self, text: &str) -> String {
        if !text.contains('{') {
            return text.to_string();
        }
        let mut out = fill_port_and_host(text, self.port);
        for (name, value) in &self.others {
            out = out.replace(name.as_str(), value);
        }
        out
    }

    /// `text` with `{round}` filled in, and the other placeholders left for
    /// the report to fill (`fill_placeholders` in `scenario.rs`): the round
    /// is over by then.
    pub fn fill_round(&self, text: &str) -> String {
        match self.others.iter().find(|(name, _)| name == "{round}") {
            Some((name, value)) => text.replace(name.as_str(), value),
            None => text.to_string(),
        }
    }

    /// A listener's own port (`{port:NAME}`) as a number, if the scenario
    /// has one by that name.
    pub fn listener_ports(&self) -> impl Iterator<Item = (&str, &str)> {
        self.others
            .iter()
            .filter(|(n, _)| n.starts_with("{port:"))
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl Spec {
    /// The spec plays with multicast: a program joins a group or is given
    /// `{group}`, or a step joins or sends to one. Its scenarios need
    /// multicast on loopback, and a decoy route (`isolation`).
    pub fn uses_multicast(&self) -> bool {
        fn in_steps(steps: &[Spanned<Step>]) -> bool {
            steps.iter().any(|s| match &s.value {
                Step::Join(_) | Step::MulticastSender(_) | Step::ExpectMembers(_) => true,
                Step::Each(e) => in_steps(&e.steps),
                Step::Repeat(r) => in_steps(&r.steps),
                _ => false,
            })
        }
        self.programs
            .values()
            .any(|p| p.joins.is_some() || p.command.iter().any(|a| a.contains("{group}")))
            || self.scenarios.iter().any(|s| in_steps(&s.steps))
    }

    /// The program that listens on the scenario's port: the far end of
    /// every connection the harness opens with `connect`.
    pub fn server(&self) -> Option<&str> {
        self.programs
            .iter()
            .find(|(_, p)| p.listens.is_some())
            .map(|(name, _)| name.as_str())
    }
}

/// A program the submission provides: `./echoserver {port}`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// The executable (relative to the submission) and its arguments.
    /// Placeholders: `{port}` the scenario's port, `{host}` 127.0.0.1,
    /// `{group}` the scenario's multicast group (in 239.0.0.0/8), `{port2}`
    /// a second port of the scenario's, for a program behind a `relay`,
    /// `{docroot}` the scenario's copy of the spec's `docroot`.
    pub command: Vec<String>,
    /// A reference program run beside the submission's, not the student's:
    /// the model server a student's client meets behind a `relay`. Its
    /// executable (`command[0]`, as `./name`) comes from the reference
    /// programs' directory (`--reference-dir`, by default beside sockgrade).
    #[serde(default)]
    pub reference: bool,
    /// A server: `start` waits until it listens on `{port}` (tcp) or is bound
    /// to it (udp), as the kernel reports in /proc.
    #[serde(default)]
    pub listens: Option<Protocol>,
    /// A multicast receiver: once bound, `start` also waits until the
    /// kernel shows one more member of this group on `lo` (`/proc/net/igmp`),
    /// within the same bound. `"{group}"`, the scenario's own group, is
    /// what a command line gets for `{group}`.
    #[serde(default)]
    pub joins: Option<multicast::Group>,
    /// Upper bound for readiness; the handouts say 2 s.
    #[serde(default)]
    pub ready_within: Option<TimeSpan>,
    /// The clauses every scenario relies on, so that a scenario whose
    /// check cannot even be reached names them instead of its own.
    #[serde(default)]
    pub preconditions: Preconditions,
}

/// What the scenarios of a program take for granted, each with the clause
/// id that a failure of it is attributed to: a server that never listens
/// fails every scenario at `start`, and one that closes a connection while
/// the client still talks fails every expectation after that; neither is
/// the fault a scenario on memory or on partial lines is about.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preconditions {
    /// The program listens on its port (`start` sees it within its bound).
    /// Not `restart`: a server that cannot bind again is what a restart
    /// scenario is about.
    #[serde(default)]
    pub listening: Option<String>,
    /// The program keeps a connection open until the harness half-closes
    /// or closes its side: an expectation that meets the program's EOF or
    /// reset before that is this clause's failure.
    #[serde(default)]
    pub keeps_connections: Option<String>,
    /// A multicast receiver: the program joins `{group}` on 127.0.0.1, as
    /// `/proc/net/igmp` shows on `lo`. `start` waits for it once the program
    /// is bound, and a receiver that joins elsewhere fails there.
    #[serde(default)]
    pub joined: Option<String>,
    /// A multicast sender: its datagrams come through lo (it named
    /// 127.0.0.1 with `IP_MULTICAST_IF`). A member of the harness that hears
    /// one through another interface blames this clause.
    #[serde(default)]
    pub through_loopback: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// Who sees a scenario's result: Gradescope's four words.
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Visible,
    Hidden,
    AfterDueDate,
    AfterPublished,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default = "one_point")]
    pub points: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub visibility: Visibility,
    /// Upper bound for the whole scenario: a guard against hangs.
    #[serde(default)]
    pub timeout: Option<TimeSpan>,
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Spanned<Step>>,
}

fn one_point() -> u32 {
    1
}

/// One step of a scenario: a one-key map, `- connect: a`, `- send: { on: a,
/// text: "hi" }`. Steps that take one name accept the name alone as a
/// shorthand for their map form.
///
/// Flat, so that serde gives located "unknown variant" errors that list
/// every keyword; grouped by family, each variant holding its family's
/// struct.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    // --- program: the programs under test ---------------------------------
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::Start>")]
    Start(program::Start),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::Stop>")]
    Stop(program::Stop),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::ProgramRef>")]
    Kill(program::ProgramRef),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::Start>")]
    Restart(program::Start),
    Signal(program::SignalStep),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::ProgramRef>")]
    ExpectRunning(program::ProgramRef),
    ExpectExit(program::ExpectExit),
    ExpectOutput(program::ExpectOutput),

    // --- tcp: the harness as a client or a server of the program ----------
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::Connect>")]
    Connect(tcp::Connect),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::Listen>")]
    Listen(tcp::Listen),
    Accept(tcp::Accept),
    ExpectNoConnection(tcp::ExpectNoConnection),
    Send(tcp::Send),
    Expect(tcp::Expect),
    Echo(tcp::EchoBack),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ConnRef>")]
    ExpectEof(tcp::ConnRef),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ExpectClosed>")]
    ExpectClosed(tcp::ExpectClosed),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ConnRef>")]
    ExpectReset(tcp::ConnRef),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ConnRef>")]
    Shutdown(tcp::ConnRef),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ConnRef>")]
    Close(tcp::ConnRef),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ConnRef>")]
    Abort(tcp::ConnRef),
    ReadSlowly(tcp::ReadSlowly),
    ExpectSilence(tcp::ExpectSilence),
    Fill(tcp::Fill),

    // --- udp: the harness's datagram endpoints ------------------------------
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<udp::UdpOpen>")]
    UdpOpen(udp::UdpOpen),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<udp::UdpBind>")]
    UdpBind(udp::UdpBind),
    SendDatagram(udp::SendDatagram),
    ExpectDatagram(udp::ExpectDatagram),
    ExpectNoDatagram(udp::ExpectNoDatagram),
    Relay(udp::Relay),

    // --- http: HTTP/1.1 messages on a connection -------------------------------
    SendRequest(http::SendRequest),
    ExpectResponse(http::ExpectResponse),
    ExpectRequest(http::ExpectRequest),
    SendResponse(http::SendResponse),

    // --- rpc: binary messages on a connection ---------------------------------
    SendMessage(rpc::SendMessage),
    ExpectMessage(rpc::ExpectMessage),

    // --- multicast: the group -------------------------------------------------
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<multicast::Join>")]
    Join(multicast::Join),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<multicast::MulticastSender>")]
    MulticastSender(multicast::MulticastSender),
    ExpectMembers(multicast::ExpectMembers),

    // --- flow: steps that hold steps (here, so that serde's list of
    // keywords keeps its order) -----------------------------------------------
    Each(flow::Each),
    Repeat(flow::Repeat),

    // --- witness: what the kernel shows of the program --------------------
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::ProgramRef>")]
    FdBaseline(program::ProgramRef),
    ExpectFds(witness::ExpectFds),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::ProgramRef>")]
    MemoryBaseline(program::ProgramRef),
    ExpectMemory(witness::ExpectMemory),
    ExpectAccepted(witness::ExpectAccepted),
    ExpectRead(witness::ExpectRead),
    ExpectReleased(witness::ExpectReleased),
    ExpectZombies(witness::ExpectZombies),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<witness::ExpectAtRest>")]
    ExpectAtRest(witness::ExpectAtRest),
    ExpectIdle(witness::ExpectIdle),
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
            Step::ExpectNoConnection(_) => "expect_no_connection",
            Step::Send(_) => "send",
            Step::Expect(_) => "expect",
            Step::Echo(_) => "echo",
            Step::ExpectEof(_) => "expect_eof",
            Step::ExpectClosed(_) => "expect_closed",
            Step::ExpectReset(_) => "expect_reset",
            Step::Shutdown(_) => "shutdown",
            Step::Close(_) => "close",
            Step::Abort(_) => "abort",
            Step::ReadSlowly(_) => "read_slowly",
            Step::ExpectSilence(_) => "expect_silence",
            Step::Fill(_) => "fill",
            Step::UdpOpen(_) => "udp_open",
            Step::UdpBind(_) => "udp_bind",
            Step::SendDatagram(_) => "send_datagram",
            Step::ExpectDatagram(_) => "expect_datagram",
            Step::ExpectNoDatagram(_) => "expect_no_datagram",
            Step::Relay(_) => "relay",
            Step::SendRequest(_) => "send_request",
            Step::ExpectResponse(_) => "expect_response",
            Step::ExpectRequest(_) => "expect_request",
            Step::SendResponse(_) => "send_response",
            Step::SendMessage(_) => "send_message",
            Step::ExpectMessage(_) => "expect_message",
            Step::Join(_) => "join",
            Step::MulticastSender(_) => "multicast_sender",
            Step::ExpectMembers(_) => "expect_members",
            Step::FdBaseline(_) => "fd_baseline",
            Step::ExpectFds(_) => "expect_fds",
            Step::MemoryBaseline(_) => "memory_baseline",
            Step::ExpectMemory(_) => "expect_memory",
            Step::ExpectAccepted(_) => "expect_accepted",
            Step::ExpectRead(_) => "expect_read",
            Step::ExpectReleased(_) => "expect_released",
            Step::ExpectZombies(_) => "expect_zombies",
            Step::ExpectAtRest(_) => "expect_at_rest",
            Step::ExpectIdle(_) => "expect_idle",
            Step::Each(_) => "each",
            Step::Repeat(_) => "repeat",
        }
    }

    /// The clause a step names with `precondition:`: its failure is that
    /// clause's, not the scenario's.
    pub fn precondition(&self) -> Option<&str> {
        match self {
            Step::ExpectDatagram(e) => e.precondition.as_deref(),
            Step::ExpectNoDatagram(e) => e.precondition.as_deref(),
            Step::ExpectOutput(o) => o.precondition.as_deref(),
            Step::ExpectMessage(e) => e.precondition.as_deref(),
            Step::ExpectResponse(e) => e.precondition.as_deref(),
            Step::ExpectRequest(e) => e.precondition.as_deref(),
            Step::ExpectRead(r) => r.precondition.as_deref(),
            Step::Accept(a) => a.precondition.as_deref(),
            Step::ExpectNoConnection(e) => e.precondition.as_deref(),
            _ => None,
        }
    }

    /// Which steps run on one connection: `Some(on)` for those (`on` is
    /// `None` inside `each`, where the member is the connection), `None` for
    /// every other step. The one classification: the checker, the dispatch
    /// and `each` all ask it.
    pub fn on(&self) -> Option<Option<&Name>> {
        match self {
            Step::Send(s) => Some(s.on.as_ref()),
            Step::Expect(e) => Some(e.on.as_ref()),
            Step::Echo(e) => Some(e.on.as_ref()),
            Step::ExpectClosed(c) => Some(c.on.as_ref()),
            Step::ExpectEof(c) | Step::ExpectReset(c) | Step::Shutdown(c) | Step::Close(c) | Step::Abort(c) => {
                Some(c.on.as_ref())
            }
            Step::ReadSlowly(r) => Some(r.on.as_ref()),
            Step::ExpectSilence(s) => Some(s.on.as_ref()),
            Step::SendRequest(s) => Some(s.on.as_ref()),
            Step::ExpectResponse(e) => Some(e.on.as_ref()),
            Step::ExpectRequest(e) => Some(e.on.as_ref()),
            Step::SendResponse(s) => Some(s.on.as_ref()),
            Step::SendMessage(s) => Some(s.on.as_ref()),
            Step::ExpectMessage(e) => Some(e.on.as_ref()),
            Step::Start(_)
            | Step::Stop(_)
            | Step::Kill(_)
            | Step::Restart(_)
            | Step::Signal(_)
            | Step::ExpectRunning(_)
            | Step::ExpectExit(_)
            | Step::ExpectOutput(_)
            | Step::Connect(_)
            | Step::Listen(_)
            | Step::Accept(_)
            | Step::ExpectNoConnection(_)
            | Step::Fill(_)
            | Step::UdpOpen(_)
            | Step::UdpBind(_)
            | Step::SendDatagram(_)
            | Step::ExpectDatagram(_)
            | Step::ExpectNoDatagram(_)
            | Step::Relay(_)
            | Step::Join(_)
            | Step::MulticastSender(_)
            | Step::ExpectMembers(_)
            | Step::FdBaseline(_)
            | Step::ExpectFds(_)
            | Step::MemoryBaseline(_)
            | Step::ExpectMemory(_)
            | Step::ExpectAccepted(_)
            | Step::ExpectRead(_)
            | Step::ExpectReleased(_)
            | Step::ExpectZombies(_)
            | Step::ExpectAtRest(_)
            | Step::ExpectIdle(_)
            | Step::Each(_)
            | Step::Repeat(_) => None,
        }
    }
}

/// A name that points at a program, connection or listener, with where it was
/// written (unknown for shorthand forms; then the step's location is used).
pub type Name = Spanned<String>;

/// Arguments that can be written as a bare name.
pub trait FromName {
    fn from_name(name: Name) -> Self;
}

/// A step's value: a bare name, or the map of its options.
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
