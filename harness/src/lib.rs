//! sockgrade: grades socket-programming labs.
//!
//! # Layout
//!
//! One path through the code, one module per arrow, data flowing one way:
//!
//! ```text
//! lang/        the language: YAML -> a checked Spec; never touches a socket
//!   mod.rs       Spec, Program, Scenario
//!   step.rs      the keywords, one line each (`keywords!`): the flat YAML
//!                enum `RawStep`, the two levels after load (`Step`, and
//!                `ConnStep` on one connection), the one dispatch, and the
//!                `Keyword` trait each keyword's struct implements
//!   load.rs      parsing with located errors;  check.rs  names across steps
//!   values.rs    durations, sizes, payloads, default bounds
//!   schema.rs    the JSON Schema (`sockgrade schema`), derived with schemars
//!   program.rs tcp.rs udp.rs multicast.rs witness.rs http.rs rpc.rs flow.rs
//!                one struct per keyword, its rules, its words for students
//!                (`impl Keyword`)
//! submission   copy and build (make) in the sandbox
//! grade        one submission start to end: build, run, the RunResult
//! class/       `sockgrade grade`: a whole class, fingerprints; rows.rs reads
//!                the reports once, summary.rs (csv) and index.rs (html)
//!                render them
//! runner       scenarios on worker threads, each in its own namespace/user
//! scenario     one scenario: the step loop, its bound, the clean-up
//! program_time bounds counted in the time the programs could run (wall
//!                time less their threads' run-queue delay)
//! steps/       how each keyword runs (`impl Run`, `impl RunOn`), same stems
//!                as lang/; play.rs  the scenario while it plays (`Play`);
//!                outcome.rs  how a step ends: passed, the student's failure
//!                with what it observed, or the grader's error
//! process      a program under test (actor)
//! conn/        a TCP peer (actor): its writer task, its one read loop, when
//!                it stalls, the grader's sockets
//! datagram     a UDP endpoint of the harness (actor): client, server,
//!                group member or sender;  relay  between two programs,
//!                losing, duplicating, delaying datagrams as planned
//! matcher      what an expectation waits for, for every kind of bytes
//! http         the harness's own strict HTTP/1.1 parser (RFC 9112)
//! witness      /proc: readiness, descriptors, zombies, CPU and memory;
//!              timed_wait  whether a program at rest wakes by itself
//! sandbox      process group, rlimits, uid, clean env; isolation  netns, ports
//! room         what a program sees of the machine: a mount namespace and
//!                Landlock rules (`Walls`: which this machine allows)
//! tree         a submission's files copied without trusting them
//! spawn        starting a program as posix_spawn does (no fork of the
//!                harness), the sandbox applied in the child
//! transcript   every event, stamped, what it was on the wire (`Wire`);
//!              escape  bytes a person can read
//! verdict      the result model: ScenarioResult, RunResult; which clauses a
//!                failure is attributed to (preconditions), what was observed
//! listing      `sockgrade list`: a spec's scenarios, points and clauses
//! report/      reporters: RunResult -> text (human, json, junit, gradescope,
//!                classroom, prairielearn, html/: the page and, diagram.rs,
//!                the sequence diagrams drawn from the transcript's events);
//!                cap.rs  the size caps they share;
//!                redact.rs  what students may see of hidden scenarios
//! ```
//!
//! Actors never decide verdicts; steps never print; reporters run nothing.

pub mod class;
pub(crate) mod conn;
pub(crate) mod datagram;
pub(crate) mod escape;
pub mod grade;
pub(crate) mod http;
pub mod isolation;
pub mod listing;
pub(crate) mod matcher;
pub(crate) mod process;
pub(crate) mod program_time;
pub(crate) mod relay;
pub mod report;
pub mod room;
pub mod runner;
pub(crate) mod sandbox;
pub mod scenario;
pub(crate) mod spawn;
#[macro_use]
pub mod lang;
pub(crate) mod steps;
pub mod submission;
pub(crate) mod timed_wait;
pub(crate) mod transcript;
pub(crate) mod tree;
pub mod verdict;
pub(crate) mod witness;
