//! Steps for labs we don't ship, on the tcp-echo reference
//! (`fixtures/specs/language.yaml`): `expect_accepted` for a connection and
//! a whole group, `expect_silence`, and a group's members addressed by name
//! (`g#2`). Each passes where it should and fails, saying why, where it
//! should.

mod support;

use support::{reference_dir, run_json};

#[test]
fn the_language_steps_pass_and_fail_where_they_should() {
    let dir = reference_dir();
    let (report, _) = run_json(&[
        "fixtures/specs/language.yaml",
        "--reference",
        "--reference-dir",
        dir.to_str().unwrap(),
    ]);
    let scenarios = report["scenarios"].as_array().unwrap();
    let by_name = |name: &str| {
        scenarios
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no scenario {name}"))
    };
    let passed = by_name("every member is accepted, one speaks, the others hear nothing");
    assert_eq!(passed["status"], "passed", "{}", passed["message"]);

    let silence = by_name("silence is broken by an echo");
    assert_eq!(silence["status"], "failed");
    assert_eq!(silence["failure"]["keyword"], "expect_silence");
    let detail = silence["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("expected nothing for 2000ms, but 11 bytes arrived"),
        "{detail}"
    );
    // It failed as the echo arrived, not at the end of its 2 s.
    assert!(silence["duration_ms"].as_u64().unwrap() < 2000, "{silence}");

    let stopped = by_name("a stopped server accepts nothing");
    assert_eq!(stopped["status"], "failed");
    assert_eq!(stopped["failure"]["keyword"], "expect_accepted");
    let detail = stopped["failure"]["detail"].as_str().unwrap();
    assert!(detail.contains("still waiting in its listen queue"), "{detail}");
}

/// The grader's listeners on ports of their own, named `{port:NAME}` in a
/// program's arguments and in what a request must hold; with `--isolation
/// none`, as on a platform without namespaces.
#[test]
fn listeners_on_ports_of_their_own() {
    let dir = reference_dir();
    let (report, _) = run_json(&[
        "fixtures/specs/own-ports.yaml",
        "--reference",
        "--reference-dir",
        dir.to_str().unwrap(),
        "--isolation",
        "none",
    ]);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["status"], "passed", "{}", scenarios[0]["message"]);
    // A request to `{port:other}` never reaches `origin`, and the failure
    // names the listener and its port, not the program's.
    let unasked = &scenarios[1];
    assert_eq!(unasked["status"], "failed", "{unasked}");
    let detail = unasked["failure"]["detail"].as_str().unwrap();
    assert!(detail.contains("to connect to `origin` (port "), "{detail}");
    assert!(!detail.contains('{'), "{detail}");
    // The client waits for its answer from `other` with a read timeout of
    // its own (the reference client's): it may yet act when that rings, so
    // the step sits out its bound rather than fail early.
    assert!(detail.contains("within 1000ms; none did"), "{detail}");
    let transcript = unasked["transcript"].as_str().unwrap();
    assert!(!transcript.contains("{port:"), "{transcript}");

    // Nothing connecting is a step of its own, on a listener.
    assert_eq!(scenarios[2]["status"], "passed", "{}", scenarios[2]["message"]);
    let connected = &scenarios[3];
    assert_eq!(connected["failure"]["keyword"], "expect_no_connection", "{connected}");
    let detail = connected["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("expected nothing to connect to `origin` for 2s"),
        "{detail}"
    );
    // It failed as the connection came, not at the end of its 2 s.
    assert!(connected["duration_ms"].as_u64().unwrap() < 2000, "{connected}");
}

/// `expect_at_rest`, the barrier: it returns once the program's work is
/// done, and fails on a program that works on past its bound.
#[test]
fn the_barrier_waits_for_the_work_and_fails_a_program_that_never_rests() {
    let (report, _) = run_json(&["fixtures/specs/at-rest.yaml", "--submission", "fixtures/load/worker"]);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["status"], "passed", "{}", scenarios[0]["message"]);
    let busy = &scenarios[1];
    assert_eq!(busy["failure"]["keyword"], "expect_at_rest", "{busy}");
    let detail = busy["failure"]["detail"].as_str().unwrap();
    assert!(detail.contains("to come to rest"), "{detail}");
}

