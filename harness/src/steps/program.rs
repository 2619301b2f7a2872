//! Running the `program` family (`crate::lang::program`): start, stop, kill,
//! restart, signal, expect_running, expect_exit, expect_output.

use super::play::{record_output, Play};
use super::Failing;
use super::Run;
use super::{StepError, StepResult};
use crate::escape;
use crate::lang::program::{Ending, ExpectExit, ExpectOutput, ExpectRunning, Kill, Restart, SignalStep, Start, Stop};
use crate::lang::values::{within, DEFAULT_EXIT, DEFAULT_READY, DEFAULT_WITHIN};
use crate::lang::Protocol;
use crate::matcher::{Check, Matcher};
use crate::process::{describe_exit, ended, Running};
use crate::program_time::{with_busy_note, Deadline};
use crate::sandbox;
use crate::verdict::Precondition;
use crate::witness;
use nix::sys::signal::{kill as send_signal, killpg, Signal};
use nix::unistd::Pid;
use std::time::Duration;
use tokio::time::Instant;

impl Run for Start {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = self.program.value.clone();
        let program = &play.spec.programs[&name];
        // The first program of the scenario, on a port nothing else has held:
        // whether it listens says something of every scenario that starts it
        // so (a restart, or a second receiver on the same port, does not).
        let first_of_scenario = play.order.is_empty();
        if let Some(p) = play.programs.get(&name) {
            // The spec starts it twice: the spec's to fix.
            if p.is_running() {
                return Err(StepError::cannot_run(format!(
                    "{name} is already running; `stop` or `kill` it first, or use `restart`"
                )));
            }
        }
        let (mut argv, shown) = argv(play, &program.command, &self.args);
        if program.reference {
            let exe = play
                .setting
                .reference_programs
                .join(program.command[0].trim_start_matches("./"));
            argv[0] = exe.to_string_lossy().into_owned();
            if !crate::sandbox::is_executable(&exe) {
                return Err(StepError::CannotRun(format!(
                    "the reference program `{}` that this scenario runs beside the submission is not available \
                     (build the reference programs with `cargo build --release -p reference`, or name their directory with --reference-dir)",
                    program.command[0]
                )));
            }
        }
        // A program given `{port2}` (one behind a relay) is ready on that port.
        let given_port2 = match &self.args {
            Some(args) => args.iter().any(|a| a.contains("{port2}")),
            None => program.command.iter().any(|a| a.contains("{port2}")),
        };
        let exe = play.setting.dir.join(&argv[0]);
        if argv[0].contains('/') && !crate::sandbox::is_executable(&exe) {
            let after = if play.setting.dir.join("Makefile").exists() || play.setting.dir.join("makefile").exists() {
                "after `make`"
            } else {
                "and no Makefile to build it"
            };
            return Err(StepError::CannotRun(format!(
                "the submission has no executable `{}` ({after})",
                argv[0]
            )));
        }
        let stdin = self.stdin.as_ref().map(|p| p.bytes());
        // Members before the start, so that a second receiver of the same
        // group is seen joining too.
        let joins = program.joins.map(|g| {
            let group = play.group_of(g);
            (g, group, witness::igmp_members(None, group))
        });
        let prog = Running::spawn(
            &name,
            &argv,
            &play.setting.dir,
            play.setting.uid,
            stdin,
            &play.setting.room,
        )
        .map_err(|e| StepError::CannotRun(format!("could not start `{}`: {e}", argv[0])))?;
        play.started.push(prog.pid);
        crate::program_time::Scenario::started(prog.pid);
        match &self.stdin {
            Some(p) => play
                .transcript
                .record(&name, format!("start {shown} < {}", p.describe())),
            None => play.transcript.record(&name, format!("start {shown}")),
        }
        if !play.order.contains(&name) {
            play.order.push(name.clone());
        }
        // In the map before the wait, so that a program that dies before it
        // listens is reported with its exit and its stderr.
        play.programs.insert(name.clone(), prog);
        if let Some(protocol) = program.listens {
            let bound = self
                .within
                .or(program.ready_within)
                .map(|w| w.0)
                .unwrap_or(DEFAULT_READY);
            let port = if given_port2 {
                play.setting.port2
            } else {
                play.setting.port
            };
            let stdin = self.stdin.as_ref().map(|p| p.describe()).unwrap_or_default();
            let command = format!("{name}: {shown} < {stdin}");
            let its_own_clause = program
                .preconditions
                .listening
                .as_ref()
                .is_some_and(|clause| play.setting.unready.tags.contains(clause));
            let seen = (first_of_scenario && !its_own_clause)
                .then(|| play.setting.unready.seen(&command))
                .flatten();
            if let Some(first) = seen {
                let listening = Precondition::Listening { program: name.clone() };
                return Err(StepError::failed(format!(
                    "{name} did not listen within {}ms in the scenario \"{first}\", started the same way; \
                     it is not waited for again",
                    bound.as_millis()
                ))
                .precondition(Some(listening)));
            }
            let mut watch = super::stillness::Watch::of(play);
            let prog = play.programs.get_mut(&name).expect("inserted above");
            if let Err(why) = wait_ready(prog, port, protocol, bound, &mut watch).await {
                if first_of_scenario {
                    play.setting.unready.record(&command);
                }
                return Err(why.precondition(Some(Precondition::Listening { program: name })));
            }
            let what = match protocol {
                Protocol::Tcp => "listening on",
                Protocol::Udp => "bound to",
            };
            let shown_port = if given_port2 { "{port2}" } else { "{port}" };
            play.transcript.record(&name, format!("{what} {shown_port}"));
        }
        if let Some((shown, group, before)) = joins {
            let bound = self
                .within
                .or(program.ready_within)
                .map(|w| w.0)
                .unwrap_or(DEFAULT_READY);
            let prog = play.programs.get_mut(&name).expect("inserted above");
            let pid = prog.pid;
            let joined = witness::poll_until(bound, || {
                let now = witness::igmp_members(Some(pid), group);
                (now > before, now)
            })
            .await;
            if joined.is_err() {
                let joined = Precondition::Joined { program: name.clone() };
                let also = match play.programs.get(&name).and_then(|p| p.exit_status()) {
                    Some(status) => format!("; it {}", ended(&status)),
                    None => String::new(),
                };
                return Err(StepError::failed(format!(
                    "expected {name} to join the group on the interface 127.0.0.1 (lo) within {}ms; \
                     the kernel shows no new member there{also}",
                    bound.as_millis()
                ))
                .precondition(Some(joined)));
            }
            play.transcript.record(&name, format!("joined {shown} on lo"));
        }
        Ok(())
    }
}

