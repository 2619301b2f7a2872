//! Running the `tcp` family (`crate::lang::tcp`): connect, listen and accept
//! open connections in the scenario; send, expect, echo, expect_eof,
//! expect_reset, shutdown, close, abort and read_slowly act on one
//! connection (`super::run_on`), at the top level or inside `each`.

use super::play::Play;
use super::Failing;
use super::{OnContext, Run, RunOn};
use super::{StepError, StepResult};
use crate::conn::{self, Conn, Listener, Outcome, PeerState};
use crate::escape;
use crate::lang::tcp::{
    Abort, Accept, Close, Connect, ConnectOutcome, EchoBack, Expect, ExpectClosed, ExpectEof, ExpectNoConnection,
    ExpectReset, ExpectSilence, Expected, Fill, Listen, ListenPort, ReadSlowly, Send, Shutdown,
};
use crate::lang::values::{within, DEFAULT_WITHIN};
use crate::program_time::{with_busy_note, Deadline};
use crate::transcript::{Ended, Mismatch, Wire};
use crate::verdict::Observed;
use crate::witness;
use std::time::Duration;

impl Run for Connect {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let bound = within(self.within);
        let base = self.name.value.clone();
        let names: Vec<String> = match self.count {
            None => vec![base.clone()],
            Some(n) => (1..=n).map(|i| format!("{base}#{i}")).collect(),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], play.setting.port));
        let mut outcomes = Vec::new();
        let mut pacing = (self.count.is_some() && !self.burst).then(|| Pacing::new(play.setting.port));
        // One after the other: each handshake completes (or not) before the
        // next begins, so a full backlog is seen exactly where it fills.
        for (i, name) in names.iter().enumerate() {
            if let Some(pacing) = &mut pacing {
                pacing.before_connect().await;
            }
            let outcome = match Deadline::after(bound)
                .within(conn::connect(addr, self.rcvbuf.map(|s| s.0)))
                .await
            {
                Some(Ok(stream)) => {
                    let mut conn = Conn::new(name, stream, play.transcript.clone());
                    conn.outgoing = true;
                    conn.far_end = play
                        .spec
                        .server()
                        .and_then(|s| play.programs.get(s))
                        .map(|p| conn::FarEnd {
                            pid: p.pid,
                            port: play.setting.port,
                        });
                    play.conns.insert(name.clone(), conn);
                    ConnectOutcome::Established
                }
                Some(Err(e)) if e.raw_os_error() == Some(nix::libc::ECONNREFUSED) => ConnectOutcome::Refused,
                Some(Err(e)) => return Err(StepError::of_socket("connect", &e)),
                None => ConnectOutcome::Pending,
            };
            outcomes.push(outcome);
            if outcome != self.expect {
                let done = outcomes.iter().filter(|o| **o == ConnectOutcome::Established).count();
                play.transcript.record_wire(
                    name,
                    Wire::Connect {
                        peer: play.spec.server().map(String::from),
                        count: None,
                        outcome,
                    },
                );
                let count = match self.count {
                    Some(n) => format!("connection {} of {n}: ", i + 1),
                    None => String::new(),
                };
                let extra = if outcome == ConnectOutcome::Pending && self.count.is_some() {
                    format!(" ({done} completed their handshake before it)")
                } else {
                    String::new()
                };
                return Err(StepError::failed(format!(
                    "{count}expected the connection to be {} within {}ms; it was {}{extra}",
                    self.expect.as_str(),
                    bound.as_millis(),
                    outcome.as_str()
                )));
            }
        }
        let connected = Wire::Connect {
            peer: play.spec.server().map(String::from),
            count: self.count,
            outcome: self.expect,
        };
        play.transcript.record_wire(&base, connected);
        if self.count.is_some() {
            play.groups.insert(base, names);
        }
        Ok(())
    }
}

