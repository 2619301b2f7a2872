//! The transcript: every observable event of a scenario, in order, with the
//! actor it concerns and a monotonic time stamp.
//!
//! Event texts are written with `{port}`, `{host}` and `{pid}` placeholders
//! already in place; the normalised rendering keeps them (snapshots, diffs)
//! and the full rendering fills in the port and host and adds the times
//! (reports).

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
    /// Shown after the text in the full transcript only: figures that depend
    /// on the machine or the program's runtime, not on its behaviour (how
    /// many descriptors a runtime opens for itself, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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

    /// An event whose full rendering adds `detail` to `text`.
    pub fn record_with_detail(&self, actor: &str, text: impl Into<String>, detail: impl Into<String>) {
        self.push(actor, text.into(), false, Some(detail.into()));
    }

    /// An event for the full transcript only (see `Event::full_only`).
    pub fn record_full_only(&self, actor: &str, text: impl Into<String>) {
        self.push(actor, text.into(), true, None);
    }

    fn push(&self, actor: &str, text: String, full_only: bool, detail: Option<String>) {
        let event = Event {
            at: self.started.elapsed(),
            actor: actor.to_string(),
            text,
            full_only,
            detail,
        };
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn append(&self, events: Vec<Event>) {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).extend(events);
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

/// An event's text as it happened: the placeholders of a command line
/// (`{port}`, `{host}`) filled in as the program got them.
fn fill(text: &str, port: u16) -> String {
    text.replace("{port}", &port.to_string())
        .replace("{host}", crate::spec::HOST)
}

fn render(events: &[Event], port: Option<u16>) -> String {
    let width = events.iter().map(|e| e.actor.len()).max().unwrap_or(0).max(6);
    let mut out = String::new();
    for e in events.iter().filter(|e| port.is_some() || !e.full_only) {
        let text = match (port, &e.detail) {
            (Some(p), Some(d)) => format!("{}  [{d}]", fill(&e.text, p)),
            (Some(p), None) => fill(&e.text, p),
            (None, _) => e.text.clone(),
        };
        if port.is_some() {
            out.push_str(&format!("{:>8.1}ms  ", e.at.as_secs_f64() * 1000.0));
        }
        out.push_str(&format!("{:<width$}  {}\n", e.actor, text));
    }
    out
}
