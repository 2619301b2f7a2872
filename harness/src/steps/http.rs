//! Running the `http` family (`crate::lang::http`) on one connection
//! (`super::run_on`): send_request and expect_response as a client of the
//! server under test, expect_request and send_response as the server for a
//! client under test. Messages are read by `crate::http`, the harness's own
//! parser, and checked part by part, so a failure says what was wrong in
//! HTTP's terms.

use super::Failing;
use super::{OnContext, RunOn};
use super::{StepError, StepResult};
use crate::conn::{Conn, Gathered, Parse, PeerState};
use crate::escape;
use crate::http::{parse_message, Framing, Message, Parsed, Start};
use crate::lang::http::{BodyCheck, ExpectRequest, ExpectResponse, FramingCheck, SendRequest, SendResponse};
use crate::lang::values::within;
use crate::lang::{Placeholders, Spec};
use crate::program_time::with_busy_note;
use crate::transcript::{Mismatch, Wire};
use std::time::Duration;

impl RunOn for SendRequest {
    async fn run_on(&self, conn: &mut Conn, cx: &OnContext<'_>) -> StepResult {
        let ph = cx.placeholders;
        let bytes: Vec<u8> = self.requests.iter().flat_map(|r| r.bytes(ph)).collect();
        let what: Vec<String> = self.requests.iter().map(|r| ph.fill_round(&r.describe())).collect();
        super::tcp::write(conn, bytes, what.join(", "), &self.split, self.gap, None, false).await
    }
}

impl RunOn for SendResponse {
    async fn run_on(&self, conn: &mut Conn, cx: &OnContext<'_>) -> StepResult {
        let ph = cx.placeholders;
        let body = self.body.bytes();
        let framing = match self.framing {
            crate::lang::http::Framing::Length => format!("Content-Length: {}", body.len()),
            crate::lang::http::Framing::Chunked => "chunked".into(),
            crate::lang::http::Framing::Close => "until close".into(),
        };
        let cut = self
            .truncate
            .map(|t| format!(", cut after {t} bytes of it"))
            .unwrap_or_default();
        let what = format!(
            "{} {}, body {} ({framing}{cut})",
            self.status,
            self.reason,
            summary(&body)
        );
        super::tcp::write(conn, self.bytes(ph), what, &self.split, self.gap, None, false).await?;
        if self.closes() {
            conn.transcript.record_wire(&conn.name, Wire::Close);
            conn.close(within(None)).await.or_failed()?;
        }
        Ok(())
    }
}

impl RunOn for ExpectResponse {
    async fn run_on(&self, conn: &mut Conn, cx: &OnContext<'_>) -> StepResult {
        let spec = cx.spec;
        let ph = cx.placeholders;
        let message = read(conn, false, self.to_head, within(self.within)).await.or_failed()?;
        let Start::Status { code, .. } = &message.head.start else {
            // The grader's parser answered the wrong question: its fault.
            return Err(StepError::cannot_run(
                "the parser read a request where a response was due",
            ));
        };
        let mut wrong = Vec::new();
        if let Some(status) = &self.status {
            if !status.accepts(*code) {
                wrong.push(format!(
                    "expected status {}, got `{}`",
                    status.describe(),
                    message.head.start_line()
                ));
            }
        }
        wrong.extend(check_fields(
            &message,
            &self.headers,
            &self.present,
            &self.absent,
            ph,
            false,
        ));
        if let Some(f) = self.framing {
            let ok = match f {
                FramingCheck::Length => {
                    matches!(message.framing, Framing::Length(_))
                        || (self.to_head && message.head.value("content-length").is_some())
                }
                FramingCheck::Chunked => message.framing == Framing::Chunked,
                FramingCheck::Close => message.framing == Framing::Close,
            };
            if !ok {
                let how = match message.framing {
                    Framing::Close => {
                        "no Content-Length (nor chunked): its body ran until the connection closed".into()
                    }
                    other => other.describe(),
                };
                let want = match f {
                    FramingCheck::Length => "an exact Content-Length",
                    FramingCheck::Chunked => "chunked coding",
                    FramingCheck::Close => "the connection's close",
                };
                wrong.push(format!("expected the body delimited by {want}, got {how}"));
            }
        }
        if let Some(body) = &self.body {
            if let Some(why) = check_body(&message.body.bytes, body, spec) {
                wrong.push(why);
            }
        }
        finish(conn, &message, wrong, ph)
    }
}

impl RunOn for ExpectRequest {
    async fn run_on(&self, conn: &mut Conn, cx: &OnContext<'_>) -> StepResult {
        let ph = cx.placeholders;
        let message = read(conn, true, false, within(self.within)).await.or_failed()?;
        let Start::Request {
            method,
            target,
            version,
        } = &message.head.start
        else {
            return Err(StepError::cannot_run(
                "the parser read a response where a request was due",
            ));
        };
        let fill = |s: &str| ph.fill(s);
        let mut wrong = Vec::new();
        for (part, want, got) in [
            ("method", &self.method, method),
            ("target", &self.target, target),
            ("version", &self.version, version),
        ] {
            if let Some(want) = want {
                if fill(want) != *got {
                    wrong.push(format!("expected the {part} `{}`, got `{got}`", fill(want)));
                }
            }
        }
        wrong.extend(check_fields(
            &message,
            &self.headers,
            &self.present,
            &self.absent,
            ph,
            true,
        ));
        wrong.extend(once_each(&message, &self.headers));
        finish(conn, &message, wrong, ph)
    }
}