/// The command line of a start, placeholders filled in, and as it is shown
/// (placeholders kept, so that transcripts are stable).
fn argv(play: &Play<'_>, command: &[String], args: &Option<Vec<String>>) -> (Vec<String>, String) {
    let mut template = command.to_vec();
    if let Some(args) = args {
        template.truncate(1);
        template.extend(args.iter().cloned());
    }
    let shown = template.join(" ");
    let placeholders = play.placeholders();
    let argv = template.iter().map(|a| placeholders.fill(a)).collect();
    (argv, shown)
}

/// Waits until the kernel reports the program listening on `port`, polling
/// tightly; fails at once if the program ends first.
async fn wait_ready(
    prog: &mut Running,
    port: u16,
    protocol: Protocol,
    bound: Duration,
    watch: &mut super::stillness::Watch,
) -> StepResult {
    /// How long readiness is looked for without pausing: most programs
    /// listen within it.
    const SPIN: Duration = Duration::from_millis(3);
    let began = Instant::now();
    let mut deadline = Deadline::after(bound);
    let mut readiness = witness::Readiness::new();
    let mut fine = witness::FinePause::new();
    // A look costs about 20 us (sock_diag), so the first pauses are
    // short: most servers listen within a few milliseconds of their start,
    // and the pause is how late we may see it. Never more than 1 ms.
    let mut pause = Duration::from_micros(50);
    let mut round = 0u32;
    // A program that waits for what will never come (`stillness`) will not
    // listen either: looked at every `LOOK_EVERY`.
    let mut next_look = began + crate::conn::LOOK_EVERY;
    loop {
        let changed = prog.changed.clone();
        let notified = changed.notified();
        tokio::pin!(notified);
        // Registered before the look: an end that comes during it wakes us.
        notified.as_mut().enable();
        if let Some(status) = prog.exit_status() {
            return Err(StepError::failed(format!(
                "expected {} to listen on port {port}; it {} before it did",
                prog.name,
                ended(&status)
            )));
        }
        if readiness.look(prog.pid, port, protocol, round % 4 == 3) {
            return Ok(());
        }
        if Instant::now() >= next_look {
            next_look = Instant::now() + crate::conn::LOOK_EVERY;
            if watch.still() {
                return Err(StepError::failed(format!(
                    "expected {} to listen on port {port}; it did not, and {}",
                    prog.name,
                    super::stillness::why_nothing_more(watch, "listen")
                )));
            }
        }
        if deadline.passed() {
            return Err(StepError::failed(with_busy_note(
                format!(
                    "expected {} to listen on port {port} within {}ms; it did not",
                    prog.name,
                    bound.as_millis()
                ),
                &deadline,
            )));
        }
        // A bounded poll: there is no event for "a socket started
        // listening", and a probe connection would be a client the program
        // sees. For its first milliseconds, no sleep at all: the next look
        // comes as soon as everything else that is runnable had its turn
        // (the program itself, if it shares our core; our runtime's other
        // tasks, which see the program end). A core that sleeps even 50 us
        // may take a millisecond to wake on a virtual machine. (Not where
        // each look parses the whole socket table.)
        if readiness.is_cheap() && began.elapsed() < SPIN {
            std::thread::yield_now();
            tokio::task::yield_now().await;
            round += 1;
            continue;
        }
        // Woken early when the program ends.
        let pause_now = pause.min(deadline.left());
        match &mut fine {
            Some(fine) => {
                tokio::select! {
                    _ = fine.sleep(pause_now) => {}
                    _ = notified => {}
                }
            }
            None => {
                let _ = tokio::time::timeout(pause_now, notified).await;
            }
        }
        pause = (pause * 5 / 4).min(Duration::from_millis(1));
        round += 1;
    }
}