/// Keeps a `count` of connections from testing the listen backlog: each
/// connects only while the program's accept queue has room to spare (fewer
/// waiting than its backlog less one). A burst of 63 connects takes 2 ms; a
/// tutorial's forking server with `listen(fd, 5)` accepts a few in that
/// time, and the kernel drops the SYNs (or the final ACKs) that find its
/// queue of 6 full: those clients then wait for retransmissions, 1 s and
/// more, and a concurrency scenario failed for what is the backlog's
/// clause. The kernel is asked (sock_diag, some 20 us) only when as many
/// connections were made as there was room at the last look: a program
/// with a backlog of 128 or more is looked at once in a count of 63, and
/// never waited for. The backlog is tested on its own, with `burst: true`.
struct Pacing {
    queue: crate::witness::AcceptQueue,
    /// Connections that may still be made before the next look.
    owed: u32,
    fine: Option<crate::witness::FinePause>,
}

impl Pacing {
    fn new(port: u16) -> Pacing {
        Pacing {
            queue: crate::witness::AcceptQueue::new(port),
            owed: 0,
            fine: crate::witness::FinePause::new(),
        }
    }

    /// Waits until the next connection may be made. A program that takes
    /// none of the waiting ones within `STALL` is not accepting at all (an
    /// iterative server busy with one client): the rest then connect as the
    /// kernel lets them, and the scenario sees what that program does.
    async fn before_connect(&mut self) {
        const STALL: Duration = Duration::from_millis(250);
        let mut deadline = Deadline::after(STALL);
        while self.owed == 0 {
            let Some((waiting, backlog)) = self.queue.look() else {
                // No sock_diag here: connect as the kernel lets us.
                self.owed = u32::MAX;
                return;
            };
            // Linux holds backlog + 1; one more is kept free for a final
            // ACK that is still on its way.
            self.owed = backlog.saturating_sub(1).max(1).saturating_sub(waiting);
            if self.owed > 0 {
                break;
            }
            if deadline.passed() {
                self.owed = u32::MAX;
                return;
            }
            let pause = Duration::from_micros(100);
            match &mut self.fine {
                Some(fine) => fine.sleep(pause).await,
                None => tokio::time::sleep(pause).await,
            }
        }
        self.owed -= 1;
    }
}

impl Run for Listen {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.name.value;
        let port = match self.port {
            Some(ListenPort::Number(port)) if !play.setting.own_netns => {
                return Err(super::StepError::CannotRun(format!(
                    "this scenario needs port {port} of its own, which only a network namespace gives \
                     (run as root, `--isolation netns`)"
                )))
            }
            Some(ListenPort::Number(port)) => port,
            Some(ListenPort::Own(_)) => 0,
            None => play.setting.port,
        };
        let mut listener = Listener::bind(port)
            .map_err(|e| super::StepError::CannotRun(format!("the grader could not listen on port {port}: {e}")))?;
        match self.port {
            Some(ListenPort::Number(port)) => play.transcript.record(name, format!("listening on port {port}")),
            Some(ListenPort::Own(_)) => {
                listener.own_port = true;
                play.transcript.record(name, format!("listening on {{port:{name}}}"));
            }
            None => play.transcript.record_wire(name, Wire::Listen),
        }
        play.listeners.insert(name.clone(), listener);
        Ok(())
    }
}

