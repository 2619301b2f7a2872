//! The sequence diagram of one scenario, as inline SVG, drawn from its
//! transcript events: a lifeline per actor (the grader's connections and
//! listeners on the left, the programs on the right), one row per event in
//! transcript order (not to scale: the times are in the margin), an arrow
//! for each event on the wire (`transcript::Wire`: bytes, handshakes, FIN,
//! RST), a mark on its line for everything else (a program's start, its
//! signals and exit, what the kernel showed), a band for the scenario's own
//! notes (`round 2:`, `repeated 100 times`), and the failing step's rows
//! tinted and followed by a red band.
//!
//! Big runs stay drawable: labels are cut short (the whole text is the
//! element's tooltip), at most `MAX_LANES` lifelines (a group's members then
//! share their group's line), and at most `HEAD_ROWS` + `TAIL_ROWS` rows,
//! the failing step kept; the diagram says when it left something out.

use super::{esc, short};
use crate::lang::tcp::ConnectOutcome;
use crate::transcript::{Ended, Event, Wire};
use crate::verdict::ScenarioResult;
use std::collections::HashMap;
use std::fmt::Write;

/// Horizontal room per lifeline, and left of the first (the time column)
/// and right of the last (the labels of the programs' marks).
const LANE: usize = 210;
const LEFT: usize = 70;
const RIGHT: usize = 250;
/// The lifelines' heads, then one row per event.
const HEAD: usize = 44;
const ROW: usize = 24;
/// Beyond this many lifelines a diagram is too wide to read.
pub(super) const MAX_LANES: usize = 10;
/// Rows drawn at most: the first events (how the scenario began) and the
/// last (how it failed and ended).
const HEAD_ROWS: usize = 100;
const TAIL_ROWS: usize = 60;
/// Characters in an arrow's label (what it carries, then its byte count,
/// which is never cut), in a mark's, in a lane's name, and in a tooltip.
const LABEL: usize = 30;
const MARK: usize = 44;
const NAME: usize = 20;
const TOOLTIP: usize = 400;

