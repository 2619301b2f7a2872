//! Normalised transcripts of a few scenarios on the reference programs:
//! what the harness did and saw, byte for byte, with ports and times left
//! out. A change here is a change in behaviour: review it.

mod support;

use harness::isolation::Isolation;
use harness::runner::{self, Options};

#[test]
fn reference_transcripts() {
    let root = support::root();
    let spec = harness::lang::load(&root.join("specs/tcp-echo.yaml")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let built = harness::submission::reference(&spec, &support::reference_dir(), work.path()).unwrap();
    let wanted = [
        "a line sent one byte at a time is echoed whole",
        "16 connections wait in the backlog while the server is stopped",
        "the server survives clients that reset their connections",
        "no descriptor is left open after 100 clients",
        "the client handles a line of a megabyte",
        "the client gives up on a server that never answers",
    ];
    let options = Options {
        jobs: 2,
        isolation: Isolation::Auto.resolve().unwrap(),
        filter: wanted.iter().map(|s| s.to_string()).collect(),
        reference_dir: None,
        working_done: None,
    };
    let results = runner::run(&spec, &built.dir, work.path(), &options, None);
    assert_eq!(results.len(), wanted.len());
    for r in results {
        assert_eq!(
            r.status,
            harness::verdict::Status::Passed,
            "{}: {:?}",
            r.name,
            r.message()
        );
        insta::assert_snapshot!(r.name.replace(' ', "_"), r.normalised);
    }
}

/// Datagrams as datagrams: one line each, its bytes, where it went, and
/// what the relay did with it.
#[test]
fn datagram_transcripts() {
    transcripts_of(
        "specs/udp-echo.yaml",
        &[
            "each reply goes to the sender of its own request, clients interleaved",
            "the client ignores stale, duplicated and foreign replies",
            "through a network that loses, duplicates and delays, the client gets each reply once",
        ],
    );
    transcripts_of(
        "specs/multicast.yaml",
        &[
            "two receivers share the port and each gets every datagram",
            "the sender's datagrams have a TTL of 1",
        ],
    );
}

/// Messages as the protocol reads them: HTTP heads and summarised bodies,
/// rpc frames as their fields.
#[test]
fn protocol_transcripts() {
    transcripts_of(
        "specs/http.yaml",
        &[
            "HEAD is answered with GET's status and headers and no body",
            "pipelined requests are all answered, in order",
            "the client decodes chunked transfer coding",
        ],
    );
    transcripts_of(
        "specs/rpc.yaml",
        &[
            "several requests in one piece are all answered, in order",
            "the client reads several answers that arrive in one piece",
        ],
    );
}

fn transcripts_of(spec: &str, wanted: &[&str]) {
    let root = support::root();
    let spec = harness::lang::load(&root.join(spec)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let built = harness::submission::reference(&spec, &support::reference_dir(), work.path()).unwrap();
    harness::submission::add_reference_programs(&spec, &support::reference_dir(), work.path());
    let options = Options {
        jobs: 2,
        isolation: Isolation::Auto.resolve().unwrap(),
        filter: wanted.iter().map(|s| s.to_string()).collect(),
        reference_dir: None,
        working_done: None,
    };
    let results = runner::run(&spec, &built.dir, work.path(), &options, None);
    assert_eq!(results.len(), wanted.len());
    for r in results {
        assert_eq!(
            r.status,
            harness::verdict::Status::Passed,
            "{}: {:?}",
            r.name,
            r.message()
        );
        insta::assert_snapshot!(r.name.replace(' ', "_").replace('\'', ""), r.normalised);
    }
}
