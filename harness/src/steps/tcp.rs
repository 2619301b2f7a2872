//! Running the `tcp` family (`crate::spec::tcp`): connect, listen and accept
//! open connections in the scenario; send, expect, echo, expect_eof,
//! expect_reset, shutdown, close, abort and read_slowly act on one
//! connection (`super::run_on`), at the top level or inside `each`.

use super::StepResult;
use crate::conn::{self, Conn, Listener, Outcome, PeerState};
use crate::escape;
use crate::scenario::Play;
use crate::spec::tcp::{
    Accept, ConnRef, Connect, ConnectOutcome, EchoBack, Expect, Expected, Listen, ReadSlowly, Send,
};
use crate::spec::values::{within, DEFAULT_WITHIN};
use std::time::Duration;
use tokio::net::TcpSocket;

pub(super) async fn connect(play: &mut Play<'_>, c: &Connect) -> StepResult {
    let bound = within(c.within);
    let base = c.name.value.clone();
    let names: Vec<String> = match c.count {
        None => vec![base.clone()],
        Some(n) => (1..=n).map(|i| format!("{base}#{i}")).collect(),
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], play.setting.port));
    let mut outcomes = Vec::new();
    // One after the other: each handshake completes (or not) before the
    // next begins, so a full backlog is seen exactly where it fills.
    for (i, name) in names.iter().enumerate() {
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        if let Some(size) = c.rcvbuf {
            socket.set_recv_buffer_size(size.0 as u32).map_err(|e| e.to_string())?;
        }
        let outcome = match tokio::time::timeout(bound, socket.connect(addr)).await {
            Ok(Ok(stream)) => {
                let mut conn = Conn::new(name, stream, play.transcript.clone());
                conn.outgoing = true;
                play.conns.insert(name.clone(), conn);
                ConnectOutcome::Established
            }
            Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::ECONNREFUSED) => ConnectOutcome::Refused,
            Ok(Err(e)) => return Err(format!("connect failed: {}", conn::os_error(&e))),
            Err(_) => ConnectOutcome::Pending,
        };
        outcomes.push(outcome);
        if outcome != c.expect {
            let done = outcomes.iter().filter(|o| **o == ConnectOutcome::Established).count();
            let got = outcome.as_str();
            play.transcript.record(name, format!("connect -> {got}"));
            let count = match c.count {
                Some(n) => format!("connection {} of {n}: ", i + 1),
                None => String::new(),
            };
            let extra = if outcome == ConnectOutcome::Pending && c.count.is_some() {
                format!(" ({done} completed their handshake before it)")
            } else {
                String::new()
            };
            return Err(format!(
                "{count}expected the connection to be {} within {}ms; it was {got}{extra}",
                c.expect.as_str(),
                bound.as_millis()
            ));
        }
    }
    match c.count {
        None => play
            .transcript
            .record(&base, format!("connect -> {}", c.expect.as_str())),
        Some(n) => {
            play.transcript
                .record(&base, format!("connect {n} -> {}", c.expect.as_str()));
            play.groups.insert(base, names);
        }
    }
    Ok(())
}

pub(super) fn listen(play: &mut Play<'_>, l: &Listen) -> StepResult {
    let name = &l.name.value;
    let port = play.setting.port;
    let listener = Listener::bind(port).map_err(|e| format!("the harness could not listen on port {port}: {e}"))?;
    play.transcript.record(name, "listening on {port}");
    play.listeners.insert(name.clone(), listener);
    Ok(())
}

pub(super) async fn accept(play: &mut Play<'_>, a: &Accept) -> StepResult {
    let bound = within(a.within);
    let listener = play
        .listeners
        .get(&a.on.value)
        .ok_or_else(|| format!("`{}` is not listening", a.on.value))?;
    let name = a.name.value.clone();
    match tokio::time::timeout(bound, listener.accept()).await {
        Ok(Ok((stream, _))) => {
            play.transcript.record(&name, "accepted");
            let conn = Conn::new(&name, stream, play.transcript.clone());
            play.conns.insert(name, conn);
            Ok(())
        }
        Ok(Err(e)) => Err(format!("accept failed: {e}")),
        Err(_) => Err(format!(
            "expected the program to connect to port {} within {}ms; it did not",
            play.setting.port,
            bound.as_millis()
        )),
    }
}

