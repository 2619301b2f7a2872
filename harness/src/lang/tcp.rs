//! The `tcp` family: the harness as a TCP client of the program (`connect`),
//! as its server (`listen`, `accept`), and what it does on one connection.
//! Run by `crate::steps::tcp`.
//!
//! Every step after `connect`/`accept` names its connection with `on`, which
//! inside `each` is left out (the member is the connection).

use super::check::{loc_of, Checker, Kind, Scope};
use super::step::{gaps, on_words, Keyword, ScriptedWait};
use super::values::{Generate, Payload, Size, TimeSpan};
use super::{FromName, Name};
use crate::matcher::Matcher;
use serde::Deserialize;
use serde_saphyr::Location;

/// What `connect` expects of the handshake.
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConnectOutcome {
    #[default]
    Established,
    Refused,
    /// The handshake does not complete within the bound (a full backlog).
    Pending,
}

impl ConnectOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectOutcome::Established => "established",
            ConnectOutcome::Refused => "refused",
            ConnectOutcome::Pending => "pending",
        }
    }
}

/// `connect: a`, or `connect: { as: g, count: 64, expect: pending, rcvbuf:
/// 4KiB }`: opens a connection to `{port}` on 127.0.0.1; with `count`, that
/// many one after the other, as the group `as` (members `g#1`, `g#2`, ...).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawConnect")]
#[schemars(with = "RawConnect")]
pub struct Connect {
    pub name: Name,
    pub count: Option<usize>,
    pub expect: ConnectOutcome,
    pub within: Option<TimeSpan>,
    /// SO_RCVBUF before connecting: a small window makes the program's
    /// writes block early, which is how back-pressure is tested.
    pub rcvbuf: Option<Size>,
    /// With `count`: connect without waiting for the program to accept
    /// (see `steps::tcp::connect`), to fill its listen backlog.
    pub burst: bool,
}
impl FromName for Connect {
    fn from_name(name: Name) -> Self {
        Connect {
            name,
            count: None,
            expect: ConnectOutcome::Established,
            within: None,
            rcvbuf: None,
            burst: false,
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawConnect {
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    name: Name,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    expect: ConnectOutcome,
    #[serde(default)]
    within: Option<TimeSpan>,
    #[serde(default)]
    rcvbuf: Option<Size>,
    #[serde(default)]
    burst: bool,
}

impl TryFrom<RawConnect> for Connect {
    type Error = String;
    fn try_from(raw: RawConnect) -> Result<Self, String> {
        if raw.count == Some(0) {
            return Err("expected a `count` of at least 1".into());
        }
        if raw.burst && raw.count.is_none() {
            return Err(
                "expected a `count` with `burst`: a burst is of several connections, to fill a listen backlog".into(),
            );
        }
        Ok(Connect {
            name: raw.name,
            count: raw.count,
            expect: raw.expect,
            within: raw.within,
            rcvbuf: raw.rcvbuf,
            burst: raw.burst,
        })
    }
}

/// `listen: l`: the harness listens on `{port}` (127.0.0.1, and ::1 where
/// there is IPv6) for a client under test. `port: own` listens on a port of
/// its own, which the kernel chooses and the spec's text names
/// `{port:l}` (a program's arguments, request targets, and the header
/// fields of requests and responses, sent and expected; not raw `send`
/// and `expect` bytes, nor bodies):
/// the origin server behind a proxy under test, which listens on `{port}`
/// itself. `port: 80` listens on that port (a client that uses a default
/// port): only in a network namespace of the scenario's own, where it is
/// free; without one the scenario is an error that says so, never a
/// failure.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    pub name: Name,
    #[serde(default)]
    pub port: Option<ListenPort>,
}

/// Where a `listen` listens, when not on `{port}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ListenPort {
    /// A fixed port (80): only in a network namespace of the scenario's own.
    Number(u16),
    /// `own`: a port the kernel chooses, `{port:NAME}` in the spec's text.
    Own(Own),
}

/// The word `own`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Own {
    Own,
}
impl FromName for Listen {
    fn from_name(name: Name) -> Self {
        Listen { name, port: None }
    }
}

