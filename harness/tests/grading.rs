//! Every lab's spec against the reference programs and against every fixture
//! submission of that lab (`fixtures/submissions/<lab>-*`): correct ones
//! pass everything; each buggy one fails scenarios tagged with its clause
//! (listed in its EXPECT file), and every failure is attributed to one of
//! those clauses (a scenario's tags, or the clause of a precondition that
//! failed before the scenario's own check). The verdict tables are
//! snapshots.

mod support;

use std::collections::BTreeSet;
use support::{root, run_json, verdict_table};

const SPEC: &str = "specs/tcp-echo.yaml";

/// The labs with a spec, and the prefix of their fixtures' directories.
const LABS: [&str; 6] = ["tcp-echo", "udp-echo", "multicast", "rpc", "http", "proxy"];

/// The spec a fixture is graded with: its lab's, by its name.
fn spec_of(fixture: &str) -> String {
    let lab = LABS
        .iter()
        .find(|lab| fixture.starts_with(&format!("{lab}-")))
        .unwrap_or_else(|| panic!("{fixture} belongs to no lab of {LABS:?}"));
    format!("specs/{lab}.yaml")
}

#[test]
fn the_reference_passes_every_scenario_of_tcp_echo() {
    reference_passes("specs/tcp-echo.yaml");
}

#[test]
fn the_reference_passes_every_scenario_of_udp_echo() {
    reference_passes("specs/udp-echo.yaml");
}

#[test]
fn the_reference_passes_every_scenario_of_multicast() {
    reference_passes("specs/multicast.yaml");
}

#[test]
fn the_reference_passes_every_scenario_of_rpc() {
    reference_passes("specs/rpc.yaml");
}

#[test]
fn the_reference_passes_every_scenario_of_http() {
    reference_passes("specs/http.yaml");
}

#[test]
fn the_reference_passes_every_scenario_of_proxy() {
    reference_passes("specs/proxy.yaml");
}

/// Every lab's spec has a test above.
#[test]
fn every_lab_is_graded() {
    let mut specs: Vec<String> = std::fs::read_dir(root().join("specs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".yaml").map(String::from))
        .collect();
    specs.sort();
    let mut labs: Vec<String> = LABS.iter().map(|l| l.to_string()).collect();
    labs.sort();
    assert_eq!(
        specs, labs,
        "a spec in specs/ without its tests here, or the other way round"
    );
}

fn reference_passes(spec: &str) {
    let dir = support::reference_dir();
    let (report, code) = run_json(&[spec, "--reference", "--reference-dir", dir.to_str().unwrap()]);
    let failed: Vec<_> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] != "passed")
        .map(|s| format!("{}\n{}", s["name"], s["message"].as_str().unwrap_or("")))
        .collect();
    assert!(failed.is_empty(), "the reference failed:\n{}", failed.join("\n"));
    assert_eq!(code, 0);
    assert_eq!(report["score"], report["max_score"]);
}

/// The clause ids of a handout: the first column of its clause table.
fn clause_ids(handout: &str) -> BTreeSet<String> {
    handout
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect()
}

