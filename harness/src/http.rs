//! The harness's own HTTP/1.1 message parser (RFC 9112), strict, and
//! independent of the reference programs' code, so that an oracle and a
//! model answer cannot share a bug.
//!
//! It parses what arrived so far and says: a whole message (and how many
//! bytes it took), not yet, or malformed (and why, in HTTP's terms). Lines
//! end in CRLF; a bare LF, a space before a field's colon, a folded line, a
//! Content-Length that is not one number are all malformed: a grader checks
//! what a student's program sends, and accepts nothing a strict recipient
//! would not.

use crate::escape;

/// The largest head the parser reads: beyond it, a message is malformed.
pub const MAX_HEAD: usize = 64 * 1024;

/// A request line or a status line, and the header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub start: Start,
    /// Names as sent; values without the whitespace around them.
    pub fields: Vec<(String, Vec<u8>)>,
    /// The head's bytes, CRLF CRLF included.
    pub size: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    Request {
        method: String,
        target: String,
        version: String,
    },
    Status {
        version: String,
        code: u16,
        reason: String,
    },
}

/// What the bytes so far make.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    Done(T),
    More,
    Bad(String),
}

impl Head {
    /// Every value of a field (names compare without case), in order.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The one value of a field, joined with ", " where it was sent twice.
    pub fn value(&self, name: &str) -> Option<String> {
        let values = self.values(name);
        (!values.is_empty()).then(|| {
            values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// Whether a comma-separated field holds `token` (case-insensitive):
    /// `Connection: keep-alive, close` holds `close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).iter().any(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    }

    /// The first line, as sent.
    pub fn start_line(&self) -> String {
        match &self.start {
            Start::Request {
                method,
                target,
                version,
            } => format!("{method} {target} {version}"),
            Start::Status { version, code, reason } => format!("{version} {code} {reason}"),
        }
    }
}

/// A head, from the start of `bytes`.
pub fn parse_head(bytes: &[u8], request: bool) -> Parsed<Head> {
    let window = &bytes[..bytes.len().min(MAX_HEAD + 4)];
    let end = find(window, b"\r\n\r\n");
    // A bare LF where a line ends is not a line end, wherever it is.
    let head = &window[..end.map_or(window.len(), |e| e + 4)];
    let bare = head
        .iter()
        .enumerate()
        .position(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    if let Some(lf) = bare {
        return Parsed::Bad(format!(
            "a line of the head ends in a bare LF, not CRLF: {}",
            escape::quote(&head[lf.saturating_sub(60)..lf + 1], 80)
        ));
    }
    let Some(end) = end else {
        if bytes.len() > MAX_HEAD {
            return Parsed::Bad(format!(
                "no end of the head (an empty line) in its first {MAX_HEAD} bytes"
            ));
        }
        return Parsed::More;
    };
    // The lines, each with its CRLF taken off (the last one's included).
    let mut lines = Vec::new();
    let mut rest = &bytes[..end + 2];
    while let Some(eol) = find(rest, b"\r\n") {
        let line = &rest[..eol];
        if line.iter().any(|&b| b == b'\n' || b == b'\r') {
            return Parsed::Bad(format!(
                "a line of the head holds a bare CR or LF (lines end in CRLF): {}",
                escape::quote(line, 80)
            ));
        }
        lines.push(line);
        rest = &rest[eol + 2..];
    }
    let start = match if request {
        request_line(lines[0])
    } else {
        status_line(lines[0])
    } {
        Ok(s) => s,
        Err(why) => return Parsed::Bad(why),
    };
    let mut fields = Vec::new();
    for line in &lines[1..] {
        match field_line(line) {
            Ok(f) => fields.push(f),
            Err(why) => return Parsed::Bad(why),
        }
    }
    Parsed::Done(Head {
        start,
        fields,
        size: end + 4,
    })
}

fn request_line(line: &[u8]) -> Result<Start, String> {
    let shown = || escape::quote(line, 120);
    let text = std::str::from_utf8(line).map_err(|_| format!("the request line is not text: {}", shown()))?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(format!(
            "a request line is `METHOD target HTTP/1.1`, three parts one space apart; found {}",
            shown()
        ));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(format!("the method is not a token: {}", shown()));
    }
    if target.is_empty() {
        return Err(format!("the request target is empty: {}", shown()));
    }
    check_version(version).map_err(|e| format!("{e}: {}", shown()))?;
    Ok(Start::Request {
        method: method.into(),
        target: target.into(),
        version: version.into(),
    })
}

fn status_line(line: &[u8]) -> Result<Start, String> {
    let shown = || escape::quote(line, 120);
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(3, ' ');
    let (Some(version), Some(code), reason) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("a status line is `HTTP/1.1 200 OK`; found {}", shown()));
    };
    check_version(version).map_err(|e| format!("{e}: {}", shown()))?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the status code is not three digits: {}", shown()));
    }
    // The space after the code is required, the reason may be empty.
    let Some(reason) = reason else {
        return Err(format!(
            "a status line has a space after its code, even with no reason phrase: {}",
            shown()
        ));
    };
    Ok(Start::Status {
        version: version.into(),
        code: code.parse().unwrap_or(0),
        reason: reason.into(),
    })
}

