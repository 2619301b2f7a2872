//! Running the `udp` family (`crate::lang::udp`): udp_open and udp_bind
//! open the harness's endpoints; send_datagram, expect_datagram and
//! expect_no_datagram act on one.

use super::play::Play;
use super::Failing;
use super::Run;
use super::{StepError, StepResult};
use crate::datagram::{self, Datagram, Endpoint, Role};
use crate::escape;
use crate::lang::udp::{
    ExpectDatagram, ExpectNoDatagram, ExpectedDatagram, Fate, Relay, SendDatagram, UdpBind, UdpOpen,
};
use crate::lang::values::within;
use crate::program_time::{with_busy_note, Deadline};
use crate::transcript::{Mismatch, Wire};
use crate::verdict::{Observed, Precondition};
use std::net::SocketAddr;

impl Run for UdpOpen {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let base = &self.name.value;
        let names: Vec<String> = match self.count {
            None => vec![base.clone()],
            Some(n) => (1..=n).map(|i| format!("{base}#{i}")).collect(),
        };
        for name in &names {
            let endpoint = Endpoint::client(name, play.setting.port)
                .map_err(|e| StepError::CannotRun(format!("the grader could not open a UDP socket: {e}")))?;
            play.endpoints.insert(name.clone(), endpoint);
        }
        let what = match self.count {
            None => "udp socket, peer {port}".to_string(),
            Some(n) => format!("{n} udp sockets, peer {{port}}"),
        };
        play.transcript.record(base, what);
        Ok(())
    }
}

impl Run for UdpBind {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.name.value;
        let endpoint = Endpoint::server(name, play.setting.port).map_err(|e| {
            let port = play.setting.port;
            StepError::CannotRun(format!("the grader could not bind port {port} for the client: {e}"))
        })?;
        play.endpoints.insert(name.clone(), endpoint);
        play.transcript.record(name, "udp socket bound to {port}");
        Ok(())
    }
}

impl Run for Relay {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        crate::relay::start(
            self,
            play.setting.port,
            play.setting.port2,
            play.transcript.clone(),
            play.relay_holds.clone(),
        )
        .map_err(|e| {
            let port = play.setting.port;
            StepError::CannotRun(format!("the grader could not bind port {port} for its relay: {e}"))
        })?;
        let mut decisions: Vec<_> = self.plan.iter().collect();
        decisions.sort_by_key(|(nth, _)| (nth.reply, nth.n));
        let mut plan: Vec<String> = decisions
            .into_iter()
            .map(|(nth, fate)| match fate {
                Fate::Deliver => format!("{nth}: passed on"),
                Fate::Drop => format!("{nth}: dropped"),
                Fate::Duplicate => format!("{nth}: duplicated"),
                Fate::Delay(d) => format!("{nth}: {}ms late", d.as_millis()),
            })
            .collect();
        play.relay_replies = self
            .plan
            .iter()
            .filter(|(nth, fate)| nth.reply && matches!(fate, Fate::Duplicate | Fate::Delay(_)))
            .map(|(nth, fate)| match fate {
                Fate::Duplicate => format!("{nth} was duplicated"),
                Fate::Delay(d) => format!("{nth} was held back {}ms", d.as_millis()),
                Fate::Deliver | Fate::Drop => String::new(),
            })
            .collect();
        if let Some((seed, loss)) = self.random {
            plan.push(format!("the others: {loss}% lost (seed {seed})"));
        }
        let plan = if plan.is_empty() {
            "everything passed on".to_string()
        } else {
            plan.join("; ")
        };
        play.transcript.record(
            &self.name.value,
            format!("relay {{port}} <-> {} at {{port2}}: {plan}", self.to.value),
        );
        Ok(())
    }
}

