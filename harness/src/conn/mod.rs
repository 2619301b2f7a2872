//! One TCP connection played by the harness, towards the program under test
//! (as its client) or from it (as its server).
//!
//! Writes go through a writer task in order (sends, then shutdown or close),
//! so a large send never blocks the steps that read; reads happen only in
//! `expect` steps, which is what lets a scenario stop reading and build
//! back-pressure. Every fragment boundary is the harness's: TCP_NODELAY is
//! on and a send with `gap` waits between its writes.
//!
//! Here the connection and its writing side; `reader.rs` the one read loop
//! (`Conn::gather`) and the waits built on it; `stall.rs` when the kernel
//! shows nothing more can come; `writer.rs` the writer task; `socket.rs`
//! the grader's listeners and connects. What a step makes of the bytes
//! (HTTP messages, frames) is the step family's.

mod reader;
mod socket;
mod stall;
mod writer;

pub use socket::{connect, Listener};
pub(crate) use stall::{Quiet, LOOK_EVERY, STALLED_LOOKS};
use writer::{queue, writer, WriteOp};

use crate::program_time::{with_busy_note, Deadline};
use crate::transcript::Transcript;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// What the connection has seen of its peer: still open, or how it ended
/// its side (a FIN read as end of stream, or a reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Open,
    Eof,
    Reset,
}

impl PeerState {
    /// How the program ended its side, for the transcript: not yet, FIN, RST.
    pub fn ended(self) -> Option<crate::transcript::Ended> {
        match self {
            PeerState::Open => None,
            PeerState::Eof => Some(crate::transcript::Ended::Fin),
            PeerState::Reset => Some(crate::transcript::Ended::Rst),
        }
    }
}

pub struct Conn {
    pub name: String,
    /// The harness's end of the connection, to find it in /proc.
    pub local_port: u16,
    /// The program's end: the scenario's port when the harness connected,
    /// the client's own port when the harness accepted.
    pub remote_port: u16,
    /// A failed write, kept by the writer task until the next step records
    /// it in the transcript of the moment (an `each` member's, a round's).
    write_error: Arc<std::sync::Mutex<Option<String>>>,
    /// A write failed because the program reset the connection. The kernel
    /// reports a reset once: when a write meets it first, a later read sees
    /// only the end of the stream, and this tells the two apart.
    reset_on_write: Arc<std::sync::atomic::AtomicBool>,
    /// Writes queued for the writer task and not yet done: zero when
    /// everything the steps sent was handed to the kernel.
    pending: Arc<AtomicUsize>,
    /// The program at the far end, when the harness knows it (a `connect`
    /// to the server): lets an expectation see that nothing more can come.
    pub far_end: Option<FarEnd>,
    stream: Option<Arc<TcpStream>>,
    writer: Option<(mpsc::UnboundedSender<WriteOp>, tokio::task::JoinHandle<()>)>,
    /// Received and not yet consumed by an expectation.
    pub inbox: Vec<u8>,
    /// Everything expectations took from the inbox, in order (as they took
    /// it: joined only for a `same_as` that asks).
    pub taken: Vec<Bytes>,
    pub peer: PeerState,
    /// The harness opened it (`connect`), so the program at the other end
    /// is the server under test, not a client.
    pub outgoing: bool,
    /// The harness half-closed or closed its side: from then on the
    /// program may end the connection too.
    pub shut_down: bool,
    /// The harness reset the connection (`abort`).
    pub aborted: bool,
    /// What was queued for sending and has not come back yet, send by send
    /// (the writer's very bytes, shared): for `expect: { echo: true }`.
    unechoed: Vec<Bytes>,
    /// From `read_slowly`: read at most this many bytes at a time, with
    /// this pause after each read.
    slow: Option<(usize, Duration)>,
    /// Where this connection's steps record: the scenario's, or an `each`
    /// member's branch.
    pub transcript: Transcript,
}

/// The program at the other end of a connection: its main process and the
/// port it serves, to find its end of the connection in the socket table.
#[derive(Clone, Copy, Debug)]
pub struct FarEnd {
    pub pid: i32,
    pub port: u16,
}