fn check_version(v: &str) -> Result<(), String> {
    let ok = v.len() == 8
        && v.starts_with("HTTP/")
        && v.as_bytes()[5].is_ascii_digit()
        && v.as_bytes()[6] == b'.'
        && v.as_bytes()[7].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(format!("`{v}` is no HTTP version (HTTP/1.1)"))
    }
}

fn field_line(line: &[u8]) -> Result<(String, Vec<u8>), String> {
    let shown = || escape::quote(line, 120);
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return Err(format!(
            "a header line starts with whitespace (obsolete line folding): {}",
            shown()
        ));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| format!("a header line without a colon: {}", shown()))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(format!(
            "a field name is a token, with no space before its colon: {}",
            shown()
        ));
    }
    let value = trim(&line[colon + 1..]);
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("a field value holds CR, LF or NUL: {}", shown()));
    }
    Ok((String::from_utf8_lossy(name).into_owned(), value.to_vec()))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// A byte of a token (RFC 9110 §5.6.2): a method or a field name.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, a 1xx, 204 or 304; a request without
    /// Content-Length or Transfer-Encoding.
    None,
    Length(usize),
    Chunked,
    /// Until the connection closes (a response only).
    Close,
}

impl Framing {
    pub fn describe(self) -> String {
        match self {
            Framing::None => "no body".into(),
            Framing::Length(n) => format!("Content-Length: {n}"),
            Framing::Chunked => "chunked".into(),
            Framing::Close => "a body until the connection closes".into(),
        }
    }
}

/// The framing of a message with this head; `to_head` for a response to a
/// HEAD request.
pub fn framing(head: &Head, to_head: bool) -> Result<Framing, String> {
    if let Start::Status { code, .. } = head.start {
        if to_head || (100..200).contains(&code) || code == 204 || code == 304 {
            return Ok(Framing::None);
        }
    }
    let te = head.values("transfer-encoding");
    if !te.is_empty() {
        if !head.values("content-length").is_empty() {
            return Err("both Transfer-Encoding and Content-Length: a message has one or the other".into());
        }
        let last = String::from_utf8_lossy(te[te.len() - 1]);
        let last = last.rsplit(',').next().unwrap_or("").trim().to_ascii_lowercase();
        return match (last.as_str(), &head.start) {
            ("chunked", _) => Ok(Framing::Chunked),
            (_, Start::Status { .. }) => Ok(Framing::Close),
            (other, Start::Request { .. }) => Err(format!(
                "a request's last transfer coding must be chunked, not `{other}`"
            )),
        };
    }
    let lengths = head.values("content-length");
    if lengths.is_empty() {
        return Ok(match head.start {
            Start::Request { .. } => Framing::None,
            Start::Status { .. } => Framing::Close,
        });
    }
    let mut found: Option<usize> = None;
    for v in lengths {
        for part in String::from_utf8_lossy(v).split(',') {
            let part = part.trim();
            let n: usize = match part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
                true => part
                    .parse()
                    .map_err(|_| format!("Content-Length `{part}` is too large"))?,
                false => {
                    return Err(format!(
                        "Content-Length `{}` is not a number",
                        String::from_utf8_lossy(v)
                    ))
                }
            };
            if found.is_some_and(|f| f != n) {
                return Err("Content-Length is given twice, with different values".into());
            }
            found = Some(n);
        }
    }
    Ok(Framing::Length(found.unwrap_or(0)))
}

