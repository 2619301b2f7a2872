//! The `witness` family: what the kernel shows of a program without its help
//! (descriptors, memory, connections, zombie children, CPU). Run by
//! `crate::steps::witness`. `fd_baseline: P` and `memory_baseline: P` note
//! what the program holds with no client connected; the expectations below
//! compare with that.

use super::check::{Checker, Scope};
use super::program::ProgramRef;
use super::step::{Keyword, ScriptedWait};
use super::values::{Size, TimeSpan};
use super::Name;
use serde::Deserialize;
use serde_saphyr::Location;

/// `expect_fds: { program: server, above_baseline: 0 }`: once its clients
/// are gone, the program holds at most this many descriptors more than at
/// its `fd_baseline` (waits up to `within` for it to close them).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFds {
    #[schemars(with = "String")]
    pub program: Name,
    /// Descriptors allowed above the `fd_baseline`.
    #[serde(default)]
    pub above_baseline: usize,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}

/// `expect_memory: { program: server, growth_at_most: 2MiB }`: the program's
/// resident memory (with its descendants') is back within `growth_at_most`
/// of its `memory_baseline`: what clients cost it is given back when they
/// leave.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectMemory {
    #[schemars(with = "String")]
    pub program: Name,
    pub growth_at_most: Size,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}

/// `expect_accepted: { program: server, connection: a }`: the program has
/// accepted the connection, or every member of a group (`connection: g`):
/// the kernel shows a descriptor of the program or its children referring
/// to it. A completed `connect` only means the kernel queued it; a scenario
/// whose next step needs the program to know of the connection (a line
/// broadcast to every client) waits for this first, instead of hoping.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectAccepted {
    #[schemars(with = "String")]
    pub program: Name,
    #[schemars(with = "String")]
    pub connection: Name,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}

/// `expect_read: { program: server, connection: a }`: the program has read
/// everything sent on the connection so far: the kernel shows nothing in
/// flight toward it and nothing waiting in its receive queue. For a
/// scenario whose next step needs the program to have seen those bytes
/// (half a line, before another client speaks), instead of hoping.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRead {
    #[schemars(with = "String")]
    pub program: Name,
    #[schemars(with = "String")]
    pub connection: Name,
    #[serde(default)]
    pub within: Option<TimeSpan>,
    /// A clause the scenario relies on (see `expect_datagram`): a client
    /// that never reads its answers fails the clause that says it must.
    #[serde(default)]
    pub precondition: Option<String>,
}

/// `expect_released: { program: server, connection: a }`: the program closes
/// its end of a connection (after the harness closed or reset its own): no
/// descriptor of the program or its children refers to it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectReleased {
    #[schemars(with = "String")]
    pub program: Name,
    #[schemars(with = "String")]
    pub connection: Name,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}

/// `expect_at_rest: proxy`, or `{ program: proxy, within: 2s }`: a
/// barrier. Returns once every thread of the program's processes waits in
/// the kernel and nothing is in flight toward it or from it (its sockets'
/// queues are empty), seen twice in a row: whatever the last request set
/// off (a proxy storing the object it fetched) is done before the next
/// step. Fails if the program never comes to rest within the bound (a
/// thread that spins).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectAtRest {
    #[schemars(with = "String")]
    pub program: Name,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}
impl super::FromName for ExpectAtRest {
    fn from_name(program: Name) -> Self {
        ExpectAtRest { program, within: None }
    }
}

/// `expect_zombies: { program: server, at_most: 1 }`: children that exited
/// and were never waited for.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectZombies {
    #[schemars(with = "String")]
    pub program: Name,
    #[serde(default)]
    pub at_most: usize,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}

