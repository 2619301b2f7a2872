//! The HTML report on hand-made results: untrusted text escaped everywhere
//! it goes, nothing that fetches or runs, the page well formed for a real
//! parser (Python's html.parser, `tests/support/html_check.py`), and the
//! caps that keep a big run's page drawable.

use super::*;
use crate::lang::tcp::ConnectOutcome;
use crate::lang::Visibility;
use crate::submission::Build;
use crate::transcript::Event;
use crate::verdict::ProgramState;
use std::time::Duration;

const EVIL: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&\x1b[31m\x00";

fn event(at_ms: u64, actor: &str, text: &str, wire: Option<Wire>) -> Event {
    Event {
        at: Duration::from_millis(at_ms),
        actor: actor.to_string(),
        text: text.to_string(),
        full_only: false,
        drawn_only: false,
        detail: None,
        wire,
    }
}

fn scenario(name: &str, events: Vec<Event>) -> ScenarioResult {
    ScenarioResult {
        name: name.to_string(),
        tags: vec!["lab.clause".to_string()],
        status: Status::Passed,
        score: 1,
        max_score: 1,
        duration_ms: 12,
        visibility: Visibility::Visible,
        hint: Some(format!("hint {EVIL}")),
        failure: None,
        error: None,
        transcript: format!("     1.0ms  server  start {EVIL}\n"),
        normalised: String::new(),
        programs: vec!["server".to_string()],
        events,
    }
}

fn run(scenarios: Vec<ScenarioResult>) -> RunResult {
    RunResult {
        lab: format!("lab {EVIL}"),
        spec: "specs/lab.yaml".to_string(),
        submission: format!("students/{EVIL}"),
        score: 0,
        max_score: 2,
        build: Build {
            status: BuildStatus::Failed,
            output: format!("echoserver.c:1: error: {EVIL}\n"),
        },
        scenarios,
        walls: Default::default(),
        isolation: "none".to_string(),
        duration_ms: 100,
    }
}

/// A server scenario whose student sent `EVIL` back, failing step 2.
fn failing() -> ScenarioResult {
    let peer = Some("server".to_string());
    let events = vec![
        event(1, "server", &format!("start ./echoserver {EVIL}"), None),
        event(
            2,
            "a",
            "connect -> established",
            Some(Wire::Connect {
                peer,
                count: None,
                outcome: ConnectOutcome::Established,
            }),
        ),
        event(
            3,
            "a",
            "-> hi",
            Some(Wire::Send {
                what: format!("\"{EVIL}\""),
                bytes: 40,
                writes: 1,
                gap: None,
            }),
        ),
        event(
            4,
            "a",
            "<- x",
            Some(Wire::Received {
                shown: format!("\"{EVIL}\""),
                bytes: 40,
                mismatch: Some(Mismatch {
                    expected: "\"hello\\n\"".to_string(),
                    got: format!("\"{EVIL}\""),
                }),
                ended: Some(crate::transcript::Ended::Rst),
            }),
        ),
        event(
            5,
            "server",
            "still running when the scenario ended: stopped by the grader",
            None,
        ),
        event(6, "", "round 2:", None),
    ];
    let mut s = scenario(&format!("echo {EVIL}"), events);
    s.status = Status::Failed;
    s.score = 0;
    s.failure = Some(Failure {
        step: 2,
        keyword: "expect".to_string(),
        line: 9,
        description: format!("wait for {EVIL}"),
        detail: format!("expected \"hello\\n\", got {EVIL}"),
        clauses: vec!["lab.clause".to_string()],
        precondition: None,
        observed: None,
        programs: vec![ProgramState {
            name: "server".to_string(),
            state: "running".to_string(),
            end_expected: false,
            stderr_tail: format!("stderr {EVIL}\n"),
            exit: None,
        }],
        events: 2..4,
    });
    s
}

/// Checks a page with Python's html.parser: the JSON the helper prints.
fn parsed(page: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("report.html");
    std::fs::write(&path, page).expect("writing the page");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/html_check.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg("page")
        .arg(&path)
        .output()
        .expect("python3 runs (CI installs it)");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "html_check.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "the page is not well formed: {}",
        json["problems"]
    );
    json
}