/// What `fill` did: how much it wrote, and whether the kernel showed the
/// program's receive window closed (else it wrote `at_most`).
pub struct Filled {
    pub written: usize,
    pub window_closed: bool,
}

/// How an expectation ended.
pub enum Outcome {
    /// Matched; these bytes were consumed.
    Matched(Bytes),
    Failed(String),
}

/// What a reader makes of the bytes gathered so far (`Conn::gather`).
pub(crate) enum Parse<T> {
    /// A whole value, made of the first this many bytes.
    Done(T, usize),
    /// The bytes can never make one: why, in words.
    Wrong(String),
    /// Not yet: more bytes may make one.
    More,
}

/// How `Conn::gather` ended.
pub(crate) enum Gathered<T> {
    /// The value, and the bytes it was made of (taken from the inbox).
    Parsed(T, Bytes),
    Wrong(String),
    /// The stream ended first: the peer's EOF or reset, or the grader's
    /// own close.
    Ended,
    /// The bound passed (the deadline says whether load stretched it).
    Bound(Deadline),
    /// The kernel showed that nothing more can come.
    Stalled,
}

impl Conn {
    pub fn new(name: &str, stream: TcpStream, transcript: Transcript) -> Conn {
        let _ = stream.set_nodelay(true);
        let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
        let remote_port = stream.peer_addr().map(|a| a.port()).unwrap_or(0);
        let stream = Arc::new(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let write_error = Arc::new(std::sync::Mutex::new(None));
        let reset_on_write = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pending = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(writer(
            stream.clone(),
            rx,
            write_error.clone(),
            reset_on_write.clone(),
            pending.clone(),
        ));
        Conn {
            name: name.to_string(),
            local_port,
            remote_port,
            write_error,
            reset_on_write,
            pending,
            far_end: None,
            stream: Some(stream),
            writer: Some((tx, task)),
            inbox: Vec::new(),
            taken: Vec::new(),
            peer: PeerState::Open,
            outgoing: false,
            shut_down: false,
            aborted: false,
            unechoed: Vec::new(),
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
        let bytes = Bytes::from(bytes);
        self.unechoed.push(bytes.clone());
        self.shut_down |= then_shutdown;
        let (done_tx, done_rx) = oneshot::channel();
        let op = WriteOp::Data {
            bytes,
            sizes,
            gap,
            cork: then_shutdown,
            done: Some(done_tx),
        };
        let queue = |op| queue(tx, &self.pending, op);
        if !queue(op) || (then_shutdown && !queue(WriteOp::Shutdown)) {
            return Err("the connection can no longer send (an earlier write failed)".into());
        }
        if let Some(bound) = wait {
            let mut deadline = Deadline::after(bound);
            match deadline.within(done_rx).await {
                Some(Ok(())) => {}
                Some(Err(_)) => return Err("the write failed (see the transcript)".into()),
                None => {
                    return Err(with_busy_note(
                        format!(
                            "not all bytes could be written within {}ms: the program is not reading",
                            bound.as_millis()
                        ),
                        &deadline,
                    ))
                }
            }
        }
        Ok(())
    }

    pub fn shutdown(&mut self) -> Result<(), String> {
        self.shut_down = true;
        // With nothing queued (and no write failed), the FIN goes now, in
        // order with whatever step comes next: a reset right after it comes
        // after it. With bytes queued it waits its turn behind them, and an
        // `abort` before they are written drops it with them.
        let failed = self.write_error.lock().map(|e| e.is_some()).unwrap_or(true);
        if self.pending.load(Ordering::SeqCst) == 0 && !failed {
            if let (Some(stream), Some(_)) = (&self.stream, &self.writer) {
                let _ = socket2::SockRef::from(stream.as_ref()).shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
        }
        match &self.writer {
            Some((tx, _)) if queue(tx, &self.pending, WriteOp::Shutdown) => Ok(()),
            _ => Err(format!("`{}` is already closed", self.name)),
        }
    }

    /// Closes after everything queued was written; waits at most `bound`.
    /// What the program sent that no step read is read first (and kept in
    /// the transcript): a socket closed with bytes unread makes the kernel
    /// reset the connection, and the program would meet a reset the grader
    /// caused, not the graceful close it was promised. (`abort` resets on
    /// purpose.)
    pub async fn close(&mut self, bound: Duration) -> Result<(), String> {
        self.shut_down = true;
        let stream = self.stream.take();
        let Some((tx, task)) = self.writer.take() else {
            return Ok(());
        };
        // Counted like every operation: the writer counts each one done.
        let _ = queue(&tx, &self.pending, WriteOp::Close);
        drop(tx);
        let mut deadline = Deadline::after(bound);
        if deadline.within(task).await.is_none() {
            return Err(with_busy_note(
                format!(
                    "could not finish sending before closing within {}ms: the program is not reading",
                    bound.as_millis()
                ),
                &deadline,
            ));
        }
        if let Some(stream) = stream {
            self.read_unread(&stream);
        }
        Ok(())
    }

    /// Reads what waits in the kernel's receive queue, without waiting, and
    /// records it with what the inbox held that no step took.
    fn read_unread(&mut self, stream: &TcpStream) {
        let mut unread = std::mem::take(&mut self.inbox);
        let mut buf = [0u8; 64 << 10];
        while let Ok(n) = stream.try_read(&mut buf) {
            if n == 0 {
                break;
            }
            unread.extend_from_slice(&buf[..n]);
        }
        if !unread.is_empty() {
            self.transcript.record_full_only(
                &self.name,
                format!(
                    "<- {} read before closing, which no step expected",
                    crate::escape::quote(&unread, 60)
                ),
            );
        }
    }

    /// Resets the connection: SO_LINGER 0 makes close() send RST, and what
    /// is still queued is dropped.
    pub async fn abort(&mut self) {
        self.aborted = true;
        if let Some(stream) = &self.stream {
            let _ = socket2::SockRef::from(stream.as_ref()).set_linger(Some(Duration::ZERO));
        }
        if let Some((tx, task)) = self.writer.take() {
            drop(tx);
            task.abort();
            let _ = task.await;
            // The operations still queued were dropped with the task:
            // nothing is pending any more (see `written`).
            self.pending.store(0, Ordering::SeqCst);
        }
        self.stream = None;
    }

    /// The program stopped serving the connection before the client was
    /// done: its EOF came while the harness still had its side open, or its
    /// reset came at all (the kernel resets a connection closed with bytes
    /// not yet read: the program closed before it read the client's EOF,
    /// half-close or not).
    pub fn ended_by_program_first(&self) -> bool {
        match self.peer {
            PeerState::Open => false,
            PeerState::Eof => !self.shut_down && !self.aborted,
            PeerState::Reset => !self.aborted,
        }
    }

    /// Writes text lines until the program stops taking them (see
    /// `lang::tcp::Fill`), after whatever is queued.
    pub async fn push_until_full(&mut self, at_most: usize, bound: Duration) -> Result<Filled, String> {
        let Some((tx, _)) = &self.writer else {
            return Err(format!("`{}` is closed", self.name));
        };
        let (done, filled) = oneshot::channel();
        let deadline = Deadline::after(bound);
        if !queue(
            tx,
            &self.pending,
            WriteOp::Fill {
                at_most,
                deadline,
                done,
            },
        ) {
            return Err("the connection can no longer send (an earlier write failed)".into());
        }
        let result = match filled.await {
            Ok(result) => result,
            Err(_) => Err("the write failed (see the transcript)".into()),
        };
        if result.is_err() && self.reset_on_write.load(std::sync::atomic::Ordering::Relaxed) {
            self.peer = PeerState::Reset;
        }
        result
    }

    /// Everything the steps queued has been written to the kernel.
    pub fn written(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }

    /// Bytes arrived that no step has taken yet (a part of an answer).
    pub fn holds_unread(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// A write that failed in the background since the last look.
    pub fn take_write_error(&self) -> Option<String> {
        self.write_error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn read_slowly(&mut self, chunk: usize, gap: Duration) {
        self.slow = Some((chunk, gap));
    }

    /// A test for "the writer task has work left", to call later (the
    /// connection need not stay borrowed).
    pub fn writes_pending(&self) -> impl Fn() -> bool {
        let pending = self.pending.clone();
        move || pending.load(Ordering::SeqCst) != 0
    }
}
