//! How each step runs: one file per family, with the stems of `crate::spec`
//! (the struct that declares `send` is `spec::tcp::Send`, the function that
//! runs it `steps::tcp::send`), joined by the one dispatch below.
//!
//! A step function gets its step's typed, checked values, does what the step
//! says, writes its own lines in the transcript, and says what went wrong.
//! It never decides the scenario's verdict.
//!
//! Adding a keyword: its struct in `spec/<family>.rs`, a variant of
//! `spec::Step`, its function in `steps/<family>.rs`, and its line here. The
//! matches name every variant and have no `_` arm, so a keyword without a
//! line does not compile.

mod flow;
mod http;
mod multicast;
mod program;
mod rpc;
mod stillness;
mod tcp;
pub(crate) mod udp;
mod witness;

use crate::conn::Conn;
use crate::scenario::Play;
use crate::spec::{Spec, Step};
use crate::verdict::Precondition;
use serde_saphyr::Spanned;
use std::future::Future;
use std::pin::Pin;

/// What a step says went wrong: the program did not do what it expects.
pub(crate) type StepResult = Result<(), String>;

/// Why a step did not complete.
pub(crate) enum StepError {
    /// The program did not do what the step expects: the scenario fails.
    Failed(String),
    /// The scenario can't run at all (the submission lacks the program, or
    /// it can't be started): an `error`, not a failure.
    CannotRun(String),
}

impl From<String> for StepError {
    fn from(why: String) -> Self {
        StepError::Failed(why)
    }
}

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
        let result = run_step(play, step).await;
        // A step's own precondition is about what the program did while it
        // ran: a program that had already failed by itself when the step saw
        // what failed it (a client that could not resolve its host, exit 1)
        // failed the scenario's clauses, not that one. One that failed after
        // (a client that resent at once, then gave up) failed the
        // precondition first. One that exited 0 early claimed it was done.
        let seen_at = play.failure_seen_at.take().unwrap_or_else(std::time::SystemTime::now);
        let failed_by_itself = play
            .programs
            .values()
            .any(|p| !p.end_expected && p.exit_status().is_some_and(|s| !s.success()) && p.ended_before(seen_at));
        if let (Err(StepError::Failed(_)), Some(clause), false) = (&result, step.value.precondition(), failed_by_itself)
        {
            // The step's own word on what its failure means outranks a
            // connection the program ended (a server that closes on a bad
            // frame fails the bad-frame clause, not persistence), but not
            // what it saw of a program that never listened or joined.
            let stated = Precondition::Stated {
                clause: clause.to_string(),
                step: step.value.keyword().to_string(),
            };
            match play.precondition {
                None | Some(Precondition::KeepsConnections { .. }) => play.precondition = Some(stated),
                Some(_) => {}
            }
        }
        result
    })
}

