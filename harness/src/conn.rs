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
use crate::program_time::{with_busy_note, Deadline};
use crate::transcript::Transcript;
use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

enum WriteOp {
    Data {
        bytes: Bytes,
        sizes: Vec<usize>,
        gap: Duration,
        /// Hold back the last partial segment (TCP_CORK) for a shutdown that
        /// follows, so the last bytes and the FIN arrive in one segment.
        cork: bool,
        done: Option<oneshot::Sender<()>>,
    },
    Shutdown,
    Close,
    /// Write until the program's window closes (see `Conn::push_until_full`).
    Fill {
        at_most: usize,
        deadline: Deadline,
        done: oneshot::Sender<Result<Filled, String>>,
    },
}

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

/// How long an expectation waits without a byte before it looks at the
/// kernel, and how many looks in a row must find the stream stalled.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(50);
pub(crate) const STALLED_LOOKS: u32 = 4;

/// Consecutive looks at a quiet connection: stalled once `STALLED_LOOKS`
/// looks in a row found it so with the program's CPU time unchanged.
#[derive(Default)]
pub(crate) struct Quiet {
    looks: u32,
    cpu: Option<u64>,
}

impl Quiet {
    /// Takes one look's finding; true once the stream is stalled.
    pub(crate) fn look(&mut self, stalled: Option<u64>) -> bool {
        match stalled {
            Some(cpu) if self.cpu.is_none_or(|before| before == cpu) => {
                self.looks += 1;
                self.cpu = Some(cpu);
            }
            Some(cpu) => {
                self.looks = 1;
                self.cpu = Some(cpu);
            }
            None => *self = Quiet::default(),
        }
        self.looks >= STALLED_LOOKS
    }
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
    /// `spec::tcp::Fill`), after whatever is queued.
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

    /// Reads more into the inbox until `deadline` passes in the programs'
    /// time (`fill` stops at its wall-clock end); false when the peer is
    /// done or the deadline passed.
    async fn fill_within(&mut self, deadline: &mut Deadline) -> bool {
        loop {
            if self.fill(deadline.end()).await {
                return true;
            }
            if self.peer != PeerState::Open || self.stream.is_none() || deadline.passed() {
                return false;
            }
        }
    }

    /// Reads more into the inbox; false when the peer is done or the
    /// deadline passed.
    /// What a read of 0 bytes means: the end of the stream, or a reset that
    /// a write met first (the kernel reports a reset once).
    fn end_of_stream(&self) -> PeerState {
        if self.reset_on_write.load(std::sync::atomic::Ordering::Relaxed) {
            PeerState::Reset
        } else {
            PeerState::Eof
        }
    }

