//! The transcript: every observable event of a scenario, in order, with the
//! actor it concerns and a monotonic time stamp.
//!
//! Event texts are written with `{port}`, `{host}` and `{pid}` placeholders
//! already in place; the normalised rendering keeps them (snapshots, diffs)
//! and the full rendering fills in the port and host and adds the times
//! (reports).
//!
//! An event on the wire (bytes, a handshake, FIN, RST) also carries its
//! meaning as a `Wire`, from which its text is made: a report that draws the
//! connections (the HTML sequence diagram) reads the `Wire`, never the text.

use crate::escape;
use crate::lang::tcp::ConnectOutcome;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    /// Time since the scenario began.
    #[serde(serialize_with = "as_millis")]
    pub at: Duration,
    pub actor: String,
    pub text: String,
    /// Shown in the full transcript only: what a program printed, which can
    /// hold ports, pids and times of its own.
    #[serde(skip)]
    pub full_only: bool,
    /// Drawn (the HTML diagram) but in no text transcript: what a failing
    /// step saw end its wait, which the step's failure already says in
    /// words, and which the text transcripts (snapshots, diffs between
    /// versions) have never listed.
    #[serde(skip)]
    pub drawn_only: bool,
    /// Shown after the text in the full transcript only: figures that depend
    /// on the machine or the program's runtime, not on its behaviour (how
    /// many descriptors a runtime opens for itself, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What happened on the wire, if this event is about a connection of
    /// the harness; `None` for everything else (a program's start, a
    /// signal, its exit, what the kernel showed): a mark on the actor's line.
    #[serde(skip)]
    pub wire: Option<Wire>,
}

/// An event on a connection of the harness, as the harness's end saw it.
/// The peer is the program at the other end, where the step knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// The harness connected (`count` connections one after the other, all
    /// with this outcome, or the one that did not have the expected one).
    Connect {
        peer: Option<String>,
        count: Option<usize>,
        outcome: ConnectOutcome,
    },
    /// A listener of the harness (for a client under test) listens.
    Listen,
    /// A program connected to a listener of the harness.
    Accepted { peer: Option<String> },
    /// The harness sent `bytes` (described as `what`) in `writes` writes,
    /// `gap` apart if the spec said.
    Send {
        what: String,
        bytes: usize,
        writes: usize,
        gap: Option<String>,
    },
    /// The harness wrote until the program stopped reading.
    Fill { how: &'static str },
    /// Bytes arrived: `shown` quoted and cut short; a `mismatch` when they
    /// were not what the step waited for, and then how the program had
    /// ended the connection, if it had (what ended the wait).
    Received {
        shown: String,
        bytes: usize,
        mismatch: Option<Mismatch>,
        ended: Option<Ended>,
    },
    /// The harness echoed what the program sent (`echoed` bytes), or failed to.
    Echo {
        what: String,
        echoed: Option<usize>,
        mismatch: Option<Mismatch>,
    },
    /// The harness half-closed: a FIN, after the last bytes of a `send`.
    Shutdown { with_last_bytes: bool },
    /// The harness closed its end: a FIN.
    Close,
    /// The harness reset the connection: an RST.
    Abort,
    /// The program's FIN arrived (end of stream).
    Eof,
    /// The program's RST arrived.
    Reset,
    /// One datagram, sent by the harness (`outgoing`) or received by it;
    /// `whom` says where it went or came from, in words ("to {port}", "from
    /// the client"); `fate` is what a relay did with it.
    Datagram {
        outgoing: bool,
        shown: String,
        bytes: usize,
        whom: String,
        mismatch: Option<Mismatch>,
        fate: Option<String>,
    },
}

/// How the program ended its side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Fin,
    Rst,
}

/// What a step waited for and what came instead, for showing side by side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    /// What arrived, quoted; in words when the bytes are not at hand.
    pub got: String,
}

impl Wire {
    /// The event's text in the transcript.
    fn text(&self) -> String {
        match self {
            Wire::Connect {
                count: None, outcome, ..
            } => format!("connect -> {}", outcome.as_str()),
            Wire::Connect {
                count: Some(n),
                outcome,
                ..
            } => format!("connect {n} -> {}", outcome.as_str()),
            Wire::Listen => "listening on {port}".into(),
            Wire::Accepted { .. } => "accepted".into(),
            Wire::Send {
                what,
                bytes,
                writes,
                gap,
            } => {
                let count = match (writes, gap) {
                    (1, _) => "1 write".to_string(),
                    (n, Some(gap)) => format!("{n} writes {gap} apart"),
                    (n, None) => format!("{n} writes"),
                };
                format!("-> {what}  ({} in {count})", escape::bytes(*bytes))
            }
            Wire::Fill { how } => format!("-> text lines {how}"),
            Wire::Received {
                shown,
                bytes,
                mismatch: None,
                ..
            } => format!("<- {shown}  ({})", escape::bytes(*bytes)),
            Wire::Received {
                shown,
                bytes,
                mismatch: Some(_),
                ..
            } => {
                format!("<- {shown}  ({bytes} bytes, not as expected)")
            }
            Wire::Echo {
                what, echoed: Some(n), ..
            } => format!("<-> {what}  ({} echoed)", escape::bytes(*n)),
            Wire::Echo { what, echoed: None, .. } => format!("<-> {what}  (not as expected)"),
            Wire::Shutdown { with_last_bytes: true } => "shutdown write (the FIN with the last bytes)".into(),
            Wire::Shutdown { with_last_bytes: false } => "shutdown write".into(),
            Wire::Close => "close".into(),
            Wire::Abort => "abort (RST)".into(),
            Wire::Eof => "<- EOF".into(),
            Wire::Reset => "<- RST".into(),
            Wire::Datagram {
                outgoing,
                shown,
                bytes,
                whom,
                mismatch,
                fate,
            } => {
                let arrow = if *outgoing { "->" } else { "<-" };
                let not = if mismatch.is_some() { ", not as expected" } else { "" };
                let fate = fate.as_ref().map(|f| format!(": {f}")).unwrap_or_default();
                format!(
                    "{arrow} datagram {shown}  ({}, {whom}{not}){fate}",
                    escape::bytes(*bytes)
                )
            }
        }
    }
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e4).round() / 10.0)
}

