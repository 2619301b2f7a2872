//! `udpechoclient HOST PORT`: sends each line of stdin as one datagram and
//! prints the echo, retransmitting when a datagram got lost.
//!
//! The client is plain blocking code: it has one request outstanding at a
//! time, so there is nothing to do concurrently. The only tool it needs is a
//! receive timeout (`SO_RCVTIMEO`, set by `set_read_timeout`).

use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// How long to wait for the reply to a send before sending again.
pub const RETRANSMIT_AFTER: Duration = Duration::from_millis(500);

/// How many times a request is sent *again* before giving up (so it is sent
/// `1 + RETRANSMISSIONS` times in all).
pub const RETRANSMISSIONS: u32 = 3;

/// The largest payload a UDP datagram over IPv4 can carry is 65507 bytes; a
/// buffer this big never truncates one, so a reply is compared whole.
const RECV_BUFFER: usize = 65536;

/// Why the client stopped early. `main` prints it as the one line on stderr.
#[derive(Debug)]
pub enum Failure {
    /// No matching reply after all the sends: the handout wants exactly
    /// `timeout` on stderr.
    Timeout,
    /// Anything else: what failed, and the system's reason.
    Io(String, io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => write!(f, "timeout"),
            Failure::Io(what, e) => write!(f, "udpechoclient: {what}: {e}"),
        }
    }
}

/// Attaches a description of what was being done to an `io::Error`.
fn context(what: impl Into<String>) -> impl FnOnce(io::Error) -> Failure {
    let what = what.into();
    move |e| Failure::Io(what, e)
}

/// Runs the client until the end of stdin (`Ok`) or a failure.
pub fn run(host: &str, port: u16) -> Result<(), Failure> {
    let server = resolve(host, port)?;

    // We do not `connect` the socket, we `send_to` the server. A connected UDP
    // socket would make the kernel drop datagrams from anyone else (handy), but
    // it would also report an ICMP "port unreachable" as ECONNREFUSED on the
    // next receive. The lab treats a silent server like a lost datagram
    // (retransmit, then `timeout`), and on an unconnected socket Linux does not
    // report those ICMP errors, so that is exactly what happens. We filter
    // foreign senders ourselves instead (see `wait_for_reply`).
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(context("bind"))?;

    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    let mut line = Vec::new();
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        // Lines are bytes, not necessarily UTF-8: read_until, not read_line.
        line.clear();
        if stdin.read_until(b'\n', &mut line).map_err(context("stdin"))? == 0 {
            return Ok(()); // end of input
        }
        // The datagram is the line without its `\n` (a last line without one
        // is sent as it is).
        if line.last() == Some(&b'\n') {
            line.pop();
        }

        let reply = exchange(&socket, server, &line, &mut buf)?;

        // Flush each line at once: whoever feeds us may wait for this reply
        // before writing the next line.
        stdout
            .write_all(reply)
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush())
            .map_err(context("stdout"))?;
    }
}

/// Resolves `HOST` (a name such as `localhost`, or a dotted address) to an
/// IPv4 socket address. A name may have IPv6 addresses too; the labs use IPv4.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    let what = format!("cannot resolve {host}");
    (host, port)
        .to_socket_addrs()
        .map_err(context(what.clone()))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| Failure::Io(what, io::Error::other("no IPv4 address")))
}

/// Sends `request` and waits for its echo, retransmitting after each silent
/// `RETRANSMIT_AFTER`. Returns the reply (a slice of `buf`).
fn exchange<'b>(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    buf: &'b mut [u8],
) -> Result<&'b [u8], Failure> {
    for _send in 0..=RETRANSMISSIONS {
        // A UDP send puts one whole datagram on the wire, or fails: there is
        // no partial send to loop over.
        socket
            .send_to(request, server)
            .map_err(context(format!("send to {server}")))?;
        // The timer runs from *this* send, as a deadline: datagrams we receive
        // and ignore must not push it back.
        let deadline = Instant::now() + RETRANSMIT_AFTER;
        if let Some(len) = wait_for_reply(socket, server, request, buf, deadline)? {
            return Ok(&buf[..len]);
        }
    }
    Err(Failure::Timeout)
}

/// Receives until a datagram from `server` holding exactly `request` arrives
/// (`Some(its length)`), or until `deadline` passes (`None`).
///
/// Everything else is ignored: a late reply to an earlier request (it arrived
/// after we had retransmitted it, and its twin was already printed), a reply the
/// network duplicated, or a datagram from some other address.
fn wait_for_reply(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    buf: &mut [u8],
    deadline: Instant,
) -> Result<Option<usize>, Failure> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        // Block in recv_from for at most the time left until the deadline.
        socket
            .set_read_timeout(Some(deadline - now))
            .map_err(context("set_read_timeout"))?;
        match socket.recv_from(buf) {
            Ok((len, sender)) if sender == server && buf[..len] == *request => {
                return Ok(Some(len));
            }
            Ok(_) => continue, // not our reply: ignore it, same deadline
            // The receive timeout expired (Unix reports it as EAGAIN).
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io("recv_from".into(), e)),
        }
    }
}