impl Run for SendDatagram {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let to = match &self.to {
            Some(other) => play.endpoint(other)?.peer,
            None => play.endpoint(&self.on)?.peer,
        };
        let peer_of = self.to.as_ref().unwrap_or(&self.on).value.clone();
        let Some(to) = to else {
            return Err(StepError::failed(format!(
                "`{peer_of}` has nobody to send to yet: a `udp_bind` endpoint answers the sender of the last datagram it received, and none has arrived"
            )));
        };
        let whom = play.describe_addr(to);
        let bytes = self.payload.bytes();
        if play.endpoint(self.to.as_ref().unwrap_or(&self.on))?.role == Role::Server {
            play.offered.extend((0..self.copies).map(|_| Offered {
                from: self.on.value.clone(),
                bytes: bytes.clone(),
                foreign: self.to.is_some(),
            }));
        }
        let transcript = play.transcript.clone();
        let endpoint = play.endpoint(&self.on)?;
        if let Some(gap) = self.gap {
            endpoint.send_in_background(bytes.clone(), to, self.copies, gap.0);
            transcript.record_wire(
                &self.on.value,
                Wire::Datagram {
                    outgoing: true,
                    shown: self.payload.describe(),
                    bytes: bytes.len(),
                    whom: format!("to {whom}, {} copies {gap} apart", self.copies),
                    mismatch: None,
                    fate: None,
                },
            );
            return Ok(());
        }
        for _ in 0..self.copies {
            endpoint
                .send_to(&bytes, to)
                .await
                .map_err(|e| format!("sending a datagram failed: {}", crate::escape::os_error(&e)))
                .or_failed()?;
            transcript.record_wire(
                &self.on.value,
                Wire::Datagram {
                    outgoing: true,
                    shown: self.payload.describe(),
                    bytes: bytes.len(),
                    whom: format!("to {whom}"),
                    mismatch: None,
                    fate: None,
                },
            );
        }
        Ok(())
    }
}

impl Run for ExpectDatagram {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        // What fails the step once a datagram arrived is in that datagram:
        // seen when the kernel stamped it.
        expect_datagram(play, self)
            .await
            .map_err(|error| match play.datagram_arrived {
                Some(arrived) => error.seen_at(arrived),
                None => error,
            })
    }
}