/// `expect_idle: { program: server, for: 1s, max_cpu_percent: 10 }`: watched
/// for a while with no client, the program (and its descendants) stays
/// within every bound given: at least one of them.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawExpectIdle")]
#[schemars(with = "RawExpectIdle")]
pub struct ExpectIdle {
    pub program: Name,
    /// How long to watch. This step measures over time; it does not wait for
    /// anything to happen.
    pub duration: TimeSpan,
    /// The most CPU time used, as a percentage of the time watched.
    pub max_cpu_percent: Option<u32>,
    /// The most processes (the program and its descendants).
    pub max_processes: Option<usize>,
    /// The most growth of resident memory over the time watched.
    pub max_rss_growth: Option<Size>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpectIdle {
    #[schemars(with = "String")]
    program: Name,
    #[serde(rename = "for")]
    duration: TimeSpan,
    #[serde(default)]
    max_cpu_percent: Option<u32>,
    #[serde(default)]
    max_processes: Option<usize>,
    #[serde(default)]
    max_rss_growth: Option<Size>,
}

impl TryFrom<RawExpectIdle> for ExpectIdle {
    type Error = String;
    fn try_from(raw: RawExpectIdle) -> Result<Self, String> {
        if raw.max_cpu_percent.is_none() && raw.max_processes.is_none() && raw.max_rss_growth.is_none() {
            return Err("expected at least one of `max_cpu_percent`, `max_processes`, `max_rss_growth`".into());
        }
        Ok(ExpectIdle {
            program: raw.program,
            duration: raw.duration,
            max_cpu_percent: raw.max_cpu_percent,
            max_processes: raw.max_processes,
            max_rss_growth: raw.max_rss_growth,
        })
    }
}

super::step::same_options! {
    /// `fd_baseline: server`: counts the program's open descriptors, for a
    /// later `expect_fds`.
    FdBaseline(ProgramRef)
}
super::step::same_options! {
    /// `memory_baseline: server`: measures the program's memory, for a
    /// later `expect_memory`.
    MemoryBaseline(ProgramRef)
}

impl Keyword for FdBaseline {
    fn describe(&self) -> String {
        format!("count {}'s open descriptors", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.program(&self.program, at);
        scope.fd_baselines.insert(self.program.value.clone());
    }
}

impl Keyword for ExpectFds {
    fn describe(&self) -> String {
        format!(
            "check that {} is back to the descriptors it had before",
            self.program.value
        )
    }
    /// Found while the scenario ran, a missing baseline was charged to the
    /// student: it is the spec's to get right.
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        let before = &scope.fd_baselines;
        checker.program_with_baseline(&self.program, before, "an `fd_baseline", "expect_fds", at)
    }
}

impl Keyword for MemoryBaseline {
    fn describe(&self) -> String {
        format!("measure {}'s memory", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.program(&self.program, at);
        scope.memory_baselines.insert(self.program.value.clone());
    }
}

impl Keyword for ExpectMemory {
    fn describe(&self) -> String {
        format!(
            "check that {}'s memory grew by at most {}",
            self.program.value,
            crate::escape::bytes(self.growth_at_most.0)
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        let before = &scope.memory_baselines;
        checker.program_with_baseline(&self.program, before, "a `memory_baseline", "expect_memory", at)
    }
}

impl Keyword for ExpectAccepted {
    fn describe(&self) -> String {
        format!("wait for {} to accept `{}`", self.program.value, self.connection.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.program_and_connection(&self.program, &self.connection, true, scope, at)
    }
}

impl Keyword for ExpectRead {
    fn describe(&self) -> String {
        format!(
            "wait for {} to read everything sent on `{}`",
            self.program.value, self.connection.value
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.program_and_connection(&self.program, &self.connection, false, scope, at)
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
}

impl Keyword for ExpectReleased {
    fn describe(&self) -> String {
        format!(
            "wait for {} to close its end of `{}`",
            self.program.value, self.connection.value
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.program_and_connection(&self.program, &self.connection, false, scope, at)
    }
}

impl Keyword for ExpectZombies {
    fn describe(&self) -> String {
        format!(
            "check that {} leaves at most {} finished child unreaped",
            self.program.value, self.at_most
        )
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
}

impl Keyword for ExpectAtRest {
    fn describe(&self) -> String {
        format!("wait until {} is at rest", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
}

impl Keyword for ExpectIdle {
    fn describe(&self) -> String {
        format!("watch {} while idle for {}", self.program.value, self.duration)
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at)
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += self.duration.0;
    }
}

/// `expect_listening: server`: the program still listens on `{port}` (is
/// still bound to it, for udp), as the kernel's socket table shows now: a
/// server that closed its listening socket after a client's error, or
/// handed it to a child that ended, serves no one else. For a program that
/// `listens`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectListening {
    #[schemars(with = "String")]
    pub program: Name,
}
impl super::FromName for ExpectListening {
    fn from_name(program: Name) -> Self {
        ExpectListening { program }
    }
}

impl Keyword for ExpectListening {
    fn describe(&self) -> String {
        format!("check that {} still listens on its port", self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.program(&self.program, at);
        if let Some(p) = checker.programs.get(&self.program.value) {
            if p.listens.is_none() {
                checker.fail(
                    super::check::loc_of(&self.program, at),
                    format!(
                        "expected a program that `listens`, found `{}`, which does not",
                        self.program.value
                    ),
                );
            }
        }
    }
}
