//! Playing one scenario: its steps in order, against fresh processes on a
//! fresh port, recording everything in the transcript. An actor never decides
//! a verdict; this module turns the first failing step into one.

use crate::conn::{self, Conn, Matcher, Outcome, PeerState};
use crate::escape;
use crate::program::{describe_exit, ended, Running};
use crate::spec::{self, Scenario, Spec, Step};
use crate::transcript::Transcript;
use crate::verdict::{Failure, ProgramState, ScenarioResult, Status};
use crate::witness;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;

/// Bound of a step that names none: generous, since it only guards against
/// a hang; a passing run never waits it out.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(2);
/// The handouts' readiness bound.
pub const DEFAULT_READY: Duration = Duration::from_secs(2);
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
const STDERR_TAIL: usize = 1200;

/// Where and as whom a scenario runs.
pub struct Setting {
    pub dir: PathBuf,
    pub uid: Option<u32>,
    pub port: u16,
}

type StepResult = Result<(), String>;

struct Play<'a> {
    spec: &'a Spec,
    setting: Setting,
    transcript: Transcript,
    programs: HashMap<String, Running>,
    /// Programs in the order they were first started, for reports.
    order: Vec<String>,
    /// Every process ever started, for the clean-up.
    started: Vec<i32>,
    conns: HashMap<String, Conn>,
    groups: HashMap<String, Vec<String>>,
    listeners: HashMap<String, Listener>,
    baselines: HashMap<String, std::collections::BTreeMap<i32, String>>,
    /// Resident bytes of a program's process tree, from `memory_baseline`.
    memory_baselines: HashMap<String, u64>,
}

fn within(w: &Option<spec::Span>) -> Duration {
    w.map(|s| s.0).unwrap_or(DEFAULT_WITHIN)
}

/// Plays `scenario` and returns its result. Every process it started is gone
/// when this returns.
pub async fn play(spec: &Spec, scenario: &Scenario, setting: Setting) -> ScenarioResult {
    let transcript = Transcript::new(setting.port);
    let mut play = Play {
        spec,
        setting,
        transcript: transcript.clone(),
        programs: HashMap::new(),
        order: Vec::new(),
        started: Vec::new(),
        conns: HashMap::new(),
        groups: HashMap::new(),
        listeners: HashMap::new(),
        baselines: HashMap::new(),
        memory_baselines: HashMap::new(),
    };
    let bound = scenario.timeout.map(|t| t.0).unwrap_or(DEFAULT_SCENARIO_TIMEOUT);
    let mut failed: Option<(usize, String)> = None;
    let mut error: Option<String> = None;
    let deadline = Instant::now() + bound;
    for (i, step) in scenario.steps.iter().enumerate() {
        match tokio::time::timeout_at(deadline, play.step(step)).await {
            Ok(Ok(())) => {}
            Ok(Err(StepError::CannotRun(why))) => {
                error = Some(why);
                break;
            }
            Ok(Err(StepError::Failed(why))) => {
                failed = Some((i, why));
                break;
            }
            Err(_) => {
                failed = Some((
                    i,
                    format!("the scenario did not finish within its bound of {}s", bound.as_secs()),
                ));
                break;
            }
        }
    }
    if failed.is_some() {
        play.settle().await;
    }
    let failure = failed.map(|(i, detail)| {
        let step = &scenario.steps[i];
        // A program that died on its own is the cause a student needs to
        // see first; the step's own complaint (a refused connection, an
        // EOF) is only its consequence.
        let deaths: Vec<String> = play
            .programs
            .values()
            .filter(|p| !p.end_expected)
            .filter_map(|p| p.exit_status().map(|s| (p, s)))
            // A server should run until stopped; a client may end, but not
            // by a signal.
            .filter(|(p, s)| {
                use std::os::unix::process::ExitStatusExt;
                spec.programs.get(&p.name).is_some_and(|d| d.listens.is_some()) || s.signal().is_some()
            })
            .map(|(p, s)| format!("{} {} during this scenario.", p.name, ended(&s)))
            .collect();
        let detail = if deaths.is_empty() {
            detail
        } else {
            format!("{}\n{detail}", deaths.join("\n"))
        };
        Failure {
            step: i + 1,
            keyword: step.value.keyword().to_string(),
            line: step.referenced.line(),
            detail,
            programs: play.program_states(),
        }
    });
    play.teardown().await;
    let status = if error.is_some() {
        Status::Error
    } else if failure.is_some() {
        Status::Failed
    } else {
        transcript.record("", "pass");
        Status::Passed
    };
    ScenarioResult {
        name: scenario.name.clone(),
        tags: scenario.tags.clone(),
        status,
        score: if status == Status::Passed { scenario.points } else { 0 },
        max_score: scenario.points,
        duration_ms: transcript.elapsed().as_millis() as u64,
        visibility: scenario.visibility,
        hint: scenario.hint.clone(),
        failure,
        error,
        transcript: transcript.full(),
        normalised: transcript.normalised(),
    }
}