async fn expect_datagram(play: &mut Play<'_>, e: &ExpectDatagram) -> StepResult {
    let bound = within(e.within);
    let name = e.on.value.clone();
    let mut watch = super::stillness::Watch::of(play);
    let endpoint = play.endpoint(&e.on)?;
    let role = endpoint.role;
    let expected_from = endpoint.peer;
    let previous = endpoint.last_arrival;
    let previous_mark = endpoint.last_mark.take();
    let echo = endpoint.last_sent.clone();
    let mut deadline = Deadline::after(bound);
    // Looks at the kernel between waits (`stillness`): once no program can
    // send any more, the step fails then rather than at its bound.
    let received = watch.unless_still(endpoint.recv(&mut deadline)).await;
    let still = received.is_none();
    let received = received.unwrap_or(Ok(None));
    let Some(d) = received
        .map_err(|err| format!("reading a datagram failed: {}", crate::escape::os_error(&err)))
        .or_failed()?
    else {
        if still {
            play.transcript
                .record(&name, "<- no datagram, and nothing more could come");
            return Err(StepError::failed(format!(
                "expected {} on `{name}`; nothing arrived, and {}{}",
                describe_expected(&e.expected),
                super::stillness::why_nothing_more(&watch, "send one"),
                play.who_ended()
            )));
        }
        play.transcript
            .record(&name, format!("<- no datagram within {}ms", bound.as_millis()));
        return Err(StepError::failed(with_busy_note(
            format!(
                "expected {} on `{name}` within {}ms; nothing arrived{}",
                describe_expected(&e.expected),
                bound.as_millis(),
                play.who_ended()
            ),
            &deadline,
        )));
    };
    endpoint.last_arrival = Some(d.arrived);
    endpoint.last_mark = Some(crate::program_time::Mark::now());
    // What fails this step from here on is in this datagram (see
    // `impl Run for ExpectDatagram`).
    play.datagram_arrived = Some(d.arrived);
    if role == Role::Server {
        play.request = Some(d.bytes.clone());
        play.offered.clear();
    }
    let whom = match role {
        Role::Server => "from the client".to_string(),
        // What a member sees of a sender: its address, the TTL and the
        // interface the datagram came through (the sender's port is its own
        // business).
        Role::Member => {
            let ttl = d.ttl.map(|t| format!(", TTL {t}")).unwrap_or_default();
            let through = d
                .interface
                .map(|i| format!(", through {}", datagram::interface_name(i)))
                .unwrap_or_default();
            format!("from {}{ttl}{through}", d.from.ip())
        }
        _ => format!("from {}", play.describe_addr(d.from)),
    };
    let matcher = match (&e.expected, echo) {
        (ExpectedDatagram::Bytes(m), _) => m,
        (ExpectedDatagram::Echo, Some(sent)) => &crate::matcher::Matcher::Exact(sent.into()),
        (ExpectedDatagram::Echo, None) => {
            return Err(StepError::failed(format!(
                "`echo: true` on `{name}`, which has sent nothing yet to be echoed"
            )))
        }
    };
    let matched = matches!(matcher.check_whole(&d.bytes), crate::matcher::Check::Done(_));
    let mismatch = (!matched).then(|| Mismatch {
        expected: describe_matcher(matcher),
        got: escape::quote(&d.bytes, 200),
    });
    let interval = previous.and_then(|p| d.arrived.duration_since(p).ok());
    let detail = interval.map(|i| format!("{}ms after the previous datagram", i.as_millis()));
    let wire = Wire::Datagram {
        outgoing: false,
        shown: escape::quote(&d.bytes, 80),
        bytes: d.bytes.len(),
        whom,
        mismatch: mismatch.clone(),
        fate: None,
    };
    match (&detail, e.interval) {
        (Some(detail), Some(_)) => play.transcript.record_wire_with_detail(&name, wire, detail.clone()),
        _ => play.transcript.record_wire(&name, wire),
    }
    // Where it came from, before what it holds: a reply from the wrong
    // port is wrong whatever its bytes.
    if role == Role::Client && Some(d.from) != expected_from {
        return Err(StepError::failed(format!(
            "a datagram arrived on `{name}` from {}, not from {{port}}, where its request went",
            play.describe_addr(d.from)
        )));
    }
    if role == Role::Member {
        through_loopback(play, &name, &d)?;
    }
    if d.truncated {
        return Err(StepError::failed(format!(
            "a datagram on `{name}` was longer than {} bytes",
            d.bytes.len()
        )));
    }
    if let Some(m) = mismatch {
        let diff = matcher
            .mismatch(&d.bytes)
            .map(|(_, _, diff)| diff)
            .filter(|d| !d.is_empty())
            .map(|d| format!("; {d}"))
            .unwrap_or_default();
        return Err(StepError::failed(format!(
            "expected a datagram holding {} on `{name}`, got {} ({}){diff}",
            m.expected,
            m.got,
            escape::bytes(d.bytes.len())
        )));
    }
    if let Some(want) = e.ttl {
        match d.ttl {
            Some(ttl) if ttl == i32::from(want) => {}
            Some(ttl) => {
                return Err(StepError::failed(format!(
                    "expected the datagram's TTL to be {want}, it was {ttl} (set IP_MULTICAST_TTL)"
                )))
            }
            None => {
                return Err(StepError::failed(format!(
                    "`{name}` does not read TTLs: `ttl` needs a `join` endpoint"
                )))
            }
        }
    }
    if let Some(bounds) = e.interval {
        let Some(gap) = interval else {
            return Err(StepError::failed(format!(
                "`interval` measures from the previous datagram on `{name}`, and this is the first"
            )));
        };
        // Too late only in the programs' time: what a busy machine kept
        // them waiting for a CPU in between is not the program's delay.
        // (Too soon needs no such care: load never makes anything sooner.)
        let stolen = || previous_mark.as_ref().map(|m| m.waited_since()).unwrap_or_default();
        if gap < bounds.at_least.0 || (gap > bounds.at_most.0 && gap > bounds.at_most.0 + stolen()) {
            let how = if gap < bounds.at_least.0 {
                "too soon"
            } else {
                "too late"
            };
            return Err(StepError::failed(format!(
                "the datagram came {}ms after the previous one, {how}: expected between {} and {}",
                gap.as_millis(),
                bounds.at_least,
                bounds.at_most
            )));
        }
    }
    Ok(())
}