/// `expect_no_connection: { on: origin, for: 500ms }`: no program connects
/// to the grader's listener for that long (a proxy serves a cached object
/// without fetching it again). On the wall clock, as `expect_silence`: load
/// makes a program later, never sooner. `precondition: <clause>` (as on
/// `accept`): a proxy with no cache at all fails that clause where a
/// scenario about eviction first relies on a cached object.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectNoConnection {
    #[schemars(with = "String")]
    pub on: Name,
    #[serde(rename = "for")]
    pub duration: TimeSpan,
    #[serde(default)]
    pub precondition: Option<String>,
}

/// `accept: { on: l, as: c }`: the program connects within the bound.
/// `precondition: <clause>` (as on `expect_request`): a program that never
/// connects fails that clause (its first connection, say), not the
/// scenario's own.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    #[schemars(with = "String")]
    pub on: Name,
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    pub name: Name,
    #[serde(default)]
    pub within: Option<TimeSpan>,
    #[serde(default)]
    pub precondition: Option<String>,
}

/// How a send is cut into writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    Whole,
    /// Writes of this many bytes (at least 1).
    Chunk(usize),
    /// Writes of these sizes, the rest in one more.
    Sizes(Vec<usize>),
}

impl Split {
    /// The plan of a step's `chunk` or `sizes` keys (neither: one write).
    pub fn from_keys(chunk: Option<Size>, sizes: Option<Vec<Size>>) -> Result<Split, String> {
        match (chunk, sizes) {
            (Some(_), Some(_)) => Err("expected either `chunk` or `sizes`, not both".into()),
            (Some(Size(0)), None) => Err("expected a `chunk` of at least 1 byte".into()),
            (Some(Size(c)), None) => Ok(Split::Chunk(c)),
            (None, Some(sizes)) => Ok(Split::Sizes(sizes.into_iter().map(|s| s.0).collect())),
            (None, None) => Ok(Split::Whole),
        }
    }

    /// The size of each write for `len` bytes.
    pub fn writes(&self, len: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut left = len;
        match self {
            Split::Whole => {}
            Split::Sizes(sizes) => {
                for &s in sizes {
                    let s = s.min(left);
                    if s > 0 {
                        out.push(s);
                        left -= s;
                    }
                }
            }
            Split::Chunk(c) => {
                while left > 0 {
                    let s = (*c).min(left);
                    out.push(s);
                    left -= s;
                }
            }
        }
        if left > 0 {
            out.push(left);
        }
        out
    }
}

