//! Steps, in two levels. The YAML is flat (`- send: {on: a, ...}` beside
//! `- start: server`); after load a step is either a scenario step or a
//! step on one connection (`Step::On`), and `each` holds only the latter
//! (`ConnStep`), so the types say what may go where.
//!
//! Every keyword is one line of `keywords!` below: its word, its level and
//! its struct. The struct, in `lang/<family>.rs`, carries what belongs to
//! the keyword (`impl Keyword`: its rules across steps, its words for
//! students, its scripted wait); `steps/<family>.rs` runs it. The enums,
//! their keyword words, the conversion between the levels and the one
//! dispatch (`each_step!`, `each_conn_step!`) are generated from the line.

use super::check::{Checker, Scope};
use super::{flow, http, multicast, program, rpc, schema, tcp, udp, witness, Name};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// What belongs to a keyword beside its struct's fields, implemented next to
/// the struct in its family's file.
pub trait Keyword {
    /// What the grader does in this step, as a short phrase for the student
    /// who reads a failure and cannot see the spec.
    fn describe(&self) -> String;

    /// The rules that span steps: the names it uses were opened before it,
    /// the names it opens. A step's own rules were checked as serde built it;
    /// most connection steps have no others.
    fn check(&self, _checker: &mut Checker<'_>, _scope: &mut Scope, _at: Location) {}

    /// The clause it names with `precondition:`: its failure is that
    /// clause's, not the scenario's.
    fn precondition(&self) -> Option<&str> {
        None
    }

    /// How long it waits on purpose, as written (an estimate for the order
    /// and slots of scenarios, never a verdict).
    fn scripted_wait(&self, _wait: &mut ScriptedWait) {}

    /// How many connections it may hold at once, at most.
    fn connections(&self) -> usize {
        0
    }
}

/// A scenario's scripted wait, summed over its steps: the waits that are
/// its point (an idle measurement, gaps between writes, a slow reader's
/// pauses), not its bounds, which a passing run never waits out.
#[derive(Debug, Default)]
pub struct ScriptedWait {
    pub total: Duration,
    /// A slow reader on the way back (`read_slowly`): its chunk and gap.
    pub slow_reader: Option<(usize, Duration)>,
    /// The bytes sent so far, which come back through the slow reader.
    pub sent: usize,
}

impl ScriptedWait {
    /// The whole wait of `steps`.
    pub fn of<'s, K: Keyword + 's>(steps: impl IntoIterator<Item = &'s K>) -> Duration {
        let mut wait = ScriptedWait::default();
        for step in steps {
            step.scripted_wait(&mut wait);
        }
        // What is sent comes back through the slow reader, a chunk per pause.
        if let Some((chunk, gap)) = wait.slow_reader {
            wait.total += gap * u32::try_from(wait.sent / chunk).unwrap_or(u32::MAX);
        }
        wait.total
    }
}

/// The pauses between the writes of `size` bytes cut as `split` says.
pub(super) fn gaps(gap: Option<super::TimeSpan>, split: &tcp::Split, size: usize) -> Duration {
    let pauses = u32::try_from(split.writes(size).len().saturating_sub(1)).unwrap_or(u32::MAX);
    gap.map(|g| g.0 * pauses).unwrap_or_default()
}

/// A keyword that takes the same options as another (`kill` and
/// `expect_running` both name a program): a type of its own, so that each
/// has its own words and rules. It reads as the options it wraps.
macro_rules! same_options {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub $inner);
        impl $crate::lang::FromName for $name {
            fn from_name(name: $crate::lang::Name) -> Self {
                $name(<$inner as $crate::lang::FromName>::from_name(name))
            }
        }
        impl std::ops::Deref for $name {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }
    };
}
pub(super) use same_options;

