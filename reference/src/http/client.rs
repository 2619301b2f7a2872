//! `httpget URL`: one request, one response, the body to stdout.
//!
//! The client is plain blocking code (std's `TcpStream`): it has one
//! connection and one thing to do at a time, so it needs no event loop.
//!
//! Its real work is framing the response, as the server frames requests:
//!
//! 1. read until the head is complete (the parser says where the empty line
//!    is), keeping the bytes that came after it: they are the body's start;
//! 2. decide from the head how the body ends (RFC 9112, section 6.3):
//!    chunked transfer coding, else `Content-Length`, else the server
//!    closing the connection;
//! 3. copy exactly that body to stdout, and notice when the connection ends
//!    too early.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::url::{self, Url};

/// The longest response head we accept, so that a server sending header
/// lines forever cannot make us use unbounded memory.
const MAX_HEAD: usize = 64 * 1024;

/// The longest line of chunked coding (a chunk size with its extensions, a
/// trailer field).
const MAX_LINE: usize = 8 * 1024;

/// How long we wait to connect, and then for each read or write. The client
/// never hangs forever on a silent server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How `httpget` fails.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with a status other than 200: the status line.
    Status(String),
    /// Anything else: what went wrong, in one line.
    Error(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(line) => f.write_str(line),
            Failure::Error(message) => write!(f, "httpget: {message}"),
        }
    }
}

fn error(message: impl Into<String>) -> Failure {
    Failure::Error(message.into())
}

/// Fetches `url` and writes the body of a `200 OK` to `out`.
pub fn get(url: &str, out: &mut impl Write) -> Result<(), Failure> {
    let url = url::parse(url).map_err(error)?;
    let stream = connect(&url)?;
    send_request(&stream, &url)?;

    let mut response = Incoming::new(stream);
    let head = response.read_head()?;
    if head.code != 200 {
        return Err(Failure::Status(head.status_line));
    }
    match head.framing {
        Framing::Chunked => response.copy_chunked(out)?,
        Framing::Length(n) => response.copy_exact(n, out)?,
        Framing::UntilClose => response.copy_to_end(out)?,
    }
    out.flush().map_err(|e| error(format!("cannot write the body: {e}")))
}

/// Resolves the host (a name may have several addresses, e.g. `localhost`
/// is 127.0.0.1 and ::1) and connects to the first address that accepts.
fn connect(url: &Url) -> Result<TcpStream, Failure> {
    let addresses = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| error(format!("cannot resolve {}: {e}", url.host)))?;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Upper bounds only: a server that stops talking makes us
                // fail after this long instead of hanging.
                stream
                    .set_read_timeout(Some(IO_TIMEOUT))
                    .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
                    .map_err(|e| error(format!("socket option: {e}")))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(error(match last_error {
        Some(e) => format!("cannot connect to {}:{}: {e}", url.host, url.port),
        None => format!("{} has no address", url.host),
    }))
}

/// Sends the request: `GET`, `Host` (required in HTTP/1.1: one address may
/// serve many sites) and `Connection: close` (we make one request only, so
/// the server may close after it, which also ends a body sent without
/// length).
fn send_request(mut stream: &TcpStream, url: &Url) -> Result<(), Failure> {
    let request = format!(
        "GET {} HTTP/1.1\r\n\
         Host: {}\r\n\
         User-Agent: sockgrade-httpget\r\n\
         Accept: */*\r\n\
         Connection: close\r\n\
         \r\n",
        url.path,
        url.host_header()
    );
    // `write_all`, not `write`: one write may send only part of the bytes.
    stream
        .write_all(request.as_bytes())
        .map_err(|e| error(format!("cannot send the request: {e}")))
}

/// How the body of a response ends.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Chunked,
    Length(u64),
    UntilClose,
}

/// What we need of a response head.
#[derive(Debug)]
struct Head {
    code: u16,
    /// The status line as received, e.g. `HTTP/1.1 404 Not Found`.
    status_line: String,
    framing: Framing,
}

/// The receiving side of the connection, with the bytes read but not used.
struct Incoming {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Incoming {
    fn new(stream: TcpStream) -> Self {
        Incoming {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Reads more bytes onto the end of `buf`; returns how many (0 at the end
    /// of the stream).
    fn fill(&mut self) -> Result<usize, Failure> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                // A signal arrived during `read`: just read again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(error(format!("no data from the server for {} s", IO_TIMEOUT.as_secs())))
                }
                Err(e) => return Err(error(format!("connection lost: {e}"))),
            }
        }
    }

    /// Reads the head of the final response, skipping interim `1xx`
    /// responses (such as `100 Continue`), which a server may send first.
    fn read_head(&mut self) -> Result<Head, Failure> {
        loop {
            let head = self.read_one_head()?;
            if (100..200).contains(&head.code) && head.code != 101 {
                continue;
            }
            return Ok(head);
        }
    }