impl Run for Stop {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let bound = within(self.within);
        let prog = play.running(name)?;
        prog.end_expected = true;
        at_rest(prog.pid).await;
        let _ = send_signal(Pid::from_raw(prog.pid), Signal::SIGTERM);
        match prog.wait(bound).await {
            Some(status) => {
                play.transcript
                    .record(name, format!("SIGTERM -> {}", describe_exit(&status)));
                Ok(())
            }
            None => {
                let _ = killpg(Pid::from_raw(prog.pid), Signal::SIGKILL);
                prog.wait(DEFAULT_WITHIN).await;
                play.transcript.record(
                    name,
                    format!("SIGTERM -> still running after {}ms; SIGKILL", bound.as_millis()),
                );
                Err(StepError::failed(format!(
                    "expected {name} to exit within {}ms of SIGTERM; it was still running and was killed",
                    bound.as_millis()
                )))
            }
        }
    }
}

impl Run for Kill {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let prog = play.running(name)?;
        prog.end_expected = true;
        // The whole group: a forking server's children are the server too, and
        // they hold its connections.
        let _ = killpg(Pid::from_raw(prog.pid), Signal::SIGKILL);
        let _ = send_signal(Pid::from_raw(prog.pid), Signal::SIGKILL);
        let status = prog.wait(DEFAULT_WITHIN).await;
        let pid = prog.pid;
        let how = status.map(|s| describe_exit(&s)).unwrap_or("still running".into());
        play.transcript.record(name, format!("SIGKILL -> {how}"));
        group_gone(pid).await;
        Ok(())
    }
}

/// After SIGKILL to a program's group: waits (bounded) until every member
/// is gone and reaped, so that none counts against the process limit of
/// what the scenario starts next (a restart on the same port, say).
async fn group_gone(pgid: i32) {
    let _ = witness::poll_until(DEFAULT_WITHIN, || (sandbox::reap_group(pgid) == 0, ())).await;
}

impl Run for Restart {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        if let Some(p) = play.programs.get_mut(name) {
            if p.is_running() {
                let _ = killpg(Pid::from_raw(p.pid), Signal::SIGKILL);
                p.end_expected = true;
                if p.wait(DEFAULT_WITHIN).await.is_none() {
                    return Err(StepError::failed(format!(
                        "{name} was still running 2s after SIGKILL; cannot restart it"
                    )));
                }
                play.transcript.record(name, "SIGKILL for the restart");
                record_output(&play.transcript, p);
                group_gone(p.pid).await;
            }
        }
        // Listening again on the same port at once is what a restart checks:
        // its failure stays the scenario's, not the readiness clause's.
        self.0.run(play).await.map_err(|mut error| {
            if let Some(failure) = error.failure_mut() {
                failure.precondition = None;
            }
            error
        })
    }
}

/// Waits until the program waits in the kernel (in accept, read or poll),
/// as a program at rest does, before a signal it may handle: a signal that
/// lands between two system calls meets a different program on a loaded
/// machine than on an idle one (a handler's flag is seen at once, or only
/// after the next client). Bounded, for a program that never rests.
async fn at_rest(pid: i32) {
    let _ = witness::poll_until(Duration::from_millis(500), || (witness::waiting(pid), ())).await;
}