/// A body as it arrived, once whole: its bytes (chunked: decoded), and how
/// many bytes of the stream it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub taken: usize,
    /// Chunked: the sizes of the chunks, and the trailer fields.
    pub chunks: Vec<usize>,
    pub trailers: Vec<(String, Vec<u8>)>,
}

/// The body after a head, from the start of `bytes`; `ended`: the
/// connection closed, nothing more comes.
pub fn parse_body(bytes: &[u8], framing: Framing, ended: bool) -> Parsed<Body> {
    let whole = |n: usize| Body {
        bytes: bytes[..n].to_vec(),
        taken: n,
        chunks: Vec::new(),
        trailers: Vec::new(),
    };
    match framing {
        Framing::None => Parsed::Done(whole(0)),
        Framing::Length(n) if bytes.len() >= n => Parsed::Done(whole(n)),
        Framing::Length(n) if ended => Parsed::Bad(format!(
            "Content-Length says {n}, the body had {} bytes when the connection closed",
            bytes.len()
        )),
        Framing::Length(_) => Parsed::More,
        Framing::Close if ended => Parsed::Done(whole(bytes.len())),
        Framing::Close => Parsed::More,
        Framing::Chunked => match chunked(bytes) {
            Parsed::More if ended => Parsed::Bad(format!(
                "the connection closed in the middle of a chunked body (after {} bytes of it)",
                bytes.len()
            )),
            other => other,
        },
    }
}

/// A chunked body: `size[;ext] CRLF data CRLF`... `0 CRLF` trailers CRLF.
fn chunked(bytes: &[u8]) -> Parsed<Body> {
    let mut at = 0;
    let mut body = Vec::new();
    let mut chunks = Vec::new();
    loop {
        let Some(eol) = find(&bytes[at..], b"\r\n") else {
            return Parsed::More;
        };
        let line = &bytes[at..at + eol];
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = String::from_utf8_lossy(trim(size_text)).into_owned();
        // At most 12 hex digits (256 TiB): no sum below can overflow.
        let digits = !size_text.is_empty() && size_text.len() <= 12 && size_text.bytes().all(|b| b.is_ascii_hexdigit());
        let (true, Ok(size)) = (digits, usize::from_str_radix(&size_text, 16)) else {
            return Parsed::Bad(format!(
                "a chunk size is 1 to 12 hexadecimal digits (then `;extensions`): {}",
                escape::quote(line, 80)
            ));
        };
        at += eol + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            let mut trailers = Vec::new();
            loop {
                let Some(eol) = find(&bytes[at..], b"\r\n") else {
                    return Parsed::More;
                };
                let line = &bytes[at..at + eol];
                at += eol + 2;
                if line.is_empty() {
                    return Parsed::Done(Body {
                        bytes: body,
                        taken: at,
                        chunks,
                        trailers,
                    });
                }
                match field_line(line) {
                    Ok(f) => trailers.push(f),
                    Err(why) => return Parsed::Bad(format!("in the trailer: {why}")),
                }
            }
        }
        if bytes.len() < at + size + 2 {
            return Parsed::More;
        }
        body.extend_from_slice(&bytes[at..at + size]);
        chunks.push(size);
        at += size;
        if &bytes[at..at + 2] != b"\r\n" {
            return Parsed::Bad(format!("chunk data of {size} bytes is not followed by CRLF"));
        }
        at += 2;
    }
}

/// A whole message: head and body, or why not yet, or why never.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub head: Head,
    pub framing: Framing,
    pub body: Body,
}

impl Message {
    /// How many bytes of the stream it took.
    pub fn size(&self) -> usize {
        self.head.size + self.body.taken
    }
}

