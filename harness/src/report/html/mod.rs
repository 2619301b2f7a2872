//! `--format html`: one self-contained page for a person (an instructor
//! looking into a submission, a student reading feedback): the score, the
//! build, each scenario's verdict, and a sequence diagram of what happened
//! on the wire (`diagram`), with the failure beside it.
//!
//! Self-contained means no request of any kind when it is opened: inline
//! CSS, inline SVG, no script, no font, no link out. A Content-Security-
//! Policy of `default-src 'none'` says so to the browser too, so that even a
//! mistake in escaping could not run a script or fetch anything. Everything
//! that comes from the submission (bytes it sent, its stderr, the compiler's
//! output, even the directory's name) is untrusted and goes through `esc`.

mod diagram;

use super::cap::{self, cap};
use crate::submission::BuildStatus;
use crate::transcript::{Mismatch, Wire};
use crate::verdict::{Failure, RunResult, ScenarioResult, Status};

/// A transcript or build output is kept whole in practice; this only stops
/// a runaway one from making the page unwieldy.
const LONG_TEXT: usize = 64 * 1024;

pub fn render(run: &RunResult) -> String {
    let passed = run.scenarios.iter().filter(|s| s.status == Status::Passed).count();
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} — {}/{} — sockgrade</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&run.lab),
        run.score,
        run.max_score
    ));
    out.push_str(&format!(
        "<header>\n<h1>{} <span class=\"score\">{}/{}</span></h1>\n\
         <p class=\"meta\">{} of {} scenarios passed · submission <code>{}</code> · spec <code>{}</code> · \
         isolation {} · {} ms</p>\n{}</header>\n",
        esc(&run.lab),
        run.score,
        run.max_score,
        passed,
        run.scenarios.len(),
        esc(&run.submission),
        esc(&run.spec),
        esc(&run.isolation),
        run.duration_ms,
        missing_walls(run),
    ));
    build(&mut out, run);
    summary(&mut out, run);
    for (i, s) in run.scenarios.iter().enumerate() {
        scenario(&mut out, i + 1, s);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn build(out: &mut String, run: &RunResult) {
    let (class, open) = match run.build.status {
        BuildStatus::Ok | BuildStatus::None => ("ok", ""),
        BuildStatus::Failed | BuildStatus::Timeout => ("bad", " open"),
    };
    out.push_str(&format!(
        "<section class=\"build\">\n<details{open}><summary>build: <span class=\"{class}\">{}</span></summary>\n",
        run.build.status.as_str()
    ));
    if run.build.output.is_empty() {
        out.push_str("<p class=\"meta\">no output</p>\n");
    } else {
        out.push_str(&format!("<pre>{}</pre>\n", esc(&cap(&run.build.output, LONG_TEXT))));
    }
    out.push_str("</details>\n</section>\n");
}

fn summary(out: &mut String, run: &RunResult) {
    out.push_str("<table class=\"summary\">\n<tr><th>verdict</th><th>scenario</th><th>points</th><th>time</th></tr>\n");
    for (i, s) in run.scenarios.iter().enumerate() {
        let (word, class) = verdict(s.status);
        out.push_str(&format!(
            "<tr><td class=\"{class}\">{word}</td><td><a href=\"#s{}\">{}</a></td><td>{}/{}</td><td>{} ms</td></tr>\n",
            i + 1,
            esc(&s.name),
            s.score,
            s.max_score,
            s.duration_ms
        ));
    }
    out.push_str("</table>\n");
}

fn verdict(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Passed => ("PASS", "ok"),
        Status::Failed => ("FAIL", "bad"),
        Status::Error => ("ERROR", "err"),
    }
}

fn scenario(out: &mut String, number: usize, s: &ScenarioResult) {
    let (word, class) = verdict(s.status);
    out.push_str(&format!(
        "<section class=\"scenario\" id=\"s{number}\">\n<h2><span class=\"{class}\">{word}</span> {} \
         <span class=\"meta\">({}/{}, {} ms)</span></h2>\n",
        esc(&s.name),
        s.score,
        s.max_score,
        s.duration_ms
    ));
    if let Some(e) = &s.error {
        out.push_str(&format!("<pre class=\"why\">{}</pre>\n", esc(&cap(e, cap::MESSAGE))));
    }
    if let Some(f) = &s.failure {
        failure(out, s, f);
    }
    if s.status != Status::Passed {
        if let Some(h) = &s.hint {
            out.push_str(&format!("<p class=\"hint\"><b>hint:</b> {}</p>\n", esc(h.trim())));
        }
    }
    let clauses = s.failure.as_ref().map(|f| f.clauses.as_slice()).unwrap_or(&s.tags);
    if !clauses.is_empty() {
        out.push_str(&format!(
            "<p class=\"meta\">clauses: {}</p>\n",
            esc(&clauses.join(", "))
        ));
    }
    if !s.events.is_empty() {
        // A failure's diagram is what the reader came for; a pass's is there
        // for the curious, folded.
        let open = if s.status == Status::Passed { "" } else { " open" };
        out.push_str(&format!(
            "<details{open}><summary>sequence diagram</summary>\n<div class=\"diagram\">\n{}</div>\n</details>\n",
            diagram::render(number, s)
        ));
    }
    if !s.transcript.is_empty() {
        out.push_str(&format!(
            "<details><summary>transcript</summary>\n<pre>{}</pre>\n</details>\n",
            esc(&cap(&s.transcript, LONG_TEXT))
        ));
    }
    out.push_str("</section>\n");
}

