//! The reading side of a connection: the one read loop (`Conn::gather`),
//! which every expectation words in its own terms, and the echo server's,
//! the silence's and the end's waits.

use super::{Conn, Gathered, Outcome, Parse, PeerState, Quiet, LOOK_EVERY, STALLED_LOOKS};
use crate::escape;
use crate::matcher::{Check, Matcher};
use crate::program_time::{with_busy_note, Deadline};
use bytes::Bytes;
use std::io;
use std::time::Duration;
use tokio::time::Instant;

impl Conn {
    /// Reads more into the inbox until `deadline` passes in the programs'
    /// time (`fill` stops at its wall-clock end); false when the peer is
    /// done or the deadline passed.
    pub(super) async fn fill_within(&mut self, deadline: &mut Deadline) -> bool {
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
    pub(super) fn end_of_stream(&self) -> PeerState {
        if self.reset_on_write.load(std::sync::atomic::Ordering::Relaxed) {
            PeerState::Reset
        } else {
            PeerState::Eof
        }
    }

    pub(super) async fn fill(&mut self, deadline: Instant) -> bool {
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

    /// The first `n` bytes of the inbox, taken by an expectation (and kept
    /// in `taken`, for another connection's `same_as`).
    ///
    /// Neither copied twice nor byte by byte: a megabyte drained and
    /// collected took a millisecond. Most of a large inbox is handed over
    /// whole (the little that follows is copied out); a few bytes out of a
    /// large buffer are copied, so that `taken` does not keep the buffer.
    pub(super) fn take(&mut self, n: usize) -> Bytes {
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
    pub(crate) fn roles(&self) -> (&'static str, &'static str) {
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

    /// The one read loop: gathers bytes until `parse` makes a value of the
    /// first of them (which are then taken) or says they never will, the
    /// stream ends, `bound` passes, or the kernel shows that nothing more
    /// can come (see `stalled`). `parse` gets the bytes so far and whether
    /// the stream has ended (a message delimited by the close is whole
    /// then). Each reading step words what it ended in.
    pub(crate) async fn gather<T>(
        &mut self,
        bound: Duration,
        mut parse: impl FnMut(&[u8], bool) -> Parse<T>,
    ) -> Gathered<T> {
        let mut deadline = Deadline::after(bound);
        let mut quiet = Quiet::default();
        loop {
            let ended = self.peer != PeerState::Open || self.stream.is_none();
            match parse(&self.inbox, ended) {
                Parse::Done(value, n) => return Gathered::Parsed(value, self.take(n)),
                Parse::Wrong(why) => return Gathered::Wrong(why),
                Parse::More if ended => return Gathered::Ended,
                Parse::More => {}
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
            if deadline.passed() {
                return Gathered::Bound(deadline);
            }
            if quiet.look(self.stalled()) {
                return Gathered::Stalled;
            }
        }
    }

    /// What has arrived and not been taken, in words.
    pub(crate) fn arrived(&self) -> String {
        match self.inbox.len() {
            0 => "nothing arrived".to_string(),
            n => format!("{} arrived ({})", escape::bytes(n), escape::quote(&self.inbox, 200)),
        }
    }

    /// Why nothing more can come of a connection that `gather` saw stall,
    /// where `what` was expected.
    pub(crate) fn stalled_words(&self, what: &str) -> String {
        let (grader, peer) = self.roles();
        format!(
            "{grader} expected {what}; {}, and for {}ms the kernel showed nothing in flight and \
             {peer} waiting in a system call: it had nothing more to send",
            self.arrived(),
            (LOOK_EVERY * STALLED_LOOKS).as_millis(),
        )
    }

    /// Gathers bytes until `matcher` is satisfied or can no longer be
    /// (`gather`), and says which.
    pub async fn expect(&mut self, matcher: &Matcher, bound: Duration) -> Outcome {
        let gathered = self
            .gather(bound, |inbox, _| match matcher.check(inbox) {
                Check::Done(n) => Parse::Done((), n),
                Check::Differs => Parse::Wrong(differs(matcher, inbox)),
                Check::More => Parse::More,
            })
            .await;
        let what = matcher.describe();
        let (grader, peer) = self.roles();
        let got = escape::quote(&self.inbox, 200);
        let n = self.inbox.len();
        let why = match gathered {
            Gathered::Parsed((), bytes) => return Outcome::Matched(bytes),
            Gathered::Wrong(why) => return Outcome::Failed(why),
            Gathered::Stalled => self.stalled_words(&what),
            Gathered::Ended => match self.peer {
                PeerState::Eof => {
                    format!("{grader} expected {what}, but {peer} closed the connection (EOF) after {n} bytes: {got}")
                }
                PeerState::Reset => {
                    format!("{grader} expected {what}, but {peer} reset the connection after {n} bytes: {got}")
                }
                PeerState::Open => format!("{grader} expected {what}, but `{}` is closed", self.name),
            },
            Gathered::Bound(deadline) => with_busy_note(
                format!(
                    "{grader} expected {what} within {}ms; {n} bytes arrived: {got}",
                    bound.as_millis()
                ),
                &deadline,
            ),
        };
        match matcher.shortfall(&self.inbox) {
            Some(rest) => Outcome::Failed(format!("{why}\n  {rest}")),
            None => Outcome::Failed(why),
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