/// `send: { on: a, text: "hi\n", chunk: 1, gap: 5ms }`: bytes (`text`,
/// `hex` or `generate`, then `then`) written as `chunk` or `sizes` say, with
/// `gap` between writes so each is its own segment. Goes on in the background
/// unless `wait: true`; `shutdown: true` sends the FIN with the last bytes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawSend")]
#[schemars(with = "RawSend")]
pub struct Send {
    pub on: Option<Name>,
    pub payload: Payload,
    pub split: Split,
    /// Pause between writes, so each reaches the wire as its own segment.
    pub gap: Option<TimeSpan>,
    /// Wait until every byte is handed to the kernel before the next step.
    /// Off by default: a send goes on in the background while later steps
    /// read, so a megabyte can't deadlock against a correct echo server.
    pub wait: bool,
    /// Shut down the sending side right after, the FIN in the same segment
    /// as the last bytes (TCP_CORK): the program reads its last data and
    /// end-of-file in one go, which is when a half-close bug shows.
    pub shutdown: bool,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSend {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    generate: Option<Generate>,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    chunk: Option<Size>,
    #[serde(default)]
    sizes: Option<Vec<Size>>,
    #[serde(default)]
    gap: Option<TimeSpan>,
    #[serde(default)]
    wait: Option<bool>,
    #[serde(default)]
    shutdown: Option<bool>,
}

impl TryFrom<RawSend> for Send {
    type Error = String;
    fn try_from(raw: RawSend) -> Result<Self, String> {
        let payload = Payload::required(raw.text, raw.hex, raw.generate, raw.then, "what to send")?;
        let split = Split::from_keys(raw.chunk, raw.sizes)?;
        Ok(Send {
            on: raw.on,
            payload,
            split,
            gap: raw.gap,
            wait: raw.wait == Some(true),
            shutdown: raw.shutdown == Some(true),
        })
    }
}

/// What `expect` waits for on a connection.
#[derive(Debug)]
pub enum Expected {
    Bytes(Matcher),
    /// Everything sent on this connection and not yet echoed comes back.
    Echo,
    /// What the expectations of that other connection have taken so far:
    /// "B and C saw the same lines in the same order".
    SameAs(Name),
}

/// `expect: { on: a, text: "hi\n", within: 1s }`: the next bytes on the
/// connection meet exactly one of: `text`/`hex`/`generate` (exactly these),
/// `prefix`, `contains`, `regex` (searches, and takes what precedes the
/// match too), `echo: true`, `size`. Bytes are gathered until they do, can
/// no longer, the peer closes, or `within` (2 s) passes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawExpect")]
#[schemars(with = "RawExpect")]
pub struct Expect {
    pub on: Option<Name>,
    pub expected: Expected,
    pub within: Option<TimeSpan>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
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
    echo: Option<bool>,
    #[serde(default)]
    size: Option<Size>,
    /// Lines (each must end in `\n`), each exactly once, in any order.
    #[serde(default)]
    lines_any_order: Option<Vec<String>>,
    /// Another connection: the bytes its expectations took so far.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    same_as: Option<Name>,
    #[serde(default)]
    within: Option<TimeSpan>,
}

/// The `ByteKeys` of a raw expectation (`RawExpect`, `RawExpectDatagram`):
/// the same fields, moved out of either.
macro_rules! byte_keys_of {
    ($raw:ident) => {
        $crate::lang::tcp::ByteKeys {
            text: $raw.text,
            hex: $raw.hex,
            generate: $raw.generate,
            then: $raw.then,
            prefix: $raw.prefix,
            contains: $raw.contains,
            regex: $raw.regex,
            size: $raw.size,
        }
    };
}
pub(crate) use byte_keys_of;

/// The keys that name expected bytes wherever bytes arrive, on a stream
/// (`expect`) or in a datagram (`expect_datagram`): each key present is
/// one matcher.
pub(crate) struct ByteKeys {
    pub text: Option<String>,
    pub hex: Option<String>,
    pub generate: Option<Generate>,
    pub then: Option<String>,
    pub prefix: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    pub size: Option<Size>,
}

impl ByteKeys {
    pub fn matchers(self) -> Result<Vec<Matcher>, String> {
        let exact =
            Payload::from_keys(self.text, self.hex, self.generate, self.then).map_err(|e| format!("expected {e}"))?;
        let regex = self.regex.map(|r| super::program::compile(&r)).transpose()?;
        Ok([
            exact.map(|p| Matcher::Exact(p.bytes().into())),
            self.prefix.map(|p| Matcher::Prefix(p.into_bytes().into())),
            self.contains.map(|c| Matcher::Contains(c.into_bytes().into())),
            regex.map(Matcher::Regex),
            self.size.map(|n| Matcher::Size(n.0)),
        ]
        .into_iter()
        .flatten()
        .collect())
    }
}

impl TryFrom<RawExpect> for Expect {
    type Error = String;
    fn try_from(raw: RawExpect) -> Result<Self, String> {
        let keys = byte_keys_of!(raw);
        let mut found: Vec<Expected> = keys
            .matchers()?
            .into_iter()
            .chain(lines_any_order(raw.lines_any_order)?)
            .map(Expected::Bytes)
            .collect();
        if raw.echo == Some(true) {
            found.push(Expected::Echo);
        }
        if let Some(other) = raw.same_as {
            found.push(Expected::SameAs(other));
        }
        if found.len() != 1 {
            return Err(
                "expected exactly one of `text`/`hex`/`generate`, `prefix`, `contains`, `regex`, `echo: true`, `size`, `lines_any_order`, `same_as`"
                    .into(),
            );
        }
        // An expectation that nothing can fail checks nothing: "no bytes"
        // is a question of time, which `expect_silence` asks.
        if let Expected::Bytes(m) = &found[0] {
            if m.matches_nothing_at_all() {
                return Err(
                    "expected at least one byte to wait for (this expectation passes whatever arrives); \
                            to check that nothing arrives, use `expect_silence: { on, for }`"
                        .into(),
                );
            }
        }
        Ok(Expect {
            on: raw.on,
            expected: found.remove(0),
            within: raw.within,
        })
    }
}

/// `echo: { on: c, text: "hello\n" }`: the harness plays an echo server on
/// this connection. What arrives is checked against the payload and sent
/// straight back as it arrives, until all of it was.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawEchoBack")]
#[schemars(with = "RawEchoBack")]
pub struct EchoBack {
    pub on: Option<Name>,
    pub payload: Payload,
    pub within: Option<TimeSpan>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawEchoBack {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    generate: Option<Generate>,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    within: Option<TimeSpan>,
}

impl TryFrom<RawEchoBack> for EchoBack {
    type Error = String;
    fn try_from(raw: RawEchoBack) -> Result<Self, String> {
        Ok(EchoBack {
            on: raw.on,
            payload: Payload::required(raw.text, raw.hex, raw.generate, raw.then, "what the program sends")?,
            within: raw.within,
        })
    }
}

/// The steps that take only a connection: `expect_eof`, `expect_reset`
/// (the peer closed, or reset, with no more bytes before), `shutdown` (the
/// harness's FIN, after what is queued), `close` (waits up to `within` for
/// the queue to drain), `abort` (RST: SO_LINGER 0, the queue dropped).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnRef {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<Name>,
    #[serde(default)]
    pub within: Option<TimeSpan>,
}
impl FromName for ConnRef {
    fn from_name(on: Name) -> Self {
        ConnRef {
            on: Some(on),
            within: None,
        }
    }
}

/// `expect_closed: a`: the program closed the connection, with no more
/// bytes before, by a FIN or a reset (a program that closes with the
/// grader's bytes unread makes its kernel reset, and that is a close too).
/// `whatever_arrives: true` takes any bytes before the end and records
/// them: a request the program may answer with an error or not at all
/// ("answer 400, or close"), where what the scenario needs is the end.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectClosed {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<Name>,
    #[serde(default)]
    pub within: Option<TimeSpan>,
    #[serde(default)]
    pub whatever_arrives: bool,
}
impl FromName for ExpectClosed {
    fn from_name(on: Name) -> Self {
        ExpectClosed {
            on: Some(on),
            within: None,
            whatever_arrives: false,
        }
    }
}