impl Run for Accept {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let bound = within(self.within);
        let listener = play
            .listeners
            .get(&self.on.value)
            .ok_or_else(|| format!("`{}` is not listening", self.on.value))
            .or_failed()?;
        let name = self.name.value.clone();
        let mut deadline = Deadline::after(bound);
        // Looks at the kernel between waits: once no program can connect any
        // more, the step fails then rather than at its bound (a proxy that
        // never contacts its origin costs 200ms here, not the bound).
        let mut watch = super::stillness::Watch::of(play);
        let Some(accepted) = watch.unless_still(deadline.within(listener.accept())).await else {
            return Err(StepError::failed(format!(
                "expected a program to connect to `{}` (port {}); {}",
                self.on.value,
                shown_port(listener, &self.on.value),
                super::stillness::why_nothing_more(&watch, "connect"),
            )));
        };
        match accepted {
            Some(Ok((stream, _))) => {
                // The client under test is who connected.
                let peer = play.client_name().map(String::from);
                play.transcript.record_wire(&name, Wire::Accepted { peer });
                let conn = Conn::new(&name, stream, play.transcript.clone());
                play.conns.insert(name, conn);
                Ok(())
            }
            Some(Err(e)) => Err(StepError::of_socket("accept", &e)),
            None => Err(StepError::failed(with_busy_note(
                format!(
                    "expected a program to connect to `{}` (port {}) within {}ms; none did",
                    self.on.value,
                    shown_port(listener, &self.on.value),
                    bound.as_millis()
                ),
                &deadline,
            ))),
        }
    }
}

/// A listener's port as a failure shows it: `{port:NAME}` for one of its
/// own (the report fills it in), else the number.
fn shown_port(listener: &crate::conn::Listener, name: &str) -> String {
    if listener.own_port {
        format!("{{port:{name}}}")
    } else {
        listener.port().to_string()
    }
}

impl Run for ExpectNoConnection {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let on = &self.on.value;
        let listener = play
            .listeners
            .get(on)
            .ok_or_else(|| format!("`{on}` is not listening"))
            .or_cannot_run()?;
        match Deadline::on_the_wall_clock(self.duration.0)
            .within(listener.accept())
            .await
        {
            None => {
                play.transcript
                    .record(on, format!("no connection for {}", self.duration));
                Ok(())
            }
            Some(Err(e)) => Err(StepError::of_socket("accept", &e)),
            Some(Ok((stream, from))) => {
                // Kept open, as `accept` would keep it, until the scenario ends:
                // the program sees the connection it made, not a reset.
                let name = format!("{on}: unexpected");
                play.transcript.record_wire(&name, Wire::Accepted { peer: None });
                let conn = Conn::new(&name, stream, play.transcript.clone());
                play.conns.insert(name, conn);
                Err(StepError::failed(format!(
                    "expected nothing to connect to `{on}` for {}; a connection came from port {}",
                    self.duration,
                    from.port()
                )))
            }
        }
    }
}

impl RunOn for Send {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        let wait = self.wait.then_some(DEFAULT_WITHIN * 5);
        write(
            conn,
            self.payload.bytes(),
            self.payload.describe(),
            &self.split,
            self.gap,
            wait,
            self.shutdown,
        )
        .await
    }
}

/// Queues a step's bytes on the connection, cut as `split` says, `gap`
/// apart, and records them (`what`, in words): `send`, and the messages of
/// the other families on a connection (`send_message`, `send_request`,
/// `send_response`).
pub(super) async fn write(
    conn: &mut Conn,
    bytes: Vec<u8>,
    what: String,
    split: &crate::lang::tcp::Split,
    gap: Option<crate::lang::TimeSpan>,
    wait: Option<Duration>,
    shutdown: bool,
) -> StepResult {
    let writes = split.writes(bytes.len());
    conn.transcript.record_wire(
        &conn.name,
        Wire::Send {
            what,
            bytes: bytes.len(),
            writes: writes.len(),
            gap: gap.map(|g| g.to_string()),
        },
    );
    if shutdown {
        conn.transcript
            .record_wire(&conn.name, Wire::Shutdown { with_last_bytes: true });
    }
    let gap = gap.map(|g| g.0).unwrap_or(Duration::ZERO);
    conn.send(bytes, writes, gap, wait, shutdown).await.or_failed()
}

impl RunOn for Expect {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        match &self.expected {
            Expected::Bytes(matcher) => expect_with(conn, Some(matcher), self.within).await,
            Expected::Echo => expect_with(conn, None, self.within).await,
            // The checker keeps `same_as` out of `each`, and `super::run`
            // answers it at the top level, where the other connection is.
            Expected::SameAs(_) => Err(StepError::cannot_run(
                "`same_as` needs the other connection, outside `each`",
            )),
        }
    }
}