fn failure(out: &mut String, s: &ScenarioResult, f: &Failure) {
    // Line 0: a report for students, who never see the spec.
    let at = if f.line > 0 {
        format!(
            " <span class=\"meta\">(<code>{}</code> at spec line {})</span>",
            esc(&f.keyword),
            f.line
        )
    } else {
        String::new()
    };
    out.push_str(&format!(
        "<div class=\"failure\">\n<p><b>step {} failed:</b> {}{at}</p>\n",
        f.step,
        esc(&f.description),
    ));
    if let Some(why) = &f.precondition {
        out.push_str(&format!("<p>{}.</p>\n", esc(why)));
    }
    out.push_str(&format!(
        "<pre class=\"why\">{}</pre>\n",
        esc(&cap(&f.detail, cap::MESSAGE))
    ));
    if let Some(m) = mismatch(s, f) {
        out.push_str(&format!(
            "<table class=\"sbs\"><tr><th>expected</th><th>received</th></tr>\n\
             <tr><td><pre>{}</pre></td><td><pre>{}</pre></td></tr></table>\n",
            esc(&m.expected),
            esc(&m.got)
        ));
    }
    if let Some(o) = &f.observed {
        out.push_str(&format!("<p>What was seen: {}</p>\n", esc(&o.seen())));
    }
    for p in &f.programs {
        let how = if p.end_expected || p.state == "running" {
            esc(&p.state)
        } else {
            format!("<span class=\"bad\">{} (unexpectedly)</span>", esc(&p.state))
        };
        out.push_str(&format!("<p><b>{}</b>: {how}</p>\n", esc(&p.name)));
        let tail = p.stderr_tail.trim_end();
        if !tail.is_empty() {
            out.push_str(&format!(
                "<p class=\"meta\">last lines of {}'s stderr:</p>\n<pre class=\"stderr\">{}</pre>\n",
                esc(&p.name),
                esc(&cap(tail, cap::MESSAGE))
            ));
        }
    }
    out.push_str("</div>\n");
}

/// What the failing step waited for and what came, if it recorded both.
fn mismatch<'a>(s: &'a ScenarioResult, f: &Failure) -> Option<&'a Mismatch> {
    s.events
        .get(f.events.clone())?
        .iter()
        .rev()
        .find_map(|e| match &e.wire {
            Some(
                Wire::Received { mismatch: Some(m), .. }
                | Wire::Echo { mismatch: Some(m), .. }
                | Wire::Datagram { mismatch: Some(m), .. },
            ) => Some(m),
            _ => None,
        })
}

/// Text made safe for HTML, in content and in quoted attributes alike:
/// markup characters as entities, and control characters (which HTML
/// forbids, and a terminal would act on) as visible `\xNN`.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(super) fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    kept + "…"
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin: 0; } h2 { font-size: 1.1em; margin: 0 0 .4em; }
.score { color: #555; } .meta { color: #666; font-size: .9em; }
.ok { color: #1a7f37; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.err { color: #b26a00; font-weight: bold; }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; margin: .3em 0; }
pre.why { background: #fff4f4; } pre.stderr { background: #f4f4ff; }
table.summary { border-collapse: collapse; margin: 1em 0; }
table.summary td, table.summary th { padding: .15em .6em; text-align: left; border-bottom: 1px solid #eee; }
table.sbs { border-collapse: collapse; width: 100%; table-layout: fixed; }
table.sbs th { text-align: left; } table.sbs td { vertical-align: top; width: 50%; padding: 0 .3em; }
section.scenario { border-top: 1px solid #ddd; padding: .8em 0; }
.failure { border-left: 3px solid #c62828; padding-left: .8em; margin: .5em 0; }
.hint { background: #fffbe6; padding: .4em; }
summary { cursor: pointer; color: #333; }
.diagram { overflow-x: auto; }
.k-bytes { color: #1f4fb8; } .k-fin { color: #2e7d32; } .k-rst { color: #c62828; } .k-handshake { color: #777; }
.k-bytes, .k-fin, .k-rst, .k-handshake { font-weight: bold; }
svg text { font: 11px monospace; fill: #222; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg .lane-head text { font-weight: bold; stroke: none; }
svg .lane-head.program rect { fill: #e8eefc; stroke: #3a5bb8; }
svg .lane-head.harness rect { fill: #eef7ee; stroke: #2e7d32; }
svg line.life { stroke: #bbb; stroke-dasharray: 4 3; }
svg .bytes { stroke: #1f4fb8; } svg .fin { stroke: #2e7d32; } svg .rst { stroke: #c62828; stroke-width: 2; }
svg .handshake { stroke: #777; }
svg .mk-bytes { fill: #1f4fb8; } svg .mk-fin { fill: #2e7d32; } svg .mk-rst, svg .mk-failed { fill: #c62828; }
svg .mk-handshake { fill: #777; } svg .failed { stroke: #c62828; stroke-dasharray: 5 3; }
svg .mark { fill: #555; } svg .died circle { fill: #c62828; } svg .died text { fill: #c62828; font-weight: bold; } svg .band rect { fill: #f1f1f1; } svg .failrow { fill: #ffe5e5; }
svg .failband rect { fill: #c62828; } svg .failband text { fill: #fff; stroke: none; font-weight: bold; }
svg .gap rect { fill: #fafafa; stroke: #bbb; stroke-dasharray: 3 3; } svg .time { fill: #888; stroke: none; }
";

#[cfg(test)]
mod tests;

/// The walls this run lacked, said where the grade is read.
fn missing_walls(run: &RunResult) -> String {
    if run.walls.missing.is_empty() {
        return String::new();
    }
    let items: String = run
        .walls
        .missing
        .iter()
        .map(|m| format!("<li>{}</li>", esc(m)))
        .collect();
    format!("<div class=\"meta\">walls missing on the grading machine:<ul>{items}</ul></div>\n")
}
