//! `httpd`: the server's event loop.
//!
//! One tokio task per connection. A task costs a few hundred bytes, not a
//! thread's stack, so thousands of connections are cheap, and a client that
//! sends one byte every 100 ms occupies only its own task: while it waits,
//! the runtime runs the others.
//!
//! Each connection runs this loop:
//!
//! ```text
//! read a request head ─▶ skip its body ─▶ answer ─▶ keep alive? ─yes─▶ (again)
//!                                                        └──no──▶ close
//! ```
//!
//! Requests on one connection are answered one after the other, so
//! pipelined requests (sent at once, without waiting for the answers) are
//! answered in order for free: the next one simply waits in our buffer, or
//! in the kernel's, until we come back for it.

use std::fs::File;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::spawn_blocking;
use tokio::time::{timeout, Instant};

use super::mime::content_type;
use super::path::{self, Found};
use super::request::{self, Body, Next, Request};
use super::response::{self, Status};

/// How long a connection may wait for (the rest of) a request before we
/// close it. The handout forbids closing an idle connection before 5 s.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write to the client may take. A client that stops reading
/// its response would otherwise keep its task and descriptor forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a file we read and send at a time. Files are streamed in
/// pieces of this size, so a 4 GiB file costs 64 KiB of memory, not 4 GiB.
const CHUNK: usize = 64 * 1024;

/// The listen backlog: how many connections the kernel may hold, completed
/// but not yet accepted, while we are busy.
const BACKLOG: i32 = 1024;

/// How long we go on reading (and discarding) after deciding to close
/// (see [`lingering_close`]).
const LINGER: Duration = Duration::from_secs(2);