/// `expect_listening`: the kernel shows the program's listening socket,
/// and no longer once it closed it.
#[test]
fn a_server_that_closed_its_listening_socket_no_longer_listens() {
    let (report, _) = run_json(&[
        "fixtures/specs/listening.yaml",
        "--submission",
        "fixtures/load/listener",
    ]);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["status"], "passed", "{}", scenarios[0]["message"]);
    let closed = &scenarios[1];
    assert_eq!(closed["failure"]["keyword"], "expect_listening", "{closed}");
    let detail = closed["failure"]["detail"].as_str().unwrap();
    assert!(detail.contains("closed its listening socket"), "{detail}");
}

/// Runs a spec in which the grader plays both ends on its own loopback (no
/// program runs: `fixtures/load/worker` is only the submission to build),
/// and checks that its first scenario passes and each later one fails with
/// a detail that contains the text given for it.
fn both_ends(spec: &str, failures: &[&str]) {
    let (report, _) = run_json(&[spec, "--submission", "fixtures/load/worker", "--isolation", "none"]);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["status"], "passed", "{}", scenarios[0]["message"]);
    assert_eq!(
        scenarios.len(),
        failures.len() + 1,
        "{spec}: one text per failing scenario"
    );
    for (scenario, text) in scenarios[1..].iter().zip(failures) {
        let detail = scenario["failure"]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(text), "{}: {detail}", scenario["name"]);
    }
}

/// A request's fields as `expect_request` checks them, the grader playing
/// both ends: a field given is sent once with that value, as a whole token
/// list; `absent` is not sent.
#[test]
fn a_request_field_is_sent_once_with_its_value() {
    both_ends(
        "fixtures/specs/request-headers.yaml",
        &[
            "expected one `Connection` header field, got 2",
            "expected no `Proxy-Connection` header field",
        ],
    );
}

/// `{round}` in a `repeat` (each round's own path and fields), and an
/// expected body made by `generate` as a sent one is: a mismatch names its
/// round, and a wrong body its recipe.
#[test]
fn rounds_number_their_requests_and_generated_bodies_are_compared() {
    both_ends(
        "fixtures/specs/rounds.yaml",
        &[
            "round 2 of 3: expected the target `/r1`, got `/r2`",
            "expected the body to be 1000 random bytes (seed 8)",
        ],
    );
}

/// `expect_closed: { whatever_arrives: true }` takes an answer, or none,
/// before the end, a FIN or a reset; a connection kept open fails it.
#[test]
fn a_connection_ends_after_whatever_arrives() {
    both_ends(
        "fixtures/specs/closed.yaml",
        &["expected the connection to be closed (after an answer or none) within 100ms"],
    );
}

/// A program asleep on a clock (nanosleep, poll, select, epoll, a timed
/// condition variable, alarm, timerfd, SO_RCVTIMEO) is at rest with
/// nothing in flight, yet about to act: every wait sits it out. One that
/// waits without end fails each kind of wait early, saying why (the
/// message of a bound that passed would say "within 10000ms" instead).
#[test]
fn a_program_asleep_on_a_clock_is_waited_for_and_one_that_waits_forever_is_not() {
    let (report, _) = run_json(&[
        "fixtures/specs/timed-waits.yaml",
        "--submission",
        "fixtures/load/sleeper",
    ]);
    let scenarios = report["scenarios"].as_array().unwrap();
    let (waited, forever) = scenarios.split_at(scenarios.len() - 4);
    for s in waited {
        assert_eq!(s["status"], "passed", "{}: {}", s["name"], s["message"]);
    }
    for (s, what) in forever.iter().zip([
        "it had nothing more to send",
        "about to send one",
        "about to write",
        "about to exit",
    ]) {
        let detail = s["failure"]["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(what) && !detail.contains("within 10000ms;"),
            "{}: {detail}",
            s["name"]
        );
    }
}