/// Reads one HTTP message (a request, or a response; `to_head`: the answer
/// to a HEAD request): the harness's parser (`crate::http`) says where it
/// ends, on the connection's one read loop (`Conn::gather`). Fails on a
/// malformed message, an end of the stream before the message is whole, the
/// bound, or once the kernel shows that nothing more can come; what arrived
/// is then in the transcript.
async fn read(conn: &mut Conn, request: bool, to_head: bool, bound: Duration) -> Result<Message, String> {
    let what = if request { "a request" } else { "a response" };
    let gathered = conn
        .gather(bound, |inbox, ended| {
            match parse_message(inbox, request, to_head, ended) {
                Parsed::Done(m) => {
                    let size = m.size();
                    Parse::Done(m, size)
                }
                Parsed::Bad(why) => Parse::Wrong(why),
                Parsed::More => Parse::More,
            }
        })
        .await;
    let why = match gathered {
        Gathered::Parsed(m, _) => return Ok(m),
        Gathered::Wrong(why) => {
            let how = match conn.peer {
                PeerState::Reset => " (the connection was reset)",
                _ => "",
            };
            format!("expected {what}: {why}{how}")
        }
        // The parser takes an ended stream's bytes as whole or wrong: not
        // reached.
        Gathered::Ended => format!("expected {what}: the connection ended first"),
        Gathered::Bound(deadline) => {
            let (grader, _) = conn.roles();
            with_busy_note(
                format!(
                    "{grader} expected {what} within {}ms; {}",
                    bound.as_millis(),
                    conn.arrived()
                ),
                &deadline,
            )
        }
        Gathered::Stalled => {
            let as_it_stands = match parse_message(&conn.inbox, request, to_head, true) {
                Parsed::Bad(why) if !conn.inbox.is_empty() => format!("\n  as it stands: {why}"),
                _ => String::new(),
            };
            format!("{}{as_it_stands}", conn.stalled_words(what))
        }
    };
    conn.transcript.record_wire(
        &conn.name,
        Wire::Received {
            shown: escape::quote(&conn.inbox, 60),
            bytes: conn.inbox.len(),
            mismatch: Some(Mismatch {
                expected: what.into(),
                got: escape::quote(&conn.inbox, 400),
            }),
            ended: conn.peer.ended(),
        },
    );
    Err(why)
}

/// Header fields: each of `headers` present with that value (names without
/// case; Connection and Transfer-Encoding as token lists, holding the
/// token, or with `whole_lists` (a request's) being that list;
/// Content-Type by its media type without case; others exactly), each of
/// `present` there, each of `absent` not.
fn check_fields(
    m: &Message,
    headers: &std::collections::BTreeMap<String, String>,
    present: &[String],
    absent: &[String],
    ph: &Placeholders,
    whole_lists: bool,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, want) in headers {
        let want = ph.fill(want);
        match m.head.value(name) {
            None => wrong.push(format!("expected a `{name}` header field, there is none")),
            Some(got) => {
                let tokens = ["connection", "transfer-encoding"].contains(&name.to_ascii_lowercase().as_str());
                let list = |v: &str| -> Vec<String> {
                    v.split(',')
                        .map(|t| t.trim().to_ascii_lowercase())
                        .filter(|t| !t.is_empty())
                        .collect()
                };
                let ok = if tokens && whole_lists {
                    list(&got) == list(&want)
                } else if tokens {
                    m.head.has_token(name, &want)
                } else if name.eq_ignore_ascii_case("content-type") {
                    // A media type's parameters (`; charset=utf-8`) may follow.
                    got.split(';')
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case(&want))
                } else {
                    got == want
                };
                if !ok {
                    wrong.push(format!("expected `{name}: {want}`, got `{name}: {got}`"));
                }
            }
        }
    }
    for name in present {
        if m.head.value(name).is_none() {
            wrong.push(format!("expected a `{name}` header field, there is none"));
        }
    }
    for name in absent {
        if let Some(got) = m.head.value(name) {
            wrong.push(format!("expected no `{name}` header field, got `{name}: {got}`"));
        }
    }
    wrong
}

/// A request's fields given in `headers` are sent once each: a program
/// that passes a field on and adds its own (`Connection: keep-alive` and
/// `Connection: close`) sends two, whatever a check of their joined value
/// says.
fn once_each(m: &Message, headers: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    headers
        .keys()
        .filter_map(|name| {
            let values = m.head.values(name);
            (values.len() > 1).then(|| {
                let lines: Vec<String> = values
                    .iter()
                    .map(|v| format!("`{name}: {}`", String::from_utf8_lossy(v)))
                    .collect();
                format!(
                    "expected one `{name}` header field, got {}: {}",
                    lines.len(),
                    lines.join(", ")
                )
            })
        })
        .collect()
}