/// `expect: { on: c, same_as: b }`: the next bytes on `c` are what `b`'s
/// expectations have taken so far.
pub(super) async fn expect_same_as(play: &mut Play<'_>, e: &Expect, other: &crate::lang::Name) -> StepResult {
    let want = play
        .conns
        .get(&other.value)
        .map(|c| c.taken.concat())
        .ok_or_else(|| format!("`{}` is not open", other.value))
        .or_cannot_run()?;
    let conn = play.conn(e.on.as_ref())?;
    expect_with(conn, Some(&crate::matcher::Matcher::Exact(want.into())), e.within).await
}

/// Waits for `matcher`, or with `None` for the echo of what was sent.
async fn expect_with(
    conn: &mut Conn,
    matcher: Option<&crate::matcher::Matcher>,
    within_: Option<crate::lang::TimeSpan>,
) -> StepResult {
    let t = conn.transcript.clone();
    let bound = within(within_);
    let outcome = match matcher {
        Some(matcher) => conn.expect(matcher, bound).await,
        None => conn.expect_echo(bound).await,
    };
    match outcome {
        Outcome::Matched(bytes) => {
            let received = Wire::Received {
                shown: escape::quote(&bytes, 60),
                bytes: bytes.len(),
                mismatch: None,
                ended: None,
            };
            t.record_wire(&conn.name, received);
            Ok(())
        }
        Outcome::Failed(why) => {
            let expected = match matcher {
                Some(m) => m
                    .mismatch(&conn.inbox)
                    .map(|(want, _, _)| want)
                    .unwrap_or_else(|| m.describe()),
                None => format!("the echo of what was sent on `{}`", conn.name),
            };
            let received = Wire::Received {
                shown: escape::quote(&conn.inbox, 60),
                bytes: conn.inbox.len(),
                mismatch: Some(Mismatch {
                    expected,
                    got: escape::quote(&conn.inbox, 400),
                }),
                ended: conn.peer.ended(),
            };
            t.record_wire(&conn.name, received);
            Err(StepError::failed(why))
        }
    }
}

impl RunOn for EchoBack {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        let t = conn.transcript.clone();
        let want = self.payload.bytes();
        match conn.echo_back(&want, within(self.within)).await {
            Ok(()) => {
                // How many writes it took depends on how the kernel split the
                // bytes, so it stays out of the transcript.
                let echo = Wire::Echo {
                    what: self.payload.describe(),
                    echoed: Some(want.len()),
                    mismatch: None,
                };
                t.record_wire(&conn.name, echo);
                Ok(())
            }
            Err(why) => {
                // conn.rs says what arrived in words: the bytes stay there.
                let echo = Wire::Echo {
                    what: self.payload.describe(),
                    echoed: None,
                    mismatch: Some(Mismatch {
                        expected: self.payload.describe(),
                        got: why.clone(),
                    }),
                };
                t.record_wire(&conn.name, echo);
                Err(StepError::failed(why))
            }
        }
    }
}

impl RunOn for ExpectEof {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        conn.expect_end(PeerState::Eof, within(self.within))
            .await
            .inspect_err(|_| drawn_end(conn, "end of stream (EOF)"))
            .or_failed()?;
        conn.transcript.record_wire(&conn.name, Wire::Eof);
        Ok(())
    }
}