impl Run for SignalStep {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let sig = self.signal.0;
        let prog = play.running(name)?;
        // A handler meets the program at rest; STOP, CONT and KILL have no
        // handler, and a stopped program would never rest (it waits for CONT).
        if !matches!(sig, Signal::SIGSTOP | Signal::SIGCONT | Signal::SIGKILL) {
            at_rest(prog.pid).await;
        }
        let pid = prog.pid;
        let run_times = (sig == Signal::SIGCONT).then(|| witness::tree_run_times(pid)).flatten();
        // Stopping and resuming is for the whole group: a forking server's
        // children are part of the server.
        let r = if matches!(sig, Signal::SIGSTOP | Signal::SIGCONT) {
            killpg(Pid::from_raw(pid), sig)
        } else {
            send_signal(Pid::from_raw(pid), sig)
        };
        r.map_err(|e| format!("could not send {sig} to {name}: {e}"))
            .or_failed()?;
        play.transcript.record(name, sig.as_str());
        // What came while the program was stopped (a reset that fails the
        // write it was blocked in) it meets before the next step, on a
        // loaded machine as on an idle one: once every thread the events
        // woke has had the CPU. Bounded; a program that gets no CPU within
        // the bound is no failure here.
        if let Some(before) = run_times {
            let _ = witness::poll_until(DEFAULT_WITHIN, || (witness::tree_ran_since(pid, &before), ())).await;
        }
        Ok(())
    }
}

impl Run for ExpectRunning {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        match play.program(name)?.exit_status() {
            None => {
                play.transcript.record(name, "running");
                Ok(())
            }
            Some(s) => Err(StepError::failed(format!(
                "expected {name} to be running, but it {}",
                ended(&s)
            ))),
        }
    }
}

impl Run for ExpectExit {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        use std::os::unix::process::ExitStatusExt;
        let name = &self.program.value;
        // Where `not_before` counts from (see `ExpectExit`).
        let began = std::time::SystemTime::now();
        let origin = play.datagram_arrived.filter(|at| *at < began).unwrap_or(began);
        let bound = self.within.map(|w| w.0).unwrap_or(DEFAULT_EXIT);
        let mut watch = super::stillness::Watch::of(play);
        let prog = play
            .programs
            .get_mut(name)
            .ok_or_else(|| format!("{name} was never started"))
            .or_cannot_run()?;
        let mut deadline = Deadline::after(bound);
        // Looks at the kernel between waits (`stillness`): a program that
        // waits for what will never come is not about to exit.
        let waited = watch.unless_still(prog.wait_until(&mut deadline)).await;
        let still = waited.is_none();
        let status = waited.unwrap_or_else(|| prog.exit_status());
        let Some(status) = status else {
            if still {
                play.transcript
                    .record(name, "still running, and nothing more could come");
                return Err(StepError::failed(format!(
                    "expected {name} to exit; it is still running, and {}",
                    super::stillness::why_nothing_more(&watch, "exit")
                )));
            }
            play.transcript
                .record(name, format!("still running after {}ms", bound.as_millis()));
            return Err(StepError::failed(with_busy_note(
                format!(
                    "expected {name} to exit within {}ms; it is still running",
                    bound.as_millis()
                ),
                &deadline,
            )));
        };
        play.transcript.record(name, describe_exit(&status));
        let how = ended(&status);
        if let Some(min) = self.not_before {
            let ran = origin.elapsed().unwrap_or_default();
            if ran < min.0 {
                let since = if origin < began {
                    "after the last datagram arrived"
                } else {
                    "after this step began"
                };
                return Err(StepError::failed(format!(
                    "expected {name} to keep going for at least {min}; it {how} {}ms {since}",
                    ran.as_millis()
                )));
            }
        }
        match self.ending {
            Ending::Status(code) if status.code() != Some(code) => Err(StepError::failed(format!(
                "expected {name} to exit with status {code}; it {how}"
            ))),
            Ending::Signal(sig) if status.signal() != Some(sig.0 as i32) => Err(StepError::failed(format!(
                "expected {name} to be killed by {}; it {how}",
                sig.0.as_str()
            ))),
            Ending::Any | Ending::Status(_) | Ending::Signal(_) => {
                prog.end_expected = true;
                Ok(())
            }
        }
    }
}

impl Run for ExpectOutput {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        // A client that printed a reply twice: what the datagrams show.
        expect_output(play, self).await.map_err(|error| match self.stream {
            crate::lang::program::Stream::Stdout => error.observed(super::udp::printed_twice(
                play,
                &self.program.value,
                self.matcher.as_ref(),
            )),
            crate::lang::program::Stream::Stderr => error,
        })
    }
}