/// Why a step did not complete.
enum StepError {
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

impl Play<'_> {
    fn step<'s>(&'s mut self, step: &'s Spanned<Step>) -> Pin<Box<dyn Future<Output = Result<(), StepError>> + 's>> {
        Box::pin(async move {
            let result: StepResult = match &step.value {
                Step::Start(s) => return self.start(s).await,
                Step::Repeat(r) => return self.repeat(r).await,
                Step::Restart(s) => {
                    let name = &s.program.value;
                    if let Some(p) = self.programs.get_mut(name) {
                        if p.is_running() {
                            let _ = killpg(Pid::from_raw(p.pid), Signal::SIGKILL);
                            p.end_expected = true;
                            if p.wait(DEFAULT_WITHIN).await.is_none() {
                                return Err(StepError::Failed(format!(
                                    "{name} was still running 2s after SIGKILL; cannot restart it"
                                )));
                            }
                            self.transcript.record(name, "SIGKILL for the restart");
                            record_output(&self.transcript, p);
                        }
                    }
                    return self.start(s).await;
                }
                Step::Stop(s) => self.stop(&s.program.value, within(&s.within)).await,
                Step::Kill(p) => {
                    let name = &p.program.value;
                    let prog = self.running(name)?;
                    prog.end_expected = true;
                    // The whole group: a forking server's children are the
                    // server too, and they hold its connections.
                    let _ = killpg(Pid::from_raw(prog.pid), Signal::SIGKILL);
                    let _ = kill(Pid::from_raw(prog.pid), Signal::SIGKILL);
                    let status = prog.wait(DEFAULT_WITHIN).await;
                    let how = status.map(|s| describe_exit(&s)).unwrap_or("still running".into());
                    self.transcript.record(name, format!("SIGKILL -> {how}"));
                    Ok(())
                }
                Step::Signal(s) => {
                    let name = &s.program.value;
                    let sig = s.signal.0;
                    let prog = self.running(name)?;
                    // Stopping and resuming is for the whole group: a forking
                    // server's children are part of the server.
                    let r = if matches!(sig, Signal::SIGSTOP | Signal::SIGCONT) {
                        killpg(Pid::from_raw(prog.pid), sig)
                    } else {
                        kill(Pid::from_raw(prog.pid), sig)
                    };
                    r.map_err(|e| format!("could not send {sig} to {name}: {e}"))?;
                    self.transcript.record(name, sig.as_str());
                    Ok(())
                }
                Step::ExpectRunning(p) => {
                    let name = &p.program.value;
                    let prog = self.program(name)?;
                    match prog.exit_status() {
                        None => {
                            self.transcript.record(name, "running");
                            Ok(())
                        }
                        Some(s) => Err(format!("expected {name} to be running, but it {}", ended(&s))),
                    }
                }
                Step::ExpectExit(e) => self.expect_exit(e).await,
                Step::ExpectOutput(o) => self.expect_output(o).await,
                Step::Connect(c) => self.connect(c).await,
                Step::Listen(l) => {
                    let name = &l.name.value;
                    let listener = listen(self.setting.port)
                        .map_err(|e| format!("the harness could not listen on port {}: {e}", self.setting.port))?;
                    self.transcript.record(name, "listening on {port}");
                    self.listeners.insert(name.clone(), listener);
                    Ok(())
                }
                Step::Accept(a) => {
                    let bound = within(&a.within);
                    let listener = &self.listeners[&a.on.value];
                    let name = a.name.value.clone();
                    match tokio::time::timeout(bound, listener.accept()).await {
                        Ok(Ok((stream, _))) => {
                            self.transcript.record(&name, "accepted");
                            let conn = Conn::new(&name, stream, self.transcript.clone());
                            self.conns.insert(name, conn);
                            Ok(())
                        }
                        Ok(Err(e)) => Err(format!("accept failed: {e}")),
                        Err(_) => Err(format!(
                            "expected the program to connect to port {} within {}ms; it did not",
                            self.setting.port,
                            bound.as_millis()
                        )),
                    }
                }
                Step::Each(e) => self.each(e).await,
                Step::FdBaseline(p) => {
                    let name = &p.program.value;
                    let pid = self.running(name)?.pid;
                    let mut fds = witness::fds(pid).ok_or_else(|| format!("cannot read the descriptors of {name}"))?;
                    // The baseline is what the program holds with no client
                    // connected. A connection the harness just closed may not
                    // be closed by the program yet; counting it would make
                    // the baseline depend on the scheduler (and excuse a leak).
                    let connections = witness::connection_fds(pid);
                    fds.retain(|fd, _| !connections.contains(fd));
                    self.transcript.record_with_detail(
                        name,
                        "open descriptors noted as the baseline",
                        format!("{} open", fds.len()),
                    );
                    self.baselines.insert(name.clone(), fds);
                    Ok(())
                }
                Step::ExpectFds(f) => self.expect_fds(f).await,
                Step::MemoryBaseline(p) => {
                    let name = &p.program.value;
                    let pid = self.running(name)?.pid;
                    let rss = tree_rss(pid);
                    self.transcript.record_with_detail(
                        name,
                        "resident memory noted as the baseline",
                        format!("{} KiB", rss >> 10),
                    );
                    self.memory_baselines.insert(name.clone(), rss);
                    Ok(())
                }
                Step::ExpectMemory(m) => self.expect_memory(m).await,
                Step::ExpectReleased(r) => self.expect_released(r).await,
                Step::ExpectZombies(z) => self.expect_zombies(z).await,
                Step::ExpectIdle(i) => self.expect_idle(i).await,
                other => {
                    let on = conn_name(other).expect("a connection step");
                    let conn = self.conns.get_mut(on).ok_or_else(|| format!("`{on}` is not open"))?;
                    conn_step(conn, other).await
                }
            };
            result.map_err(StepError::Failed)
        })
    }

    fn program(&self, name: &str) -> Result<&Running, String> {
        self.programs
            .get(name)
            .ok_or_else(|| format!("{name} was never started"))
    }

