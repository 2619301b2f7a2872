//! The `udp` family: the harness's datagram endpoints, as a client of the
//! program (`udp_open`), as its server (`udp_bind`), between it and another
//! program (`relay`), and what it sends and expects on one endpoint.
//! Run by `crate::steps::udp`.
//!
//! An endpoint has a peer, where `send_datagram` goes: the scenario's
//! `{port}` for `udp_open`, whoever sent the last datagram for `udp_bind`,
//! the group for `multicast_sender` (the `multicast` family). Datagrams are
//! whole: an expectation is met by one datagram, never by several.

use super::check::{loc_of, Checker, Kind, Scope};
use super::step::{Keyword, ScriptedWait};
use super::values::{Generate, Payload, TimeSpan};
use super::{FromName, Name};
use crate::matcher::Matcher;
use serde::Deserialize;
use serde_saphyr::Location;

/// `udp_open: a`, or `udp_open: { as: c, count: 8 }`: a datagram socket of
/// the harness on 127.0.0.1 (a port of the kernel's choosing), whose peer is
/// `{port}` on 127.0.0.1: the server under test. With `count`, that many,
/// named `c#1`, `c#2`, ...
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawUdpOpen")]
#[schemars(with = "RawUdpOpen")]
pub struct UdpOpen {
    pub name: Name,
    pub count: Option<usize>,
}
impl FromName for UdpOpen {
    fn from_name(name: Name) -> Self {
        UdpOpen { name, count: None }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawUdpOpen {
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    name: Name,
    #[serde(default)]
    count: Option<usize>,
}

impl TryFrom<RawUdpOpen> for UdpOpen {
    type Error = String;
    fn try_from(raw: RawUdpOpen) -> Result<Self, String> {
        if raw.count == Some(0) {
            return Err("expected a `count` of at least 1".into());
        }
        Ok(UdpOpen {
            name: raw.name,
            count: raw.count,
        })
    }
}

/// `udp_bind: s`: the harness is the server for a client under test, bound
/// to `{port}` with one dual-stack socket (so that a client given
/// `localhost` finds it at 127.0.0.1 or ::1). Its peer is the sender of the
/// last datagram it received.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UdpBind {
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    pub name: Name,
}
impl FromName for UdpBind {
    fn from_name(name: Name) -> Self {
        UdpBind { name }
    }
}

/// `send_datagram: { on: a, text: "hi" }`: one datagram of these bytes
/// (`text`, `hex` or `generate`, then `then`; `text: ""` is an empty
/// datagram) to the endpoint's peer. `to: b` sends it to `b`'s peer instead,
/// from `a`: an answer from a port the client never wrote to. `copies: 2`
/// sends the same datagram twice (a duplicate); with `gap: 100ms` the
/// copies go that far apart, in the background, while later steps run.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawSendDatagram")]
#[schemars(with = "RawSendDatagram")]
pub struct SendDatagram {
    pub on: Name,
    pub payload: Payload,
    pub to: Option<Name>,
    pub copies: usize,
    pub gap: Option<TimeSpan>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSendDatagram {
    #[schemars(with = "String")]
    on: Name,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    generate: Option<Generate>,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    to: Option<Name>,
    #[serde(default)]
    copies: Option<usize>,
    #[serde(default)]
    gap: Option<TimeSpan>,
}

/// The largest datagram a spec may send: what fits in one IPv4 datagram.
pub const MAX_DATAGRAM: usize = 65_507;

impl TryFrom<RawSendDatagram> for SendDatagram {
    type Error = String;
    fn try_from(raw: RawSendDatagram) -> Result<Self, String> {
        let payload = Payload::required(raw.text, raw.hex, raw.generate, raw.then, "what to send")?;
        let size = payload.bytes().len();
        if size > MAX_DATAGRAM {
            return Err(format!(
                "expected a datagram of at most {MAX_DATAGRAM} bytes (what one IPv4 datagram holds), found {size}"
            ));
        }
        let copies = raw.copies.unwrap_or(1);
        if copies == 0 {
            return Err("expected `copies` of at least 1".into());
        }
        if raw.gap.is_some() && copies < 2 {
            return Err("expected `copies` of at least 2 with a `gap` (the time between copies)".into());
        }
        Ok(SendDatagram {
            on: raw.on,
            payload,
            to: raw.to,
            copies,
            gap: raw.gap,
        })
    }
}

/// What `expect_datagram` waits for.
#[derive(Debug)]
pub enum ExpectedDatagram {
    /// The bytes of one datagram, whole (`text` is then "equals").
    Bytes(Matcher),
    /// The bytes of the last datagram this endpoint sent.
    Echo,
}

/// Bounds on the time between two datagrams that arrived on one endpoint,
/// as the kernel stamped their arrival: what a retransmission clause is about.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub at_least: TimeSpan,
    pub at_most: TimeSpan,
}

/// `expect_datagram: { on: a, text: "hi", within: 1s }`: the next datagram
/// on the endpoint is, whole, exactly one of: `text`/`hex`/`generate`,
/// `prefix`, `contains`, `regex`, `size`, `empty: true` or `echo: true` (the
/// bytes this endpoint sent last). It must come within `within` (2 s) and
/// from the endpoint's peer: the server for `udp_open`; a `udp_bind`
/// endpoint takes its sender as its new peer. Options:
/// - `interval: { at_least: 400ms, at_most: 800ms }`: the time since the
///   previous datagram on this endpoint, for retransmissions;
/// - `ttl: 1`: the datagram's IP TTL (on a `join` endpoint, which reads it);
/// - `precondition: <clause>`: a failure of this step means the scenario's
///   own check was never reached, and is that clause's.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawExpectDatagram")]
#[schemars(with = "RawExpectDatagram")]
pub struct ExpectDatagram {
    pub on: Name,
    pub expected: ExpectedDatagram,
    pub within: Option<TimeSpan>,
    pub interval: Option<Interval>,
    pub ttl: Option<u8>,
    pub precondition: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpectDatagram {
    #[schemars(with = "String")]
    on: Name,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    generate: Option<Generate>,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    size: Option<super::Size>,
    #[serde(default)]
    empty: Option<bool>,
    #[serde(default)]
    echo: Option<bool>,
    #[serde(default)]
    within: Option<TimeSpan>,
    #[serde(default)]
    interval: Option<Interval>,
    #[serde(default)]
    ttl: Option<u8>,
    #[serde(default)]
    precondition: Option<String>,
}

impl TryFrom<RawExpectDatagram> for ExpectDatagram {
    type Error = String;
    fn try_from(raw: RawExpectDatagram) -> Result<Self, String> {
        let keys = super::tcp::byte_keys_of!(raw);
        let mut found: Vec<ExpectedDatagram> = keys
            .matchers()?
            .into_iter()
            // An empty `text` is the empty datagram, as `empty: true` is.
            .map(|m| match m {
                Matcher::Exact(b) if b.is_empty() => Matcher::Empty,
                m => m,
            })
            .chain((raw.empty == Some(true)).then_some(Matcher::Empty))
            .map(ExpectedDatagram::Bytes)
            .collect();
        if raw.echo == Some(true) {
            found.push(ExpectedDatagram::Echo);
        }
        if found.len() != 1 {
            return Err(
                "expected exactly one of `text`/`hex`/`generate`, `prefix`, `contains`, `regex`, `size`, `empty: true`, `echo: true`"
                    .into(),
            );
        }
        if let Some(i) = raw.interval {
            if i.at_least.0 > i.at_most.0 {
                return Err(format!(
                    "expected an `interval` whose `at_least` ({}) is not above its `at_most` ({})",
                    i.at_least, i.at_most
                ));
            }
        }
        Ok(ExpectDatagram {
            on: raw.on,
            expected: found.remove(0),
            within: raw.within,
            interval: raw.interval,
            ttl: raw.ttl,
            precondition: raw.precondition,
        })
    }
}

/// `expect_no_datagram: { on: a, for: 600ms }`: nothing arrives on the
/// endpoint for that long. The one place where waiting is the point: a
/// client that must not resend yet, a server that must not answer. The span
/// is wall time (load makes a program later, never sooner), counted from the
/// arrival of the datagram the step before received on this endpoint, if it
/// did (else from the step's start); a datagram counts by the kernel's stamp
/// of its arrival. Option:
/// - `precondition: <clause>`: a failure of this step means the scenario's
///   own check was never reached, and is that clause's.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawExpectNoDatagram")]
#[schemars(with = "RawExpectNoDatagram")]
pub struct ExpectNoDatagram {
    pub on: Name,
    pub duration: TimeSpan,
    pub precondition: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpectNoDatagram {
    #[schemars(with = "String")]
    on: Name,
    #[serde(rename = "for")]
    duration: TimeSpan,
    #[serde(default)]
    precondition: Option<String>,
}

impl TryFrom<RawExpectNoDatagram> for ExpectNoDatagram {
    type Error = String;
    fn try_from(raw: RawExpectNoDatagram) -> Result<Self, String> {
        Ok(ExpectNoDatagram {
            on: raw.on,
            duration: raw.duration,
            precondition: raw.precondition,
        })
    }
}

/// Which datagram a relay plan speaks of: the client's `request N` or the
/// server's `reply N`, counted from 1 in the order they reach the relay
/// (a resent request is a new request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nth {
    pub reply: bool,
    pub n: usize,
}

impl Nth {
    fn parse(text: &str) -> Result<Nth, String> {
        let mut words = text.split_whitespace();
        let (which, n) = (words.next(), words.next().and_then(|n| n.parse::<usize>().ok()));
        let reply = match which {
            Some("request") => false,
            Some("reply") => true,
            _ => return Err(format!("expected `request N` or `reply N`, found `{text}`")),
        };
        match (n, words.next()) {
            (Some(n), None) if n >= 1 => Ok(Nth { reply, n }),
            _ => Err(format!(
                "expected `request N` or `reply N` with N a number from 1 (the first), found `{text}`"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Nth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Nth::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Nth {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Datagram".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

impl std::fmt::Display for Nth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = if self.reply { "reply" } else { "request" };
        write!(f, "{which} {}", self.n)
    }
}

/// What a relay does with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
    Delay(std::time::Duration),
}

/// One line of a relay's plan: `{ drop: request 1 }`, `{ duplicate: reply
/// 2 }`, `{ delay: reply 3, by: 700ms }`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDecision {
    #[serde(default)]
    drop: Option<Nth>,
    #[serde(default)]
    duplicate: Option<Nth>,
    #[serde(default)]
    delay: Option<Nth>,
    #[serde(default)]
    by: Option<TimeSpan>,
}

/// `relay: { as: r, to: server, plan: [...], seed: 7, loss: 20 }`: the
/// harness sits between a client under test (which is given `{port}`) and
/// the program `to` (given `{port2}`): every datagram from the client goes
/// on to the program, every answer back to the client, each with the fate
/// the plan gives it. The plan names datagrams by their number in each
/// direction (`request 1` is the first datagram from the client, a resend
/// included; `reply 1` the first from the program) and says `drop`,
/// `duplicate` or `delay` (`by`). With `seed`, every other datagram is
/// dropped with `loss` percent chance, the same ones for the same seed.
/// Every decision is a line of the transcript.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawRelay")]
#[schemars(with = "RawRelay")]
pub struct Relay {
    pub name: Name,
    pub to: Name,
    pub plan: std::collections::HashMap<Nth, Fate>,
    /// Seed and percentage of random losses.
    pub random: Option<(u64, u8)>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    name: Name,
    #[schemars(with = "String")]
    to: Name,
    #[serde(default)]
    plan: Vec<RawDecision>,
    #[serde(default)]
    seed: Option<u64>,
    /// Percent of datagrams lost at random (with `seed`).
    #[serde(default)]
    loss: Option<u8>,
}

impl TryFrom<RawRelay> for Relay {
    type Error = String;
    fn try_from(raw: RawRelay) -> Result<Self, String> {
        let mut plan = std::collections::HashMap::new();
        for (i, d) in raw.plan.into_iter().enumerate() {
            let line = i + 1;
            let (nth, fate) = match (d.drop, d.duplicate, d.delay, d.by) {
                (Some(w), None, None, None) => (w, Fate::Drop),
                (None, Some(w), None, None) => (w, Fate::Duplicate),
                (None, None, Some(w), Some(by)) => (w, Fate::Delay(by.0)),
                (None, None, Some(_), None) => {
                    return Err(format!("plan line {line}: expected `by: <duration>` with `delay`"))
                }
                _ => {
                    return Err(format!(
                        "plan line {line}: expected one of `drop: <datagram>`, `duplicate: <datagram>`, `delay: <datagram>` with `by` (a datagram is `request N` or `reply N`)"
                    ))
                }
            };
            if plan.insert(nth, fate).is_some() {
                return Err(format!("plan line {line}: {nth} has a fate already"));
            }
        }
        let random = match (raw.seed, raw.loss) {
            (Some(seed), Some(loss)) if loss <= 100 => Some((seed, loss)),
            (Some(_), Some(loss)) => return Err(format!("expected a `loss` in percent, 0 to 100, found {loss}")),
            (None, None) => None,
            _ => return Err("expected `seed` and `loss` together (random losses, the same for the same seed)".into()),
        };
        Ok(Relay {
            name: raw.name,
            to: raw.to,
            plan,
            random,
        })
    }
}

impl Keyword for UdpOpen {
    fn describe(&self) -> String {
        match self.count {
            None => format!("open a UDP socket towards your server (as `{}`)", self.name.value),
            Some(n) => format!("open {n} UDP sockets towards your server (as `{}`)", self.name.value),
        }
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.declare(scope, &self.name, Kind::Endpoint, at);
        for i in 1..=self.count.unwrap_or(0) {
            scope.names.insert(format!("{}#{i}", self.name.value), Kind::Endpoint);
        }
        if self.count.is_some() {
            // The name alone is no endpoint: its members are.
            scope.names.remove(&self.name.value);
        }
    }
}

impl Keyword for UdpBind {
    fn describe(&self) -> String {
        "wait for your client's datagrams on its port".into()
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.declare(scope, &self.name, Kind::Endpoint, at)
    }
}

impl Keyword for SendDatagram {
    fn describe(&self) -> String {
        format!("send the datagram {} from `{}`", self.payload.describe(), self.on.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.endpoint(scope, &self.on, at);
        if let Some(to) = &self.to {
            checker.endpoint(scope, to, at);
        }
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        let pauses = u32::try_from(self.copies.saturating_sub(1)).unwrap_or(u32::MAX);
        wait.total += self.gap.map(|g| g.0 * pauses).unwrap_or_default();
    }
}

impl Keyword for ExpectDatagram {
    fn describe(&self) -> String {
        format!("wait for a datagram on `{}`", self.on.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.endpoint(scope, &self.on, at)
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += self.interval.map(|i| i.at_least.0).unwrap_or_default();
    }
}

impl Keyword for ExpectNoDatagram {
    fn describe(&self) -> String {
        format!(
            "check that no datagram arrives on `{}` for {}",
            self.on.value, self.duration
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.endpoint(scope, &self.on, at)
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += self.duration.0;
    }
}

impl Keyword for Relay {
    fn describe(&self) -> String {
        format!(
            "stand between your client and {}, losing datagrams as planned",
            self.to.value
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.declare(scope, &self.name, Kind::Relay, at);
        checker.program(&self.to, at);
        if let Some(p) = checker.programs.get(&self.to.value) {
            if !p.command.iter().any(|a| a.contains("{port2}")) {
                checker.fail(
                    loc_of(&self.to, at),
                    format!(
                        "expected a program given `{{port2}}` in its command (the relay listens on `{{port}}` and passes datagrams on to `{{port2}}`), found `{}`",
                        self.to.value
                    ),
                );
            }
        }
    }
}