async fn run_step(play: &mut Play<'_>, step: &Spanned<Step>) -> Result<(), StepError> {
    {
        match &step.value {
            Step::Start(s) => program::start(play, s).await,
            Step::Stop(s) => Ok(program::stop(play, s).await?),
            Step::Kill(p) => Ok(program::kill(play, p).await?),
            Step::Restart(s) => program::restart(play, s).await,
            Step::Signal(s) => Ok(program::signal(play, s).await?),
            Step::ExpectRunning(p) => Ok(program::expect_running(play, p)?),
            Step::ExpectExit(e) => Ok(program::expect_exit(play, e).await?),
            Step::ExpectOutput(o) => {
                let result = program::expect_output(play, o).await;
                if result.is_err() && o.stream == crate::spec::program::Stream::Stdout {
                    play.observed = udp::printed_twice(play, &o.program.value, o.matcher.as_ref());
                }
                Ok(result?)
            }
            Step::Connect(c) => Ok(tcp::connect(play, c).await?),
            Step::Listen(l) => tcp::listen(play, l),
            Step::Accept(a) => Ok(tcp::accept(play, a).await?),
            Step::ExpectNoConnection(e) => Ok(tcp::expect_no_connection(play, e).await?),
            Step::Fill(f) => Ok(tcp::fill(play, f).await?),
            // The one connection step that reads another connection.
            Step::Expect(
                e @ crate::spec::tcp::Expect {
                    expected: crate::spec::tcp::Expected::SameAs(other),
                    ..
                },
            ) => Ok(tcp::expect_same_as(play, e, other).await?),
            Step::Send(_)
            | Step::Expect(_)
            | Step::Echo(_)
            | Step::ExpectEof(_)
            | Step::ExpectClosed(_)
            | Step::ExpectReset(_)
            | Step::Shutdown(_)
            | Step::Close(_)
            | Step::Abort(_)
            | Step::ReadSlowly(_)
            | Step::ExpectSilence(_)
            | Step::SendMessage(_)
            | Step::ExpectMessage(_)
            | Step::SendRequest(_)
            | Step::ExpectResponse(_)
            | Step::ExpectRequest(_)
            | Step::SendResponse(_) => {
                let spec = play.spec;
                let placeholders = play.placeholders();
                let conn = play.conn(step.value.on().flatten())?;
                let result = run_on(conn, &step.value, spec, &placeholders).await;
                if result.is_err() {
                    play.precondition = closed_early(spec, conn);
                    if let Step::ExpectEof(_) | Step::ExpectClosed(_) = step.value {
                        play.observed = tcp::copy_kept(play, step.value.on().flatten());
                    }
                    if play.observed.is_none() {
                        let wanted_end = matches!(step.value, Step::ExpectEof(_));
                        play.observed = tcp::reset_by_close(play, step.value.on().flatten(), wanted_end);
                    }
                }
                result?;
                if let Step::Abort(_) = step.value {
                    tcp::reset_arrived(play, step.value.on().flatten()).await;
                }
                Ok(())
            }
            Step::UdpOpen(o) => udp::udp_open(play, o),
            Step::UdpBind(b) => udp::udp_bind(play, b),
            Step::SendDatagram(s) => Ok(udp::send_datagram(play, s).await?),
            Step::ExpectDatagram(e) => Ok(udp::expect_datagram(play, e).await?),
            Step::ExpectNoDatagram(e) => Ok(udp::expect_no_datagram(play, e).await?),
            Step::Relay(r) => udp::relay(play, r),
            Step::Join(j) => multicast::join(play, j),
            Step::MulticastSender(s) => multicast::multicast_sender(play, s),
            Step::ExpectMembers(m) => Ok(multicast::expect_members(play, m).await?),
            Step::FdBaseline(p) => Ok(witness::fd_baseline(play, p)?),
            Step::ExpectFds(f) => Ok(witness::expect_fds(play, f).await?),
            Step::MemoryBaseline(p) => Ok(witness::memory_baseline(play, p)?),
            Step::ExpectMemory(m) => Ok(witness::expect_memory(play, m).await?),
            Step::ExpectAccepted(a) => Ok(witness::expect_accepted(play, a).await?),
            Step::ExpectRead(r) => Ok(witness::expect_read(play, r).await?),
            Step::ExpectReleased(r) => Ok(witness::expect_released(play, r).await?),
            Step::ExpectZombies(z) => Ok(witness::expect_zombies(play, z).await?),
            Step::ExpectAtRest(r) => Ok(witness::expect_at_rest(play, r).await?),
            Step::ExpectIdle(i) => Ok(witness::expect_idle(play, i).await?),
            Step::Each(e) => Ok(flow::each(play, e).await?),
            Step::Repeat(r) => flow::repeat(play, r).await,
        }
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
/// Only steps for which `Step::on` is `Some` come here; the checker keeps
/// every other step out of `each`.
pub(crate) async fn run_on(conn: &mut Conn, step: &Step, spec: &Spec, ph: &crate::spec::Placeholders) -> StepResult {
    // A write that failed in the background since the last step is told
    // where it is noticed, in this step's transcript.
    let t = conn.transcript.clone();
    if let Some(e) = conn.take_write_error() {
        t.record(&conn.name, e);
    }
    let result = match step {
        Step::Send(s) => tcp::send(conn, s).await,
        Step::Expect(e) => tcp::expect(conn, e).await,
        Step::Echo(e) => tcp::echo_back(conn, e).await,
        Step::ExpectEof(c) => tcp::expect_eof(conn, c).await,
        Step::ExpectClosed(c) => tcp::expect_closed(conn, c).await,
        Step::ExpectReset(c) => tcp::expect_reset(conn, c).await,
        Step::Shutdown(c) => tcp::shutdown(conn, c),
        Step::Close(c) => tcp::close(conn, c).await,
        Step::Abort(c) => tcp::abort(conn, c).await,
        Step::ReadSlowly(r) => tcp::read_slowly(conn, r),
        Step::ExpectSilence(s) => tcp::expect_silence(conn, s).await,
        Step::SendRequest(s) => http::send_request(conn, ph, s).await,
        Step::ExpectResponse(e) => http::expect_response(conn, spec, ph, e).await,
        Step::ExpectRequest(e) => http::expect_request(conn, ph, e).await,
        Step::SendResponse(s) => http::send_response(conn, ph, s).await,
        // The checker keeps these out of a spec without `frames`.
        Step::SendMessage(s) => match &spec.frames {
            Some(frames) => rpc::send_message(conn, frames, s).await,
            None => Err("the spec declares no `frames`".into()),
        },
        Step::ExpectMessage(e) => match &spec.frames {
            Some(frames) => rpc::expect_message(conn, frames, e).await,
            None => Err("the spec declares no `frames`".into()),
        },
        Step::Start(_)
        | Step::Stop(_)
        | Step::Kill(_)
        | Step::Restart(_)
        | Step::Signal(_)
        | Step::ExpectRunning(_)
        | Step::ExpectExit(_)
        | Step::ExpectOutput(_)
        | Step::Connect(_)
        | Step::Listen(_)
        | Step::Accept(_)
        | Step::ExpectNoConnection(_)
        | Step::Fill(_)
        | Step::UdpOpen(_)
        | Step::UdpBind(_)
        | Step::SendDatagram(_)
        | Step::ExpectDatagram(_)
        | Step::ExpectNoDatagram(_)
        | Step::Relay(_)
        | Step::Join(_)
        | Step::MulticastSender(_)
        | Step::ExpectMembers(_)
        | Step::FdBaseline(_)
        | Step::ExpectFds(_)
        | Step::MemoryBaseline(_)
        | Step::ExpectMemory(_)
        | Step::ExpectAccepted(_)
        | Step::ExpectRead(_)
        | Step::ExpectReleased(_)
        | Step::ExpectZombies(_)
        | Step::ExpectAtRest(_)
        | Step::ExpectIdle(_)
        | Step::Each(_)
        | Step::Repeat(_) => unreachable!("`{}` is not a connection step (checked at load)", step.keyword()),
    };
    if let Some(e) = conn.take_write_error() {
        t.record(&conn.name, e);
    }
    result
}
