//! One TCP connection played by the harness, towards the program under test
//! (as its client) or from it (as its server).
//!
//! Writes go through a writer task in order (sends, then shutdown or close),
//! so a large send never blocks the steps that read; reads happen only in
//! `expect` steps, which is what lets a scenario stop reading and build
//! back-pressure. Every fragment boundary is the harness's: TCP_NODELAY is
//! on and a send with `gap` waits between its writes.

use crate::escape;
use crate::matcher::{Check, Matcher};
use crate::transcript::Transcript;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

enum WriteOp {
    Data {
        bytes: Arc<Vec<u8>>,
        sizes: Vec<usize>,
        gap: Duration,
        /// Hold back the last partial segment (TCP_CORK) for a shutdown that
        /// follows, so the last bytes and the FIN arrive in one segment.
        cork: bool,
        done: Option<oneshot::Sender<()>>,
    },
    Shutdown,
    Close,
}

/// What the connection has seen of its peer: still open, or how it ended
/// its side (a FIN read as end of stream, or a reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Open,
    Eof,
    Reset,
}

pub struct Conn {
    pub name: String,
    /// The harness's end of the connection, to find it in /proc.
    pub local_port: u16,
    /// A failed write, kept by the writer task until the next step records
    /// it in the transcript of the moment (an `each` member's, a round's).
    write_error: Arc<std::sync::Mutex<Option<String>>>,
    stream: Option<Arc<TcpStream>>,
    writer: Option<(mpsc::UnboundedSender<WriteOp>, tokio::task::JoinHandle<()>)>,
    /// Received and not yet consumed by an expectation.
    pub inbox: Vec<u8>,
    pub peer: PeerState,
    /// Everything queued for sending, and how much of it came back: for
    /// `expect: { echo: true }`.
    sent: Vec<u8>,
    echoed: usize,
    /// From `read_slowly`: read at most this many bytes at a time, with
    /// this pause after each read.
    slow: Option<(usize, Duration)>,
    /// Where this connection's steps record: the scenario's, or an `each`
    /// member's branch.
    pub transcript: Transcript,
}

/// How an expectation ended.
pub enum Outcome {
    /// Matched; these bytes were consumed.
    Matched(Vec<u8>),
    Failed(String),
}

impl Conn {
    pub fn new(name: &str, stream: TcpStream, transcript: Transcript) -> Conn {
        let _ = stream.set_nodelay(true);
        let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
        let stream = Arc::new(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let write_error = Arc::new(std::sync::Mutex::new(None));
        let task = tokio::spawn(writer(stream.clone(), rx, write_error.clone()));
        Conn {
            name: name.to_string(),
            local_port,
            write_error,
            stream: Some(stream),
            writer: Some((tx, task)),
            inbox: Vec::new(),
            peer: PeerState::Open,
            sent: Vec::new(),
            echoed: 0,
            slow: None,
            transcript,
        }
    }

    /// Queues bytes, split as the plan says. Returns at once unless `wait`.
    pub async fn send(
        &mut self,
        bytes: Vec<u8>,
        sizes: Vec<usize>,
        gap: Duration,
        wait: Option<Duration>,
        then_shutdown: bool,
    ) -> Result<(), String> {
        let Some((tx, _)) = &self.writer else {
            return Err(format!("`{}` is closed", self.name));
        };
        self.sent.extend_from_slice(&bytes);
        let (done_tx, done_rx) = oneshot::channel();
        let op = WriteOp::Data {
            bytes: Arc::new(bytes),
            sizes,
            gap,
            cork: then_shutdown,
            done: Some(done_tx),
        };
        if tx.send(op).is_err() || (then_shutdown && tx.send(WriteOp::Shutdown).is_err()) {
            return Err("the connection can no longer send (an earlier write failed)".into());
        }
        if let Some(bound) = wait {
            match tokio::time::timeout(bound, done_rx).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("the write failed (see the transcript)".into()),
                Err(_) => {
                    return Err(format!(
                        "not all bytes could be written within {}ms: the program is not reading",
                        bound.as_millis()
                    ))
                }
            }
        }
        Ok(())
    }

    pub fn shutdown(&mut self) -> Result<(), String> {
        match &self.writer {
            Some((tx, _)) if tx.send(WriteOp::Shutdown).is_ok() => Ok(()),
            _ => Err(format!("`{}` is already closed", self.name)),
        }
    }