#[test]
fn untrusted_text_is_escaped_everywhere() {
    let page = render(&run(vec![failing()]));
    let lower = page.to_lowercase();
    assert!(!lower.contains("<script"), "a script tag got through");
    assert!(!lower.contains("<img"), "an img tag got through");
    // `onerror=` and `src=` are still in the text, harmless: the parser
    // (below) finds no attribute, element or URL that came from it.
    assert!(
        !page.contains('\x1b') && !page.contains('\x00'),
        "a control character got through"
    );
    // The text itself is there, as text, in every place it came from.
    for place in ["lab ", "students/", "error: ", "echo ", "wait for ", "stderr ", "hint "] {
        assert!(
            page.contains(&format!("{place}&lt;script&gt;alert(1)&lt;/script&gt;")),
            "{place}… is not shown escaped"
        );
    }
    assert!(
        page.contains("\\x1b[31m\\x00"),
        "control characters are not shown as escapes"
    );
    // What the parser reads as text is what the student wrote.
    let json = parsed(&page);
    let text = json["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("<script>alert(1)</script>"),
        "the payload is not readable as text"
    );
    assert_eq!(json["counts"]["script"], serde_json::Value::Null);
}

#[test]
fn nothing_is_fetched_and_nothing_runs() {
    let page = render(&run(vec![failing(), scenario("passes", Vec::new())]));
    for outside in [
        "http:", "https:", "//", "@import", "<link", "<iframe", "<object", "<embed", "<img",
    ] {
        // `//` would be a protocol-relative URL; the style sheet has no comments.
        assert!(!page.contains(outside), "the page contains `{outside}`");
    }
    let without_fragments = page.replace("url(#", "").replace("href=\"#", "");
    assert!(!without_fragments.contains("url(") && !without_fragments.contains("href=\""));
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\""));
    parsed(&page);
}

#[test]
fn a_failing_scenario_shows_its_diagram_failure_and_bytes_side_by_side() {
    let page = render(&run(vec![failing()]));
    let json = parsed(&page);
    assert_eq!(json["counts"]["svg"], 1);
    // Lifelines for the connection and the program, an arrow per event on
    // the wire, a mark for the program's events, a band for the round.
    assert!(page.contains(">a</text>") && page.contains(">server</text>"));
    assert_eq!(
        page.matches("<line class=\"").count() - page.matches("<line class=\"life\"").count(),
        3
    );
    assert!(page.contains("connect: established"));
    assert!(page.contains("class=\"failed\""), "the unexpected bytes are not marked");
    assert!(
        page.contains("bytes, then RST)</text>"),
        "the reset that ended the wait is not said"
    );
    assert!(page.contains("✗ step 2 failed: wait for &lt;script&gt;"));
    assert_eq!(
        page.matches("class=\"failrow\"").count(),
        2,
        "the failing step's two events are not tinted"
    );
    assert!(page.contains("round 2:"));
    // Expected and received, side by side.
    let sbs = page
        .split("<table class=\"sbs\">")
        .nth(1)
        .expect("a side-by-side table");
    let sbs = sbs.split("</table>").next().unwrap_or_default();
    assert!(
        sbs.contains("&quot;hello\\n&quot;") && sbs.contains("&lt;script&gt;"),
        "{sbs}"
    );
    assert!(page.contains("stderr &lt;script&gt;"));
}

#[test]
fn every_wire_event_is_drawn_as_its_kind() {
    let peer = || Some("client".to_string());
    let wires = [
        Wire::Listen,
        Wire::Accepted { peer: peer() },
        Wire::Fill {
            how: "until its receive window closed",
        },
        Wire::Echo {
            what: "\"hi\"".into(),
            echoed: Some(2),
            mismatch: None,
        },
        Wire::Shutdown { with_last_bytes: true },
        Wire::Close,
        Wire::Abort,
        Wire::Eof,
        Wire::Reset,
        Wire::Connect {
            peer: peer(),
            count: Some(3),
            outcome: ConnectOutcome::Refused,
        },
    ];
    let events = wires
        .into_iter()
        .enumerate()
        .map(|(i, w)| event(i as u64, if i == 0 { "peer" } else { "c" }, "text", Some(w)))
        .collect();
    let mut s = scenario("kinds", events);
    s.programs = vec!["client".to_string()];
    let page = render(&run(vec![s]));
    parsed(&page);
    for label in [
        "connect (accepted)",
        "text lines until its receive window closed",
        "echo &quot;hi&quot; (2 bytes)",
        "FIN (after the last bytes)",
        "FIN (close)",
        "RST (abort)",
        "FIN (end of stream)",
        "RST (reset)",
        "connect ×3: refused",
    ] {
        assert!(page.contains(&format!(">{label}</text>")), "no arrow labelled {label}");
    }
    // Listening is a mark on the listener's line, not an arrow.
    assert!(page.contains("<circle class=\"mark\""));
    assert!(page.contains("marker-start="), "the echo is not drawn both ways");
}

