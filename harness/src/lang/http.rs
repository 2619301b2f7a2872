//! The `http` family: HTTP/1.1 messages on a TCP connection, written as
//! parts and checked structurally by the harness's own parser
//! (`crate::http`). Run by `crate::steps::http`.
//!
//! The harness as a client of a server under test: `send_request`,
//! `expect_response`. As the server for a client under test:
//! `expect_request`, `send_response`. Malformed messages are written with
//! the `tcp` family's `send`, as raw bytes; what happens to the connection
//! afterwards with `expect_eof`, `expect_silence` and the next request.
//!
//! A spec can declare the document tree its server scenarios serve
//! (`docroot`), which every scenario gets a private copy of, as `{docroot}`.

use super::check::{raw_files, Checker, Scope};
use super::step::{gaps, on_words, Keyword, ScriptedWait};
use super::values::{Payload, Size, TimeSpan};
use super::Name;
use crate::lang::tcp::Split;
use serde::Deserialize;
use serde_saphyr::Location;
use std::collections::BTreeMap;

/// The files a server scenario serves: `files` under `{docroot}`, and
/// `outside`, beside it (what a path traversal would reach).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Docroot {
    /// Relative paths (directories are made as needed) and their contents.
    #[serde(default)]
    pub files: BTreeMap<String, Payload>,
    /// Files in the directory that holds `{docroot}`, not under it.
    #[serde(default)]
    pub outside: BTreeMap<String, Payload>,
}

impl Docroot {
    pub(super) fn check(&self) -> Result<(), String> {
        for path in self.files.keys().chain(self.outside.keys()) {
            let bad = path.is_empty()
                || path.starts_with('/')
                || path.split('/').any(|p| p.is_empty() || p == "." || p == "..");
            if bad {
                return Err(format!(
                    "expected docroot paths relative and plain (`docs/a.txt`, no `..`, no leading `/`), found `{path}`"
                ));
            }
        }
        Ok(())
    }
}

/// One request as parts: `{ method: GET, target: /, version: HTTP/1.1,
/// headers: { Connection: close }, body: ... }`. `Host: {host}:{port}` is
/// added unless `headers` names a Host (or `host: false`).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default = "get")]
    pub method: String,
    pub target: String,
    #[serde(default = "http11")]
    pub version: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub host: bool,
    #[serde(default)]
    pub body: Option<Payload>,
}

fn get() -> String {
    "GET".into()
}
fn http11() -> String {
    "HTTP/1.1".into()
}
fn yes() -> bool {
    true
}

impl Request {
    /// The request's bytes, with the placeholders filled in.
    pub fn bytes(&self, placeholders: &super::Placeholders) -> Vec<u8> {
        let fill = |s: &str| placeholders.fill(s);
        let mut out = format!("{} {} {}\r\n", self.method, fill(&self.target), self.version).into_bytes();
        let has_host = self.headers.keys().any(|k| k.eq_ignore_ascii_case("host"));
        if self.host && !has_host {
            out.extend_from_slice(format!("Host: {}:{}\r\n", super::HOST, placeholders.port).as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {}\r\n", fill(value)).as_bytes());
        }
        let body = self.body.as_ref().map(|b| b.bytes()).unwrap_or_default();
        if self.body.is_some() && !self.headers.keys().any(|k| k.eq_ignore_ascii_case("content-length")) {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }

    /// `GET /docs/ HTTP/1.1`, for transcripts.
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.method, self.target, self.version)
    }
}

/// `send_request: { on: a, request: { target: / } }`, or `requests: [...]`,
/// several in one write (pipelined); `chunk`, `sizes` and `gap` cut the
/// bytes into writes (a head one byte at a time).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawSendRequest")]
#[schemars(with = "RawSendRequest")]
pub struct SendRequest {
    pub on: Option<Name>,
    pub requests: Vec<Request>,
    pub split: Split,
    pub gap: Option<TimeSpan>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSendRequest {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
    #[serde(default)]
    request: Option<Request>,
    #[serde(default)]
    requests: Option<Vec<Request>>,
    #[serde(default)]
    chunk: Option<Size>,
    #[serde(default)]
    sizes: Option<Vec<Size>>,
    #[serde(default)]
    gap: Option<TimeSpan>,
}

impl TryFrom<RawSendRequest> for SendRequest {
    type Error = String;
    fn try_from(raw: RawSendRequest) -> Result<Self, String> {
        let requests = match (raw.request, raw.requests) {
            (Some(r), None) => vec![r],
            (None, Some(rs)) if !rs.is_empty() => rs,
            _ => return Err("expected either `request` (one) or `requests` (a list of at least one)".into()),
        };
        for r in &requests {
            check_token(&r.method, "method")?;
            for name in r.headers.keys() {
                check_token(name, "header name")?;
            }
        }
        Ok(SendRequest {
            on: raw.on,
            requests,
            split: Split::from_keys(raw.chunk, raw.sizes)?,
            gap: raw.gap,
        })
    }
}

/// A header name (or a method) is a token: letters, digits and
/// `!#$%&'*+-.^_`|~`, and no colon or space ("a header without a colon" is
/// raw bytes, for `send`).
fn check_token(text: &str, what: &str) -> Result<(), String> {
    let ok = !text.is_empty() && text.bytes().all(crate::http::is_tchar);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a {what} that is a token (letters, digits, `-`...; no space or colon), found `{text}`; write a malformed message with `send`"
        ))
    }
}