/// Why `got` is not the body `want` asks for.
fn check_body(got: &[u8], want: &BodyCheck, spec: &Spec) -> Option<String> {
    let exact = |bytes: Vec<u8>, what: String| {
        if got == bytes.as_slice() {
            return None;
        }
        let diff = escape::first_difference(&bytes, got).unwrap_or_default();
        Some(format!(
            "expected the body to be {what} ({}), got {} ({})\n  {diff}",
            escape::bytes(bytes.len()),
            summary(got),
            escape::bytes(got.len())
        ))
    };
    if let Some(file) = &want.file {
        let bytes = spec
            .docroot
            .as_ref()
            .and_then(|d| d.files.get(file))
            .map(|p| p.bytes())
            .unwrap_or_default();
        return exact(bytes, format!("the file `{file}`"));
    }
    if let Some(text) = &want.text {
        return exact(text.as_bytes().to_vec(), escape::quote(text.as_bytes(), 60));
    }
    if let Some(bytes) = &want.hex {
        return exact(bytes.clone(), escape::quote(bytes, 60));
    }
    if let Some(generated) = &want.generate {
        return exact(generated.bytes(), generated.describe());
    }
    if let Some(c) = &want.contains {
        if !got.windows(c.len().max(1)).any(|w| w == c.as_bytes()) {
            return Some(format!(
                "expected the body to contain {}, got {}",
                escape::quote(c.as_bytes(), 60),
                summary(got)
            ));
        }
    }
    if let Some(size) = want.size {
        if got.len() != size.0 {
            return Some(format!(
                "expected a body of {}, got {}",
                escape::bytes(size.0),
                escape::bytes(got.len())
            ));
        }
    }
    if want.empty == Some(true) && !got.is_empty() {
        return Some(format!("expected no body, got {}", summary(got)));
    }
    if want.nonempty == Some(true) && got.is_empty() {
        return Some("expected a body, got none".into());
    }
    None
}

/// Records the message and turns what was wrong into the step's failure.
fn finish(conn: &mut Conn, m: &Message, wrong: Vec<String>, ph: &Placeholders) -> StepResult {
    let shown = describe(m, ph);
    let mismatch = (!wrong.is_empty()).then(|| Mismatch {
        expected: "(see the failure)".into(),
        got: shown.clone(),
    });
    conn.transcript.record_wire(
        &conn.name,
        Wire::Received {
            shown,
            bytes: m.size(),
            mismatch,
            ended: None,
        },
    );
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(StepError::failed(format!(
            "{}\n  the message: {}",
            wrong.join("\n  "),
            head_text(m)
        )))
    }
}

/// A message as the transcript shows it: its first line, its fields, and
/// its body summarised. What changes from run to run is left out, as the
/// transcript leaves out times: the ports (as `{port}`, `{port:NAME}`) and
/// a `Date`.
fn describe(m: &Message, ph: &Placeholders) -> String {
    let ports = |v: &str| {
        let mut v = v.replace(&format!(":{}", ph.port), ":{port}");
        for (name, number) in ph.listener_ports() {
            v = v.replace(&format!(":{number}"), &format!(":{name}"));
        }
        v
    };
    let fields: Vec<String> = m
        .head
        .fields
        .iter()
        .map(|(n, v)| {
            let v = String::from_utf8_lossy(v);
            match n.to_ascii_lowercase().as_str() {
                "date" => format!("{n}: (a date)"),
                "host" | "location" => format!("{n}: {}", ports(&v)),
                _ => format!("{n}: {v}"),
            }
        })
        .collect();
    let body = match m.framing {
        Framing::None if m.body.bytes.is_empty() => "no body".to_string(),
        Framing::Chunked => format!("body {} in {} chunks", summary(&m.body.bytes), m.body.chunks.len()),
        _ => format!("body {}", summary(&m.body.bytes)),
    };
    format!("{} | {} | {body}", ports(&m.head.start_line()), fields.join(" | "))
}

/// The head as sent, one field a line, for a failure.
fn head_text(m: &Message) -> String {
    let mut out = m.head.start_line();
    for (n, v) in &m.head.fields {
        out.push_str(&format!("\n    {n}: {}", String::from_utf8_lossy(v)));
    }
    out.push_str(&format!(
        "\n    ({})",
        match m.framing {
            Framing::None => "no body".to_string(),
            _ => format!("a body of {}", escape::bytes(m.body.bytes.len())),
        }
    ));
    out
}

/// A body in a few words: quoted when short, else its size and a digest.
pub(crate) fn summary(body: &[u8]) -> String {
    use sha2::Digest;
    if body.len() <= 48 {
        return escape::quote(body, 48);
    }
    let digest = sha2::Sha256::digest(body);
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{} (sha256 {short}…)", escape::bytes(body.len()))
}
