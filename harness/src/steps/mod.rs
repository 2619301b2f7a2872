//! How each step runs: one file per family, with the stems of `crate::lang`
//! (the struct that declares `send` is `lang::tcp::Send`; `impl RunOn for
//! Send` in `steps/tcp.rs` runs it), joined by the one dispatch that
//! `keywords!` generates (`each_step!`, `each_conn_step!`).
//!
//! A step gets its typed, checked values, does what the step says, writes
//! its own lines in the transcript, and says what went wrong. It never
//! decides the scenario's verdict.
//!
//! Adding a keyword: its line in `lang/step.rs`, its struct with `impl
//! Keyword` in `lang/<family>.rs`, `impl Run` (or `RunOn`, on one
//! connection) in `steps/<family>.rs`. A keyword without them does not
//! compile.

mod flow;
mod http;
mod multicast;
mod outcome;
pub(crate) mod play;
mod program;
mod rpc;
mod stillness;
mod tcp;
pub(crate) mod udp;
mod witness;

use crate::conn::Conn;
use crate::lang::{ConnStep, Keyword, OnConnection, Placeholders, Spec, Step};
use crate::verdict::Precondition;
use play::Play;
use serde_saphyr::Spanned;
use std::future::Future;
use std::pin::Pin;

pub(crate) use outcome::{Failing, Failure, StepError, StepResult};

/// Runs one step of a scenario. Boxed, because `repeat` runs steps.
pub(crate) fn run<'p>(
    play: &'p mut Play<'_>,
    step: &'p Spanned<Step>,
) -> Pin<Box<dyn Future<Output = Result<(), StepError>> + 'p>> {
    Box::pin(async move {
        // Only the step right after a datagram's arrival counts from it
        // (`not_before`, `expect_no_datagram`'s span).
        let arrived = play.datagram_arrived.take();
        play.datagram_arrived =
            arrived.filter(|_| matches!(step.value, Step::ExpectExit(_) | Step::ExpectNoDatagram(_)));
        let mut result = each_step!(&step.value, s => s.run(play).await);
        let (Some(failure), Some(clause)) = (
            result.as_mut().err().and_then(StepError::failure_mut),
            step.value.precondition(),
        ) else {
            return result;
        };
        // A step's own precondition is about what the program did while it
        // ran: a program that had already failed by itself when the step saw
        // what failed it (a client that could not resolve its host, exit 1)
        // failed the scenario's clauses, not that one. One that failed after
        // (a client that resent at once, then gave up) failed the
        // precondition first. One that exited 0 early claimed it was done.
        let seen_at = failure.seen_at.unwrap_or_else(std::time::SystemTime::now);
        let failed_by_itself = play
            .programs
            .values()
            .any(|p| !p.end_expected && p.exit_status().is_some_and(|s| !s.success()) && p.ended_before(seen_at));
        // The step's own word on what its failure means outranks a
        // connection the program ended (a server that closes on a bad
        // frame fails the bad-frame clause, not persistence), but not
        // what it saw of a program that never listened or joined.
        if !failed_by_itself && matches!(failure.precondition, None | Some(Precondition::KeepsConnections { .. })) {
            failure.precondition = Some(Precondition::Stated {
                clause: clause.to_string(),
                step: step.value.keyword().to_string(),
            });
        }
        result
    })
}

/// How a scenario step runs, implemented beside the other steps of its
/// family (`steps/<family>.rs`).
pub(crate) trait Run {
    async fn run(&self, play: &mut Play<'_>) -> StepResult;
}

/// How a connection step runs on one connection: at the top of a scenario,
/// or on each member of an `each`.
pub(crate) trait RunOn {
    async fn run_on(&self, conn: &mut Conn, cx: &OnContext<'_>) -> StepResult;
}

/// What a connection step may need of its scenario, apart from its
/// connection (the members of an `each` run at once, apart from it).
pub(crate) struct OnContext<'a> {
    pub spec: &'a Spec,
    pub placeholders: &'a Placeholders,
}

impl OnContext<'_> {
    /// The spec's `frames`, which the checker asks of a spec with `rpc` steps.
    fn frames(&self) -> Result<&crate::lang::rpc::Frames, String> {
        self.spec
            .frames
            .as_ref()
            .ok_or_else(|| "the spec declares no `frames`".into())
    }
}

/// A connection step at the top of a scenario: on the connection it names,
/// and what its failure says of that connection's end.
impl Run for OnConnection {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let on = Some(&self.on);
        // The one connection step that reads another connection.
        if let ConnStep::Expect(
            e @ crate::lang::tcp::Expect {
                expected: crate::lang::tcp::Expected::SameAs(other),
                ..
            },
        ) = &self.step
        {
            return tcp::expect_same_as(play, e, other).await;
        }
        let spec = play.spec;
        let placeholders = play.placeholders();
        // A connection an earlier step of the spec closed.
        let conn = play.conn(on)?;
        let cx = OnContext {
            spec,
            placeholders: &placeholders,
        };
        if let Err(mut error) = run_on(conn, &self.step, &cx).await {
            let ended_first = closed_early(spec, conn);
            if let Some(failure) = error.failure_mut() {
                failure.precondition = ended_first;
                if let ConnStep::ExpectEof(_) | ConnStep::ExpectClosed(_) = self.step {
                    failure.observed = tcp::copy_kept(play, on);
                }
                if failure.observed.is_none() {
                    let wanted_end = matches!(self.step, ConnStep::ExpectEof(_));
                    failure.observed = tcp::reset_by_close(play, on, wanted_end);
                }
            }
            return Err(error);
        }
        if let ConnStep::Abort(_) = self.step {
            tcp::reset_arrived(play, on).await;
        }
        Ok(())
    }
}

/// A step failed on `conn`: if the server ended it first, that is the
/// precondition "keeps connections open" failing, not the step's own check.
pub(crate) fn closed_early(spec: &Spec, conn: &Conn) -> Option<Precondition> {
    if !(conn.outgoing && conn.ended_by_program_first()) {
        return None;
    }
    Some(Precondition::KeepsConnections {
        program: spec.server()?.to_string(),
        connection: conn.name.clone(),
    })
}

/// Runs a step on one connection: at the top level, and for each member of
/// an `each` (where the members run at once, apart from the scenario).
pub(crate) async fn run_on(conn: &mut Conn, step: &ConnStep, cx: &OnContext<'_>) -> StepResult {
    // A write that failed in the background since the last step is told
    // where it is noticed, in this step's transcript.
    let t = conn.transcript.clone();
    if let Some(e) = conn.take_write_error() {
        t.record(&conn.name, e);
    }
    let result = each_conn_step!(step, s => s.run_on(conn, cx).await);
    if let Some(e) = conn.take_write_error() {
        t.record(&conn.name, e);
    }
    result
}