    fn running(&mut self, name: &str) -> Result<&mut Running, String> {
        let prog = self
            .programs
            .get_mut(name)
            .ok_or_else(|| format!("{name} was never started"))?;
        match prog.exit_status() {
            None => Ok(prog),
            Some(s) => Err(format!("expected {name} to be running, but it {}", ended(&s))),
        }
    }

    fn argv(&self, program: &spec::Program, args: &Option<Vec<String>>) -> (Vec<String>, String) {
        let mut template = program.command.clone();
        if let Some(args) = args {
            template.truncate(1);
            template.extend(args.iter().cloned());
        }
        let shown = template.join(" ");
        let argv = template
            .iter()
            .map(|a| {
                a.replace("{port}", &self.setting.port.to_string())
                    .replace("{host}", "127.0.0.1")
            })
            .collect();
        (argv, shown)
    }

    async fn start(&mut self, s: &spec::Start) -> Result<(), StepError> {
        let name = s.program.value.clone();
        let program = &self.spec.programs[&name];
        if let Some(p) = self.programs.get(&name) {
            if p.is_running() {
                return Err(StepError::Failed(format!(
                    "{name} is already running; `stop` or `kill` it first, or use `restart`"
                )));
            }
        }
        let (argv, shown) = self.argv(program, &s.args);
        let exe = self.setting.dir.join(&argv[0]);
        if argv[0].contains('/') && !is_executable(&exe) {
            return Err(StepError::CannotRun(format!(
                "the submission has no executable `{}` (after make)",
                argv[0]
            )));
        }
        let stdin = s.stdin.as_ref().map(|p| p.bytes());
        let prog = Running::spawn(&name, &argv, &self.setting.dir, self.setting.uid, stdin)
            .map_err(|e| StepError::CannotRun(format!("could not start `{}`: {e}", argv[0])))?;
        self.started.push(prog.pid);
        match &s.stdin {
            Some(p) => self
                .transcript
                .record(&name, format!("start {shown} < {}", p.describe())),
            None => self.transcript.record(&name, format!("start {shown}")),
        }
        if !self.order.contains(&name) {
            self.order.push(name.clone());
        }
        // In the map before the wait, so that a program that dies before it
        // listens is reported with its exit and its stderr.
        self.programs.insert(name.clone(), prog);
        if let Some(protocol) = program.listens {
            let bound = s.within.or(program.ready_within).map(|w| w.0).unwrap_or(DEFAULT_READY);
            let prog = self.programs.get_mut(&name).expect("just inserted");
            wait_ready(prog, self.setting.port, protocol, bound).await?;
            let what = if protocol == spec::Protocol::Tcp {
                "listening on"
            } else {
                "bound to"
            };
            self.transcript.record(&name, format!("{what} {{port}}"));
        }
        Ok(())
    }

    async fn stop(&mut self, name: &str, bound: Duration) -> StepResult {
        let prog = self.running(name)?;
        prog.end_expected = true;
        let _ = kill(Pid::from_raw(prog.pid), Signal::SIGTERM);
        match prog.wait(bound).await {
            Some(status) => {
                self.transcript
                    .record(name, format!("SIGTERM -> {}", describe_exit(&status)));
                Ok(())
            }
            None => {
                let _ = killpg(Pid::from_raw(prog.pid), Signal::SIGKILL);
                prog.wait(DEFAULT_WITHIN).await;
                self.transcript.record(
                    name,
                    format!("SIGTERM -> still running after {}ms; SIGKILL", bound.as_millis()),
                );
                Err(format!(
                    "expected {name} to exit within {}ms of SIGTERM; it was still running and was killed",
                    bound.as_millis()
                ))
            }
        }
    }

    async fn expect_exit(&mut self, e: &spec::ExpectExit) -> StepResult {
        let name = &e.program.value;
        let began = Instant::now();
        let bound = e.within.map(|w| w.0).unwrap_or(Duration::from_secs(5));
        let prog = self
            .programs
            .get_mut(name)
            .ok_or_else(|| format!("{name} was never started"))?;
        let Some(status) = prog.wait(bound).await else {
            self.transcript
                .record(name, format!("still running after {}ms", bound.as_millis()));
            return Err(format!(
                "expected {name} to exit within {}ms; it is still running",
                bound.as_millis()
            ));
        };
        self.transcript.record(name, describe_exit(&status));
        let how = ended(&status);
        if let Some(min) = e.not_before {
            if began.elapsed() < min.0 {
                return Err(format!(
                    "expected {name} to keep going for at least {min}; it {how} after {}ms",
                    began.elapsed().as_millis()
                ));
            }
        }
        use std::os::unix::process::ExitStatusExt;
        match (e.status, e.signal) {
            (Some(code), _) if status.code() != Some(code) => {
                Err(format!("expected {name} to exit with status {code}; it {how}"))
            }
            (_, Some(sig)) if status.signal() != Some(sig.0 as i32) => {
                Err(format!("expected {name} to be killed by {}; it {how}", sig.0.as_str()))
            }
            _ => {
                prog.end_expected = true;
                Ok(())
            }
        }
    }