/// Sorts the lines of `keywords!` by level, then writes the enums, their
/// words, the conversion and the dispatch macros from them. The YAML enum
/// keeps the lines' order: serde lists the keywords in it when one is
/// unknown.
macro_rules! keywords {
    // Every line seen: write it all.
    (@split $d:tt [$($raw:tt)*] [$($scenario:tt)*] [$($lowered:tt)*] [$($conn:tt)*]) => {
        keywords!(@emit $d [$($raw)*] [$($scenario)*] [$($lowered)*] [$($conn)*]);
    };
    (@split $d:tt [$($raw:tt)*] [$($scenario:tt)*] [$($lowered:tt)*] [$($conn:tt)*]
        $(#[$a:meta])* scenario $kw:tt $V:ident($fam:ident::$T:ident), $($rest:tt)*) => {
        keywords!(@split $d [$($raw)* $(#[$a])* [$kw $V $fam $T]] [$($scenario)* [$kw $V $fam::$T]]
            [$($lowered)*] [$($conn)*] $($rest)*);
    };
    (@split $d:tt [$($raw:tt)*] [$($scenario:tt)*] [$($lowered:tt)*] [$($conn:tt)*]
        $(#[$a:meta])* holds $kw:tt $V:ident($fam:ident::$T:ident => $L:ty), $($rest:tt)*) => {
        keywords!(@split $d [$($raw)* $(#[$a])* [$kw $V $fam $T]] [$($scenario)*]
            [$($lowered)* [$kw $V $L]] [$($conn)*] $($rest)*);
    };
    (@split $d:tt [$($raw:tt)*] [$($scenario:tt)*] [$($lowered:tt)*] [$($conn:tt)*]
        $(#[$a:meta])* connection $kw:tt $V:ident($fam:ident::$T:ident), $($rest:tt)*) => {
        keywords!(@split $d [$($raw)* $(#[$a])* [$kw $V $fam $T]] [$($scenario)*]
            [$($lowered)*] [$($conn)* [$kw $V $fam::$T]] $($rest)*);
    };
    (@emit $d:tt
        [$($(#[$a:meta])* [$rkw:tt $RV:ident $rfam:ident $RT:ident])*]
        [$([$skw:tt $SV:ident $ST:ty])*]
        [$([$hkw:tt $HV:ident $HT:ty])*]
        [$([$ckw:tt $CV:ident $CT:ty])*]) => {
        /// One step of a scenario: a one-key map, `- connect: a`, `- send:
        /// { on: a, text: "hi" }`. Steps that take one name accept the name
        /// alone as a shorthand for their map form.
        // Flat, so that serde gives located "unknown variant" errors that
        // list every keyword. `Step` is what it becomes after load.
        #[derive(Debug, Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[schemars(rename = "Step")]
        pub enum RawStep {
            $( $(#[$a])* #[serde(rename = $rkw)] $RV($rfam::$RT), )*
        }

        /// Every keyword with its family (the stem of its files in `lang/`
        /// and `steps/`), in the language's order: what the reference
        /// (`docs/reference/steps.md`) groups them by.
        pub const KEYWORD_FAMILIES: &[(&str, &str)] = &[$( ($rkw, stringify!($rfam)), )*];

        impl RawStep {
            /// The step's keyword, as written in the spec.
            pub fn keyword(&self) -> &'static str {
                match self { $( RawStep::$RV(_) => $rkw, )* }
            }

            /// The step at its level, or the step on a connection.
            fn level(self) -> Result<Level, (Location, String)> {
                Ok(match self {
                    $( RawStep::$HV(s) => Level::Scenario(Step::$HV(s.lower()?)), )*
                    $( RawStep::$SV(s) => Level::Scenario(Step::$SV(s)), )*
                    $( RawStep::$CV(s) => Level::Connection(ConnStep::$CV(s)), )*
                })
            }
        }

        /// A step of a scenario, after load: one that acts on the scenario
        /// (its programs, listeners, endpoints), or one on a connection.
        // Built once at load and only borrowed after: their size is no cost.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug)]
        pub enum Step {
            $( $SV($ST), )*
            $( $HV($HT), )*
            /// A connection step, on the connection it names.
            On(OnConnection),
        }

        /// A step on one connection: at the top of a scenario, on the
        /// connection its `on` names; inside `each`, on every member.
        #[derive(Debug)]
        pub enum ConnStep {
            $( $CV($CT), )*
        }

        impl Step {
            /// The step's keyword, as written in the spec.
            pub fn keyword(&self) -> &'static str {
                match self {
                    $( Step::$SV(_) => $skw, )*
                    $( Step::$HV(_) => $hkw, )*
                    Step::On(o) => o.step.keyword(),
                }
            }
        }

        /// The keywords of the connection steps, for messages.
        pub(super) const CONNECTION_KEYWORDS: &[&str] = &[$($ckw),*];

        impl ConnStep {
            /// The step's keyword, as written in the spec.
            pub fn keyword(&self) -> &'static str {
                match self { $( ConnStep::$CV(_) => $ckw, )* }
            }
        }

        /// The one dispatch over scenario steps: `each_step!(step, s =>
        /// s.describe())` is a match with an arm for every keyword's
        /// struct, `s` bound to it (`Step::On` included: its struct is
        /// `OnConnection`).
        macro_rules! each_step {
            ($d step:expr, $d s:ident => $d body:expr) => {
                match $d step {
                    $( $crate::lang::Step::$SV($d s) => $d body, )*
                    $( $crate::lang::Step::$HV($d s) => $d body, )*
                    $crate::lang::Step::On($d s) => $d body,
                }
            };
        }

        /// The one dispatch over connection steps.
        macro_rules! each_conn_step {
            ($d step:expr, $d s:ident => $d body:expr) => {
                match $d step {
                    $( $crate::lang::ConnStep::$CV($d s) => $d body, )*
                }
            };
        }
    };
    ($d:tt $($lines:tt)*) => {
        keywords!(@split $d [] [] [] [] $($lines)*);
    };
}

// Grouped by family, the module of each struct; what each family is about
// is said once, in `reference::FAMILIES`.
keywords! { $
    // --- program
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::Start>")]
    scenario "start" Start(program::Start),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::Stop>")]
    scenario "stop" Stop(program::Stop),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::Kill>")]
    scenario "kill" Kill(program::Kill),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::Restart>")]
    scenario "restart" Restart(program::Restart),
    scenario "signal" Signal(program::SignalStep),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<program::ExpectRunning>")]
    scenario "expect_running" ExpectRunning(program::ExpectRunning),
    scenario "expect_exit" ExpectExit(program::ExpectExit),
    scenario "expect_output" ExpectOutput(program::ExpectOutput),

    // --- tcp
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::Connect>")]
    scenario "connect" Connect(tcp::Connect),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::Listen>")]
    scenario "listen" Listen(tcp::Listen),
    scenario "accept" Accept(tcp::Accept),
    scenario "expect_no_connection" ExpectNoConnection(tcp::ExpectNoConnection),
    connection "send" Send(tcp::Send),
    connection "expect" Expect(tcp::Expect),
    connection "echo" Echo(tcp::EchoBack),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ExpectEof>")]
    connection "expect_eof" ExpectEof(tcp::ExpectEof),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ExpectClosed>")]
    connection "expect_closed" ExpectClosed(tcp::ExpectClosed),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::ExpectReset>")]
    connection "expect_reset" ExpectReset(tcp::ExpectReset),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::Shutdown>")]
    connection "shutdown" Shutdown(tcp::Shutdown),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::Close>")]
    connection "close" Close(tcp::Close),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<tcp::Abort>")]
    connection "abort" Abort(tcp::Abort),
    connection "read_slowly" ReadSlowly(tcp::ReadSlowly),
    connection "expect_silence" ExpectSilence(tcp::ExpectSilence),
    scenario "fill" Fill(tcp::Fill),

    // --- udp
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<udp::UdpOpen>")]
    scenario "udp_open" UdpOpen(udp::UdpOpen),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<udp::UdpBind>")]
    scenario "udp_bind" UdpBind(udp::UdpBind),
    scenario "send_datagram" SendDatagram(udp::SendDatagram),
    scenario "expect_datagram" ExpectDatagram(udp::ExpectDatagram),
    scenario "expect_no_datagram" ExpectNoDatagram(udp::ExpectNoDatagram),
    scenario "relay" Relay(udp::Relay),

    // --- http
    connection "send_request" SendRequest(http::SendRequest),
    connection "expect_response" ExpectResponse(http::ExpectResponse),
    connection "expect_request" ExpectRequest(http::ExpectRequest),
    connection "send_response" SendResponse(http::SendResponse),

    // --- rpc
    connection "send_message" SendMessage(rpc::SendMessage),
    connection "expect_message" ExpectMessage(rpc::ExpectMessage),

    // --- multicast
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<multicast::Join>")]
    scenario "join" Join(multicast::Join),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<multicast::MulticastSender>")]
    scenario "multicast_sender" MulticastSender(multicast::MulticastSender),
    scenario "expect_members" ExpectMembers(multicast::ExpectMembers),

    // --- flow (here, so that serde's list of keywords keeps its order)
    holds "each" Each(flow::RawEach => flow::Each),
    holds "repeat" Repeat(flow::RawRepeat => flow::Repeat),

    // --- witness
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<witness::FdBaseline>")]
    scenario "fd_baseline" FdBaseline(witness::FdBaseline),
    scenario "expect_fds" ExpectFds(witness::ExpectFds),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<witness::MemoryBaseline>")]
    scenario "memory_baseline" MemoryBaseline(witness::MemoryBaseline),
    scenario "expect_memory" ExpectMemory(witness::ExpectMemory),
    scenario "expect_accepted" ExpectAccepted(witness::ExpectAccepted),
    scenario "expect_read" ExpectRead(witness::ExpectRead),
    scenario "expect_released" ExpectReleased(witness::ExpectReleased),
    scenario "expect_zombies" ExpectZombies(witness::ExpectZombies),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<witness::ExpectAtRest>")]
    scenario "expect_at_rest" ExpectAtRest(witness::ExpectAtRest),
    scenario "expect_idle" ExpectIdle(witness::ExpectIdle),
    #[serde(deserialize_with = "short")]
    #[schemars(with = "schema::Short<witness::ExpectListening>")]
    scenario "expect_listening" ExpectListening(witness::ExpectListening),
}

/// Where a step goes after load.
enum Level {
    Scenario(Step),
    Connection(ConnStep),
}

/// A connection step at the top of a scenario, with the connection it runs
/// on.
#[derive(Debug)]
pub struct OnConnection {
    pub on: Name,
    pub step: ConnStep,
}

impl ConnStep {
    /// The connection the step names (`None` inside `each`, where the
    /// member is the connection).
    pub fn on(&self) -> Option<&Name> {
        each_conn_step!(self, s => s.on.as_ref())
    }
}

impl Keyword for OnConnection {
    fn describe(&self) -> String {
        self.step.describe()
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.connection(scope, &self.on, at);
        self.step.check(checker, scope, at)
    }
    fn precondition(&self) -> Option<&str> {
        self.step.precondition()
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        self.step.scripted_wait(wait)
    }
}

/// `impl Keyword` for a level's enum: each method asks the step's own
/// struct, through the level's one dispatch.
macro_rules! keyword_by_dispatch {
    ($level:ty, $each:ident) => {
        impl Keyword for $level {
            fn describe(&self) -> String {
                $each!(self, s => s.describe())
            }
            fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
                $each!(self, s => s.check(checker, scope, at))
            }
            fn precondition(&self) -> Option<&str> {
                $each!(self, s => s.precondition())
            }
            fn scripted_wait(&self, wait: &mut ScriptedWait) {
                $each!(self, s => s.scripted_wait(wait))
            }
            fn connections(&self) -> usize {
                $each!(self, s => s.connections())
            }
        }
    };
}
keyword_by_dispatch!(ConnStep, each_conn_step);
keyword_by_dispatch!(Step, each_step);

/// Steps as written, at their levels: a connection step needs its `on`.
pub(super) fn lower_steps(steps: Vec<Spanned<RawStep>>) -> Result<Vec<Spanned<Step>>, (Location, String)> {
    steps
        .into_iter()
        .map(|raw| {
            let at = raw.referenced;
            let step = match raw.value.level()? {
                Level::Scenario(s) => s,
                Level::Connection(step) => match step.on().cloned() {
                    Some(on) => Step::On(OnConnection { on, step }),
                    None => return Err((at, "expected `on: <connection>`".into())),
                },
            };
            Ok(Spanned::new(step, raw.referenced, raw.defined))
        })
        .collect()
}

/// The steps of an `each`: connection steps only.
pub(super) fn lower_conn_steps(steps: Vec<Spanned<RawStep>>) -> Result<Vec<Spanned<ConnStep>>, (Location, String)> {
    steps
        .into_iter()
        .map(|raw| {
            let at = raw.referenced;
            let keyword = raw.value.keyword();
            match raw.value.level()? {
                Level::Connection(step) => Ok(Spanned::new(step, raw.referenced, raw.defined)),
                Level::Scenario(_) => Err((
                    at,
                    format!(
                        "expected a connection step inside `each` ({}), found `{keyword}`",
                        CONNECTION_KEYWORDS.join(", ")
                    ),
                )),
            }
        })
        .collect()
}

/// " on `a`", or nothing inside `each` (where the member is named apart).
pub(super) fn on_words(name: &Option<Name>) -> String {
    match name {
        Some(n) => format!(" on `{}`", n.value),
        None => String::new(),
    }
}

/// A step's value: a bare name, or the map of its options.
fn short<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: super::FromName + Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: super::FromName + Deserialize<'de>> Visitor<'de> for V<T> {
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

#[cfg(test)]
mod tests {
    use super::{lower_conn_steps, RawStep, CONNECTION_KEYWORDS};
    use serde_saphyr::{Location, Spanned};

    /// Every keyword the messages list is a connection step, and an
    /// `each` takes it.
    #[test]
    fn the_listed_connection_steps_are_the_connection_steps() {
        assert_eq!(CONNECTION_KEYWORDS.len(), 17);
        for keyword in CONNECTION_KEYWORDS {
            let text = match *keyword {
                "send" | "expect" | "echo" => format!("{keyword}: {{ text: x }}"),
                "read_slowly" => format!("{keyword}: {{ chunk: 1, gap: 1ms }}"),
                "expect_silence" => format!("{keyword}: {{ for: 1ms }}"),
                "send_request" => format!("{keyword}: {{ request: {{ target: / }} }}"),
                "expect_response" | "send_response" => format!("{keyword}: {{ status: 200 }}"),
                "expect_request" => format!("{keyword}: {{ method: GET }}"),
                "send_message" | "expect_message" => format!("{keyword}: {{ message: {{ m: {{ x: 1 }} }} }}"),
                _ => format!("{keyword}: a"),
            };
            let step: RawStep = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(step.keyword(), *keyword);
            let lowered = lower_conn_steps(vec![Spanned::new(step, Location::UNKNOWN, Location::UNKNOWN)]);
            assert!(lowered.is_ok(), "{keyword} is not a connection step");
        }
    }
}