/// Shared by every actor of a scenario. Cloning shares the same record.
#[derive(Clone)]
pub struct Transcript {
    started: Instant,
    events: Arc<Mutex<Vec<Event>>>,
    port: u16,
}

impl Transcript {
    pub fn new(port: u16) -> Transcript {
        Transcript {
            started: Instant::now(),
            events: Arc::default(),
            port,
        }
    }

    /// A transcript for one member of an `each` block: same clock, its own
    /// list, appended to the parent in member order when the block ends so
    /// the normalised text doesn't depend on the scheduler.
    pub fn branch(&self) -> Transcript {
        Transcript {
            started: self.started,
            events: Arc::default(),
            port: self.port,
        }
    }

    pub fn record(&self, actor: &str, text: impl Into<String>) {
        self.push(actor, text.into(), false, None);
    }

    /// An event on the wire: its text is made from `wire`.
    pub fn record_wire(&self, actor: &str, wire: Wire) {
        self.push_event(actor, wire.text(), false, None, Some(wire));
    }

    /// An event on the wire whose full rendering adds `detail` (a time that
    /// the normalised transcript leaves out).
    pub fn record_wire_with_detail(&self, actor: &str, wire: Wire, detail: String) {
        self.push_event(actor, wire.text(), false, Some(detail), Some(wire));
    }

    /// An event on the wire for the diagram only (see `Event::drawn_only`).
    pub fn record_drawn(&self, actor: &str, wire: Wire) {
        let text = wire.text();
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push(Event {
            at: self.started.elapsed(),
            actor: actor.to_string(),
            text,
            full_only: false,
            drawn_only: true,
            detail: None,
            wire: Some(wire),
        });
    }

    /// An event whose full rendering adds `detail` to `text`.
    pub fn record_with_detail(&self, actor: &str, text: impl Into<String>, detail: impl Into<String>) {
        self.push(actor, text.into(), false, Some(detail.into()));
    }

    /// An event for the full transcript only (see `Event::full_only`).
    pub fn record_full_only(&self, actor: &str, text: impl Into<String>) {
        self.push(actor, text.into(), true, None);
    }

    fn push(&self, actor: &str, text: String, full_only: bool, detail: Option<String>) {
        self.push_event(actor, text, full_only, detail, None);
    }

    fn push_event(&self, actor: &str, text: String, full_only: bool, detail: Option<String>, wire: Option<Wire>) {
        let event = Event {
            at: self.started.elapsed(),
            actor: actor.to_string(),
            text,
            full_only,
            drawn_only: false,
            detail,
            wire,
        };
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn append(&self, events: Vec<Event>) {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).extend(events);
    }

    /// How many events are recorded: where the next one will be.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stable text: no times, placeholders kept.
    pub fn normalised(&self) -> String {
        render(&self.events(), None)
    }

    /// For reports: times, and the real port.
    pub fn full(&self) -> String {
        render(&self.events(), Some(self.port))
    }
}

fn render(events: &[Event], port: Option<u16>) -> String {
    use crate::lang::fill_port_and_host;
    let width = events.iter().map(|e| e.actor.len()).max().unwrap_or(0).max(6);
    let mut out = String::new();
    for e in events
        .iter()
        .filter(|e| !e.drawn_only && (port.is_some() || !e.full_only))
    {
        let text = match (port, &e.detail) {
            // An event's text as it happened: the placeholders of a command
            // line filled in as the program got them.
            (Some(p), Some(d)) => format!("{}  [{d}]", fill_port_and_host(&e.text, p)),
            (Some(p), None) => fill_port_and_host(&e.text, p),
            (None, _) => e.text.clone(),
        };
        if port.is_some() {
            out.push_str(&format!("{:>8.1}ms  ", e.at.as_secs_f64() * 1000.0));
        }
        out.push_str(&format!("{:<width$}  {}\n", e.actor, text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wire_event_is_written_as_before_and_a_drawn_one_not_at_all() {
        let t = Transcript::new(7);
        t.record_wire(
            "a",
            Wire::Send {
                what: "\"hi\\n\"".into(),
                bytes: 3,
                writes: 1,
                gap: None,
            },
        );
        t.record_drawn("a", Wire::Reset);
        t.record_wire("a", Wire::Shutdown { with_last_bytes: false });
        assert_eq!(
            t.normalised(),
            "a       -> \"hi\\n\"  (3 bytes in 1 write)\na       shutdown write\n"
        );
        assert_eq!(t.full().lines().count(), 2);
        // The diagram sees all three, each with its meaning.
        let wires: Vec<Option<Wire>> = t.events().into_iter().map(|e| e.wire).collect();
        assert_eq!(wires[1], Some(Wire::Reset));
        assert_eq!(wires.len(), 3);
    }
}