/// What a body must be: at most one of `file`, `text`, `hex` or
/// `generate` (exactly these bytes; `generate` makes the same bytes as a
/// `send_response` body with the same recipe, so a large object needs no
/// docroot file), and optionally `contains`, `size`, `empty` or `nonempty`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawBodyCheck")]
#[schemars(with = "RawBodyCheck")]
pub struct BodyCheck {
    pub file: Option<String>,
    pub text: Option<String>,
    /// Parsed at load: invalid hex is a located error.
    pub hex: Option<Vec<u8>>,
    /// A generated body, by its recipe (its bytes are made when checked).
    pub generate: Option<Payload>,
    pub contains: Option<String>,
    pub size: Option<Size>,
    pub empty: Option<bool>,
    pub nonempty: Option<bool>,
}

impl TryFrom<RawBodyCheck> for BodyCheck {
    type Error = String;
    fn try_from(raw: RawBodyCheck) -> Result<Self, String> {
        let exact = [
            raw.file.is_some(),
            raw.text.is_some(),
            raw.hex.is_some(),
            raw.generate.is_some(),
        ];
        if exact.iter().filter(|e| **e).count() > 1 {
            return Err("expected at most one of `file`, `text`, `hex` and `generate` (the body's exact bytes)".into());
        }
        let generate = raw
            .generate
            .map(|g| Payload::from_keys(None, None, Some(g), None))
            .transpose()
            .map_err(|e| format!("expected {e}"))?
            .flatten();
        if raw.empty == Some(false) || raw.nonempty == Some(false) {
            return Err("expected `empty: true` or `nonempty: true`; `false` asks for nothing".into());
        }
        let hex = raw
            .hex
            .map(|h| super::values::parse_hex(&h))
            .transpose()
            .map_err(|e| format!("expected {e}"))?;
        Ok(BodyCheck {
            file: raw.file,
            text: raw.text,
            hex,
            generate,
            contains: raw.contains,
            size: raw.size,
            empty: raw.empty,
            nonempty: raw.nonempty,
        })
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBodyCheck {
    /// Exactly the bytes of this file of the spec's `docroot`.
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    hex: Option<String>,
    /// `{ size: 200KiB, seed: 7 }`: the bytes `generate` makes in a sent body.
    #[serde(default)]
    generate: Option<super::values::Generate>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default)]
    size: Option<Size>,
    #[serde(default)]
    empty: Option<bool>,
    #[serde(default)]
    nonempty: Option<bool>,
}

/// How the response's body must be delimited.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FramingCheck {
    /// `Content-Length`, and no Transfer-Encoding.
    Length,
    Chunked,
    /// Neither: the body ends when the connection closes.
    Close,
}

/// `expect_response: { on: a, status: 200, headers: { Content-Type:
/// text/html }, body: { file: index.html } }`: the next response on the
/// connection, read by the harness's own strict HTTP/1.1 parser, whole
/// (its body delimited as its head says). `headers` must be present with
/// these values (names and `close`-like values without case); `present`
/// and `absent` name fields; `framing` requires one way of delimiting the
/// body; `to_head: true` reads it as the answer to a HEAD request (no body
/// whatever the head says, and `body` then must be left out).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectResponse {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<Name>,
    /// One status, or several accepted ones (`[403, 404]`).
    #[serde(default)]
    pub status: Option<Statuses>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub present: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub body: Option<BodyCheck>,
    #[serde(default)]
    pub framing: Option<FramingCheck>,
    #[serde(default)]
    pub to_head: bool,
    #[serde(default)]
    pub within: Option<TimeSpan>,
    /// A clause the scenario's own check relies on (see `expect_datagram`).
    #[serde(default)]
    pub precondition: Option<String>,
}

/// One status code or a list of them.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Statuses {
    One(u16),
    Any(Vec<u16>),
}