/// Every lab's spec has its handout beside it (`specs/<lab>.md`, part of the
/// repository), and the two agree: every clause id of the handout tags at
/// least one scenario, and every tag is a clause of the handout.
#[test]
fn every_clause_of_the_handout_has_a_scenario() {
    let mut labs = 0;
    for entry in std::fs::read_dir(root().join("specs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        labs += 1;
        let handout_path = path.with_extension("md");
        let handout = std::fs::read_to_string(&handout_path)
            .unwrap_or_else(|e| panic!("{} has no handout beside it ({e})", path.display()));
        let clauses = clause_ids(&handout);
        assert!(
            clauses.len() >= 5,
            "found only {} clause ids in {}",
            clauses.len(),
            handout_path.display()
        );
        let spec = harness::lang::load(&path).unwrap();
        let tagged: BTreeSet<String> = spec.scenarios.iter().flat_map(|s| s.tags.iter().cloned()).collect();
        let untested: Vec<_> = clauses.difference(&tagged).collect();
        assert!(
            untested.is_empty(),
            "{}: clauses without a scenario: {untested:?}",
            spec.lab
        );
        let unknown: Vec<_> = tagged.difference(&clauses).collect();
        assert!(
            unknown.is_empty(),
            "{}: tags that are no clause of the handout: {unknown:?}",
            spec.lab
        );
    }
    assert!(labs >= 1, "no spec in specs/");
}

/// The clauses a fixture's EXPECT file lists (lines not starting with #).
fn expected_clauses(fixture: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("fixtures/submissions").join(fixture).join("EXPECT"))
        .unwrap_or_else(|e| panic!("{fixture} has no EXPECT file: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn grade_fixture(fixture: &str) {
    let dir = format!("fixtures/submissions/{fixture}");
    let (report, code) = run_json(&[&spec_of(fixture), "--submission", &dir]);
    assert_eq!(
        report["build"]["status"], "ok",
        "{fixture} did not build:\n{}",
        report["build"]["output"]
    );
    let expected = expected_clauses(fixture);
    let mut shown = BTreeSet::new();
    let mut wrong = Vec::new();
    for s in report["scenarios"].as_array().unwrap() {
        if s["status"] == "passed" {
            continue;
        }
        // What the failure is blamed on: the scenario's tags, or the clause
        // of a precondition that failed before its check.
        let tags = support::clauses_of(s);
        if tags.is_disjoint(&expected) {
            wrong.push(format!(
                "{} {:?}\n{}",
                s["name"],
                tags,
                s["message"].as_str().unwrap_or("")
            ));
        }
        shown.extend(tags.intersection(&expected).cloned());
    }
    assert!(
        wrong.is_empty(),
        "{fixture} failed scenarios of clauses it does not violate:\n{}",
        wrong.join("\n")
    );
    let missed: Vec<_> = expected.difference(&shown).collect();
    assert!(
        missed.is_empty(),
        "{fixture}'s bug went unnoticed: no failing scenario for {missed:?}"
    );
    assert_eq!(code, if expected.is_empty() { 0 } else { 1 });
    insta::assert_snapshot!(fixture, verdict_table(&report));
}

macro_rules! fixtures {
    ($($test:ident => $dir:literal,)*) => {
        $( #[test] fn $test() { grade_fixture($dir); } )*

        /// Every fixture directory has its test above.
        #[test]
        fn every_fixture_is_graded() {
            let listed: BTreeSet<&str> = [$($dir),*].into_iter().collect();
            for entry in std::fs::read_dir(root().join("fixtures/submissions")).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                if entry.path().is_dir() && LABS.iter().any(|lab| name.starts_with(&format!("{lab}-"))) {
                    assert!(listed.contains(name.as_str()), "fixture {name} has no test in grading.rs");
                }
            }
        }
    };
}

fixtures! {
    busy_loop => "tcp-echo-busy-loop",
    client_exit0 => "tcp-echo-client-exit0",
    client_half_close => "tcp-echo-client-half-close",
    client_inet_addr => "tcp-echo-client-inet-addr",
    client_no_last_line => "tcp-echo-client-no-last-line",
    client_no_timeout => "tcp-echo-client-no-timeout",
    client_single_read => "tcp-echo-client-single-read",
    close_after_line => "tcp-echo-close-after-line",
    client_small_buffer => "tcp-echo-client-small-buffer",
    dualstack => "tcp-echo-dualstack",
    epoll => "tcp-echo-epoll",
    exit_on_error => "tcp-echo-exit-on-error",
    fd_leak => "tcp-echo-fd-leak",
    fork => "tcp-echo-fork",
    fork_stdio => "tcp-echo-fork-stdio",
    getline => "tcp-echo-getline",
    half_close => "tcp-echo-half-close",
    iterative => "tcp-echo-iterative",
    leak_per_client => "tcp-echo-leak-per-client",
    many_children => "tcp-echo-many-children",
    no_listen => "tcp-echo-no-listen",
    no_reuseaddr => "tcp-echo-no-reuseaddr",
    one_reply => "tcp-echo-one-reply",
    parent_keeps_fd => "tcp-echo-parent-keeps-fd",
    poll => "tcp-echo-poll",
    prefork => "tcp-echo-prefork",
    reset_exit => "tcp-echo-reset-exit",
    short_write => "tcp-echo-short-write",
    shutdown_not_close => "tcp-echo-shutdown-not-close",
    sigpipe => "tcp-echo-sigpipe",
    sigterm_ignored => "tcp-echo-sigterm-ignored",
    spin_send => "tcp-echo-spin-send",
    small_backlog => "tcp-echo-small-backlog",
    stderr_dump => "tcp-echo-stderr-dump",
    strlen => "tcp-echo-strlen",
    threads => "tcp-echo-threads",
    waits_newline => "tcp-echo-waits-newline",
    yield_loop => "tcp-echo-yield-loop",
    zombies => "tcp-echo-zombies",
    multicast_loop => "multicast-loop",
    multicast_poll => "multicast-poll",
    multicast_recv_join_any => "multicast-recv-join-any",
    multicast_recv_no_flush => "multicast-recv-no-flush",
    multicast_recv_no_htons => "multicast-recv-no-htons",
    multicast_recv_no_newline => "multicast-recv-no-newline",
    multicast_recv_no_reuseaddr => "multicast-recv-no-reuseaddr",
    multicast_recv_printf => "multicast-recv-printf",
    multicast_recv_term_leave_only => "multicast-recv-term-leave-only",
    multicast_send_newline => "multicast-send-newline",
    multicast_send_no_if => "multicast-send-no-if",
    multicast_send_ttl32 => "multicast-send-ttl32",
    udp_echo_busy_loop => "udp-echo-busy-loop",
    udp_echo_client_alarm => "udp-echo-client-alarm",
    udp_echo_client_any_reply => "udp-echo-client-any-reply",
    udp_echo_client_inet_pton => "udp-echo-client-inet-pton",
    udp_echo_client_newline => "udp-echo-client-newline",
    udp_echo_client_no_timeout => "udp-echo-client-no-timeout",
    udp_echo_client_timeout_continue => "udp-echo-client-timeout-continue",
    udp_echo_client_timer_reset => "udp-echo-client-timer-reset",
    udp_echo_client_usec => "udp-echo-client-usec",
    udp_echo_first_client => "udp-echo-first-client",
    udp_echo_loop => "udp-echo-loop",
    udp_echo_no_htons => "udp-echo-no-htons",
    udp_echo_pidfile => "udp-echo-pidfile",
    udp_echo_poll => "udp-echo-poll",
    udp_echo_sigterm_flag => "udp-echo-sigterm-flag",
    udp_echo_skip_empty => "udp-echo-skip-empty",
    udp_echo_small_buffer => "udp-echo-small-buffer",
    udp_echo_strlen => "udp-echo-strlen",
    http_400_keep_open => "http-400-keep-open",
    http_404_nobody => "http-404-nobody",
    http_always_html => "http-always-html",
    http_busy_loop => "http-busy-loop",
    http_client_chunk_raw => "http-client-chunk-raw",
    http_client_eof_fail => "http-client-eof-fail",
    http_client_http09 => "http-client-http09",
    http_client_inet_addr => "http-client-inet-addr",
    http_client_last_piece => "http-client-last-piece",
    http_client_no_host => "http-client-no-host",
    http_client_port_required => "http-client-port-required",
    http_client_printf => "http-client-printf",
    http_client_refused_exit0 => "http-client-refused-exit0",
    http_client_short_ok => "http-client-short-ok",
    http_client_single_read => "http-client-single-read",
    http_client_status_exit0 => "http-client-status-exit0",
    http_client_wait_close => "http-client-wait-close",
    http_close_always => "http-close-always",
    http_close_delimited => "http-close-delimited",
    http_close_unread => "http-close-unread",
    http_fd_leak => "http-fd-leak",
    http_fgets_binary => "http-fgets-binary",
    http_first_4k => "http-first-4k",
    http_fork => "http-fork",
    http_head_body => "http-head-body",
    http_header_truncate => "http-header-truncate",
    http_http10_keep => "http-http10-keep",
    http_idle_1s => "http-idle-1s",
    http_index_slash => "http-index-slash",
    http_iterative => "http-iterative",
    http_no_decode => "http-no-decode",
    http_no_htons => "http-no-htons",
    http_no_reuseaddr => "http-no-reuseaddr",
    http_no_traversal_check => "http-no-traversal-check",
    http_pipeline_drop => "http-pipeline-drop",
    http_post_as_get => "http-post-as-get",
    http_query_name => "http-query-name",
    http_sigpipe => "http-sigpipe",
    http_sigterm_ignored => "http-sigterm-ignored",
    http_single_read => "http-single-read",
    http_strlen_length => "http-strlen-length",
    http_threads => "http-threads",
    http_zombies => "http-zombies",
    rpc_bad_length_close => "rpc-bad-length-close",
    rpc_bad_opcode_ok => "rpc-bad-opcode-ok",
    rpc_busy_loop => "rpc-busy-loop",
    rpc_client_atoi => "rpc-client-atoi",
    rpc_client_exits_early => "rpc-client-exits-early",
    rpc_client_first_answer => "rpc-client-first-answer",
    rpc_client_host_order => "rpc-client-host-order",
    rpc_client_inet_addr => "rpc-client-inet-addr",
    rpc_client_lost_exit0 => "rpc-client-lost-exit0",
    rpc_client_no_errors => "rpc-client-no-errors",
    rpc_client_no_validation => "rpc-client-no-validation",
    rpc_client_refused_exit0 => "rpc-client-refused-exit0",
    rpc_client_single_recv => "rpc-client-single-recv",
    rpc_div_zero_sigfpe => "rpc-div-zero-sigfpe",
    rpc_drops_partial => "rpc-drops-partial",
    rpc_fd_leak => "rpc-fd-leak",
    rpc_first_frame_only => "rpc-first-frame-only",
    rpc_fork => "rpc-fork",
    rpc_host_order => "rpc-host-order",
    rpc_iterative => "rpc-iterative",
    rpc_min_div_sigfpe => "rpc-min-div-sigfpe",
    rpc_no_htons => "rpc-no-htons",
    rpc_no_reuseaddr => "rpc-no-reuseaddr",
    rpc_no_size_limit => "rpc-no-size-limit",
    rpc_one_request => "rpc-one-request",
    rpc_poll => "rpc-poll",
    rpc_sigterm_restart => "rpc-sigterm-restart",
    rpc_sub_reversed => "rpc-sub-reversed",
    rpc_zombies => "rpc-zombies",
    proxy_blocks => "proxy-blocks",
    proxy_csapp => "proxy-csapp",
    proxy_drops_headers => "proxy-drops-headers",
    proxy_dup_connection => "proxy-dup-connection",
    proxy_exit_on_error => "proxy-exit-on-error",
    proxy_fd_leak => "proxy-fd-leak",
    proxy_fifo => "proxy-fifo",
    proxy_global_buffer => "proxy-global-buffer",
    proxy_host_no_port => "proxy-host-no-port",
    proxy_iterative => "proxy-iterative",
    proxy_keeps_version => "proxy-keeps-version",
    proxy_no_htons => "proxy-no-htons",
    proxy_path_key => "proxy-path-key",
    proxy_port_required => "proxy-port-required",
    proxy_prethreaded => "proxy-prethreaded",
    proxy_sigpipe => "proxy-sigpipe",
    proxy_stops_at_length => "proxy-stops-at-length",
    proxy_strlen_relay => "proxy-strlen-relay",
    proxy_threads => "proxy-threads",
}

#[test]
fn a_submission_that_does_not_build_is_graded_with_the_compiler_output() {
    let (report, code) = run_json(&[SPEC, "--submission", "fixtures/broken/tcp-echo-build-error"]);
    assert_eq!(code, 1);
    assert_eq!(report["build"]["status"], "failed");
    let output = report["build"]["output"].as_str().unwrap();
    assert!(
        output.contains("expected ';'"),
        "the compiler's message is missing:\n{output}"
    );
    assert_eq!(report["score"], 0);
    assert!(report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "error"));
}

#[test]
fn a_missing_executable_is_an_error_of_the_scenarios_that_need_it() {
    let (report, code) = run_json(&[SPEC, "--submission", "fixtures/broken/tcp-echo-server-only"]);
    assert_eq!(code, 1);
    assert_eq!(report["build"]["status"], "ok");
    for s in report["scenarios"].as_array().unwrap() {
        let client = s["tags"][0].as_str().unwrap().starts_with("tcp-echo.client");
        if client {
            assert_eq!(s["status"], "error", "{}", s["name"]);
            assert!(s["message"].as_str().unwrap().contains("no executable `./echoclient`"));
        } else {
            assert_eq!(s["status"], "passed", "{}: {}", s["name"], s["message"]);
        }
    }
}

/// A program that never listens costs one bound per slot, not one per
/// scenario: once a scenario saw it not listen, the others that start it the
/// same way fail at once, with the same cause (the clause of `listening`),
/// except the scenario of that clause, which waits and explains.
#[test]
fn a_program_that_never_listens_is_waited_for_once() {
    let (report, _) = run_json(&[
        "specs/proxy.yaml",
        "--submission",
        "fixtures/submissions/proxy-no-htons",
        "--jobs",
        "1",
    ]);
    let scenarios = report["scenarios"].as_array().unwrap();
    let details: Vec<String> = scenarios
        .iter()
        .map(|s| s["failure"]["detail"].as_str().unwrap_or_default().to_string())
        .collect();
    let waited = details
        .iter()
        .filter(|d| d.contains("expected proxy to listen"))
        .count();
    let skipped = details
        .iter()
        .filter(|d| d.contains("it is not waited for again"))
        .count();
    assert_eq!(waited + skipped, details.len(), "{details:#?}");
    // One per slot (a working one at `--jobs 1`, and one for each scenario
    // that mostly waits, up to 8), and the scenario of the clause itself,
    // which always waits: its report says how.
    assert!(
        (1..=10).contains(&waited) && skipped >= details.len() - 10,
        "waited for in {waited} scenarios: {details:#?}"
    );
    // And none sat out its bound: the proxy listens on the wrong port and
    // waits in accept(), so the kernel shows that it never will.
    let still = details
        .iter()
        .filter(|d| d.contains("none was about to listen"))
        .count();
    assert_eq!(still, waited, "{details:#?}");
    let ready = scenarios.iter().position(|s| s["tags"][0] == "proxy.ready").unwrap();
    assert!(
        details[ready].contains("expected proxy to listen"),
        "{}",
        details[ready]
    );
}
