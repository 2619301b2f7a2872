//! What a student reads: one bug that fails several scenarios reads as one
//! cause in the human report, with the hint that fits what was seen; steps
//! are described in words; messages say who played what.

mod support;

use support::{run_json, sockgrade};

const SPEC: &str = "specs/tcp-echo.yaml";

/// The human report of a fixture, graded with `--only` the scenarios named.
fn human(fixture: &str, only: &[&str]) -> String {
    let dir = format!("fixtures/submissions/{fixture}");
    let mut cmd = sockgrade();
    cmd.args(["run", SPEC, "--submission", &dir]);
    for name in only {
        cmd.args(["--only", name]);
    }
    String::from_utf8(cmd.output().unwrap().stdout).unwrap()
}

#[test]
fn a_server_that_never_listens_is_told_so_once() {
    let (report, _) = run_json(&[SPEC, "--submission", "fixtures/submissions/tcp-echo-no-listen"]);
    for s in report["scenarios"].as_array().unwrap() {
        if s["status"] == "failed" {
            assert_eq!(
                s["failure"]["clauses"],
                serde_json::json!(["tcp-echo.server.ready"]),
                "{} is blamed on other clauses",
                s["name"]
            );
        }
    }
    let text = human("tcp-echo-no-listen", &[]);
    // The readiness scenario explains it (with its hint); every other server
    // scenario points at it in one line.
    assert_eq!(text.matches("hint: ").count(), 1, "{text}");
    assert_eq!(text.matches("accept: Invalid argument").count(), 1, "{text}");
    let pointers = text
        .matches("the same cause as \"the server listens on its port within 2 seconds\"")
        .count();
    assert_eq!(pointers, 22, "{text}");
}

#[test]
fn a_parent_that_keeps_its_copy_is_one_cause_with_its_own_hint() {
    let text = human(
        "tcp-echo-parent-keeps-fd",
        &[
            "after the client's half-close everything still comes back, then EOF",
            "a megabyte followed at once by a half-close comes back whole before EOF",
            "no descriptor is left open after 100 clients",
        ],
    );
    assert_eq!(
        text.matches("What was seen: server's main process, which forks")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("hint: After fork(), the parent must close()").count(),
        1,
        "{text}"
    );
    // Not the half-close hint, which speaks of flushing what is pending.
    assert!(!text.contains("recv() returning 0 means"), "{text}");
    assert_eq!(
        text.matches("the same cause as \"after the client's half-close everything still comes back, then EOF\"")
            .count(),
        2,
        "{text}"
    );
}

#[test]
fn steps_are_described_in_words_and_the_grader_says_which_side_it_plays() {
    let text = human(
        "tcp-echo-client-no-last-line",
        &["the client handles a last line without a newline"],
    );
    assert!(text.contains("step 6 failed: wait for \"last\" on `c`"), "{text}");
    assert!(
        text.contains("the grader, as your server, expected \"last\", but your client closed the connection (EOF)"),
        "{text}"
    );
    assert!(!text.contains("spec line"), "{text}");
}

/// A udp client that takes what is not its reply is told which datagram it
/// took, by its bytes and where it came from, not only the scenario's hint.
#[test]
fn a_client_that_takes_a_stale_reply_is_told_which() {
    let (report, _) = run_json(&[
        "specs/udp-echo.yaml",
        "--submission",
        "fixtures/submissions/udp-echo-client-any-reply",
        "--only",
        "the client ignores stale, duplicated and foreign replies",
    ]);
    let failure = &report["scenarios"][0]["failure"];
    let seen = failure["observed"]["seen"].as_str().unwrap_or_default();
    assert!(
        seen.contains("printed \"one\"") && seen.contains("a late copy of an earlier reply"),
        "{failure}"
    );
}

/// A client that resends at once (a timeout in microseconds) is blamed on
/// retransmission in the echo scenario, where the reply comes 300 ms late,
/// however fast the grader answers.
#[test]
fn a_client_that_resends_at_once_fails_retransmission_not_echo() {
    let (report, _) = run_json(&[
        "specs/udp-echo.yaml",
        "--submission",
        "fixtures/submissions/udp-echo-client-usec",
        "--only",
        "the client sends each line as a datagram, prints each reply and exits 0",
    ]);
    let s = &report["scenarios"][0];
    assert_eq!(s["status"], "failed");
    assert_eq!(
        s["failure"]["clauses"],
        serde_json::json!(["udp-echo.client.retransmit"]),
        "{s}"
    );
}