impl Statuses {
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            Statuses::One(c) => *c == code,
            Statuses::Any(cs) => cs.contains(&code),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Statuses::One(c) => c.to_string(),
            Statuses::Any(cs) => cs.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" or "),
        }
    }
}

/// `expect_request: { on: c, method: GET, target: /index.html, headers: {
/// Host: "{host}:{port}", Connection: close } }`: the next request on the
/// connection, parsed strictly; each part given must be as written
/// (placeholders filled in). A field given in `headers` must be sent once,
/// with that value (Connection and Transfer-Encoding as lists of tokens,
/// without case: `close` is not `keep-alive, close`); each of `present` is
/// there, each of `absent` is not.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRequest {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<Name>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub present: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub within: Option<TimeSpan>,
    #[serde(default)]
    pub precondition: Option<String>,
}

/// How `send_response` delimits its body.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `Content-Length` of the body (default).
    #[default]
    Length,
    /// `Transfer-Encoding: chunked`, in chunks of `chunks` sizes (the rest
    /// in one more), each size line with `chunk_extension` if given, then
    /// the `trailers`.
    Chunked,
    /// Neither: the harness closes the connection after the body.
    Close,
}

/// `send_response: { on: c, status: 200, body: { text: "hello" } }`: a
/// response as parts. `framing` says how the body is delimited (`length`,
/// `chunked` with `chunks: [3, 5]`, `chunk_extension` and `trailers`, or
/// `close`); `truncate: N` sends only the first N bytes of the body and
/// closes. After a body, the harness closes the connection, as a server
/// does for a client that asked `Connection: close`; `keep_open: true`
/// keeps it open (a client must then know the body's end from its length
/// or its chunks). `chunk`/`sizes`/`gap` cut the bytes into writes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawSendResponse")]
#[schemars(with = "RawSendResponse")]
pub struct SendResponse {
    pub on: Option<Name>,
    pub status: u16,
    pub reason: String,
    pub headers: BTreeMap<String, String>,
    pub body: Payload,
    pub framing: Framing,
    pub chunks: Vec<usize>,
    pub chunk_extension: Option<String>,
    pub trailers: BTreeMap<String, String>,
    pub truncate: Option<usize>,
    pub keep_open: bool,
    pub split: Split,
    pub gap: Option<TimeSpan>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSendResponse {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
    status: u16,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Payload>,
    #[serde(default)]
    framing: Framing,
    #[serde(default)]
    chunks: Option<Vec<Size>>,
    #[serde(default)]
    chunk_extension: Option<String>,
    #[serde(default)]
    trailers: BTreeMap<String, String>,
    #[serde(default)]
    truncate: Option<Size>,
    #[serde(default)]
    keep_open: bool,
    #[serde(default)]
    chunk: Option<Size>,
    #[serde(default)]
    sizes: Option<Vec<Size>>,
    #[serde(default)]
    gap: Option<TimeSpan>,
}

impl TryFrom<RawSendResponse> for SendResponse {
    type Error = String;
    fn try_from(raw: RawSendResponse) -> Result<Self, String> {
        if !(100..=999).contains(&raw.status) {
            return Err(format!("expected a status of three digits, found {}", raw.status));
        }
        for name in raw.headers.keys().chain(raw.trailers.keys()) {
            check_token(name, "header name")?;
        }
        let body = raw.body.unwrap_or_else(|| Payload::text(""));
        let size = body.bytes().len();
        let chunks: Vec<usize> = raw.chunks.unwrap_or_default().into_iter().map(|s| s.0).collect();
        if raw.framing != Framing::Chunked
            && (!chunks.is_empty() || raw.chunk_extension.is_some() || !raw.trailers.is_empty())
        {
            return Err("expected `chunks`, `chunk_extension` and `trailers` only with `framing: chunked`".into());
        }
        if chunks.contains(&0) {
            return Err("expected chunk sizes of at least 1 (a chunk of 0 ends the body)".into());
        }
        let total: usize = chunks.iter().sum();
        if total > size {
            return Err(format!(
                "expected `chunks` that add up to at most the body's {size} bytes, found {total}"
            ));
        }
        if raw.truncate.is_some_and(|t| t.0 >= size) {
            return Err(format!("expected `truncate` below the body's {size} bytes"));
        }
        if raw.keep_open && (raw.framing == Framing::Close || raw.truncate.is_some()) {
            return Err("expected no `keep_open` with `framing: close` or `truncate`: both end with the close".into());
        }
        Ok(SendResponse {
            on: raw.on,
            status: raw.status,
            reason: raw.reason.unwrap_or_else(|| reason(raw.status).into()),
            headers: raw.headers,
            body,
            framing: raw.framing,
            chunks,
            chunk_extension: raw.chunk_extension,
            trailers: raw.trailers,
            truncate: raw.truncate.map(|t| t.0),
            keep_open: raw.keep_open,
            split: Split::from_keys(raw.chunk, raw.sizes)?,
            gap: raw.gap,
        })
    }
}

impl SendResponse {
    /// The response's bytes: head (placeholders in its header values
    /// filled in), body as framed (cut short if `truncate`).
    pub fn bytes(&self, placeholders: &super::Placeholders) -> Vec<u8> {
        let body = self.body.bytes();
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {}\r\n", placeholders.fill(value)));
        }
        let given = |n: &str| self.headers.keys().any(|k| k.eq_ignore_ascii_case(n));
        let mut framed = Vec::new();
        // Where in `framed` the body's byte number `truncate` is: the cut.
        let mut cut = self.truncate;
        match self.framing {
            Framing::Length => {
                if !given("content-length") {
                    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                framed.extend_from_slice(&body);
            }
            Framing::Close => framed.extend_from_slice(&body),
            Framing::Chunked => {
                if !given("transfer-encoding") {
                    head.push_str("Transfer-Encoding: chunked\r\n");
                }
                let ext = self
                    .chunk_extension
                    .as_ref()
                    .map(|e| format!(";{e}"))
                    .unwrap_or_default();
                let mut at = 0;
                let mut sizes = self.chunks.clone();
                if body.len() > sizes.iter().sum::<usize>() {
                    sizes.push(body.len() - sizes.iter().sum::<usize>());
                }
                for size in sizes {
                    framed.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
                    if let Some(keep) = self.truncate.filter(|k| (at..at + size).contains(k)) {
                        cut = Some(framed.len() + keep - at);
                    }
                    framed.extend_from_slice(&body[at..at + size]);
                    framed.extend_from_slice(b"\r\n");
                    at += size;
                }
                framed.extend_from_slice(b"0\r\n");
                for (name, value) in &self.trailers {
                    framed.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                framed.extend_from_slice(b"\r\n");
            }
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        let body_start = out.len();
        out.extend_from_slice(&framed);
        if let Some(cut) = cut {
            out.truncate(body_start + cut.min(framed.len()));
        }
        out
    }

    /// Whether the harness closes the connection once it is sent.
    pub fn closes(&self) -> bool {
        !self.keep_open
    }
}

/// The usual reason phrase of a status.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

impl Keyword for SendRequest {
    fn describe(&self) -> String {
        format!(
            "send the request {}{}",
            self.requests
                .iter()
                .map(|r| r.describe())
                .collect::<Vec<_>>()
                .join(", "),
            on_words(&self.on)
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        let texts = self
            .requests
            .iter()
            .flat_map(|r| std::iter::once(&r.target).chain(r.headers.values()));
        checker.known_placeholders(scope, texts, at);
        for body in self.requests.iter().filter_map(|r| r.body.as_ref()) {
            checker.not_filled(body, "a body is sent as written", at);
        }
    }
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        // The bytes' length, give or take a port's digits.
        let size: usize = self
            .requests
            .iter()
            .map(|r| r.bytes(&super::Placeholders::default()).len())
            .sum();
        wait.total += gaps(self.gap, &self.split, size);
    }
}

impl Keyword for ExpectResponse {
    fn describe(&self) -> String {
        match &self.status {
            Some(s) => format!("wait for a response with status {}{}", s.describe(), on_words(&self.on)),
            None => format!("wait for a response{}", on_words(&self.on)),
        }
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.known_placeholders(scope, self.headers.values(), at);
        if let Some(file) = self.body.as_ref().and_then(|b| b.file.as_ref()) {
            if !raw_files(checker.docroot).contains(&file.as_str()) {
                checker.fail(
                    at,
                    format!("expected a file of the spec's `docroot` (`files`), found `{file}`"),
                );
            }
        }
        if self.to_head && self.body.is_some() {
            checker.fail(
                at,
                "expected no `body` with `to_head: true`: a response to HEAD has none".into(),
            );
        }
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
}

impl Keyword for ExpectRequest {
    fn describe(&self) -> String {
        format!("wait for your client's request{}", on_words(&self.on))
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        let texts = self.target.iter().chain(self.headers.values());
        checker.known_placeholders(scope, texts, at);
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
}

impl Keyword for SendResponse {
    fn describe(&self) -> String {
        format!(
            "answer with status {} {}{}",
            self.status,
            self.reason,
            on_words(&self.on)
        )
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.known_placeholders(scope, self.headers.values(), at);
        checker.not_filled(&self.body, "a body is sent as written", at);
    }
    /// The body and a head of about a hundred bytes.
    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += gaps(self.gap, &self.split, self.body.size() + 100);
    }
}