    /// Closes after everything queued was written; waits at most `bound`.
    pub async fn close(&mut self, bound: Duration) -> Result<(), String> {
        self.stream = None;
        let Some((tx, task)) = self.writer.take() else {
            return Ok(());
        };
        let _ = tx.send(WriteOp::Close);
        drop(tx);
        match tokio::time::timeout(bound, task).await {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "could not finish sending before closing within {}ms: the program is not reading",
                bound.as_millis()
            )),
        }
    }

    /// Resets the connection: SO_LINGER 0 makes close() send RST, and what
    /// is still queued is dropped.
    pub async fn abort(&mut self) {
        if let Some(stream) = &self.stream {
            let _ = socket2::SockRef::from(stream.as_ref()).set_linger(Some(Duration::ZERO));
        }
        if let Some((tx, task)) = self.writer.take() {
            drop(tx);
            task.abort();
            let _ = task.await;
        }
        self.stream = None;
    }

    /// A write that failed in the background since the last look.
    pub fn take_write_error(&self) -> Option<String> {
        self.write_error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn read_slowly(&mut self, chunk: usize, gap: Duration) {
        self.slow = Some((chunk, gap));
    }

    /// Reads more into the inbox; false when the peer is done or the
    /// deadline passed.
    async fn fill(&mut self, deadline: Instant) -> bool {
        let Some(stream) = self.stream.clone() else {
            return false;
        };
        if self.peer != PeerState::Open {
            return false;
        }
        let limit = self.slow.map(|(c, _)| c).unwrap_or(64 << 10);
        let mut buf = vec![0u8; limit];
        loop {
            match tokio::time::timeout_at(deadline, stream.readable()).await {
                Err(_) => return false,
                Ok(Err(_)) => {
                    self.peer = PeerState::Reset;
                    return false;
                }
                Ok(Ok(())) => {}
            }
            match stream.try_read(&mut buf) {
                Ok(0) => {
                    self.peer = PeerState::Eof;
                    return false;
                }
                Ok(n) => {
                    // Acknowledge what was read now, not up to 40 ms later.
                    // Our socket sends soon after it receives, so Linux
                    // treats it as interactive and delays its ACKs, hoping
                    // to piggyback them on our next bytes; a server that
                    // echoes in small writes is then held by Nagle until
                    // that ACK comes (a one-byte-write echo took 45 ms
                    // instead of 1). TCP_QUICKACK sends the pending ACK and
                    // leaves that mode, until our next write re-enters it:
                    // so after every read.
                    let _ = socket2::SockRef::from(stream.as_ref()).set_tcp_quickack(true);
                    self.inbox.extend_from_slice(&buf[..n]);
                    if let Some((_, gap)) = self.slow {
                        tokio::time::sleep(gap).await;
                    }
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.peer = PeerState::Reset;
                    return false;
                }
            }
        }
    }

    /// Everything sent on this connection and not yet echoed comes back
    /// (`expect: { echo: true }`).
    pub async fn expect_echo(&mut self, bound: Duration) -> Outcome {
        let expected = self.sent[self.echoed..].to_vec();
        let out = self.expect(&Matcher::Exact(expected), bound).await;
        if let Outcome::Matched(b) = &out {
            self.echoed += b.len();
        }
        out
    }

    /// Gathers bytes until `matcher` is satisfied, the bytes can no longer
    /// satisfy it, the peer ends, or `bound` passes.
    pub async fn expect(&mut self, matcher: &Matcher, bound: Duration) -> Outcome {
        let deadline = Instant::now() + bound;
        loop {
            match matcher.check(&self.inbox) {
                Check::Done(n) => return Outcome::Matched(self.inbox.drain(..n).collect()),
                Check::Differs => return Outcome::Failed(differs(matcher, &self.inbox)),
                Check::More => {}
            }
            if !self.fill(deadline).await {
                if let Check::Done(n) = matcher.check(&self.inbox) {
                    return Outcome::Matched(self.inbox.drain(..n).collect());
                }
                let got = escape::quote(&self.inbox, 200);
                let what = matcher.describe();
                let why = match self.peer {
                    PeerState::Eof => format!(
                        "expected {what}, but the connection was closed (EOF) after {} bytes: {got}",
                        self.inbox.len()
                    ),
                    PeerState::Reset => format!(
                        "expected {what}, but the connection was reset after {} bytes: {got}",
                        self.inbox.len()
                    ),
                    PeerState::Open if self.stream.is_none() => {
                        format!("expected {what}, but `{}` is closed", self.name)
                    }
                    PeerState::Open => format!(
                        "expected {what} within {}ms; {} bytes arrived: {got}",
                        bound.as_millis(),
                        self.inbox.len()
                    ),
                };
                return Outcome::Failed(why);
            }
        }
    }

    /// Plays an echo server: bytes are checked against `want` and sent back
    /// as they arrive, so a program that waits for the echo of each piece
    /// before sending the next is served.
    pub async fn echo_back(&mut self, want: &[u8], bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        let mut done = 0;
        while done < want.len() {
            if self.inbox.is_empty() && !self.fill(deadline).await {
                let why = match self.peer {
                    PeerState::Eof => "the connection was closed (EOF)".to_string(),
                    PeerState::Reset => "the connection was reset".to_string(),
                    PeerState::Open => {
                        format!("nothing more arrived within {}ms", bound.as_millis())
                    }
                };
                return Err(format!(
                    "expected {} to echo; {why} after {done} of its {} bytes",
                    escape::quote(want, 80),
                    want.len()
                ));
            }
            let n = self.inbox.len().min(want.len() - done);
            if self.inbox[..n] != want[done..done + n] {
                let diff = escape::first_difference(&want[done..done + n], &self.inbox[..n]).unwrap_or_default();
                return Err(format!(
                    "expected {} (from byte {done} on)\n  {diff}",
                    escape::quote(&want[done..], 80)
                ));
            }
            let piece: Vec<u8> = self.inbox.drain(..n).collect();
            let len = piece.len();
            self.send(piece, vec![len], Duration::ZERO, None, false).await?;
            done += n;
        }
        Ok(())
    }

    /// Expects the peer to close: no more bytes, then EOF.
    pub async fn expect_end(&mut self, want: PeerState, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        while self.inbox.is_empty() && self.fill(deadline).await {}
        let what = if want == PeerState::Eof {
            "end of stream (EOF)"
        } else {
            "a reset (RST)"
        };
        if !self.inbox.is_empty() {
            return Err(format!(
                "expected {what}, but {} more bytes arrived: {}",
                self.inbox.len(),
                escape::quote(&self.inbox, 200)
            ));
        }
        match (self.peer, want) {
            (a, b) if a == b => Ok(()),
            (PeerState::Open, _) => Err(format!(
                "expected {what} within {}ms; the connection stayed open",
                bound.as_millis()
            )),
            (PeerState::Eof, _) => Err(format!("expected {what}, but the connection was closed normally (EOF)")),
            (PeerState::Reset, _) => Err(format!("expected {what}, but the connection was reset")),
        }
    }
}

