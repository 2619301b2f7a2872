//! `rpcclient HOST PORT`: reads commands like `add 2 3` on standard input,
//! has the server compute them, prints one line per answer.
//!
//! # Pipelining
//!
//! The client does not wait for an answer before it sends the next request: a
//! sender thread reads standard input and sends each request as soon as it
//! has it, while the main thread reads the answers and prints them. A round
//! trip per request would make N requests cost N round trips; pipelined, they
//! cost about one. It works because the server answers the requests of a
//! connection in the order they came, so the k-th answer is the answer to the
//! k-th request.
//!
//! The output must still follow the input line by line, including the
//! `error: bad input` lines, which are never sent. So the sender tells the
//! printer, through a channel and in input order, what each line became:
//! "sent, an answer will come" or "bad input". The printer walks through that
//! list and reads one answer from the socket for each "sent".
//!
//! Two threads also avoid a deadlock: a client that sent everything before
//! reading anything would, with enough requests, fill the server's receive
//! buffer while the server waits for us to read its answers.
//!
//! When the server goes quiet with answers owed, the client waits at most
//! [`TIMEOUT`] between two pieces of an answer (the handout names no limit,
//! but a client must never hang forever).

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::Duration;

use super::frame::{append_frame, Frame, FrameReader, TooLong};
use super::message::{Op, Request, Response, RESPONSE_LEN};
use crate::tcp_echo::client::connect;

/// How long the client waits for the next byte of an answer it is owed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one input line, in input order.
enum Line {
    /// A request was sent; its answer is to be printed.
    Sent,
    /// Not a command: print `error: bad input`; nothing was sent.
    BadInput,
    /// The sender failed (the connection broke, stdin failed): stop here.
    Failed(String),
}

/// Runs the client. On failure, the error is the one line to print on stderr.
pub fn run(host: &str, port: u16) -> Result<(), String> {
    let stream = connect(host, port)?;
    // Send each request at once instead of letting Nagle's algorithm hold a
    // small write back until the previous one is acknowledged.
    stream
        .set_nodelay(true)
        .map_err(|e| format!("setsockopt TCP_NODELAY: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| format!("setsockopt SO_RCVTIMEO: {e}"))?;
    let sender = stream
        .try_clone()
        .map_err(|e| format!("cannot duplicate the socket: {e}"))?;

    // Bounded: the sender runs at most this many lines ahead of the printer.
    let (lines_tx, lines_rx) = mpsc::sync_channel(1024);
    thread::spawn(move || send_requests(sender, lines_tx));

    // When this returns, with an error or not, main exits; the sender thread
    // is either done or has nothing left worth doing.
    print_answers(&stream, lines_rx)
}

/// The sender thread: one request per command line of standard input.
fn send_requests(mut stream: TcpStream, lines: SyncSender<Line>) {
    // split() yields each line without its '\n'; a last line without one is
    // a line all the same.
    for line in io::stdin().lock().split(b'\n') {
        let item = match line {
            Err(e) => Line::Failed(format!("cannot read standard input: {e}")),
            Ok(line) => match parse_command(&line) {
                None => Line::BadInput,
                Some(request) => {
                    let mut frame = Vec::new();
                    append_frame(&mut frame, &request.encode());
                    match stream.write_all(&frame) {
                        Ok(()) => Line::Sent,
                        Err(e) => Line::Failed(format!("connection lost: {e}")),
                    }
                }
            },
        };
        let failed = matches!(item, Line::Failed(_));
        // An error from send() means the printer has given up already.
        if lines.send(item).is_err() || failed {
            return;
        }
    }
    // Dropping `lines` tells the printer that no more lines will come.
}

/// Parses `add A B`, `sub A B`, `mul A B` or `div A B` (words separated by
/// blanks, `A` and `B` decimal 64-bit integers). `None` for anything else.
pub fn parse_command(line: &[u8]) -> Option<Request> {
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_ascii_whitespace();
    let op = Op::from_name(words.next()?)?;
    // i64's parser rejects anything out of range, such as 2^63.
    let a = words.next()?.parse::<i64>().ok()?;
    let b = words.next()?.parse::<i64>().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(Request { op, a, b })
}

/// The main thread: prints one line per input line, in input order.
fn print_answers(stream: &TcpStream, lines: Receiver<Line>) -> Result<(), String> {
    let mut frames = FrameReader::new(RESPONSE_LEN);
    let mut out = io::stdout().lock();
    for line in lines {
        let text = match line {
            Line::Failed(message) => return Err(message),
            Line::BadInput => "error: bad input".to_string(),
            Line::Sent => match next_response(stream, &mut frames)? {
                Response::Ok(result) => result.to_string(),
                Response::DivisionByZero => "error: division by zero".to_string(),
                Response::BadRequest => "error: bad request".to_string(),
            },
        };
        writeln!(out, "{text}").map_err(|e| format!("cannot write standard output: {e}"))?;
    }
    out.flush().map_err(|e| format!("cannot write standard output: {e}"))
}

/// Reads the next response, in as many reads as it takes. Responses that
/// arrived together with an earlier one are already in `frames`.
fn next_response(mut stream: &TcpStream, frames: &mut FrameReader) -> Result<Response, String> {
    let mut chunk = [0u8; 4096];
    loop {
        match frames.next_frame() {
            Ok(Some(Frame::Body(body))) => {
                return Response::decode(&body).ok_or_else(|| format!("bad response from the server: {body:02x?}"));
            }
            Ok(Some(Frame::Skipped(len))) | Err(TooLong(len)) => {
                return Err(format!(
                    "bad response from the server: a frame of {len} bytes instead of {RESPONSE_LEN}"
                ));
            }
            Ok(None) => {} // not a whole response yet: read more
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err("the server closed the connection before every answer came".into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "no answer from the server for {} s, giving up",
                    TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("connection lost: {e}")),
        };
        frames.push(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_over_the_whole_range() {
        let r = parse_command(b"div -9223372036854775808 -1").unwrap();
        assert_eq!((r.op, r.a, r.b), (Op::Div, i64::MIN, -1));
        let r = parse_command(b"  mul\t9223372036854775807   2 \r").unwrap();
        assert_eq!((r.op, r.a, r.b), (Op::Mul, i64::MAX, 2));
        for bad in [
            &b""[..],
            b"add",
            b"add 1",
            b"add 1 2 3",
            b"pow 1 2",
            b"ADD 1 2",
            b"add 9223372036854775808 1",
            b"add 1.5 2",
            b"add 0x10 2",
            b"add \xff 2",
        ] {
            assert!(parse_command(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
