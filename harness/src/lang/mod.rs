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

#[macro_use]
mod step;
mod check;
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
pub use reference::{anchor as heading_anchor, steps_markdown, STEPS_WITHOUT_FAMILY};
pub use schema::schema;
pub use step::{ConnStep, Keyword, OnConnection, RawStep, ScriptedWait, Step, KEYWORD_FAMILIES};
pub use values::{Fill, Payload, PayloadSource, Size, TimeSpan};

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
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
    #[schemars(with = "Vec<RawScenario>")]
    pub scenarios: Vec<Spanned<RawScenario>>,
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

/// A scenario: its name, its points, who sees it, and its steps, played
/// in order.
// As written: its steps flat, as YAML has them (`Scenario` is after load).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Scenario")]
pub struct RawScenario {
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
    #[schemars(with = "Vec<RawStep>")]
    pub steps: Vec<Spanned<RawStep>>,
}

/// A scenario after load: its steps at their levels (`Step`).
#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub points: u32,
    pub tags: Vec<String>,
    pub hint: Option<String>,
    pub visibility: Visibility,
    /// Upper bound for the whole scenario: a guard against hangs.
    pub timeout: Option<TimeSpan>,
    pub steps: Vec<Spanned<Step>>,
}

impl RawScenario {
    /// The scenario with its steps at their levels.
    pub(crate) fn lower(self) -> Result<Scenario, (serde_saphyr::Location, String)> {
        Ok(Scenario {
            name: self.name,
            points: self.points,
            tags: self.tags,
            hint: self.hint,
            visibility: self.visibility,
            timeout: self.timeout,
            steps: step::lower_steps(self.steps)?,
        })
    }
}

fn one_point() -> u32 {
    1
}

/// A name that points at a program, connection or listener, with where it was
/// written (unknown for shorthand forms; then the step's location is used).
pub type Name = Spanned<String>;

/// Arguments that can be written as a bare name.
pub trait FromName {
    fn from_name(name: Name) -> Self;
}