#[test]
fn a_big_scenario_is_capped_and_says_so() {
    let peer = Some("server".to_string());
    let mut events = vec![event(0, "server", "start ./echoserver {port}", None)];
    for i in 0..40 {
        let actor = format!("c#{i}");
        events.push(event(
            1,
            &actor,
            "connect -> established",
            Some(Wire::Connect {
                peer: peer.clone(),
                count: None,
                outcome: ConnectOutcome::Established,
            }),
        ));
        for _ in 0..25 {
            events.push(event(
                2,
                &actor,
                "-> x",
                Some(Wire::Send {
                    what: format!("\"{}\"", "x".repeat(500)),
                    bytes: 500,
                    writes: 1,
                    gap: None,
                }),
            ));
        }
    }
    let n = events.len();
    let mut s = failing();
    s.events = events;
    if let Some(f) = s.failure.as_mut() {
        f.events = n - 3..n - 1;
    }
    let page = render(&run(vec![s]));
    parsed(&page);
    let rows = page.matches("class=\"time\"").count();
    assert!(rows <= 2 * 60 + 100, "{rows} rows drawn");
    assert!(page.contains(&format!("of {n} events are drawn")));
    assert!(page.contains(" events not drawn (see the transcript)"));
    assert_eq!(
        page.matches("class=\"failrow\"").count(),
        2,
        "the failing step is not among the rows drawn"
    );
    // 40 connections share one group line; the program keeps its own.
    assert_eq!(page.matches("<g class=\"lane-head").count(), 2);
    assert!(page.contains("40 connections and listeners are drawn on 1 line:"));
    assert!(
        page.contains(">c#39: "),
        "a member on its group's line is not named in its label"
    );
    // Labels are cut short; the whole text is in the tooltip, itself capped.
    assert!(!page.contains(&"x".repeat(401)));
    assert!(page.len() < 400 * 1024, "{} bytes", page.len());
}

#[test]
fn too_many_groups_share_a_line_called_others() {
    let events = (0..30)
        .map(|i| {
            event(
                i,
                &format!("conn{i}"),
                "connect -> established",
                Some(Wire::Connect {
                    peer: Some("server".into()),
                    count: None,
                    outcome: ConnectOutcome::Established,
                }),
            )
        })
        .collect();
    let page = render(&run(vec![scenario("many", events)]));
    parsed(&page);
    assert_eq!(page.matches("<g class=\"lane-head").count(), super::diagram::MAX_LANES);
    assert!(page.contains(">others</text>"));
    assert!(page.contains("the line `others` is shared by the last 22"));
}

#[test]
fn students_see_no_diagram_of_a_hidden_scenario() {
    let mut hidden = failing();
    hidden.visibility = Visibility::Hidden;
    let style = crate::report::Style {
        for_students: true,
        ..Default::default()
    };
    let page = crate::report::render(crate::report::Format::Html, &run(vec![hidden]), &style);
    parsed(&page);
    assert!(!page.contains("<svg"));
    assert!(page.contains("scenario 1 (hidden)"));
    assert!(!page.contains("wait for"));
}

#[test]
fn short_cuts_on_characters() {
    assert_eq!(short("abc", 3), "abc");
    assert_eq!(short("abcd", 3), "ab…");
    assert_eq!(short("éééé", 2), "é…");
    assert_eq!(esc("a<b>&\"'\x07\n"), "a&lt;b&gt;&amp;&quot;&#39;\\x07\n");
}

#[test]
fn the_diagram_of_a_failing_scenario() {
    // The markup itself, reviewed: lifelines, arrows with their classes and
    // labels, marks, the tinted rows and the failure band, all escaped.
    insta::assert_snapshot!(super::diagram::render(1, &failing()));
}

#[test]
fn a_program_that_died_unexpectedly_is_marked_under_the_failure() {
    use std::os::unix::process::ExitStatusExt;
    let mut s = failing();
    if let Some(p) = s.failure.as_mut().and_then(|f| f.programs.first_mut()) {
        p.state = "killed by SIGPIPE".to_string();
        p.exit = Some(std::process::ExitStatus::from_raw(13));
    }
    let svg = super::diagram::render(1, &s);
    let band = svg.find("class=\"failband\"").expect("a failure band");
    let died = svg.find("<g class=\"died\">").expect("a mark for the death");
    assert!(died > band, "the death is not under the failure band");
    assert!(svg.contains(">killed by SIGPIPE (unexpectedly)</text>"));
    // One the scenario asked for (a `kill`) is in the transcript already.
    if let Some(p) = s.failure.as_mut().and_then(|f| f.programs.first_mut()) {
        p.end_expected = true;
    }
    assert!(!super::diagram::render(1, &s).contains("class=\"died\""));
}