    async fn expect_output(&mut self, o: &spec::ExpectOutput) -> StepResult {
        let name = &o.program.value;
        let prog = self.program(name)?;
        let stream_name = match o.stream {
            spec::Stream::Stdout => "stdout",
            spec::Stream::Stderr => "stderr",
        };
        let want_equals = o.equals.as_ref().map(|p| p.bytes());
        let regex = o.regex.as_ref().and_then(|r| regex::bytes::Regex::new(r).ok());
        let deadline = Instant::now() + within(&o.within);
        let captured = prog.output(o.stream).clone();
        let changed = prog.changed.clone();
        let mut last_look = false;
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let ended = prog.output_complete();
            let (whole, total) = {
                let c = captured.lock().unwrap_or_else(|e| e.into_inner());
                (c.whole(), c.total)
            };
            let text = whole.clone().unwrap_or_default();
            let lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
            let verdict: Option<Result<String, String>> = if let Some(want) = &want_equals {
                if whole.as_ref() == Some(want) {
                    Some(Ok(format!("{stream_name}: {}", escape::quote(want, 60))))
                } else if ended || text.len() > want.len() || !want.starts_with(&text) {
                    let diff = escape::first_difference(want, &text).unwrap_or_default();
                    Some(Err(format!(
                        "expected {name}'s {stream_name} to be {}\n  it is {}\n  {diff}",
                        escape::quote(want, 200),
                        escape::quote(&text, 200)
                    )))
                } else {
                    None
                }
            } else if let Some(c) = &o.contains {
                if text.windows(c.len().max(1)).any(|w| w == c.as_bytes()) {
                    Some(Ok(format!(
                        "{stream_name} contains {}",
                        escape::quote(c.as_bytes(), 60)
                    )))
                } else {
                    None
                }
            } else if let Some(re) = &regex {
                re.is_match(&text)
                    .then(|| Ok(format!("{stream_name} matches /{}/", re.as_str())))
            } else if o.nonempty == Some(true) {
                (total > 0).then(|| Ok(format!("{stream_name} is not empty")))
            } else if o.empty == Some(true) {
                Some(if total == 0 {
                    Ok(format!("{stream_name} is empty"))
                } else {
                    Err(format!(
                        "expected {name}'s {stream_name} to be empty; it is {}",
                        escape::quote(&text, 200)
                    ))
                })
            } else {
                Some(Ok(String::new()))
            };
            // "At most N lines" can only be judged once the program is done
            // writing: wait for its end (or the bound) before counting.
            let verdict = match verdict {
                Some(Ok(_)) if o.max_lines.is_some() && !ended && !last_look => None,
                v => v,
            };
            if let Some(Ok(ok)) = &verdict {
                if let Some(max) = o.max_lines {
                    if lines > max {
                        return Err(format!(
                            "expected at most {max} line(s) on {name}'s {stream_name}; it wrote {lines}: {}",
                            escape::quote(&text, 300)
                        ));
                    }
                }
                if !ok.is_empty() {
                    self.transcript.record(name, ok.clone());
                }
                return Ok(());
            }
            if let Some(Err(why)) = verdict {
                return Err(why);
            }
            if ended {
                return Err(format!(
                    "{name} ended, and its {stream_name} never satisfied the expectation; it is {}",
                    escape::quote(&text, 300)
                ));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                if !last_look {
                    last_look = true;
                    continue;
                }
                return Err(format!(
                    "expected {name}'s {stream_name} to satisfy the expectation within {}ms; it is {}",
                    within(&o.within).as_millis(),
                    escape::quote(&text, 300)
                ));
            }
        }
    }

    async fn connect(&mut self, c: &spec::Connect) -> StepResult {
        let bound = within(&c.within);
        let base = c.name.value.clone();
        let names: Vec<String> = match c.count {
            None => vec![base.clone()],
            Some(n) => (1..=n).map(|i| format!("{base}#{i}")).collect(),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.setting.port));
        let mut outcomes = Vec::new();
        // One after the other: each handshake completes (or not) before the
        // next begins, so a full backlog is seen exactly where it fills.
        for (i, name) in names.iter().enumerate() {
            let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
            if let Some(size) = c.rcvbuf {
                socket.set_recv_buffer_size(size.0 as u32).map_err(|e| e.to_string())?;
            }
            let outcome = match tokio::time::timeout(bound, socket.connect(addr)).await {
                Ok(Ok(stream)) => {
                    self.conns
                        .insert(name.clone(), Conn::new(name, stream, self.transcript.clone()));
                    spec::ConnectOutcome::Established
                }
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::ECONNREFUSED) => spec::ConnectOutcome::Refused,
                Ok(Err(e)) => return Err(format!("connect failed: {}", conn::os_error(&e))),
                Err(_) => spec::ConnectOutcome::Pending,
            };
            outcomes.push(outcome);
            if outcome != c.expect {
                let done = outcomes
                    .iter()
                    .filter(|o| **o == spec::ConnectOutcome::Established)
                    .count();
                let got = word(outcome);
                self.transcript.record(name, format!("connect -> {got}"));
                let count = match c.count {
                    Some(n) => format!("connection {} of {n}: ", i + 1),
                    None => String::new(),
                };
                let extra = if outcome == spec::ConnectOutcome::Pending && c.count.is_some() {
                    format!(" ({done} completed their handshake before it)")
                } else {
                    String::new()
                };
                return Err(format!(
                    "{count}expected the connection to be {} within {}ms; it was {got}{extra}",
                    word(c.expect),
                    bound.as_millis()
                ));
            }
        }
        match c.count {
            None => self.transcript.record(&base, format!("connect -> {}", word(c.expect))),
            Some(n) => {
                self.transcript
                    .record(&base, format!("connect {n} -> {}", word(c.expect)));
                self.groups.insert(base, names);
            }
        }
        Ok(())
    }

    async fn each(&mut self, e: &spec::Each) -> StepResult {
        let members = self.groups.get(&e.connections.value).cloned().unwrap_or_default();
        let mut conns: Vec<Conn> = Vec::new();
        for m in &members {
            let mut c = self.conns.remove(m).ok_or_else(|| format!("`{m}` is closed"))?;
            c.transcript = self.transcript.branch();
            conns.push(c);
        }
        let steps = &e.steps;
        let futures = conns.into_iter().map(|mut conn| async move {
            let mut result = Ok(());
            for step in steps {
                if let Err(why) = conn_step(&mut conn, &step.value).await {
                    result = Err(why);
                    break;
                }
            }
            (conn, result)
        });
        let done = join_all(futures.collect()).await;
        // Members' events go in member order, and only once when they are
        // alike, so the transcript is the same whatever the scheduler did.
        let group = &e.connections.value;
        let texts: Vec<Vec<(String, String)>> = done
            .iter()
            .map(|(c, _)| {
                c.transcript
                    .events()
                    .into_iter()
                    .map(|ev| (ev.actor.replace(&c.name, group), ev.text))
                    .collect()
            })
            .collect();
        let alike = texts.windows(2).all(|w| w[0] == w[1]);
        let mut first_error = None;
        for (i, (mut conn, result)) in done.into_iter().enumerate() {
            if alike && i == 0 {
                let mut evs = conn.transcript.events();
                for ev in &mut evs {
                    ev.actor = format!("{group}#*");
                }
                self.transcript.append(evs);
            } else if !alike {
                self.transcript.append(conn.transcript.events());
            }
            if let Err(why) = result {
                first_error.get_or_insert(format!("{}: {why}", conn.name));
            }
            conn.transcript = self.transcript.clone();
            self.conns.insert(conn.name.clone(), conn);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn repeat(&mut self, r: &spec::Repeat) -> Result<(), StepError> {
        let parent = self.transcript.clone();
        let mut first: Option<Vec<(String, String)>> = None;
        let mut alike = true;
        for round in 1..=r.times {
            self.transcript = parent.branch();
            let mut result = Ok(());
            for step in &r.steps {
                match self.step(step).await {
                    Ok(()) => {}
                    Err(StepError::Failed(why)) => {
                        result = Err(StepError::Failed(format!("round {round} of {}: {why}", r.times)));
                        break;
                    }
                    Err(cannot) => {
                        result = Err(cannot);
                        break;
                    }
                }
            }
            let events = self.transcript.events();
            let texts: Vec<(String, String)> = events.iter().map(|e| (e.actor.clone(), e.text.clone())).collect();
            match &first {
                None => {
                    first = Some(texts);
                    parent.append(events);
                }
                Some(f) if *f == texts && result.is_ok() => {}
                Some(_) => {
                    alike = false;
                    parent.record("", format!("round {round}:"));
                    parent.append(events);
                }
            }
            if result.is_err() {
                self.transcript = parent;
                return result;
            }
        }
        self.transcript = parent;
        let note = if alike { "alike" } else { "not all alike" };
        self.transcript
            .record("", format!("repeated {} times, {note}", r.times));
        Ok(())
    }

    async fn expect_fds(&mut self, f: &spec::ExpectFds) -> StepResult {
        let name = &f.program.value;
        let baseline = self
            .baselines
            .get(name)
            .cloned()
            .ok_or_else(|| format!("`expect_fds` needs an earlier `fd_baseline: {name}`"))?;
        let pid = self.running(name)?.pid;
        let limit = baseline.len() + f.above_baseline;
        let prog = &self.programs[name];
        let now = poll_until(within(&f.within), || {
            // A program that died has no descriptors: that's no pass.
            if !prog.is_running() || !witness::alive(pid) {
                return (true, None);
            }
            let fds = witness::fds(pid).unwrap_or_default();
            (fds.len() <= limit, Some(fds))
        })
        .await;
        if !witness::alive(pid) {
            let how = self.how_it_ended(name).await;
            return Err(format!(
                "expected {name} to be running with at most {limit} open descriptors; it {how}"
            ));
        }
        let now = match now {
            Ok(fds) => Ok(fds.unwrap_or_default()),
            Err(fds) => Err(fds.unwrap_or_default()),
        };
        match now {
            Ok(fds) => {
                // The difference is the program's doing; the counts also
                // hold whatever its runtime opened for itself.
                let difference = fds.len() as i64 - baseline.len() as i64;
                self.transcript.record_with_detail(
                    name,
                    format!("open descriptors: baseline {difference:+}"),
                    format!("{} open, baseline {}", fds.len(), baseline.len()),
                );
                Ok(())
            }
            Err(fds) => {
                let extra: Vec<String> = fds
                    .iter()
                    .filter(|(fd, target)| baseline.get(fd) != Some(target))
                    .take(5)
                    .map(|(fd, target)| format!("fd {fd} -> {target}"))
                    .collect();
                Err(format!(
                    "expected {name} to have at most {limit} open descriptors once its clients were gone (its baseline was {}); it has {}: {} more.\n  New since the baseline: {}{}\n  A descriptor that is never closed is a leak: each connection must be close()d when its client is done",
                    baseline.len(),
                    fds.len(),
                    fds.len().saturating_sub(baseline.len()),
                    extra.join(", "),
                    if fds.len() - baseline.len().min(fds.len()) > 5 { ", ..." } else { "" }
                ))
            }
        }
    }

    async fn expect_released(&mut self, r: &spec::ExpectReleased) -> StepResult {
        let name = &r.program.value;
        let conn = &r.connection.value;
        let peer_port = self
            .conns
            .get(conn)
            .map(|c| c.local_port)
            .ok_or_else(|| format!("`{conn}` was never opened"))?;
        let pid = self.running(name)?.pid;
        let port = self.setting.port;
        let hold = poll_until(within(&r.within), || {
            if !witness::alive(pid) {
                return (true, None);
            }
            let tree = witness::tree(pid, &witness::processes());
            let hold = witness::connection_hold(&tree, port, peer_port);
            (hold == witness::Hold::Released, Some(hold))
        })
        .await;
        if !witness::alive(pid) {
            let how = self.how_it_ended(name).await;
            return Err(format!(
                "expected {name} to close its end of `{conn}` and go on; it {how}"
            ));
        }
        match hold {
            Ok(_) => {
                self.transcript.record(name, format!("closed its end of {conn}"));
                Ok(())
            }
            Err(Some(witness::Hold::Waiting)) => Err(format!(
                "expected {name} to accept `{conn}` and close it within {}ms; it never accepted it",
                within(&r.within).as_millis()
            )),
            Err(_) => Err(format!(
                "expected {name} to close its end of `{conn}` within {}ms of the client leaving; a descriptor of {name} still refers to it.\n  Every descriptor of a connection must be close()d once its client is gone: in a forking server, the parent's copy too",
                within(&r.within).as_millis()
            )),
        }
    }

    async fn expect_zombies(&mut self, z: &spec::ExpectZombies) -> StepResult {
        let name = &z.program.value;
        let pid = self.running(name)?.pid;
        let at_most = z.at_most;
        let r = poll_until(within(&z.within), || {
            let n = witness::zombies(pid, &witness::processes()).len();
            (n <= at_most, n)
        })
        .await;
        match r {
            Ok(_) => {
                self.transcript.record(name, format!("at most {at_most} zombie children"));
                Ok(())
            }
            Err(n) => Err(format!(
                "expected {name} to have at most {at_most} zombie children; it has {n}: children that exited and were never waited for"
            )),
        }
    }

    async fn expect_memory(&mut self, m: &spec::ExpectMemory) -> StepResult {
        let name = &m.program.value;
        let baseline = *self
            .memory_baselines
            .get(name)
            .ok_or_else(|| format!("`expect_memory` needs an earlier `memory_baseline: {name}`"))?;
        let pid = self.running(name)?.pid;
        let limit = baseline + m.growth_at_most.0 as u64;
        // Children that are still finishing their clients hold memory too:
        // wait (bounded) for the tree to settle.
        let rss = poll_until(within(&m.within), || {
            if !witness::alive(pid) {
                return (true, 0);
            }
            let rss = tree_rss(pid);
            (rss <= limit, rss)
        })
        .await;
        if !witness::alive(pid) {
            let how = self.how_it_ended(name).await;
            return Err(format!("expected {name} to keep running; it {how}"));
        }
        match rss {
            Ok(rss) => {
                self.transcript.record_with_detail(
                    name,
                    format!("resident memory within {} KiB of the baseline", m.growth_at_most.0 >> 10),
                    format!("{} KiB, baseline {} KiB", rss >> 10, baseline >> 10),
                );
                Ok(())
            }
            Err(rss) => Err(format!(
                "expected {name}'s resident memory to stay within {} KiB of its baseline ({} KiB) once its clients were gone; it is {} KiB, {} KiB more.\n  Memory that grows with every client is a leak: free() what you allocated for a client when it leaves",
                m.growth_at_most.0 >> 10,
                baseline >> 10,
                rss >> 10,
                rss.saturating_sub(baseline) >> 10
            )),
        }
    }

    async fn expect_idle(&mut self, i: &spec::ExpectIdle) -> StepResult {
        let name = &i.program.value;
        let pid = self.running(name)?.pid;
        let (t0, rss0, _) = tree_usage(pid);
        let began = Instant::now();
        // Watching over time is the point of this step: nothing to wait for.
        tokio::time::sleep(i.duration.0).await;
        let (t1, rss1, procs) = tree_usage(pid);
        if !witness::alive(pid) {
            let how = self.how_it_ended(name).await;
            return Err(format!("expected {name} to stay running while idle; it {how}"));
        }
        let secs = began.elapsed().as_secs_f64();
        let cpu = (t1.saturating_sub(t0)) as f64 / witness::ticks_per_second() as f64 / secs * 100.0;
        if let Some(max) = i.max_cpu_percent {
            if cpu > max as f64 {
                return Err(format!(
                    "expected {name} to use at most {max}% CPU while idle; it used {cpu:.0}% over {:.1}s: a loop that polls instead of blocking in accept/read/poll",
                    secs
                ));
            }
        }
        if let Some(max) = i.max_processes {
            if procs > max {
                return Err(format!(
                    "expected at most {max} processes while idle; {name} has {procs}"
                ));
            }
        }
        if let Some(max) = i.max_rss_growth {
            let growth = rss1.saturating_sub(rss0);
            if growth > max.0 as u64 {
                return Err(format!(
                    "expected {name}'s memory to grow by at most {} bytes while idle; it grew by {growth}",
                    max.0
                ));
            }
        }
        self.transcript
            .record(name, format!("idle for {}: within bounds", i.duration));
        Ok(())
    }

    /// How a program that the kernel shows dead ended, once its waiter has
    /// collected the status.
    async fn how_it_ended(&mut self, name: &str) -> String {
        match self.programs.get_mut(name) {
            Some(p) => p
                .wait(DEFAULT_WITHIN)
                .await
                .map(|s| ended(&s))
                .unwrap_or("ended".into()),
            None => "was never started".into(),
        }
    }

    /// A program the kernel already shows dead may not have been reaped by
    /// its waiter yet: give it a moment, so the report says how it died.
    async fn settle(&mut self) {
        for p in self.programs.values_mut() {
            if p.is_running() && !witness::alive(p.pid) {
                p.wait(Duration::from_secs(1)).await;
            }
        }
    }

    fn program_states(&self) -> Vec<ProgramState> {
        self.order
            .iter()
            .filter_map(|n| self.programs.get(n))
            .map(|p| ProgramState {
                name: p.name.clone(),
                state: p.exit_status().map(|s| describe_exit(&s)).unwrap_or("running".into()),
                end_expected: p.end_expected,
                stderr_tail: p.stderr_tail(STDERR_TAIL),
            })
            .collect()
    }

    /// Ends everything: connections, then every process the scenario
    /// started, grandchildren included.
    async fn teardown(&mut self) {
        for (_, mut c) in self.conns.drain() {
            c.abort().await;
        }
        for name in self.order.clone() {
            if let Some(p) = self.programs.get(&name) {
                if p.is_running() {
                    self.transcript.record(&name, "still running at the end: killed");
                }
                record_output(&self.transcript, p);
            }
        }
        match self.setting.uid {
            Some(uid) => crate::sandbox::kill_all_of(uid),
            None => {
                for &pid in &self.started {
                    crate::sandbox::kill_tree(pid);
                }
            }
        }
        for p in self.programs.values_mut() {
            p.wait(DEFAULT_WITHIN).await;
        }
    }
}

/// The harness's listening sockets for a client under test: 127.0.0.1, and
/// ::1 where IPv6 exists, so a client that resolves `localhost` to ::1 first
/// is served too. Loopback only, whatever the isolation.
struct Listener {
    v4: TcpListener,
    v6: Option<TcpListener>,
}

impl Listener {
    async fn accept(&self) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
        match &self.v6 {
            Some(v6) => tokio::select! {
                r = self.v4.accept() => r,
                r = v6.accept() => r,
            },
            None => self.v4.accept().await,
        }
    }
}