async fn expect_output(play: &mut Play<'_>, o: &ExpectOutput) -> StepResult {
    let name = &o.program.value;
    let prog = play.program(name)?;
    let stream = o.stream.as_str();
    let bound = within(o.within);
    let mut deadline = Deadline::after(bound);
    let captured = prog.output(o.stream).clone();
    let changed = prog.changed.clone();
    // When the bound passes, or the kernel shows that nothing more can
    // come (`stillness`), one more look: output that arrived with the
    // program's end may have been read just after the wake-up.
    let mut last_look = false;
    let mut watch = super::stillness::Watch::of(play);
    let mut still = false;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let ended = prog.output_complete();
        let (text, total) = {
            let c = captured.lock().unwrap_or_else(|e| e.into_inner());
            (c.whole().unwrap_or_default(), c.total)
        };
        let lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        // Some(Ok(line for the transcript)), Some(Err(why)), or None: not yet.
        let verdict: Option<Result<String, String>> = match &o.matcher {
            None => Some(Ok(String::new())),
            // Empty and nonempty count every byte, also those beyond the
            // capture's cap.
            Some(Matcher::Empty) if total == 0 => Some(Ok(format!("{stream} is empty"))),
            Some(Matcher::Empty) => Some(Err(format!(
                "expected {name}'s {stream} to be empty; it is {}",
                escape::quote(&text, 200)
            ))),
            Some(Matcher::NonEmpty) => (total > 0).then(|| Ok(format!("{stream} is not empty"))),
            Some(m) => match m.check_whole(&text) {
                Check::Done(_) => Some(Ok(passed(m, stream))),
                Check::Differs => Some(Err(differs(m, name, stream, &text))),
                Check::More if ended && matches!(m, Matcher::Exact(_)) => Some(Err(differs(m, name, stream, &text))),
                Check::More => None,
            },
        };
        // "At most N lines" can only be judged once the program is done
        // writing: wait for its end (or the bound) before counting.
        let verdict = match verdict {
            Some(Ok(_)) if o.max_lines.is_some() && !ended && !last_look => None,
            v => v,
        };
        match verdict {
            Some(Ok(ok)) => {
                if let Some(max) = o.max_lines {
                    if lines > max {
                        return Err(StepError::failed(format!(
                            "expected at most {max} line(s) on {name}'s {stream}; it wrote {lines}: {}",
                            escape::quote(&text, 300)
                        )));
                    }
                }
                if !ok.is_empty() {
                    play.transcript.record(name, ok);
                }
                return Ok(());
            }
            Some(Err(why)) => return Err(StepError::failed(why)),
            None => {}
        }
        if ended {
            return Err(StepError::failed(format!(
                "{name} ended, and its {stream} never satisfied the expectation; it is {}",
                escape::quote(&text, 300)
            )));
        }
        let woke = match tokio::time::timeout(crate::conn::LOOK_EVERY, deadline.within(notified)).await {
            Ok(woke) => woke,
            Err(_) if watch.still() => {
                still = true;
                None
            }
            Err(_) => Some(()),
        };
        if woke.is_none() {
            if !last_look {
                last_look = true;
                prog.output_caught_up().await;
                continue;
            }
            if still {
                return Err(StepError::failed(format!(
                    "expected {name}'s {stream} to satisfy the expectation; it is {}, and {}",
                    escape::quote(&text, 300),
                    super::stillness::why_nothing_more(&watch, "write")
                )));
            }
            return Err(StepError::failed(with_busy_note(
                format!(
                    "expected {name}'s {stream} to satisfy the expectation within {}ms; it is {}",
                    bound.as_millis(),
                    escape::quote(&text, 300)
                ),
                &deadline,
            )));
        }
    }
}

/// The transcript's line for an output that met its matcher.
fn passed(m: &Matcher, stream: &str) -> String {
    match m {
        Matcher::Exact(want) => format!("{stream}: {}", escape::quote(want, 60)),
        Matcher::Contains(c) => format!("{stream} contains {}", escape::quote(c, 60)),
        Matcher::Regex(re) => format!("{stream} matches /{}/", re.as_str()),
        Matcher::Prefix(_) | Matcher::Size(_) | Matcher::LinesAnyOrder(_) | Matcher::Empty | Matcher::NonEmpty => {
            format!("{stream}: {}", m.describe())
        }
    }
}

/// Why an output can no longer equal what was expected.
fn differs(m: &Matcher, name: &str, stream: &str, text: &[u8]) -> String {
    match m.mismatch(text) {
        Some((want, got, diff)) => format!("expected {name}'s {stream} to be {want}\n  it is {got}\n  {diff}"),
        None => format!(
            "expected {name}'s {stream} to be {}; it is {}",
            m.describe(),
            escape::quote(text, 200)
        ),
    }
}
