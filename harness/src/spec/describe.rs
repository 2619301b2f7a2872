//! Each step in words, for the student who reads a failure and cannot see
//! the spec: "step 3 (open 63 connections, c#1 to c#63) failed" says what
//! the grader was doing; "spec line 186" does not. The spec line stays in
//! the JSON report, for instructors.

use super::program::Ending;
use super::tcp::{ConnectOutcome, Expected};
use super::{Name, Step};

impl Step {
    /// What the grader does in this step, as a short phrase.
    pub fn describe(&self) -> String {
        match self {
            Step::Start(s) => match &s.stdin {
                Some(p) => format!("start {} with {} on its stdin", s.program.value, p.describe()),
                None => format!("start {}", s.program.value),
            },
            Step::Stop(s) => format!("stop {} with SIGTERM", s.program.value),
            Step::Kill(p) => format!("kill {} (SIGKILL)", p.program.value),
            Step::Restart(s) => format!("start {} again on the same port", s.program.value),
            Step::Signal(s) => format!("send {} to {}", s.signal.0.as_str(), s.program.value),
            Step::ExpectRunning(p) => format!("check that {} still runs", p.program.value),
            Step::ExpectExit(e) => match &e.ending {
                Ending::Status(code) => format!("wait for {} to exit with status {code}", e.program.value),
                Ending::Signal(sig) => format!("wait for {} to be killed by {}", e.program.value, sig.0.as_str()),
                Ending::Any => format!("wait for {} to exit", e.program.value),
            },
            Step::ExpectOutput(o) => format!("check what {} wrote on {}", o.program.value, o.stream.as_str()),
            Step::Connect(c) => {
                let how = match c.expect {
                    ConnectOutcome::Established => "",
                    ConnectOutcome::Refused => ", expecting a refusal",
                    ConnectOutcome::Pending => ", expecting no answer",
                };
                match c.count {
                    Some(n) => format!(
                        "open {n} connections one after the other ({0}#1 to {0}#{n}){how}",
                        c.name.value
                    ),
                    None => format!("connect to the server as `{}`{how}", c.name.value),
                }
            }
            Step::Listen(_) => "listen for your client's connection".into(),
            Step::Accept(a) => format!("accept your client's connection (as `{}`)", a.name.value),
            Step::ExpectNoConnection(e) => {
                format!("check that nothing connects to `{}` for {}", e.on.value, e.duration)
            }
            Step::Send(s) => {
                let end = if s.shutdown { ", then half-close" } else { "" };
                format!("send {}{}{end}", s.payload.describe(), on(&s.on))
            }
            Step::Expect(e) => match &e.expected {
                Expected::Bytes(m) => format!("wait for {}{}", m.describe(), on(&e.on)),
                Expected::Echo => format!("wait for the echo of everything sent{}", on(&e.on)),
                Expected::SameAs(b) => format!("wait for what `{}` received{}", b.value, on(&e.on)),
            },
            Step::Echo(e) => format!("echo {} back to your client{}", e.payload.describe(), on(&e.on)),
            Step::ExpectEof(c) => format!("wait for the end of the stream (EOF){}", on(&c.on)),
            Step::ExpectClosed(c) => format!("wait for the connection to be closed{}", on(&c.on)),
            Step::ExpectReset(c) => format!("wait for a reset (RST){}", on(&c.on)),
            Step::Shutdown(c) => format!("half-close (shutdown the sending side){}", on(&c.on)),
            Step::Close(c) => format!("close the connection{}", on(&c.on)),
            Step::Abort(c) => format!("reset the connection{}", on(&c.on)),
            Step::ReadSlowly(r) => format!("read slowly from now on{}", on(&r.on)),
            Step::ExpectSilence(s) => format!("check that nothing arrives for {}{}", s.duration, on(&s.on)),
            Step::Fill(f) => format!("send on `{}` until {} stops reading", f.on.value, f.program.value),
            Step::UdpOpen(o) => match o.count {
                None => format!("open a UDP socket towards your server (as `{}`)", o.name.value),
                Some(n) => format!("open {n} UDP sockets towards your server (as `{}`)", o.name.value),
            },
            Step::UdpBind(_) => "wait for your client's datagrams on its port".into(),
            Step::SendDatagram(s) => format!("send the datagram {} from `{}`", s.payload.describe(), s.on.value),
            Step::ExpectDatagram(e) => format!("wait for a datagram on `{}`", e.on.value),
            Step::ExpectNoDatagram(e) => {
                format!("check that no datagram arrives on `{}` for {}", e.on.value, e.duration)
            }
            Step::Relay(r) => format!(
                "stand between your client and {}, losing datagrams as planned",
                r.to.value
            ),
            Step::SendRequest(s) => format!(
                "send the request {}{}",
                s.requests.iter().map(|r| r.describe()).collect::<Vec<_>>().join(", "),
                on(&s.on)
            ),
            Step::ExpectResponse(e) => match &e.status {
                Some(s) => format!("wait for a response with status {}{}", s.describe(), on(&e.on)),
                None => format!("wait for a response{}", on(&e.on)),
            },
            Step::ExpectRequest(e) => format!("wait for your client's request{}", on(&e.on)),
            Step::SendResponse(s) => format!("answer with status {} {}{}", s.status, s.reason, on(&s.on)),
            Step::SendMessage(s) => format!(
                "send {}{}",
                s.messages
                    .iter()
                    .map(|m| m.describe(None))
                    .collect::<Vec<_>>()
                    .join(", "),
                on(&s.on)
            ),
            Step::ExpectMessage(e) => format!("wait for the frame {}{}", e.message.describe(None), on(&e.on)),
            Step::Join(j) => format!("join the group on 127.0.0.1 (as `{}`)", j.name.value),
            Step::MulticastSender(s) => format!("send to the group through 127.0.0.1 (as `{}`)", s.name.value),
            Step::ExpectMembers(m) => format!("check that {} sockets are members of the group", m.count),
            Step::FdBaseline(p) => format!("count {}'s open descriptors", p.program.value),
            Step::ExpectFds(f) => format!(
                "check that {} is back to the descriptors it had before",
                f.program.value
            ),
            Step::MemoryBaseline(p) => format!("measure {}'s memory", p.program.value),
            Step::ExpectMemory(m) => format!(
                "check that {}'s memory grew by at most {}",
                m.program.value,
                crate::escape::bytes(m.growth_at_most.0)
            ),
            Step::ExpectAccepted(a) => format!("wait for {} to accept `{}`", a.program.value, a.connection.value),
            Step::ExpectRead(r) => format!(
                "wait for {} to read everything sent on `{}`",
                r.program.value, r.connection.value
            ),
            Step::ExpectReleased(r) => format!(
                "wait for {} to close its end of `{}`",
                r.program.value, r.connection.value
            ),
            Step::ExpectZombies(z) => format!(
                "check that {} leaves at most {} finished child unreaped",
                z.program.value, z.at_most
            ),
            Step::ExpectIdle(i) => format!("watch {} while idle for {}", i.program.value, i.duration),
            Step::ExpectAtRest(r) => format!("wait until {} is at rest", r.program.value),
            Step::Each(e) => format!("on every connection of `{}` at once", e.connections.value),
            Step::Repeat(r) => format!("repeat {} times", r.times),
        }
    }
}

/// " on `a`", or nothing inside `each` (where the member is named apart).
fn on(name: &Option<Name>) -> String {
    match name {
        Some(n) => format!(" on `{}`", n.value),
        None => String::new(),
    }
}