fn listen(port: u16) -> std::io::Result<Listener> {
    let v4 = TcpSocket::new_v4()?;
    v4.set_reuseaddr(true)?;
    v4.bind(([127, 0, 0, 1], port).into())?;
    let v6 = TcpSocket::new_v6().and_then(|s| {
        s.set_reuseaddr(true)?;
        s.bind(std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))?;
        s.listen(128)
    });
    Ok(Listener {
        v4: v4.listen(128)?,
        v6: v6.ok(),
    })
}

/// What a program printed, for the full transcript (the start and the end of
/// each stream when it is long).
fn record_output(t: &Transcript, p: &Running) {
    for (stream, captured) in [("stdout", &p.stdout), ("stderr", &p.stderr)] {
        let (tail, dropped) = captured.lock().unwrap_or_else(|e| e.into_inner()).last(400);
        if tail.is_empty() {
            continue;
        }
        let skipped = if dropped > 0 {
            format!("[{dropped} bytes before] ")
        } else {
            String::new()
        };
        t.record_full_only(&p.name, format!("{stream}: {skipped}{}", escape::quote(&tail, 400)));
    }
}

fn word(o: spec::ConnectOutcome) -> &'static str {
    match o {
        spec::ConnectOutcome::Established => "established",
        spec::ConnectOutcome::Refused => "refused",
        spec::ConnectOutcome::Pending => "pending",
    }
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn conn_name(step: &Step) -> Option<&str> {
    let on = match step {
        Step::Send(s) => &s.on,
        Step::Expect(e) => &e.on,
        Step::Echo(e) => &e.on,
        Step::ExpectEof(c) | Step::ExpectReset(c) | Step::Shutdown(c) | Step::Close(c) | Step::Abort(c) => &c.on,
        Step::ReadSlowly(r) => &r.on,
        _ => return None,
    };
    on.as_ref().map(|n| n.value.as_str())
}