pub(super) fn render(number: usize, s: &ScenarioResult) -> String {
    let lanes = Lanes::of(s);
    let rows = rows(s);
    let id = format!("s{number}");
    let height = HEAD + rows.len() * ROW + 12;
    let width = LEFT + lanes.names.len().max(1) * LANE + RIGHT;
    let mut svg = String::new();
    let mut notes = Vec::new();
    if let Some(note) = &lanes.folded {
        notes.push(note.clone());
    }
    let drawn = rows.iter().filter(|r| matches!(r, Row::Event(_))).count();
    if drawn < s.events.len() {
        let failing = if s.failure.is_some() {
            ", the failing step's among them"
        } else {
            ""
        };
        notes.push(format!(
            "{drawn} of {} events are drawn: the first and the last{failing}; the transcript below has them all",
            s.events.len()
        ));
    }
    let _ = writeln!(
        svg,
        "<p class=\"meta\">Left: the grader's connections and listeners; right: your programs. \
         One row per event, in order; times on the left. Arrows: <span class=\"k-bytes\">bytes</span>, \
         <span class=\"k-fin\">FIN</span>, <span class=\"k-rst\">RST and what failed</span>, \
         <span class=\"k-handshake\">handshakes</span>; hover for the whole text.{}</p>",
        notes.iter().map(|n| format!(" <b>{}.</b>", esc(n))).collect::<String>()
    );
    let _ = write!(
        svg,
        "<svg class=\"seq\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"sequence diagram\">\n<defs>"
    );
    for class in ["bytes", "fin", "rst", "handshake", "failed"] {
        let _ = write!(
            svg,
            "<marker id=\"{id}-{class}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
             markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" \
             class=\"mk-{class}\"/></marker>"
        );
    }
    svg.push_str("</defs>\n");
    // The failing step's rows first, so that lines and labels go over them.
    for (r, row) in rows.iter().enumerate() {
        if let Row::Event(i) = row {
            if s.failure.as_ref().is_some_and(|f| f.events.contains(i)) {
                let _ = writeln!(
                    svg,
                    "<rect class=\"failrow\" x=\"0\" y=\"{}\" width=\"{width}\" height=\"{ROW}\"/>",
                    HEAD + r * ROW
                );
            }
        }
    }
    for (k, name) in lanes.names.iter().enumerate() {
        let x = lanes.x(k);
        let class = if k >= lanes.first_program { "program" } else { "harness" };
        let _ = writeln!(
            svg,
            "<g class=\"lane-head {class}\"><title>{}</title><rect x=\"{}\" y=\"8\" width=\"{}\" height=\"24\" rx=\"4\"/>\
             <text x=\"{x}\" y=\"24\" text-anchor=\"middle\">{}</text></g>\
             <line class=\"life\" x1=\"{x}\" y1=\"32\" x2=\"{x}\" y2=\"{}\"/>",
            esc(name),
            x - LANE / 2 + 10,
            LANE - 20,
            esc(&short(name, NAME)),
            height - 6
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let y = HEAD + r * ROW + ROW / 2;
        match row {
            Row::Event(i) => {
                if let Some(e) = s.events.get(*i) {
                    event(&mut svg, &id, &lanes, e, y);
                }
            }
            Row::Gap(n) => band(
                &mut svg,
                "gap",
                y,
                &lanes,
                &format!("… {n} events not drawn (see the transcript) …"),
            ),
            Row::Failure => {
                let text = match &s.failure {
                    Some(f) => format!("✗ step {} failed: {}", f.step, f.description),
                    None => "✗ failed".to_string(),
                };
                band(&mut svg, "failband", y, &lanes, &text);
            }
            Row::Died(k) => {
                let died = s.failure.as_ref().and_then(|f| f.programs.get(*k));
                if let Some((p, lane)) = died.and_then(|p| lanes.line_of.get(&p.name).map(|l| (p, *l))) {
                    let x = lanes.x(lane);
                    let text = format!("{} (unexpectedly)", p.state);
                    let _ = writeln!(
                        svg,
                        "<g class=\"died\"><title>{}: {}</title><circle cx=\"{x}\" cy=\"{y}\" r=\"5\"/>\
                         <text x=\"{}\" y=\"{}\">{}</text></g>",
                        esc(&p.name),
                        esc(&text),
                        x + 8,
                        y + 4,
                        esc(&short(&text, MARK))
                    );
                }
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// The lifelines: the names drawn, and which line each actor is on.
struct Lanes {
    names: Vec<String>,
    /// Lanes from this one on are programs.
    first_program: usize,
    line_of: HashMap<String, usize>,
    /// The program at the other end of each connection, by actor.
    peers: HashMap<String, String>,
    /// What folding did, in words, if it had to.
    folded: Option<String>,
}

impl Lanes {
    fn of(s: &ScenarioResult) -> Lanes {
        let mut peers = HashMap::new();
        let mut programs = s.programs.clone();
        for e in &s.events {
            if let Some(Wire::Connect { peer: Some(p), .. } | Wire::Accepted { peer: Some(p) }) = &e.wire {
                peers.insert(e.actor.clone(), p.clone());
                if !programs.contains(p) {
                    programs.push(p.clone());
                }
            }
        }
        let mut harness: Vec<String> = Vec::new();
        for e in &s.events {
            // The scenario's own notes are bands across, not a line.
            if !e.actor.is_empty() && !programs.contains(&e.actor) && !harness.contains(&e.actor) {
                harness.push(e.actor.clone());
            }
        }
        // Too many lines: a group's members (`c#1`, `c#*`) go on their
        // group's line, then whatever is left over shares one.
        let mut line_name: HashMap<String, String> = harness.iter().map(|a| (a.clone(), a.clone())).collect();
        let mut folded = None;
        if harness.len() + programs.len() > MAX_LANES {
            let before = harness.len();
            let mut grouped: Vec<String> = Vec::new();
            for a in &harness {
                let g = group(a).to_string();
                if !grouped.contains(&g) {
                    grouped.push(g.clone());
                }
                line_name.insert(a.clone(), g);
            }
            harness = grouped;
            folded = Some(format!(
                "{before} connections and listeners are drawn on {}: a group's members share their group's line",
                lines(harness.len())
            ));
            let room = MAX_LANES.saturating_sub(programs.len() + 1).max(1);
            if harness.len() > room {
                let others = "others".to_string();
                let rest: Vec<String> = harness.split_off(room);
                for name in line_name.values_mut() {
                    if rest.contains(name) {
                        *name = others.clone();
                    }
                }
                harness.push(others);
                folded = Some(format!(
                    "{before} connections and listeners are drawn on {}: a group's members share their \
                     group's line, and the line `others` is shared by the last {}",
                    lines(harness.len()),
                    rest.len()
                ));
            }
        }
        let first_program = harness.len();
        let mut names = harness;
        names.extend(programs.iter().cloned());
        let index: HashMap<&String, usize> = names.iter().enumerate().map(|(k, n)| (n, k)).collect();
        let mut line_of = HashMap::new();
        for (actor, name) in &line_name {
            if let Some(&k) = index.get(name) {
                line_of.insert(actor.clone(), k);
            }
        }
        for p in &programs {
            if let Some(&k) = index.get(p) {
                line_of.insert(p.clone(), k);
            }
        }
        Lanes {
            names,
            first_program,
            line_of,
            peers,
            folded,
        }
    }

    fn x(&self, lane: usize) -> usize {
        LEFT + LANE / 2 + lane * LANE
    }

    /// The line of the program at the other end of `actor`'s connection:
    /// the one its `connect` or `accept` named (a member's group's, for a
    /// member), else the only program there is.
    fn peer(&self, actor: &str) -> Option<usize> {
        let named = self.peers.get(actor).or_else(|| self.peers.get(group(actor)));
        match named {
            Some(p) => self.line_of.get(p).copied(),
            None if self.names.len() == self.first_program + 1 => Some(self.first_program),
            None => None,
        }
    }
}

fn lines(n: usize) -> String {
    if n == 1 {
        "1 line".into()
    } else {
        format!("{n} lines")
    }
}

/// The group an actor belongs to: `c` for `c#3` and `c#*`.
fn group(actor: &str) -> &str {
    actor.split('#').next().unwrap_or(actor)
}

enum Row {
    Event(usize),
    /// This many events left out.
    Gap(usize),
    /// Where the failing step ended.
    Failure,
    /// A program of `failure.programs` (by index) that had ended when the
    /// step failed without being told to: the steps that saw it dead say so
    /// in words only, and it is often the cause.
    Died(usize),
}

/// The rows drawn: every event when there are few, else the first and the
/// last with the failing step's; the failure band after the failing step.
fn rows(s: &ScenarioResult) -> Vec<Row> {
    let n = s.events.len();
    let span = s.failure.as_ref().map(|f| f.events.clone());
    let keep = |i: usize| -> bool {
        if n <= HEAD_ROWS + TAIL_ROWS {
            return true;
        }
        // The failing step's events are the last but the clean-up's; a step
        // that recorded a great many keeps its last ones.
        let tail_from = span
            .as_ref()
            .map_or(n - TAIL_ROWS, |r| r.start.min(n - TAIL_ROWS))
            .max(n.saturating_sub(2 * TAIL_ROWS));
        i < HEAD_ROWS || i >= tail_from
    };
    let mut rows = Vec::new();
    let mut skipped = 0;
    let mut failure_placed = span.is_none();
    for i in 0..n {
        if !failure_placed && span.as_ref().is_some_and(|r| i >= r.end) && keep(i) {
            rows.push(Row::Failure);
            failure_placed = true;
        }
        if keep(i) {
            if skipped > 0 {
                rows.push(Row::Gap(skipped));
                skipped = 0;
            }
            rows.push(Row::Event(i));
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        rows.push(Row::Gap(skipped));
    }
    if !failure_placed {
        rows.push(Row::Failure);
    }
    // Right under the failure band.
    if let Some(f) = &s.failure {
        let at = rows
            .iter()
            .position(|r| matches!(r, Row::Failure))
            .map_or(rows.len(), |p| p + 1);
        let died = f
            .programs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.exit.is_some() && !p.end_expected)
            .map(|(k, _)| Row::Died(k));
        rows.splice(at..at, died);
    }
    rows
}

fn event(svg: &mut String, id: &str, lanes: &Lanes, e: &Event, y: usize) {
    let _ = write!(
        svg,
        "<text class=\"time\" x=\"4\" y=\"{}\">{:.1}ms</text>",
        y + 4,
        e.at.as_secs_f64() * 1000.0
    );
    let tooltip = match &e.detail {
        Some(d) => format!("{}: {}  [{d}]", e.actor, e.text),
        None => format!("{}: {}", e.actor, e.text),
    };
    let tooltip = esc(&short(&tooltip, TOOLTIP));
    if e.actor.is_empty() {
        band(svg, "band", y, lanes, &e.text);
        return;
    }
    let Some(&own) = lanes.line_of.get(&e.actor) else {
        return;
    };
    let arrow = e.wire.as_ref().and_then(|w| {
        let peer = lanes.peer(&e.actor).filter(|&p| p != own)?;
        let shared = lanes.names.get(own).is_some_and(|line| *line != e.actor);
        arrow(w, &e.actor, shared).map(|a| (peer, a))
    });
    match arrow {
        Some((peer, a)) => {
            let (from, to) = if a.outgoing { (own, peer) } else { (peer, own) };
            let (x1, x2) = (lanes.x(from), lanes.x(to));
            // Stop short of the line so the head shows.
            let x2 = if x2 > x1 { x2 - 3 } else { x2 + 3 };
            let start = if a.both_ways {
                format!(" marker-start=\"url(#{id}-{})\"", a.class)
            } else {
                String::new()
            };
            let _ = writeln!(
                svg,
                "<g><title>{tooltip}</title><line class=\"{class}\" x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" \
                 marker-end=\"url(#{id}-{class})\"{start}/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
                (x1 + x2) / 2,
                y - 4,
                esc(&short(&a.label, LABEL + 16)),
                class = a.class,
            );
        }
        None => {
            let x = lanes.x(own);
            let _ = writeln!(
                svg,
                "<g><title>{tooltip}</title><circle class=\"mark\" cx=\"{x}\" cy=\"{y}\" r=\"4\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text></g>",
                x + 8,
                y + 4,
                esc(&short(&e.text, MARK))
            );
        }
    }
}

/// How an event on the wire is drawn.
struct Arrow {
    /// From the harness's end to the program's.
    outgoing: bool,
    both_ways: bool,
    class: &'static str,
    label: String,
}

/// `member`: the actor shares its group's line, so its label names it.
fn arrow(w: &Wire, actor: &str, member: bool) -> Option<Arrow> {
    let to = |class, label: String| Arrow {
        outgoing: true,
        both_ways: false,
        class,
        label,
    };
    let from = |class, label: String| Arrow {
        outgoing: false,
        both_ways: false,
        class,
        label,
    };
    let mut a = match w {
        Wire::Connect { count, outcome, .. } => {
            let times = count.map(|n| format!(" ×{n}")).unwrap_or_default();
            // A refusal is the kernel's RST to the SYN; a handshake that
            // never completed is a failure of its own.
            let class = match outcome {
                ConnectOutcome::Established => "handshake",
                ConnectOutcome::Refused => "rst",
                ConnectOutcome::Pending => "failed",
            };
            to(class, format!("connect{times}: {}", outcome.as_str()))
        }
        Wire::Listen => return None,
        Wire::Accepted { .. } => from("handshake", "connect (accepted)".into()),
        Wire::Send {
            what,
            bytes,
            writes,
            gap,
        } => {
            let writes = match (writes, gap) {
                (1, _) => String::new(),
                (n, Some(gap)) => format!(", {n} writes {gap} apart"),
                (n, None) => format!(", {n} writes"),
            };
            to(
                "bytes",
                fit(what, &format!("({}{writes})", crate::escape::bytes(*bytes))),
            )
        }
        Wire::Fill { how } => to("bytes", format!("text lines {how}")),
        Wire::Received {
            shown,
            bytes,
            mismatch,
            ended,
        } => {
            let then = match ended {
                None => "",
                Some(Ended::Fin) => ", then FIN",
                Some(Ended::Rst) => ", then RST",
            };
            let count = format!("({}{then})", crate::escape::bytes(*bytes));
            match mismatch {
                None => from("bytes", fit(shown, &count)),
                Some(_) => from("failed", format!("✗ {}", fit(shown, &count))),
            }
        }
        Wire::Echo { what, echoed, .. } => {
            let (class, label) = match echoed {
                Some(n) => (
                    "bytes",
                    format!("echo {}", fit(what, &format!("({})", crate::escape::bytes(*n)))),
                ),
                None => ("failed", format!("✗ echo {}", short(what, LABEL))),
            };
            Arrow {
                outgoing: true,
                both_ways: true,
                class,
                label,
            }
        }
        Wire::Shutdown { with_last_bytes: false } => to("fin", "FIN (shutdown write)".into()),
        Wire::Shutdown { with_last_bytes: true } => to("fin", "FIN (after the last bytes)".into()),
        Wire::Close => to("fin", "FIN (close)".into()),
        Wire::Abort => to("rst", "RST (abort)".into()),
        Wire::Eof => from("fin", "FIN (end of stream)".into()),
        Wire::Reset => from("rst", "RST (reset)".into()),
        Wire::Datagram {
            outgoing,
            shown,
            bytes,
            mismatch,
            fate,
            ..
        } => {
            let fate = fate.as_ref().map(|f| format!(", {f}")).unwrap_or_default();
            let label = fit(shown, &format!("({}{fate})", crate::escape::bytes(*bytes)));
            match (outgoing, mismatch) {
                (true, _) => to("bytes", format!("datagram {label}")),
                (false, None) => from("bytes", format!("datagram {label}")),
                (false, Some(_)) => from("failed", format!("✗ datagram {label}")),
            }
        }
    };
    if member {
        a.label = format!("{actor}: {}", a.label);
    }
    Some(a)
}

/// `what`, cut to leave room for `count` within `LABEL` characters.
fn fit(what: &str, count: &str) -> String {
    let room = LABEL.saturating_sub(count.chars().count() + 1).max(8);
    format!("{} {count}", short(what, room))
}

/// A note across every line.
fn band(svg: &mut String, class: &str, y: usize, lanes: &Lanes, text: &str) {
    let width = lanes.names.len().max(1) * LANE;
    let _ = writeln!(
        svg,
        "<g class=\"{class}\"><title>{}</title><rect x=\"{LEFT}\" y=\"{}\" width=\"{width}\" height=\"{}\" rx=\"3\"/>\
         <text x=\"{}\" y=\"{}\">{}</text></g>",
        esc(&short(text, TOOLTIP)),
        y - ROW / 2 + 3,
        ROW - 6,
        LEFT + 8,
        y + 4,
        esc(&short(text, (width / 7).max(MARK)))
    );
}
