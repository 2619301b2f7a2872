//! `echoclient HOST PORT`: sends standard input line by line and prints the
//! echo of each line.
//!
//! This client uses plain blocking sockets from `std`: it does one thing at a
//! time, so `async` would only hide the system calls. There is one exception,
//! explained in [`run`]: lines are sent from a second thread, because a long
//! line must be sent while its echo is being read.

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The client gives up when the server makes no progress for this long.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the client. On failure, the error is the one line to print on stderr.
pub fn run(host: &str, port: u16) -> Result<(), String> {
    let stream = connect(host, port)?;

    // A read that gets no byte for TIMEOUT fails with WouldBlock/TimedOut.
    // The clock restarts with every read call, that is with every piece of
    // the echo that arrives: exactly "5 seconds without progress".
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| format!("setsockopt SO_RCVTIMEO: {e}"))?;

    // Why a writer thread? The server echoes while we are still sending. If we
    // sent a 1 MiB line with one blocking write_all and only read afterwards,
    // the echo would fill our receive buffer, then the server's send buffer;
    // the server would stop reading, its receive buffer and our send buffer
    // would fill, and our write would block forever: a deadlock. So this
    // thread sends while the main thread reads. It only ever sends one line,
    // the one whose echo the main thread is waiting for.
    let (lines_to_send, lines) = mpsc::channel::<Vec<u8>>();
    let mut sender = stream
        .try_clone()
        .map_err(|e| format!("cannot duplicate the socket: {e}"))?;
    let writer = thread::spawn(move || {
        for line in lines {
            // A failed write (EPIPE, ECONNRESET) means the connection is gone;
            // the main thread learns it too, by reading EOF or an error, and
            // reports it. So the writer just stops.
            if sender.write_all(&line).is_err() {
                break;
            }
        }
    });

    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let mut reader = &stream;
    let mut line = Vec::new();
    loop {
        line.clear();
        // read_until keeps the '\n'; the last line may lack it. A line may be
        // of any length: the buffer grows as needed.
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        if n == 0 {
            break; // end of standard input
        }
        let len = line.len();
        // Hand the line to the writer (moving the buffer, not copying it).
        lines_to_send
            .send(std::mem::take(&mut line))
            .map_err(|_| "the connection was lost".to_string())?;

        let echo = read_exactly(&mut reader, len)?;
        output
            .write_all(&echo)
            .and_then(|()| output.flush())
            .map_err(|e| format!("cannot write standard output: {e}"))?;
    }

    // End of input: every echo has arrived, so the writer has sent every line.
    drop(lines_to_send);
    let _ = writer.join();
    // Close the connection: shutdown() sends our FIN (the server sees EOF),
    // then dropping the stream closes the descriptor.
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// Resolves `host` and connects to the first IPv4 address that accepts.
/// On failure, the error is the line to print on stderr.
pub fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    // getaddrinfo(): a name like "localhost" may resolve to several addresses
    // (and to IPv6 ones, which these labs do not use).
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .filter(|a| matches!(a.ip(), IpAddr::V4(_)))
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}: no IPv4 address"));
    }
    let mut last_error = None;
    for addr in &addrs {
        // connect() with an upper bound: a host that never answers would
        // otherwise keep us waiting for minutes.
        match TcpStream::connect_timeout(addr, TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    let e = last_error.expect("at least one address was tried");
    Err(format!("cannot connect to {host}:{port}: {e}"))
}

/// Reads exactly `len` bytes, in as many pieces as they arrive.
fn read_exactly(stream: &mut &TcpStream, len: usize) -> Result<Vec<u8>, String> {
    let mut echo = vec![0u8; len];
    let mut got = 0;
    // One read returns what has arrived so far, which may be a single byte:
    // loop until the whole echo is here.
    while got < len {
        match stream.read(&mut echo[got..]) {
            Ok(0) => {
                return Err(format!(
                    "the server closed the connection after {got} of {len} bytes of the echo"
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "no progress from the server for {} s, giving up",
                    TIMEOUT.as_secs()
                ))
            }
            Err(e) => return Err(format!("connection lost: {e}")),
        }
    }
    Ok(echo)
}
