//! The client's request head, and the request we send the origin.
//!
//! A proxy request's head is a request line with an absolute URI, then
//! header fields, one per line, then an empty line. We read it line by line
//! (a line ends at `\n`, with or without `\r` before it) and keep each
//! field's line as it came, so that the fields we forward are forwarded
//! unchanged.

use super::uri::Uri;
use std::io::BufRead;

/// The longest line we accept, terminator included. A longer one is
/// refused with `400` rather than cut: a cut line would turn its rest into a
/// bogus line of its own.
pub const MAX_LINE: usize = 8192;

/// The most header fields we accept.
const MAX_FIELDS: usize = 100;

/// The client's request, as it came.
#[derive(Debug)]
pub struct ClientRequest {
    pub method: String,
    pub uri: String,
    pub version: String,
    /// Each header field's line, without its line ending.
    pub fields: Vec<Vec<u8>>,
}

/// Why no request could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The client closed (or reset) before its head ended: nobody to answer.
    Gone,
    /// The head is not a request we can serve; answer 400 with this reason.
    Malformed(String),
}

/// Reads one request head: the request line, then fields until the empty
/// line.
pub fn read_head(reader: &mut impl BufRead) -> Result<ClientRequest, HeadError> {
    let line = read_line(reader)?;
    let text = String::from_utf8(line).map_err(|_| HeadError::Malformed("request line is not text".into()))?;
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let [method, uri, version] = parts[..] else {
        return Err(HeadError::Malformed(format!(
            "expected METHOD URI VERSION, got {text:?}"
        )));
    };
    let mut fields = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        if !line.contains(&b':') {
            return Err(HeadError::Malformed("a header field without a colon".into()));
        }
        if fields.len() == MAX_FIELDS {
            return Err(HeadError::Malformed("too many header fields".into()));
        }
        fields.push(line);
    }
    Ok(ClientRequest {
        method: method.to_string(),
        uri: uri.to_string(),
        version: version.to_string(),
        fields,
    })
}

/// One line, without its `\r\n` or `\n`. At most `MAX_LINE` bytes are read
/// into memory, however long the client's line is.
fn read_line(reader: &mut impl BufRead) -> Result<Vec<u8>, HeadError> {
    let mut line = Vec::new();
    let read = std::io::Read::take(&mut *reader, MAX_LINE as u64).read_until(b'\n', &mut line);
    match read {
        Err(_) => return Err(HeadError::Gone),
        Ok(0) => return Err(HeadError::Gone),
        Ok(_) => {}
    }
    if line.last() != Some(&b'\n') {
        return if line.len() == MAX_LINE {
            Err(HeadError::Malformed(format!("a line longer than {MAX_LINE} bytes")))
        } else {
            // The client closed in the middle of a line.
            Err(HeadError::Gone)
        };
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// The header fields the proxy sends itself, in place of the client's.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:10.0.3) Gecko/20120305 Firefox/10.0.3";

/// The request the origin gets: `GET PATH HTTP/1.0`, the client's `Host` or
/// else the URI's authority, our three fixed fields, and the client's other
/// fields unchanged.
pub fn origin_request(request: &ClientRequest, uri: &Uri) -> Vec<u8> {
    let mut out = format!("GET {} HTTP/1.0\r\n", uri.path).into_bytes();
    let name_of = |line: &[u8]| -> String {
        let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase()
    };
    let client_host = request.fields.iter().find(|f| name_of(f) == "host");
    match client_host {
        Some(line) => out.extend_from_slice(line),
        None => out.extend_from_slice(format!("Host: {}", uri.authority).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(
        format!("User-Agent: {USER_AGENT}\r\nConnection: close\r\nProxy-Connection: close\r\n").as_bytes(),
    );
    for line in &request.fields {
        let replaced = ["host", "user-agent", "connection", "proxy-connection"];
        if !replaced.contains(&name_of(line).as_str()) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<ClientRequest, HeadError> {
        read_head(&mut text.as_bytes())
    }

    #[test]
    fn the_origin_request_replaces_three_fields_and_keeps_the_rest() {
        let r = head("GET http://h:81/a?b HTTP/1.1\r\nHost: h:81\r\nuser-agent: curl\r\nProxy-Connection: keep-alive\r\nX-A:  b \r\n\r\n").unwrap();
        let uri = super::super::uri::parse(&r.uri).unwrap();
        let sent = String::from_utf8(origin_request(&r, &uri)).unwrap();
        assert_eq!(
            sent,
            format!("GET /a?b HTTP/1.0\r\nHost: h:81\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\nProxy-Connection: close\r\nX-A:  b \r\n\r\n")
        );
    }

    #[test]
    fn without_a_host_the_authority_is_sent() {
        let r = head("GET http://h/ HTTP/1.0\n\n").unwrap();
        let uri = super::super::uri::parse(&r.uri).unwrap();
        assert!(String::from_utf8(origin_request(&r, &uri))
            .unwrap()
            .contains("\r\nHost: h\r\n"));
    }

    #[test]
    fn bad_heads() {
        assert_eq!(head("").unwrap_err(), HeadError::Gone);
        assert_eq!(head("GET http://h/ HTTP/1.0\r\nHost: h").unwrap_err(), HeadError::Gone);
        assert!(matches!(head("GET\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(
            head("GET / HTTP/1.0\r\nno colon\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let long = format!("GET http://h/{} HTTP/1.0\r\n\r\n", "x".repeat(MAX_LINE));
        assert!(matches!(head(&long), Err(HeadError::Malformed(_))));
    }
}