/// A step on one connection; used at the top level and inside `each`.
async fn conn_step(conn: &mut Conn, step: &Step) -> StepResult {
    let t = conn.transcript.clone();
    let name = conn.name.clone();
    if let Some(e) = conn.take_write_error() {
        t.record(&name, e);
    }
    let result = conn_step_inner(conn, step).await;
    if let Some(e) = conn.take_write_error() {
        t.record(&name, e);
    }
    result
}

async fn conn_step_inner(conn: &mut Conn, step: &Step) -> StepResult {
    let t = conn.transcript.clone();
    let name = conn.name.clone();
    match step {
        Step::Send(s) => {
            let payload = spec::payload_of(&s.text, &s.hex, &s.generate, &s.then)?.expect("checked at load");
            let bytes = payload.bytes();
            let sizes: Vec<usize> = s
                .sizes
                .as_ref()
                .map(|v| v.iter().map(|x| x.0).collect())
                .unwrap_or_default();
            let plan = conn::plan(bytes.len(), s.chunk.map(|c| c.0), &sizes);
            let gap = s.gap.map(|g| g.0).unwrap_or(Duration::ZERO);
            let writes = if plan.len() == 1 {
                "1 write".to_string()
            } else {
                format!("{} writes", plan.len())
            };
            t.record(
                &name,
                format!(
                    "-> {}  ({} in {writes})",
                    payload.describe(),
                    escape::bytes(bytes.len())
                ),
            );
            let wait = (s.wait == Some(true)).then_some(DEFAULT_WITHIN * 5);
            let shutdown = s.shutdown == Some(true);
            if shutdown {
                t.record(&name, "shutdown write (the FIN with the last bytes)");
            }
            conn.send(bytes, plan, gap, wait, shutdown).await
        }
        Step::Expect(e) => {
            let matcher = if e.echo == Some(true) {
                Matcher::Echo
            } else if let Some(p) = &e.prefix {
                Matcher::Prefix(p.clone().into_bytes())
            } else if let Some(c) = &e.contains {
                Matcher::Contains(c.clone().into_bytes())
            } else if let Some(r) = &e.regex {
                Matcher::Regex(regex::bytes::Regex::new(r).map_err(|e| e.to_string())?)
            } else if let Some(n) = e.size {
                Matcher::Size(n.0)
            } else {
                let p = spec::payload_of(&e.text, &e.hex, &e.generate, &e.then)?.expect("checked at load");
                Matcher::Exact(p.bytes())
            };
            match conn.expect(&matcher, within(&e.within)).await {
                Outcome::Matched(bytes) => {
                    t.record(
                        &name,
                        format!("<- {}  ({})", escape::quote(&bytes, 60), escape::bytes(bytes.len())),
                    );
                    Ok(())
                }
                Outcome::Failed(why) => {
                    t.record(
                        &name,
                        format!(
                            "<- {}  ({} bytes, not as expected)",
                            escape::quote(&conn.inbox, 60),
                            conn.inbox.len()
                        ),
                    );
                    Err(why)
                }
            }
        }
        Step::Echo(e) => {
            let p = spec::payload_of(&e.text, &e.hex, &e.generate, &e.then)?.expect("checked at load");
            let want = p.bytes();
            match conn.echo_back(&want, within(&e.within)).await {
                Ok(()) => {
                    // How many writes it took depends on how the kernel split
                    // the bytes, so it stays out of the transcript.
                    t.record(
                        &name,
                        format!("<-> {}  ({} echoed)", p.describe(), escape::bytes(want.len())),
                    );
                    Ok(())
                }
                Err(why) => {
                    t.record(&name, format!("<-> {}  (not as expected)", p.describe()));
                    Err(why)
                }
            }
        }
        Step::ExpectEof(c) => {
            conn.expect_end(PeerState::Eof, within(&c.within)).await?;
            t.record(&name, "<- EOF");
            Ok(())
        }
        Step::ExpectReset(c) => {
            conn.expect_end(PeerState::Reset, within(&c.within)).await?;
            t.record(&name, "<- RST");
            Ok(())
        }
        Step::Shutdown(_) => {
            t.record(&name, "shutdown write");
            conn.shutdown()
        }
        Step::Close(c) => {
            t.record(&name, "close");
            conn.close(within(&c.within)).await
        }
        Step::Abort(_) => {
            t.record(&name, "abort (RST)");
            conn.abort().await;
            Ok(())
        }
        Step::ReadSlowly(r) => {
            t.record(&name, format!("reads slowly: {} bytes every {}", r.chunk.0, r.gap));
            conn.read_slowly(r.chunk.0, r.gap.0);
            Ok(())
        }
        other => Err(format!("`{}` is not a connection step", other.keyword())),
    }
}