/// The program closed the connection, with no bytes more: a FIN, or the
/// reset a kernel sends for a program that closes with bytes of the
/// grader's unread (a server that stops reading a head too long, answers
/// and closes). Either is a close; only what came before it counts.
impl RunOn for ExpectClosed {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        if self.whatever_arrives {
            let (taken, total) = conn.take_until_end(within(self.within)).await.or_failed()?;
            if total > 0 {
                conn.transcript.record_wire(
                    &conn.name,
                    Wire::Received {
                        shown: escape::quote(&taken, 60),
                        bytes: total,
                        mismatch: None,
                        ended: None,
                    },
                );
            }
            let end = if conn.peer == PeerState::Reset {
                Wire::Reset
            } else {
                Wire::Eof
            };
            conn.transcript.record_wire(&conn.name, end);
            return Ok(());
        }
        match conn.expect_end(PeerState::Eof, within(self.within)).await {
            Ok(()) => conn.transcript.record_wire(&conn.name, Wire::Eof),
            Err(_) if conn.peer == PeerState::Reset && conn.inbox.is_empty() => {
                conn.transcript.record_wire(&conn.name, Wire::Reset)
            }
            Err(e) => {
                drawn_end(conn, "the connection closed");
                return Err(StepError::failed(
                    e.replace("end of stream (EOF)", "the connection to be closed"),
                ));
            }
        }
        Ok(())
    }
}

impl RunOn for ExpectReset {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        conn.expect_end(PeerState::Reset, within(self.within))
            .await
            .inspect_err(|_| drawn_end(conn, "a reset (RST)"))
            .or_failed()?;
        conn.transcript.record_wire(&conn.name, Wire::Reset);
        Ok(())
    }
}

/// What came instead of the end or the silence `expected`, for the diagram
/// only: bytes, or the program's FIN or RST. Nothing for a connection still
/// open and quiet: the failure says how long the grader waited.
fn drawn_end(conn: &Conn, expected: &str) {
    let ended = conn.peer.ended();
    let wire = match ended {
        _ if !conn.inbox.is_empty() => Wire::Received {
            shown: escape::quote(&conn.inbox, 60),
            bytes: conn.inbox.len(),
            mismatch: Some(Mismatch {
                expected: expected.to_string(),
                got: escape::quote(&conn.inbox, 400),
            }),
            ended,
        },
        Some(Ended::Fin) => Wire::Eof,
        Some(Ended::Rst) => Wire::Reset,
        None => return,
    };
    conn.transcript.record_drawn(&conn.name, wire);
}

impl RunOn for Shutdown {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        conn.transcript
            .record_wire(&conn.name, Wire::Shutdown { with_last_bytes: false });
        conn.shutdown().or_failed()
    }
}

impl RunOn for Close {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        conn.transcript.record_wire(&conn.name, Wire::Close);
        conn.close(within(self.within)).await.or_failed()
    }
}

impl RunOn for Abort {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        conn.transcript.record_wire(&conn.name, Wire::Abort);
        conn.abort().await;
        Ok(())
    }
}

/// Why a connection to the server stays open although the server should
/// have closed it: the kernel shows its main process holding a copy, and
/// that process forks (a forking server whose parent keeps the accepted
/// socket). Asked when `expect_eof` or `expect_released` failed. A parent
/// that lets the kernel reap its children (SIGCHLD ignored) and has none
/// left is not seen as forking: then the scenario's own hint stands.
pub(super) fn copy_kept(play: &mut Play<'_>, on: Option<&crate::lang::Name>) -> Option<Observed> {
    let conn = play.conn(on).ok()?;
    if !conn.outgoing {
        return None;
    }
    let peer_port = conn.local_port;
    let port = play.setting.port;
    let name = play.spec.server()?;
    let root = play.programs.get(name)?.pid;
    let tree = witness::tree(root, &witness::processes());
    let holders = witness::holders(&tree, port, peer_port);
    // A server that forks: it has children now, or had some it waited for.
    let forks = tree.len() > 1 || witness::reaped_children(root);
    (forks && holders.contains(&root)).then(|| Observed::KeptCopy {
        server: name.to_string(),
    })
}