/// A message from the start of `bytes`.
pub fn parse_message(bytes: &[u8], request: bool, to_head: bool, ended: bool) -> Parsed<Message> {
    let head = match parse_head(bytes, request) {
        Parsed::Done(h) => h,
        Parsed::More if ended && bytes.is_empty() => {
            return Parsed::Bad("the connection closed before any message".into())
        }
        Parsed::More if ended => {
            return Parsed::Bad(format!(
                "the connection closed in the middle of the head, after {}",
                escape::quote(bytes, 120)
            ))
        }
        Parsed::More => return Parsed::More,
        Parsed::Bad(why) => return Parsed::Bad(why),
    };
    let framing = match framing(&head, to_head) {
        Ok(f) => f,
        Err(why) => return Parsed::Bad(why),
    };
    match parse_body(&bytes[head.size..], framing, ended) {
        Parsed::Done(body) => Parsed::Done(Message { head, framing, body }),
        Parsed::More => Parsed::More,
        Parsed::Bad(why) => Parsed::Bad(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(text: &str, ended: bool) -> Parsed<Message> {
        parse_message(text.as_bytes(), false, false, ended)
    }

    #[test]
    fn a_response_with_a_length_takes_exactly_its_body() {
        let Parsed::Done(m) = response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1", false) else {
            panic!()
        };
        assert_eq!(m.body.bytes, b"hello");
        assert_eq!(m.size(), 38 + 5);
        assert_eq!(m.head.value("content-length").as_deref(), Some("5"));
    }

    #[test]
    fn a_short_body_is_more_then_malformed_at_the_end() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\nabc";
        assert_eq!(response(text, false), Parsed::More);
        let Parsed::Bad(why) = response(text, true) else {
            panic!()
        };
        assert_eq!(
            why,
            "Content-Length says 1024, the body had 3 bytes when the connection closed"
        );
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
        let Parsed::Done(m) = response(text, false) else {
            panic!()
        };
        assert_eq!(m.body.bytes, b"abcde");
        assert_eq!(m.body.chunks, vec![3, 2]);
        assert_eq!(m.body.trailers.len(), 1);
        assert_eq!(m.size(), text.len());
    }

    #[test]
    fn a_body_until_close_and_none_for_head() {
        assert_eq!(response("HTTP/1.1 200 OK\r\n\r\nabc", false), Parsed::More);
        let Parsed::Done(m) = response("HTTP/1.1 200 OK\r\n\r\nabc", true) else {
            panic!()
        };
        assert_eq!(m.body.bytes, b"abc");
        let Parsed::Done(m) = parse_message(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", false, true, false) else {
            panic!()
        };
        assert_eq!(m.framing, Framing::None);
    }

    #[test]
    fn malformed_heads_say_why() {
        let bad = |t: &str| match parse_head(t.as_bytes(), false) {
            Parsed::Bad(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(bad("HTTP/1.1 200 OK\nContent-Length: 1\n\n").contains("bare LF"));
        assert!(bad("HTTP/1.1 200\r\n\r\n").contains("space after its code"));
        assert!(bad("HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n").contains("no space before its colon"));
        assert!(bad("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n").contains("without a colon"));
        assert!(bad("HTTP/1.1 2x0 OK\r\n\r\n").contains("three digits"));
        let Parsed::Bad(why) = response("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", false) else {
            panic!()
        };
        assert!(why.contains("different values"));
    }

    #[test]
    fn hostile_chunks_and_heads_are_malformed_not_panics() {
        let chunked = |size: &str| {
            let text = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nabc");
            response(&text, false)
        };
        assert!(matches!(chunked("FFFFFFFFFFFFFFFF"), Parsed::Bad(_)));
        assert!(matches!(chunked("+5"), Parsed::Bad(_)));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nA: b\n\n", false),
            Parsed::Bad(_)
        ));
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        long.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse_head(&long, false), Parsed::Bad(_)));
    }

    #[test]
    fn requests() {
        let Parsed::Done(h) = parse_head(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", true)
        else {
            panic!()
        };
        assert_eq!(
            h.start,
            Start::Request {
                method: "GET".into(),
                target: "/a%20b?x=1".into(),
                version: "HTTP/1.1".into()
            }
        );
        assert!(h.has_token("connection", "close"));
        assert!(matches!(parse_head(b"GET / HTTP/1.1\r\n", true), Parsed::More));
        assert!(matches!(parse_head(b"GET  / HTTP/1.1\r\n\r\n", true), Parsed::Bad(_)));
    }
}