pub(super) async fn send(conn: &mut Conn, s: &Send) -> StepResult {
    let t = conn.transcript.clone();
    let bytes = s.payload.bytes();
    let writes = s.split.writes(bytes.len());
    let gap = s.gap.map(|g| g.0).unwrap_or(Duration::ZERO);
    let count = if writes.len() == 1 {
        "1 write".to_string()
    } else {
        format!("{} writes", writes.len())
    };
    t.record(
        &conn.name,
        format!(
            "-> {}  ({} in {count})",
            s.payload.describe(),
            escape::bytes(bytes.len())
        ),
    );
    let wait = s.wait.then_some(DEFAULT_WITHIN * 5);
    if s.shutdown {
        t.record(&conn.name, "shutdown write (the FIN with the last bytes)");
    }
    conn.send(bytes, writes, gap, wait, s.shutdown).await
}

pub(super) async fn expect(conn: &mut Conn, e: &Expect) -> StepResult {
    let t = conn.transcript.clone();
    let bound = within(e.within);
    let outcome = match &e.expected {
        Expected::Bytes(matcher) => conn.expect(matcher, bound).await,
        Expected::Echo => conn.expect_echo(bound).await,
    };
    match outcome {
        Outcome::Matched(bytes) => {
            t.record(
                &conn.name,
                format!("<- {}  ({})", escape::quote(&bytes, 60), escape::bytes(bytes.len())),
            );
            Ok(())
        }
        Outcome::Failed(why) => {
            t.record(
                &conn.name,
                format!(
                    "<- {}  ({} bytes, not as expected)",
                    escape::quote(&conn.inbox, 60),
                    conn.inbox.len()
                ),
            );
            Err(why)
        }
    }
}

pub(super) async fn echo_back(conn: &mut Conn, e: &EchoBack) -> StepResult {
    let t = conn.transcript.clone();
    let want = e.payload.bytes();
    match conn.echo_back(&want, within(e.within)).await {
        Ok(()) => {
            // How many writes it took depends on how the kernel split the
            // bytes, so it stays out of the transcript.
            t.record(
                &conn.name,
                format!("<-> {}  ({} echoed)", e.payload.describe(), escape::bytes(want.len())),
            );
            Ok(())
        }
        Err(why) => {
            t.record(&conn.name, format!("<-> {}  (not as expected)", e.payload.describe()));
            Err(why)
        }
    }
}

pub(super) async fn expect_eof(conn: &mut Conn, c: &ConnRef) -> StepResult {
    conn.expect_end(PeerState::Eof, within(c.within)).await?;
    conn.transcript.record(&conn.name, "<- EOF");
    Ok(())
}

pub(super) async fn expect_reset(conn: &mut Conn, c: &ConnRef) -> StepResult {
    conn.expect_end(PeerState::Reset, within(c.within)).await?;
    conn.transcript.record(&conn.name, "<- RST");
    Ok(())
}

pub(super) fn shutdown(conn: &mut Conn, _: &ConnRef) -> StepResult {
    conn.transcript.record(&conn.name, "shutdown write");
    conn.shutdown()
}

pub(super) async fn close(conn: &mut Conn, c: &ConnRef) -> StepResult {
    conn.transcript.record(&conn.name, "close");
    conn.close(within(c.within)).await
}

pub(super) async fn abort(conn: &mut Conn, _: &ConnRef) -> StepResult {
    conn.transcript.record(&conn.name, "abort (RST)");
    conn.abort().await;
    Ok(())
}

pub(super) fn read_slowly(conn: &mut Conn, r: &ReadSlowly) -> StepResult {
    conn.transcript
        .record(&conn.name, format!("reads slowly: {} bytes every {}", r.chunk, r.gap));
    conn.read_slowly(r.chunk, r.gap.0);
    Ok(())
}