/// Why the program reset a connection although it runs on (or ended
/// well): a socket closed with bytes it had not read makes the kernel send
/// a reset in place of the end of the stream, and the reset may cut the
/// answer still on its way to the peer. Asked when a step on the
/// connection failed; said when the step wanted the end (`wanted_end`) or
/// part of an answer had come: a step that got no answer at all failed for
/// the answer's sake, not the reset's. A program that died has its death
/// said instead.
pub(super) fn reset_by_close(
    play: &mut Play<'_>,
    on: Option<&crate::lang::Name>,
    wanted_end: bool,
) -> Option<Observed> {
    let conn = play.conn(on).ok()?;
    if conn.peer != PeerState::Reset || conn.aborted || !(wanted_end || conn.holds_unread()) {
        return None;
    }
    let name = if conn.outgoing {
        play.spec.server()?
    } else {
        play.client_name()?
    }
    .to_string();
    let prog = play.programs.get(&name)?;
    if prog.exit_status().is_some_and(|s| !s.success()) {
        return None;
    }
    Some(Observed::UnreadReset {
        program: name,
        runs_on: prog.is_running(),
    })
}

/// After a top-level `abort` of a connection to the program: returns once
/// the kernel shows the reset arrived at the program's end (it leaves the
/// socket table), so the program's next call on that connection meets the
/// reset on a loaded machine as on an idle one (the reset can wait in a
/// softirq queue). Bounded; a reset the kernel rejected is no failure here.
pub(super) async fn reset_arrived(play: &mut Play<'_>, on: Option<&crate::lang::Name>) {
    let Ok(conn) = play.conn(on) else {
        return;
    };
    if !conn.outgoing {
        return;
    }
    let peer_port = conn.local_port;
    let port = play.setting.port;
    let Some(pid) = play
        .spec
        .server()
        .and_then(|name| play.programs.get(name))
        .map(|p| p.pid)
    else {
        return;
    };
    let _ = witness::poll_until(DEFAULT_WITHIN, || {
        (!witness::connection_listed(pid, port, peer_port), ())
    })
    .await;
}

impl RunOn for ExpectSilence {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        conn.expect_silence(self.duration.0)
            .await
            .inspect_err(|_| drawn_end(conn, &format!("nothing for {}", self.duration)))
            .or_failed()?;
        conn.transcript
            .record(&conn.name, format!("<- nothing for {}", self.duration));
        Ok(())
    }
}

impl RunOn for ReadSlowly {
    async fn run_on(&self, conn: &mut Conn, _: &OnContext<'_>) -> StepResult {
        conn.transcript.record(
            &conn.name,
            format!("reads slowly: {} bytes every {}", self.chunk, self.gap),
        );
        conn.read_slowly(self.chunk, self.gap.0);
        Ok(())
    }
}

impl Run for Fill {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let pid = play.running(&self.program.value)?.pid;
        let spec = play.spec;
        let conn = play.conn(Some(&self.on))?;
        let t = conn.transcript.clone();
        let bound = self.within.map(|w| w.0).unwrap_or(Duration::from_secs(10));
        let filled = match conn.push_until_full(self.at_most, bound).await {
            Ok(filled) => filled,
            Err(why) => {
                // A program that reset the connection stopped serving it: the
                // precondition that keeps connections open, not this step's.
                let precondition = super::closed_early(spec, conn);
                return Err(StepError::failed(why).precondition(precondition));
            }
        };
        // How many bytes it took depends on the buffer sizes the kernel chose:
        // the count goes to the full transcript only, so snapshots stay stable.
        let how = match filled.window_closed {
            true => "until its receive window closed",
            false => "up to `at_most` (the kernel shows no window)",
        };
        t.record_wire(&conn.name, Wire::Fill { how });
        t.record_full_only(&conn.name, format!("({} written)", escape::bytes(filled.written)));
        // Bounded: a program that spins never rests, and that is a verdict the
        // next steps give, not this one.
        let rested = witness::poll_until(Duration::from_millis(500), || (witness::tree_at_rest(pid), ()))
            .await
            .is_ok();
        if !rested {
            t.record(&self.program.value, "never at rest (still running after 500ms)");
        }
        Ok(())
    }
}