/// Why bytes that already differ from what `matcher` wants can't meet it.
fn differs(matcher: &Matcher, got: &[u8]) -> String {
    match matcher.mismatch(got) {
        Some((want, got, diff)) => format!("expected {want}\n  got      {got}\n  {diff}"),
        None => format!("expected {}, got {}", matcher.describe(), escape::quote(got, 200)),
    }
}

/// The harness's listening sockets for a client under test: 127.0.0.1, and
/// ::1 where IPv6 exists, so a client that resolves `localhost` to ::1 first
/// is served too. Loopback only, whatever the isolation.
pub struct Listener {
    v4: TcpListener,
    v6: Option<TcpListener>,
}

impl Listener {
    pub fn bind(port: u16) -> io::Result<Listener> {
        let v4 = TcpSocket::new_v4()?;
        v4.set_reuseaddr(true)?;
        v4.bind(([127, 0, 0, 1], port).into())?;
        let v6 = TcpSocket::new_v6().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))?;
            s.listen(128)
        });
        Ok(Listener {
            v4: v4.listen(128)?,
            v6: v6.ok(),
        })
    }

    pub async fn accept(&self) -> io::Result<(TcpStream, std::net::SocketAddr)> {
        match &self.v6 {
            Some(v6) => tokio::select! {
                r = self.v4.accept() => r,
                r = v6.accept() => r,
            },
            None => self.v4.accept().await,
        }
    }
}

async fn writer(
    stream: Arc<TcpStream>,
    mut ops: mpsc::UnboundedReceiver<WriteOp>,
    error: Arc<std::sync::Mutex<Option<String>>>,
) {
    while let Some(op) = ops.recv().await {
        match op {
            WriteOp::Data {
                bytes,
                sizes,
                gap,
                cork,
                done,
            } => {
                if cork {
                    // The shutdown queued behind these bytes uncorks: the
                    // kernel then sends the last bytes and the FIN together.
                    let _ = socket2::SockRef::from(stream.as_ref()).set_tcp_cork(true);
                }
                let mut offset = 0;
                for (i, size) in sizes.iter().enumerate() {
                    if i > 0 && !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    if let Err(e) = write_all(&stream, &bytes[offset..offset + size]).await {
                        let text = format!("write failed after {offset} of {} bytes: {}", bytes.len(), os_error(&e));
                        *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                        return;
                    }
                    offset += size;
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            WriteOp::Shutdown => {
                let _ = socket2::SockRef::from(stream.as_ref()).shutdown(std::net::Shutdown::Write);
            }
            WriteOp::Close => return,
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `ECONNRESET (Connection reset by peer)`.
pub fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{} ({})", nix::errno::Errno::from_raw(code), e.kind()),
        None => e.to_string(),
    }
}