/// Serves `docroot` on `port` until SIGTERM.
pub async fn run(port: u16, docroot: &Path) -> io::Result<()> {
    // The canonical form (absolute, every symbolic link resolved) is what
    // every served file's real path must start with: see `path::resolve`.
    let docroot = docroot
        .canonicalize()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", docroot.display())))?;
    if !docroot.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", docroot.display()),
        ));
    }
    let listener = listen(port).map_err(|e| io::Error::new(e.kind(), format!("port {port}: {e}")))?;
    eprintln!("httpd: serving {} on port {port}", docroot.display());

    // Rust programs ignore SIGPIPE (the standard library sets it to SIG_IGN
    // before `main`), so writing to a client that has gone away does not
    // kill us: `write` fails with EPIPE, which ends that connection's task
    // only.
    //
    // SIGTERM, on the other hand, should end us, promptly and with status 0.
    // tokio turns the signal into an event we can wait for next to `accept`.
    let mut sigterm = signal(SignalKind::terminate())?;
    let docroot = Arc::new(docroot);
    loop {
        tokio::select! {
            _ = sigterm.recv() => {
                eprintln!("httpd: SIGTERM, exiting");
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve_connection(stream, Arc::clone(&docroot)));
                }
                Err(e) => {
                    // E.g. EMFILE: out of descriptors. The pending connection
                    // stays in the backlog; pause a moment instead of spinning
                    // on the same error.
                    eprintln!("httpd: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

/// Opens the listening socket: IPv4, every local address, `port`.
///
/// We build it with socket2 rather than `TcpListener::bind` to show (and
/// choose) each step: the options must be set between `socket()` and
/// `bind()`.
fn listen(port: u16) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR: after a restart, connections of the previous server may
    // linger in TIME_WAIT on this port; without this option `bind` would
    // fail with "Address already in use" for a minute or so.
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    socket.listen(BACKLOG)?;
    // tokio needs a non-blocking socket: `accept` must return EAGAIN instead
    // of blocking the thread, so that the runtime can wait for readiness
    // with epoll and run other tasks meanwhile.
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// One connection, from accept to close. Errors end the connection only.
async fn serve_connection(mut stream: TcpStream, docroot: Arc<PathBuf>) {
    // A response head and the start of a file leave in one write, but a
    // small response is still a short segment: Nagle's algorithm would hold
    // it back until the previous one is acknowledged, which costs a
    // pipelining or keep-alive client up to 40 ms (delayed ACK) a response.
    let _ = stream.set_nodelay(true);
    match connection(&mut stream, &docroot).await {
        Ok(()) => {}
        // The client went away (reset, broken pipe) or stalled: nothing
        // worth a log line, it happens all the time on the Internet.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::TimedOut
            ) => {}
        Err(e) => eprintln!("httpd: connection: {e}"),
    }
    // Dropping `stream` closes the descriptor.
}

/// The request loop of one connection.
async fn connection(stream: &mut TcpStream, docroot: &Path) -> io::Result<()> {
    // Bytes read from the client and not used yet: part of a head, or whole
    // pipelined requests. `read_request` keeps it under 12 KiB.
    let mut buf = Vec::with_capacity(4096);
    loop {
        let request = match request::read_request(stream, &mut buf, IDLE_TIMEOUT).await? {
            Next::Request(request) => request,
            // Closed cleanly between requests, or idle too long.
            Next::Closed | Next::TimedOut | Next::ClosedMidHead => return Ok(()),
            Next::TooLarge => {
                let bytes = response::error(response::HEADER_FIELDS_TOO_LARGE, false, true);
                write_all(stream, &bytes).await?;
                lingering_close(stream).await;
                return Ok(());
            }
            Next::Malformed(why) => {
                eprintln!("httpd: bad request: {why}");
                let bytes = response::error(response::BAD_REQUEST, false, true);
                write_all(stream, &bytes).await?;
                lingering_close(stream).await;
                return Ok(());
            }
        };

        // Consume the body, if any, so that the next request is found right
        // after it. We cannot find the end of a chunked body without
        // decoding it, which we do not: then this response is the last one.
        let mut keep_alive = request.keep_alive;
        match request.body {
            Body::None => {}
            Body::Length(n) => request::discard_body(stream, &mut buf, n, IDLE_TIMEOUT).await?,
            Body::Unsupported => keep_alive = false,
        }

        let keep_alive = answer(stream, &request, docroot, keep_alive).await?;
        if !keep_alive {
            lingering_close(stream).await;
            return Ok(());
        }
    }
}

/// Sends the response to one request. Returns whether the connection stays
/// open.
async fn answer(stream: &mut TcpStream, request: &Request, docroot: &Path, keep_alive: bool) -> io::Result<bool> {
    let is_head = request.method == "HEAD";
    if request.method != "GET" && !is_head {
        let bytes = response::error(response::NOT_IMPLEMENTED, keep_alive, true);
        write_all(stream, &bytes).await?;
        return Ok(keep_alive);
    }

    // Finding, opening and reading the file are blocking system calls. The
    // kernel has no "readiness" for regular files (they are always "ready",
    // and a read may still wait for the disk), so tokio cannot poll them;
    // like `tokio::fs`, we run them on the runtime's pool of blocking
    // threads. Each trip to that pool costs two thread switches, so one trip
    // finds the file, opens it and reads its first chunk: for most files, all
    // of it.
    let (docroot, target) = (docroot.to_path_buf(), request.target.clone());
    let opened = spawn_blocking(move || open_and_read_first(&docroot, &target, is_head))
        .await
        .map_err(io::Error::other)?;
    match opened {
        Ok((found, first)) => {
            send_file(stream, found, first, is_head, keep_alive).await?;
            Ok(keep_alive)
        }
        Err(status) => {
            // A target that is not a path, or has a broken `%` escape, is a
            // malformed request line: 400, and close, as for other garbage.
            let keep_alive = keep_alive && status != response::BAD_REQUEST;
            send_error(stream, status, is_head, keep_alive).await?;
            Ok(keep_alive)
        }
    }
}

/// Finds and opens the file, and reads its first chunk (unless the request
/// is `HEAD`). Runs on a blocking thread.
fn open_and_read_first(docroot: &Path, target: &str, is_head: bool) -> Result<(Found, Vec<u8>), Status> {
    let mut found = path::resolve(docroot, target)?;
    if is_head {
        return Ok((found, Vec::new()));
    }
    // Nothing has been sent yet, so a failed read can still get a proper
    // error response.
    let first = read_chunk(&mut found.file, found.length).map_err(|_| response::INTERNAL_SERVER_ERROR)?;
    Ok((found, first))
}

/// Reads the next piece of a file being sent: at most [`CHUNK`] bytes, and
/// at most the `remaining` bytes we announced. Blocking.
fn read_chunk(file: &mut File, remaining: u64) -> io::Result<Vec<u8>> {
    let want = CHUNK.min(usize::try_from(remaining).unwrap_or(CHUNK));
    let mut chunk = vec![0u8; want];
    // `read` may return fewer bytes than asked for; the caller loops.
    let n = file.read(&mut chunk)?;
    chunk.truncate(n);
    Ok(chunk)
}

async fn send_error(stream: &mut TcpStream, status: Status, is_head: bool, keep_alive: bool) -> io::Result<()> {
    let bytes = response::error(status, keep_alive, !is_head);
    write_all(stream, &bytes).await
}

/// Sends `200 OK` and the file's bytes, exactly `found.length` of them,
/// one chunk at a time, starting with the chunk already read (`first`).
async fn send_file(
    stream: &mut TcpStream,
    found: Found,
    first: Vec<u8>,
    is_head: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let name = found.path.file_name().unwrap_or_default().to_string_lossy();
    let mut out = response::head(response::OK, content_type(&name), found.length, keep_alive);
    if is_head {
        return write_all(stream, &out).await;
    }

    let mut file = found.file;
    let mut remaining = found.length;
    let mut chunk = first;
    loop {
        if chunk.is_empty() && remaining > 0 {
            // The file shrank after we announced its length. We cannot take
            // the Content-Length back, and sending fewer bytes would leave
            // the client waiting: all that is honest is to close, which the
            // error does.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ));
        }
        remaining -= chunk.len() as u64;
        // The head travels with the first chunk: one write, one segment for
        // a small file. (An empty file: the head alone.)
        out.extend_from_slice(&chunk);
        write_all(stream, &out).await?;
        out.clear();
        if remaining == 0 {
            return Ok(());
        }
        // The blocking thread needs to own the file while it reads; it hands
        // it back with the chunk.
        (file, chunk) = spawn_blocking(move || {
            let chunk = read_chunk(&mut file, remaining)?;
            Ok::<_, io::Error>((file, chunk))
        })
        .await
        .map_err(io::Error::other)??;
    }
}

/// `write_all` with an upper bound on how long the client may take to read.
/// `write_all` loops for us: one `write` may take only part of the bytes
/// when the socket's send buffer is nearly full.
async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    match timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Closes a connection on which the client may still be sending.
///
/// If a socket is closed while unread bytes wait in its receive buffer (the
/// rest of a garbage request, requests pipelined after `Connection: close`),
/// Linux answers with a reset (RST) instead of a normal close (FIN), and a
/// reset may make the client's kernel throw away our response before the
/// client has read it. So: first `shutdown(SHUT_WR)`, which sends our FIN
/// after the response; then read and discard whatever still comes, until the
/// client closes too or [`LINGER`] has passed; only then close.
async fn lingering_close(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
        if n == 0 {
            break; // the client closed its side too
        }
    }
}