    async fn fill(&mut self, deadline: Instant) -> bool {
        let Some(stream) = self.stream.clone() else {
            return false;
        };
        if self.peer != PeerState::Open {
            return false;
        }
        // A slow reader takes its chunk at a time; otherwise one read of
        // whatever the kernel holds (up to 256 KiB), straight into the inbox
        // (no zeroed buffer, no copy). One read, then the expectation looks:
        // reading on while the program writes would take bytes no step asked
        // for (a client that leaves mid-download must leave mid-download).
        let limit = self.slow.map(|(c, _)| c);
        let mut buf = vec![0u8; limit.unwrap_or(0)];
        loop {
            if limit.is_none() {
                self.inbox.reserve(256 << 10);
                match stream.try_read_buf(&mut self.inbox) {
                    Ok(0) => {
                        self.peer = self.end_of_stream();
                        return false;
                    }
                    Ok(_) => {
                        // Acknowledge at once: see the slow path below.
                        let _ = socket2::SockRef::from(stream.as_ref()).set_tcp_quickack(true);
                        return true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.peer = PeerState::Reset;
                        return false;
                    }
                }
            }
            match tokio::time::timeout_at(deadline, stream.readable()).await {
                Err(_) => return false,
                Ok(Err(_)) => {
                    self.peer = PeerState::Reset;
                    return false;
                }
                Ok(Ok(())) => {}
            }
            if limit.is_none() {
                continue;
            }
            match stream.try_read(&mut buf) {
                Ok(0) => {
                    self.peer = self.end_of_stream();
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

    /// What the kernel shows when the program at the far end can send
    /// nothing more on this connection: the harness has handed over all it
    /// sent and the program has taken it (both ends' queues are empty), and
    /// the program waits in a system call with nothing queued toward us, and
    /// not one that ends by itself (`timed_wait`). The
    /// CPU time its threads wanted, to tell a later look that it did nothing
    /// in between. `None` when any of that is not so, or unknown.
    fn stalled(&self) -> Option<u64> {
        let far = self.far_end?;
        if self.pending.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let (ours, theirs) = crate::witness::connection_queues(far.pid, far.port, self.local_port)?;
        if ours != (0, 0) || theirs != (0, 0) || !crate::witness::tree_at_rest(far.pid) {
            return None;
        }
        // Asleep with a timeout: it may yet send when it wakes.
        if crate::timed_wait::in_tree(far.pid) {
            return None;
        }
        Some(crate::witness::tree_demand(far.pid)?.values().sum())
    }

    /// A test for "the writer task has work left", to call later (the
    /// connection need not stay borrowed).
    pub fn writes_pending(&self) -> impl Fn() -> bool {
        let pending = self.pending.clone();
        move || pending.load(Ordering::SeqCst) != 0
    }

    /// The first `n` bytes of the inbox, taken by an expectation (and kept
    /// in `taken`, for another connection's `same_as`).
    ///
    /// Neither copied twice nor byte by byte: a megabyte drained and
    /// collected took a millisecond. Most of a large inbox is handed over
    /// whole (the little that follows is copied out); a few bytes out of a
    /// large buffer are copied, so that `taken` does not keep the buffer.
    fn take(&mut self, n: usize) -> Bytes {
        let bytes = if n >= self.inbox.capacity() / 2 {
            let rest = self.inbox[n..].to_vec();
            let mut all = std::mem::replace(&mut self.inbox, rest);
            all.truncate(n);
            Bytes::from(all)
        } else {
            let bytes = Bytes::copy_from_slice(&self.inbox[..n]);
            self.inbox.drain(..n);
            bytes
        };
        self.taken.push(bytes.clone());
        bytes
    }

    /// Who plays what on this connection, for messages: the grader is a
    /// client of the student's server, or the server of their client.
    fn roles(&self) -> (&'static str, &'static str) {
        if self.outgoing {
            ("the grader", "your server")
        } else {
            ("the grader, as your server,", "your client")
        }
    }

    /// Everything sent on this connection and not yet echoed comes back
    /// (`expect: { echo: true }`).
    pub async fn expect_echo(&mut self, bound: Duration) -> Outcome {
        let expected = match self.unechoed.as_slice() {
            [one] => one.clone(),
            all => all.concat().into(),
        };
        let out = self.expect(&Matcher::Exact(expected), bound).await;
        if let Outcome::Matched(_) = &out {
            // Exactly what was unechoed came back.
            self.unechoed.clear();
        }
        out
    }

    /// Gathers bytes until `matcher` is satisfied, the bytes can no longer
    /// satisfy it, the peer ends, `bound` passes, or the kernel shows that
    /// nothing more can come (see `stalled`).
    pub async fn expect(&mut self, matcher: &Matcher, bound: Duration) -> Outcome {
        let mut deadline = Deadline::after(bound);
        let mut quiet = Quiet::default();
        loop {
            match matcher.check(&self.inbox) {
                Check::Done(n) => return Outcome::Matched(self.take(n)),
                Check::Differs => return Outcome::Failed(differs(matcher, &self.inbox)),
                Check::More => {}
            }
            let look_at = Instant::now() + LOOK_EVERY;
            if self.fill(deadline.end().min(look_at)).await {
                quiet = Quiet::default();
                continue;
            }
            let waiting = self.peer == PeerState::Open && self.stream.is_some() && !deadline.passed();
            if waiting && !quiet.look(self.stalled()) {
                continue;
            }
            if waiting {
                let (grader, peer) = self.roles();
                let arrived = match self.inbox.len() {
                    0 => "nothing arrived".to_string(),
                    n => format!("{} arrived ({})", escape::bytes(n), escape::quote(&self.inbox, 200)),
                };
                let why = format!(
                    "{grader} expected {}; {arrived}, and for {}ms the kernel showed nothing in flight and \
                     {peer} waiting in a system call: it had nothing more to send",
                    matcher.describe(),
                    (LOOK_EVERY * STALLED_LOOKS).as_millis(),
                );
                let why = match matcher.shortfall(&self.inbox) {
                    Some(rest) => format!("{why}\n  {rest}"),
                    None => why,
                };
                return Outcome::Failed(why);
            }
            // The program ended the connection, or the bound passed.
            if let Check::Done(n) = matcher.check(&self.inbox) {
                return Outcome::Matched(self.take(n));
            }
            let got = escape::quote(&self.inbox, 200);
            let what = matcher.describe();
            let (grader, peer) = self.roles();
            let n = self.inbox.len();
            let why = match self.peer {
                PeerState::Eof => {
                    format!("{grader} expected {what}, but {peer} closed the connection (EOF) after {n} bytes: {got}")
                }
                PeerState::Reset => {
                    format!("{grader} expected {what}, but {peer} reset the connection after {n} bytes: {got}")
                }
                PeerState::Open if self.stream.is_none() => {
                    format!("{grader} expected {what}, but `{}` is closed", self.name)
                }
                PeerState::Open => with_busy_note(
                    format!(
                        "{grader} expected {what} within {}ms; {n} bytes arrived: {got}",
                        bound.as_millis()
                    ),
                    &deadline,
                ),
            };
            let why = match matcher.shortfall(&self.inbox) {
                Some(rest) => format!("{why}\n  {rest}"),
                None => why,
            };
            return Outcome::Failed(why);
        }
    }

    /// Reads one HTTP message (a request, or a response; `to_head`: the
    /// answer to a HEAD request): the harness's parser (`crate::http`) says
    /// where it ends. Fails on a malformed message, an end of the stream
    /// before the message is whole, the bound, or (as `expect` does) once
    /// the kernel shows that nothing more can come.
    pub async fn read_message(
        &mut self,
        request: bool,
        to_head: bool,
        bound: Duration,
    ) -> Result<crate::http::Message, String> {
        use crate::http::{parse_message, Parsed};
        let mut deadline = Deadline::after(bound);
        let mut quiet = Quiet::default();
        let what = if request { "a request" } else { "a response" };
        loop {
            let ended = self.peer != PeerState::Open || self.stream.is_none();
            match parse_message(&self.inbox, request, to_head, ended) {
                Parsed::Done(m) => {
                    self.take(m.size());
                    return Ok(m);
                }
                Parsed::Bad(why) => {
                    let how = match self.peer {
                        PeerState::Reset => " (the connection was reset)",
                        _ => "",
                    };
                    return Err(format!("expected {what}: {why}{how}"));
                }
                Parsed::More => {}
            }
            let look_at = Instant::now() + LOOK_EVERY;
            if self.fill(deadline.end().min(look_at)).await {
                quiet = Quiet::default();
                continue;
            }
            if self.peer != PeerState::Open {
                // Parsed again, as a stream that ended.
                continue;
            }
            let (grader, peer) = self.roles();
            let arrived = match self.inbox.len() {
                0 => "nothing arrived".to_string(),
                n => format!("{} arrived ({})", escape::bytes(n), escape::quote(&self.inbox, 200)),
            };
            if deadline.passed() {
                return Err(with_busy_note(
                    format!("{grader} expected {what} within {}ms; {arrived}", bound.as_millis()),
                    &deadline,
                ));
            }
            if quiet.look(self.stalled()) {
                let why = match parse_message(&self.inbox, request, to_head, true) {
                    Parsed::Bad(why) if !self.inbox.is_empty() => format!("\n  as it stands: {why}"),
                    _ => String::new(),
                };
                return Err(format!(
                    "{grader} expected {what}; {arrived}, and for {}ms the kernel showed nothing in flight and \
                     {peer} waiting in a system call: it had nothing more to send{why}",
                    (LOOK_EVERY * STALLED_LOOKS).as_millis(),
                ));
            }
        }
    }

    /// Plays an echo server: bytes are checked against `want` and sent back
    /// as they arrive, so a program that waits for the echo of each piece
    /// before sending the next is served.
    pub async fn echo_back(&mut self, want: &[u8], bound: Duration) -> Result<(), String> {
        let mut deadline = Deadline::after(bound);
        let mut done = 0;
        while done < want.len() {
            if self.inbox.is_empty() && !self.fill_within(&mut deadline).await {
                let (grader, peer) = self.roles();
                let why = match self.peer {
                    PeerState::Eof => format!("{peer} closed the connection (EOF)"),
                    PeerState::Reset => format!("{peer} reset the connection"),
                    PeerState::Open => with_busy_note(
                        format!("nothing more arrived within {}ms", bound.as_millis()),
                        &deadline,
                    ),
                };
                return Err(format!(
                    "{grader} expected {} to echo; {why} after {done} of its {} bytes (those were right)",
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

    /// Nothing arrives for `span`: no byte, and no end of the stream.
    pub async fn expect_silence(&mut self, span: Duration) -> Result<(), String> {
        let mut until = Deadline::on_the_wall_clock(span);
        // Bytes already received and not consumed arrived too.
        if self.inbox.is_empty() && self.peer == PeerState::Open {
            self.fill_within(&mut until).await;
        }
        let (grader, peer) = self.roles();
        if !self.inbox.is_empty() {
            return Err(format!(
                "{grader} expected nothing for {}ms, but {} arrived: {}",
                span.as_millis(),
                escape::bytes(self.inbox.len()),
                escape::quote(&self.inbox, 200)
            ));
        }
        match self.peer {
            PeerState::Open => Ok(()),
            PeerState::Eof => Err(format!(
                "{grader} expected nothing for {}ms, but {peer} closed the connection",
                span.as_millis()
            )),
            PeerState::Reset => Err(format!(
                "{grader} expected nothing for {}ms, but {peer} reset the connection",
                span.as_millis()
            )),
        }
    }

    /// Takes whatever arrives until the program ends the connection (a FIN
    /// or a reset), within `bound`; fails if it keeps it open. Returns the
    /// first 64 KiB of what came, and how many bytes came in all: a program
    /// that writes on and on neither holds the step past its bound nor
    /// fills the grader's memory.
    pub async fn take_until_end(&mut self, bound: Duration) -> Result<(Vec<u8>, usize), String> {
        const KEPT: usize = 64 << 10;
        let mut deadline = Deadline::after(bound);
        let (mut kept, mut total) = (Vec::new(), 0);
        loop {
            let more = self.fill_within(&mut deadline).await;
            let got = std::mem::take(&mut self.inbox);
            total += got.len();
            let room = KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&got[..got.len().min(room)]);
            if !more || deadline.passed() {
                break;
            }
        }
        if self.peer != PeerState::Open {
            return Ok((kept, total));
        }
        let (grader, peer) = self.roles();
        let got = match total {
            0 => "nothing".to_string(),
            n => format!("{n} bytes ({})", escape::quote(&kept, 80)),
        };
        self.inbox = kept;
        Err(with_busy_note(
            format!(
                "{grader} expected the connection to be closed (after an answer or none) within {}ms; {peer} sent {got} and kept it open",
                bound.as_millis()
            ),
            &deadline,
        ))
    }

    /// Expects the peer to close: no more bytes, then EOF (or a reset, as
    /// `want` says).
    pub async fn expect_end(&mut self, want: PeerState, bound: Duration) -> Result<(), String> {
        let mut deadline = Deadline::after(bound);
        while self.inbox.is_empty() && self.fill_within(&mut deadline).await {}
        let what = if want == PeerState::Eof {
            "end of stream (EOF)"
        } else {
            "a reset (RST)"
        };
        if !self.inbox.is_empty() {
            return Err(format!(
                "{} expected {what}, but {} more bytes arrived: {}",
                self.roles().0,
                self.inbox.len(),
                escape::quote(&self.inbox, 200)
            ));
        }
        let (grader, peer) = self.roles();
        match (self.peer, want) {
            (a, b) if a == b => Ok(()),
            (PeerState::Open, _) => Err(with_busy_note(
                format!(
                    "{grader} expected {what} within {}ms; {peer} kept the connection open",
                    bound.as_millis()
                ),
                &deadline,
            )),
            (PeerState::Eof, _) => Err(format!(
                "{grader} expected {what}, but {peer} closed the connection normally (EOF)"
            )),
            (PeerState::Reset, _) => Err(format!("{grader} expected {what}, but {peer} reset the connection")),
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
    /// A port of its own, chosen by the kernel (`listen: { port: own }`),
    /// which a spec names `{port:NAME}`.
    pub own_port: bool,
}

impl Listener {
    /// Listens on `port`; on a port the kernel chooses when it is 0 (the
    /// same number on ::1, where it is free).
    pub fn bind(port: u16) -> io::Result<Listener> {
        let v4 = TcpSocket::new_v4()?;
        v4.set_reuseaddr(true)?;
        v4.bind(([127, 0, 0, 1], port).into())?;
        let port = v4.local_addr()?.port();
        let v6 = TcpSocket::new_v6().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))?;
            s.listen(128)
        });
        Ok(Listener {
            v4: v4.listen(128)?,
            v6: v6.ok(),
            own_port: false,
        })
    }

    pub fn port(&self) -> u16 {
        self.v4.local_addr().map(|a| a.port()).unwrap_or_default()
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

/// Marks a writer operation done when dropped.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connects to `addr`, usually without a trip through the event loop: on
/// loopback the kernel completes the handshake within `connect` itself,
/// though a non-blocking connect still answers EINPROGRESS; the socket then
/// already has its peer. Only a handshake still under way (a full backlog)
/// waits for the socket to become writable. (A `connect: { count: 64 }`
/// spent 2.5 ms, 40 us a connection, mostly in those trips.)
pub async fn connect(addr: std::net::SocketAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    loop {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        if stream.peer_addr().is_ok() {
            return Ok(stream);
        }
        stream.writable().await?;
        // Not connected yet after all: wait for the next event, not this one.
        let _ = stream.try_io(tokio::io::Interest::WRITABLE, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
}

/// Hands an operation to the writer task, counted as pending until done.
fn queue(tx: &mpsc::UnboundedSender<WriteOp>, pending: &AtomicUsize, op: WriteOp) -> bool {
    pending.fetch_add(1, Ordering::SeqCst);
    if tx.send(op).is_err() {
        pending.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

async fn writer(
    stream: Arc<TcpStream>,
    mut ops: mpsc::UnboundedReceiver<WriteOp>,
    error: Arc<std::sync::Mutex<Option<String>>>,
    reset: Arc<std::sync::atomic::AtomicBool>,
    pending: Arc<AtomicUsize>,
) {
    write_ops(stream, &mut ops, error, reset, pending.clone()).await;
    // Stopped by a failed write or a close: what is still queued will never
    // be written, and must not count as pending (else `written` stays false
    // and every later barrier waits on it).
    ops.close();
    while ops.try_recv().is_ok() {
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the queued operations in order until one fails or closes.
async fn write_ops(
    stream: Arc<TcpStream>,
    ops: &mut mpsc::UnboundedReceiver<WriteOp>,
    error: Arc<std::sync::Mutex<Option<String>>>,
    reset: Arc<std::sync::atomic::AtomicBool>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(op) = ops.recv().await {
        // Done when this operation ends, however it ends.
        let _done = Done(&pending);
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
                        // EPIPE too: the reset came in while nothing was
                        // being sent, and the write is the first to meet it.
                        if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) {
                            reset.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
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
            WriteOp::Fill {
                at_most,
                deadline,
                done,
            } => {
                let result = push_until_full(&stream, at_most, deadline).await;
                if let Err(e) = &result {
                    if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) {
                        reset.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let _ = done.send(result.map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut => e.to_string(),
                    _ => format!("write failed: {}", os_error(&e)),
                }));
            }
        }
    }
}

/// Writes text lines until the send buffer is full and the peer's window is
/// closed, or `at_most` bytes were written.
async fn push_until_full(stream: &TcpStream, at_most: usize, mut deadline: Deadline) -> io::Result<Filled> {
    const LINE: &[u8] = b"filling every buffer between us until you stop reading\n";
    let chunk: Vec<u8> = LINE.repeat((64 << 10) / LINE.len());
    // The handshake advertised a window: a kernel that reports it shows it
    // open now. Zero here means the kernel does not report it.
    let reports_window = peer_window(stream).is_some_and(|w| w > 0);
    let mut written = 0;
    while written < at_most {
        let offset = written % chunk.len();
        let n = (at_most - written).min(chunk.len() - offset);
        match stream.try_write(&chunk[offset..offset + n]) {
            Ok(k) => {
                written += k;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        // The send buffer is full. Done if the program's window is closed
        // too; else write again once the buffer drains, looking at the
        // window every millisecond meanwhile (no event says it closed).
        loop {
            if reports_window && peer_window(stream) == Some(0) {
                return Ok(Filled {
                    written,
                    window_closed: true,
                });
            }
            if deadline.passed() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the program kept reading without sending back ({} taken) until the bound passed",
                        crate::escape::bytes(written)
                    ),
                ));
            }
            if let Ok(ready) = tokio::time::timeout(Duration::from_millis(1), stream.writable()).await {
                ready?;
                break;
            }
        }
    }
    Ok(Filled {
        written,
        window_closed: false,
    })
}

/// The receive window the peer advertised last (TCP_INFO `tcpi_snd_wnd`,
/// Linux 5.19 and later); `None` where the kernel has no TCP_INFO.
fn peer_window(stream: &TcpStream) -> Option<u32> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a plain
    // C struct for which all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // An older kernel fills fewer bytes: a window it did not write is unknown.
    let end = std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd) + 4;
    (rc == 0 && len as usize >= end).then_some(info.tcpi_snd_wnd)
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