/// A datagram a member heard through another interface than `lo`: the
/// sender did not name 127.0.0.1 (`IP_MULTICAST_IF`), and the kernel sent
/// it where its multicast route goes.
fn through_loopback(play: &mut Play<'_>, name: &str, d: &Datagram) -> StepResult {
    let (Some(index), Some(lo)) = (d.interface, datagram::loopback_index()) else {
        return Ok(());
    };
    if index == lo {
        return Ok(());
    }
    let precondition = play
        .spec
        .programs
        .iter()
        .find(|(_, p)| p.preconditions.through_loopback.is_some())
        .map(|(program, _)| Precondition::ThroughLoopback {
            program: program.clone(),
        });
    Err(StepError::failed(format!(
        "a datagram arrived on `{name}` through {}, not through lo (127.0.0.1): its sender did not choose the interface",
        datagram::interface_name(index)
    ))
    .precondition(precondition))
}

impl Run for ExpectNoDatagram {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = self.on.value.clone();
        let arrived = play.datagram_arrived;
        let endpoint = play.endpoint(&self.on)?;
        // Counted from the arrival of the datagram the step before received on
        // this endpoint, as the kernel stamped it, if there is one (a client
        // must not resend within 300 ms of its request): a grader that got to
        // this step late on a busy machine must not take in the resend due at
        // 500 ms.
        let now = std::time::SystemTime::now();
        let from = arrived
            .filter(|at| Some(*at) == endpoint.last_arrival && *at <= now)
            .unwrap_or(now);
        let until = from + self.duration.0;
        let span = until.duration_since(now).unwrap_or_default();
        let mut got = endpoint
            .recv(&mut Deadline::on_the_wall_clock(span))
            .await
            .map_err(|err| format!("reading a datagram failed: {}", crate::escape::os_error(&err)))
            .or_failed()?;
        // Judged by the kernel's stamp, not by when the grader got to read it.
        if let Some(late) = got.take_if(|d| d.arrived > until) {
            endpoint.hold(late);
        }
        match got {
            None => {
                play.transcript
                    .record(&name, format!("<- no datagram for {}", self.duration));
                Ok(())
            }
            Some(d) => {
                endpoint.last_arrival = Some(d.arrived);
                let whom = format!("from {}", play.describe_addr(d.from));
                play.transcript.record_wire(
                    &name,
                    Wire::Datagram {
                        outgoing: false,
                        shown: escape::quote(&d.bytes, 80),
                        bytes: d.bytes.len(),
                        whom,
                        mismatch: Some(Mismatch {
                            expected: "no datagram".into(),
                            got: escape::quote(&d.bytes, 200),
                        }),
                        fate: None,
                    },
                );
                if let Some((_, prog)) = client_program(play) {
                    prog.output_caught_up().await;
                }
                Err(StepError::failed(format!(
                    "expected no datagram on `{name}` for {}; {} arrived",
                    self.duration,
                    escape::quote(&d.bytes, 80)
                ))
                .observed(reply_taken(play))
                .seen_at(d.arrived))
            }
        }
    }
}

/// A datagram the grader sent a client under test since its last request.
#[derive(Clone, Debug)]
pub struct Offered {
    /// The grader's endpoint it came from.
    pub from: String,
    pub bytes: Vec<u8>,
    /// Sent from another endpoint than the one the client writes to: from
    /// another port than the server's.
    pub foreign: bool,
}

/// The client under test, running or not.
fn client_program<'a>(play: &'a Play<'_>) -> Option<(&'a str, &'a crate::process::Running)> {
    let name = play.client_name()?;
    Some((name, play.programs.get(name)?))
}