/// Waits until the kernel reports the program listening on `port`, polling
/// /proc quickly; fails at once if the program ends first.
async fn wait_ready(prog: &mut Running, port: u16, protocol: spec::Protocol, bound: Duration) -> StepResult {
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_micros(500);
    let mut round = 0u32;
    loop {
        if let Some(status) = prog.exit_status() {
            return Err(format!(
                "expected {} to listen on port {port}; it {} before it did",
                prog.name,
                ended(&status)
            ));
        }
        // The main process first (cheap); its whole tree now and then, for
        // servers that listen in a child.
        let ready = witness::is_ready(&[prog.pid], port, protocol)
            || (round % 4 == 3 && {
                let all = witness::processes();
                witness::is_ready(&witness::tree(prog.pid, &all), port, protocol)
            });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "expected {} to listen on port {port} within {}ms; it did not",
                prog.name,
                bound.as_millis()
            ));
        }
        // A bounded poll of /proc: there is no event for "a socket started
        // listening", and a probe connection would be a client the program sees.
        let _ = tokio::time::timeout(pause, prog.changed.notified()).await;
        pause = (pause * 3 / 2).min(Duration::from_millis(10));
        round += 1;
    }
}

/// Polls `check` until it says done or `bound` passes; returns its last value.
/// What a process and its descendants use: CPU ticks, resident bytes, and
/// how many processes they are.
fn tree_usage(pid: i32) -> (u64, u64, usize) {
    let all = witness::processes();
    let pids = witness::tree(pid, &all);
    let members = || pids.iter().filter_map(|p| all.get(p));
    let ticks: u64 = members().map(|p| p.ticks).sum();
    let rss: u64 = members().map(|p| p.rss_pages).sum();
    (ticks, rss * witness::page_size(), pids.len())
}

/// Resident bytes of a process and its descendants.
fn tree_rss(pid: i32) -> u64 {
    tree_usage(pid).1
}

async fn poll_until<T>(bound: Duration, mut check: impl FnMut() -> (bool, T)) -> Result<T, T> {
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_millis(1);
    loop {
        let (done, value) = check();
        if done {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(value);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Runs futures concurrently on this task and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}