    fn read_one_head(&mut self) -> Result<Head, Failure> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let head = interpret(&response, &self.buf[..head_len])?;
                    // The rest of `buf` is the start of the body.
                    self.buf.drain(..head_len);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                    return Err(error("malformed response: head too large"));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(error(format!("malformed response: {e}"))),
            }
            if self.fill()? == 0 {
                return Err(error(if self.buf.is_empty() {
                    "the server closed the connection without a response".to_string()
                } else {
                    "malformed response: connection closed inside the head".to_string()
                }));
            }
        }
    }

    /// Copies exactly `length` body bytes to `out`. Bytes after them, if the
    /// server sent any, are not ours to read; and we do not wait for the
    /// server to close: `Content-Length` told us where the body ends.
    fn copy_exact(&mut self, mut length: u64, out: &mut impl Write) -> Result<(), Failure> {
        while length > 0 {
            if self.buf.is_empty() && self.fill()? == 0 {
                return Err(error(format!(
                    "connection closed with {length} bytes of the body missing"
                )));
            }
            let take = self.buf.len().min(usize::try_from(length).unwrap_or(usize::MAX));
            write_out(out, &self.buf[..take])?;
            self.buf.drain(..take);
            length -= take as u64;
        }
        Ok(())
    }

    /// Copies everything until the server closes the connection.
    fn copy_to_end(&mut self, out: &mut impl Write) -> Result<(), Failure> {
        loop {
            write_out(out, &self.buf)?;
            self.buf.clear();
            if self.fill()? == 0 {
                return Ok(());
            }
        }
    }

    /// Decodes the chunked transfer coding (RFC 9112, section 7.1):
    ///
    /// ```text
    /// 1a;name=value\r\n      chunk size in hex, optional extensions (ignored)
    /// <0x1a bytes>\r\n
    /// 0\r\n                  the last chunk has size zero
    /// Trailer: field\r\n     optional trailer fields (ignored)
    /// \r\n
    /// ```
    fn copy_chunked(&mut self, out: &mut impl Write) -> Result<(), Failure> {
        loop {
            let line = self.read_line()?;
            let size =
                parse_chunk_size(&line).ok_or_else(|| error(format!("malformed chunk size {:?}", lossy(&line))))?;
            if size == 0 {
                break;
            }
            self.copy_exact(size, out)?;
            if !self.read_line()?.is_empty() {
                return Err(error("malformed chunked body: no CRLF after a chunk"));
            }
        }
        // Trailer fields until the empty line.
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(());
            }
            if !line.contains(&b':') {
                return Err(error(format!("malformed trailer {:?}", lossy(&line))));
            }
        }
    }

    /// One line of chunked coding, without its line end (`\r\n`; a bare `\n`
    /// is tolerated, as RFC 9112 allows).
    fn read_line(&mut self) -> Result<Vec<u8>, Failure> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop(); // '\n'
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            searched = self.buf.len();
            if self.buf.len() > MAX_LINE {
                return Err(error("malformed chunked body: line too long"));
            }
            if self.fill()? == 0 {
                return Err(error("connection closed before the end of the chunked body"));
            }
        }
    }
}

/// Checks a parsed response head and works out how its body is framed.
fn interpret(response: &httparse::Response, raw: &[u8]) -> Result<Head, Failure> {
    let code = response.code.unwrap_or_default();
    // httparse skips empty lines before the status line; so do we.
    let status_line = raw
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .find(|line| !line.is_empty())
        .map(lossy)
        .unwrap_or_default();

    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut length: Option<u64> = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("Transfer-Encoding") {
            // Codings are applied in order; the body is chunked if chunked
            // is the last one.
            transfer_encoding = true;
            let value = lossy(header.value);
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("Content-Length") {
            // `Content-Length: 5, 5` and two equal fields are allowed;
            // different values are not.
            for value in lossy(header.value).split(',') {
                let value = value.trim();
                let n: u64 = value
                    .parse()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| error(format!("malformed Content-Length {value:?}")))?;
                if length.is_some_and(|earlier| earlier != n) {
                    return Err(error("malformed response: conflicting Content-Length"));
                }
                length = Some(n);
            }
        }
    }

    // Transfer-Encoding wins over Content-Length (RFC 9112, section 6.3).
    let framing = match (transfer_encoding, chunked, length) {
        (true, true, _) => Framing::Chunked,
        (true, false, _) => Framing::UntilClose,
        (false, _, Some(n)) => Framing::Length(n),
        (false, _, None) => Framing::UntilClose,
    };
    Ok(Head {
        code,
        status_line,
        framing,
    })
}

/// The size at the start of a chunk line: hexadecimal digits, then maybe
/// spaces and `;extensions`, which we ignore.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|&b| b == b';').next()?;
    let size = std::str::from_utf8(size).ok()?.trim_end_matches([' ', '\t']);
    if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

fn write_out(out: &mut impl Write, bytes: &[u8]) -> Result<(), Failure> {
    out.write_all(bytes)
        .map_err(|e| error(format!("cannot write the body: {e}")))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::parse_chunk_size;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"1A;name=\"v;x\""), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"10 ;x"), Some(16));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(parse_chunk_size(b"11111111111111111"), None);
    }
}