/// The last line a program wrote on stdout, and all its lines.
fn stdout_lines(prog: &crate::process::Running) -> Vec<Vec<u8>> {
    let text = prog
        .stdout
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .whole()
        .unwrap_or_default();
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Why a client went on (sent again) when it should still have waited: the
/// last line it printed is a datagram the grader sent it that was not the
/// reply to its request. Which one, by its bytes and where it came from.
fn reply_taken(play: &Play<'_>) -> Option<Observed> {
    let request = play.request.as_ref()?;
    let (name, prog) = client_program(play)?;
    let printed = stdout_lines(prog).pop()?;
    let taken = play
        .offered
        .iter()
        .find(|o| o.bytes == printed && (o.foreign || o.bytes != *request))?;
    Some(Observed::NotTheReply {
        client: name.to_string(),
        printed,
        request: request.clone(),
        foreign: taken.foreign.then(|| taken.from.to_string()),
    })
}

/// Why a client printed a line twice: a relay duplicated or held back a
/// reply, and the client printed the copy as if it answered the request
/// after. Asked when an `expect_output` on its stdout failed; a line the
/// expected output has twice in a row is no sign of it.
pub(super) fn printed_twice(
    play: &Play<'_>,
    program: &str,
    expected: Option<&crate::matcher::Matcher>,
) -> Option<Observed> {
    if play.relay_replies.is_empty() {
        return None;
    }
    let prog = play.programs.get(program)?;
    let lines = stdout_lines(prog);
    let expected_lines: Vec<&[u8]> = match expected {
        Some(crate::matcher::Matcher::Exact(want)) => want.split(|b| *b == b'\n').collect(),
        _ => Vec::new(),
    };
    let doubled_there = |line: &[u8]| expected_lines.windows(2).any(|w| w[0] == line && w[1] == line);
    let twice = lines.windows(2).find(|w| w[0] == w[1] && !doubled_there(&w[0]))?;
    Some(Observed::PrintedTwice {
        client: program.to_string(),
        line: twice[0].clone(),
        relay_replies: play.relay_replies.clone(),
    })
}

fn describe_expected(e: &ExpectedDatagram) -> String {
    match e {
        ExpectedDatagram::Bytes(m) => format!("a datagram holding {}", describe_matcher(m)),
        ExpectedDatagram::Echo => "the echo of the last datagram sent".into(),
    }
}

fn describe_matcher(m: &crate::matcher::Matcher) -> String {
    match m {
        crate::matcher::Matcher::Empty => "nothing (an empty datagram)".into(),
        m => m.describe(),
    }
}

impl Play<'_> {
    /// The endpoint a step names.
    /// (One the spec never opened is an error.)
    pub fn endpoint(&mut self, name: &crate::lang::Name) -> Result<&mut Endpoint, StepError> {
        self.endpoints
            .get_mut(&name.value)
            .ok_or_else(|| StepError::cannot_run(format!("`{}` is not an open endpoint", name.value)))
    }

    /// An address in words that do not change from run to run: `{port}`,
    /// the group, an endpoint of the harness by its name, or a port of a
    /// program (a client under test).
    pub fn describe_addr(&self, addr: SocketAddr) -> String {
        let addr = datagram::canonical(addr);
        if addr.port() == self.setting.port {
            return match addr.ip() {
                ip if ip.is_multicast() => "the group, port {port}".into(),
                _ => "{port}".into(),
            };
        }
        if let Some(e) = self.endpoints.values().find(|e| e.local_addr() == Some(addr)) {
            return format!("`{}`", e.name);
        }
        // The client under test, as a `udp_bind` endpoint last heard it.
        if self
            .endpoints
            .values()
            .any(|e| e.role == Role::Server && e.peer.map(datagram::canonical) == Some(addr))
        {
            return "the client".into();
        }
        "another port".into()
    }

    /// ", and `name` had exited ..." for a program that ended, which often
    /// is why nothing came.
    pub fn who_ended(&self) -> String {
        let ended: Vec<String> = self
            .order
            .iter()
            .filter_map(|n| self.programs.get(n))
            .filter_map(|p| {
                p.exit_status()
                    .map(|s| format!("{} {}", p.name, crate::process::ended(&s)))
            })
            .collect();
        if ended.is_empty() {
            String::new()
        } else {
            format!(" ({})", ended.join("; "))
        }
    }
}