/// `read_slowly: { on: a, chunk: 1KiB, gap: 10ms }`: from now on, later
/// expectations read at most `chunk` bytes at a time with `gap` between reads.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawReadSlowly")]
#[schemars(with = "RawReadSlowly")]
pub struct ReadSlowly {
    pub on: Option<Name>,
    pub chunk: usize,
    pub gap: TimeSpan,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawReadSlowly {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
    chunk: Size,
    gap: TimeSpan,
}

impl TryFrom<RawReadSlowly> for ReadSlowly {
    type Error = String;
    fn try_from(raw: RawReadSlowly) -> Result<Self, String> {
        if raw.chunk.0 == 0 {
            return Err("expected a `chunk` of at least 1 byte".into());
        }
        Ok(ReadSlowly {
            on: raw.on,
            chunk: raw.chunk.0,
            gap: raw.gap,
        })
    }
}

/// `lines_any_order: ["one\n", "two\n"]`: every line must end in `\n`
/// and hold only that one.
fn lines_any_order(lines: Option<Vec<String>>) -> Result<Option<Matcher>, String> {
    let Some(lines) = lines else {
        return Ok(None);
    };
    for line in &lines {
        if !line.ends_with('\n') || line[..line.len() - 1].contains('\n') {
            return Err(format!(
                "expected each of `lines_any_order` to be one line ending in \"\\n\", found {line:?}"
            ));
        }
    }
    Ok(Some(Matcher::LinesAnyOrder(
        lines.into_iter().map(String::into_bytes).collect(),
    )))
}

/// `expect_silence: { on: a, for: 300ms }`: no byte (and no end of the
/// stream) arrives on the connection for that long. This step watches
/// over time, as `expect_idle` does: "nothing happens" has no event to wait
/// for. For "the sender does not get its own line back", after the others
/// received it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawExpectSilence")]
#[schemars(with = "RawExpectSilence")]
pub struct ExpectSilence {
    pub on: Option<Name>,
    pub duration: TimeSpan,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpectSilence {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
    #[serde(rename = "for")]
    duration: TimeSpan,
}

impl TryFrom<RawExpectSilence> for ExpectSilence {
    type Error = String;
    fn try_from(raw: RawExpectSilence) -> Result<Self, String> {
        if raw.duration.0.is_zero() {
            return Err("expected a `for` longer than 0: silence for no time checks nothing".into());
        }
        Ok(ExpectSilence {
            on: raw.on,
            duration: raw.duration,
        })
    }
}

/// `fill: { on: stuck, program: server }`: writes text lines on the
/// connection until the program stops taking them, and then until the
/// program is at rest. Stops taking them: the harness's send buffer is full
/// and the kernel shows the program's receive window closed (TCP_INFO's
/// `tcpi_snd_wnd` on the harness's side), so everything between the two is
/// full, whatever sizes the kernels chose for their buffers. At rest: every
/// thread of the program's processes waits in the kernel (in send, poll,
/// accept), for at most 500 ms, since a program that spins never rests.
/// A window can close for a moment while a busy machine has not run the
/// program yet; a program at rest behind a closed window is holding bytes
/// it cannot send back, which is what a test of back-pressure needs before
/// its check.
///
/// A kernel that does not report the window (gVisor may not) is filled
/// with `at_most` bytes (default 64 MiB, more than the buffers of both
/// sides hold). A program that reads on without ever closing its window
/// fails the step once `within` (default 10 s) passes. Not inside `each`;
/// the bytes don't count for `expect: { echo: true }`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawFill")]
#[schemars(with = "RawFill")]
pub struct Fill {
    pub on: Name,
    pub program: Name,
    pub at_most: usize,
    pub within: Option<TimeSpan>,
}

/// More than the buffers of both sides hold: on Linux up to 4 MiB of the
/// sender's and 32 MiB of the receiver's with today's defaults.
pub const DEFAULT_FILL: usize = 64 << 20;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFill {
    #[schemars(with = "String")]
    on: Name,
    #[schemars(with = "String")]
    program: Name,
    #[serde(default)]
    at_most: Option<Size>,
    #[serde(default)]
    within: Option<TimeSpan>,
}

impl TryFrom<RawFill> for Fill {
    type Error = String;
    fn try_from(raw: RawFill) -> Result<Self, String> {
        let at_most = raw.at_most.map(|s| s.0).unwrap_or(DEFAULT_FILL);
        if at_most == 0 {
            return Err("expected `at_most` of at least 1 byte".into());
        }
        Ok(Fill {
            on: raw.on,
            program: raw.program,
            at_most,
            within: raw.within,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Split;

    #[test]
    fn a_send_is_cut_as_the_plan_says() {
        assert_eq!(Split::Whole.writes(5), vec![5]);
        assert_eq!(Split::Chunk(2).writes(5), vec![2, 2, 1]);
        assert_eq!(Split::Sizes(vec![1, 1]).writes(5), vec![1, 1, 3]);
        assert_eq!(Split::Sizes(vec![9]).writes(5), vec![5]);
        assert_eq!(Split::Whole.writes(0), Vec::<usize>::new());
    }
}

super::step::same_options! {
    /// `expect_eof: a`: the program half-closed or closed, with no more
    /// bytes before.
    ExpectEof(ConnRef)
}
super::step::same_options! {
    /// `expect_reset: a`: the program reset the connection (RST).
    ExpectReset(ConnRef)
}
super::step::same_options! {
    /// `shutdown: a`: the harness's FIN, after what is queued.
    Shutdown(ConnRef)
}
super::step::same_options! {
    /// `close: a`: waits up to `within` for the queue to drain, then closes.
    Close(ConnRef)
}
super::step::same_options! {
    /// `abort: a`: RST (SO_LINGER 0), the queue dropped.
    Abort(ConnRef)
}

impl Keyword for Connect {
    fn describe(&self) -> String {
        let how = match self.expect {
            ConnectOutcome::Established => "",
            ConnectOutcome::Refused => ", expecting a refusal",
            ConnectOutcome::Pending => ", expecting no answer",
        };
        match self.count {
            Some(n) => format!(
                "open {n} connections one after the other ({0}#1 to {0}#{n}){how}",
                self.name.value
            ),
            None => format!("connect to the server as `{}`{how}", self.name.value),
        }
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        let kind = match self.count {
            Some(n) => Kind::Group(n),
            None => Kind::Connection,
        };
        checker.declare(scope, &self.name, kind, at);
    }
    fn connections(&self) -> usize {
        self.count.unwrap_or(1)
    }
}

impl Keyword for Listen {
    fn describe(&self) -> String {
        "listen for your client's connection".into()
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.declare(scope, &self.name, Kind::Listener, at);
        if let Some(ListenPort::Own(_)) = self.port {
            scope.own_ports.insert(self.name.value.clone());
        }
    }
    /// Two listeners (IPv4 and IPv6), and what they accept.
    fn connections(&self) -> usize {
        2
    }
}

impl Keyword for Accept {
    fn describe(&self) -> String {
        format!("accept your client's connection (as `{}`)", self.name.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.listener(scope, &self.on, at);
        checker.declare(scope, &self.name, Kind::Connection, at);
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
    fn connections(&self) -> usize {
        1
    }
}

impl Keyword for ExpectNoConnection {
    fn describe(&self) -> String {
        format!(
            "check that nothing connects to `{}` for {}",
            self.on.value, self.duration
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.listener(scope, &self.on, at)
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += self.duration.0;
    }
    fn connections(&self) -> usize {
        1
    }
}

impl Keyword for Send {
    fn describe(&self) -> String {
        let end = if self.shutdown { ", then half-close" } else { "" };
        format!("send {}{}{end}", self.payload.describe(), on_words(&self.on))
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.not_filled(&self.payload, "`send` sends its bytes as written", at)
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        let size = self.payload.size();
        wait.sent += size;
        wait.total += gaps(self.gap, &self.split, size);
    }
}

impl Keyword for Expect {
    fn describe(&self) -> String {
        match &self.expected {
            Expected::Bytes(m) => format!("wait for {}{}", m.describe(), on_words(&self.on)),
            Expected::Echo => format!("wait for the echo of everything sent{}", on_words(&self.on)),
            Expected::SameAs(b) => format!("wait for what `{}` received{}", b.value, on_words(&self.on)),
        }
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        let Expected::SameAs(other) = &self.expected else {
            return;
        };
        if scope.each.is_some() {
            checker.fail(
                loc_of(other, at),
                "expected `same_as` outside `each`, where its connection is".into(),
            );
        } else if scope.kind(&other.value) != Some(Kind::Connection) {
            checker.fail(
                loc_of(other, at),
                format!(
                    "expected a connection opened by an earlier `connect` or `accept`, found `{}`",
                    other.value
                ),
            );
        }
    }
}

impl Keyword for EchoBack {
    fn describe(&self) -> String {
        format!(
            "echo {} back to your client{}",
            self.payload.describe(),
            on_words(&self.on)
        )
    }
}

impl Keyword for ExpectEof {
    fn describe(&self) -> String {
        format!("wait for the end of the stream (EOF){}", on_words(&self.on))
    }
}

impl Keyword for ExpectClosed {
    fn describe(&self) -> String {
        format!("wait for the connection to be closed{}", on_words(&self.on))
    }
}

impl Keyword for ExpectReset {
    fn describe(&self) -> String {
        format!("wait for a reset (RST){}", on_words(&self.on))
    }
}

impl Keyword for Shutdown {
    fn describe(&self) -> String {
        format!("half-close (shutdown the sending side){}", on_words(&self.on))
    }
}

impl Keyword for Close {
    fn describe(&self) -> String {
        format!("close the connection{}", on_words(&self.on))
    }
}

impl Keyword for Abort {
    fn describe(&self) -> String {
        format!("reset the connection{}", on_words(&self.on))
    }
}

impl Keyword for ReadSlowly {
    fn describe(&self) -> String {
        format!("read slowly from now on{}", on_words(&self.on))
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.slow_reader = Some((self.chunk.max(1), self.gap.0));
    }
}

impl Keyword for ExpectSilence {
    fn describe(&self) -> String {
        format!("check that nothing arrives for {}{}", self.duration, on_words(&self.on))
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += self.duration.0;
    }
}

impl Keyword for Fill {
    fn describe(&self) -> String {
        format!("send on `{}` until {} stops reading", self.on.value, self.program.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.program_and_connection(&self.program, &self.on, false, scope, at)
    }
}
