//! Runs the scenarios of a spec against a built submission: `jobs` at once,
//! each on a thread of its own (network namespaces belong to threads), each
//! with a fresh copy of the submission, a fresh port and its own user.

use crate::isolation::{self, Isolation, Namespaces};
use crate::lang::{Keyword, ScriptedWait, Spec, Step};
use crate::room::{self, Room};
use crate::sandbox::{self, Identity};
use crate::scenario::{self, Setting};
use crate::verdict::ScenarioResult;
use serde_saphyr::Spanned;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub struct Options {
    pub jobs: usize,
    pub isolation: Isolation,
    /// Only scenarios whose name contains one of these (all when empty).
    pub filter: Vec<String>,
    /// Where the reference programs are, for the programs a spec marks
    /// `reference: true` (a model server behind a relay); `None`: beside
    /// this executable.
    pub reference_dir: Option<std::path::PathBuf>,
    /// Called once, when no scenario that needs a core is left to run or
    /// running: only those that mostly wait on the clock remain (or none).
    /// `sockgrade grade` then starts the next submission beside them.
    pub working_done: Option<WorkingDone>,
}

/// See `Options::working_done`.
pub type WorkingDone = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Every scenario's result, in spec order. `broken` makes every scenario an
/// `error` with that message (a submission that didn't build).
pub fn run(spec: &Spec, built_dir: &Path, work: &Path, options: &Options, broken: Option<&str>) -> Vec<ScenarioResult> {
    let selected: Vec<usize> = (0..spec.scenarios.len())
        .filter(|&i| {
            options.filter.is_empty()
                || options
                    .filter
                    .iter()
                    .any(|f| spec.scenarios[i].name.contains(f.as_str()))
        })
        .collect();
    if let Some(why) = broken {
        return selected.iter().map(|&i| errored(spec, i, why)).collect();
    }
    let working_done = || {
        if let Some(done) = &options.working_done {
            done();
        }
    };
    if sandbox::is_root() {
        sandbox::adopt_orphans();
    }
    let open_files = sandbox::raise_open_files();
    sandbox::presize_descriptor_tables();
    // Longest first (by the waits the scenarios script), so that the run
    // does not end with one slot still on a long scenario taken last. The
    // scenarios that mostly wait get slots of their own besides the `jobs`
    // slots for the others: they hardly use a core, and the whole run
    // should take little more than its longest scenario.
    let mut order = selected.clone();
    order.sort_by_key(|&i| std::cmp::Reverse(scripted_wait(&spec.scenarios[i].steps)));
    let (waiting, working): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| scripted_wait(&spec.scenarios[i].steps) >= MOSTLY_WAITING);
    let jobs = options.jobs.max(1).min(working.len().max(1));
    // As many as there are, up to a bound: a slot that mostly waits costs a
    // thread, a user and a namespace, not a core, and with one slot for
    // all of them the run took the sum of their waits (a class of the http
    // lab sat through each submission's 6.5 s slow client and 5 s idle
    // connection one after the other).
    let waiting_slots = waiting.len().min(MOST_WAITING_SLOTS);
    // The copies in about the order the slots will want them: the first
    // scenario of every slot, then the short ones, then the long ones.
    let heads = waiting.iter().take(waiting_slots).chain(working.iter().take(jobs));
    let rest = working.iter().skip(jobs).chain(waiting.iter().skip(waiting_slots));
    let copy_order: Vec<usize> = heads.chain(rest).copied().collect();
    // Scenarios that need a core, not yet done: at zero, `working_done`.
    let needs_a_core: std::collections::HashSet<usize> = working.iter().copied().collect();
    let working_left = std::sync::atomic::AtomicUsize::new(working.len());
    if working.is_empty() {
        working_done();
    }
    let working = Mutex::new(VecDeque::from(working));
    let waiting = Mutex::new(VecDeque::from(waiting));
    let results: Mutex<Vec<(usize, ScenarioResult)>> = Mutex::new(Vec::new());
    let users = Users::new(jobs + waiting_slots);
    let namespaces = Namespaces::new(jobs + waiting_slots);
    let unready = crate::scenario::Unready::default();
    let copies = Copies {
        ahead: 2 * (jobs + waiting_slots),
        made: Mutex::default(),
        ready: Condvar::new(),
    };
    // A working slot takes the waiting scenarios that are left once the
    // others are done; a waiting slot takes only those.
    let (both, only_waiting) = ([&working, &waiting], [&waiting]);
    std::thread::scope(|s| {
        // Users, copies and namespaces are made ahead, off the slots' path.
        s.spawn(|| users.fill());
        s.spawn(|| copies.make(&copy_order, built_dir, work));
        if options.isolation == Isolation::Netns {
            s.spawn(|| namespaces.make(copy_order.len()));
        }
        let slots = std::iter::repeat_n(&both[..], jobs).chain(std::iter::repeat_n(&only_waiting[..], waiting_slots));
        let mut running = Vec::new();
        for queues in slots {
            let (results, users, copies, namespaces, unready) = (&results, &users, &copies, &namespaces, &unready);
            let (needs_a_core, working_left, working_done) = (&needs_a_core, &working_left, &working_done);
            running.push(s.spawn(move || loop {
                let next = queues
                    .iter()
                    .find_map(|q| q.lock().unwrap_or_else(|e| e.into_inner()).pop_front());
                let Some(i) = next else {
                    break;
                };
                let asked = std::time::Instant::now();
                let dir = scenario_dir(work, i);
                // A user with nothing left of an earlier scenario, and the
                // scenario's private copy of the submission.
                let identity = users.take();
                let copied = copies.take(i);
                let began = std::time::Instant::now();
                let short = descriptors_short(&spec.scenarios[i].steps, open_files);
                let result = match (&identity, copied) {
                    _ if short.is_some() => errored(spec, i, short.as_deref().unwrap_or_default()),
                    (Err(why), _) => errored(spec, i, &format!("the harness could not run this scenario: {why}")),
                    (Ok(_), Err(why)) => errored(spec, i, &why),
                    (Ok(identity), Ok(room)) => {
                        let uid = identity.as_ref().map(|id| id.uid);
                        let given = Given {
                            room,
                            uid,
                            unready: unready.for_scenario(&spec.scenarios[i]),
                        };
                        run_one(spec, i, work, given, options.isolation, namespaces)
                    }
                };
                let played = began.elapsed();
                // Off the critical path: whatever happened in there (a panic
                // skips the scenario's own clean-up), nothing of it survives,
                // and the user goes back to the pool only once nothing of it
                // is left to count against its next scenario. Meanwhile this
                // slot goes on with another user.
                s.spawn(move || {
                    if let Ok(Some(identity)) = &identity {
                        sandbox::end_all_of(identity.uid);
                        if !room::Walls::here().mount {
                            room::remove_shared_memory_of(identity.uid);
                        }
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                    if let Ok(identity) = identity {
                        users.give_back(identity);
                    }
                });
                timing(i, began - asked, began, played);
                results.lock().unwrap_or_else(|e| e.into_inner()).push((i, result));
                if needs_a_core.contains(&i) && working_left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    working_done();
                }
            }));
        }
        // A scenario that could not run (no copy: a full disk) took no
        // namespace; the maker must not wait for it.
        for slot in running {
            let _ = slot.join();
        }
        namespaces.close();
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// A scenario that waits at least this long on purpose "mostly waits": it
/// gets a slot besides those of `--jobs`.
const MOSTLY_WAITING: Duration = Duration::from_millis(250);

/// At most this many slots for the scenarios that mostly wait, whatever
/// `--jobs` is.
const MOST_WAITING_SLOTS: usize = 8;

/// How long a scenario waits on purpose, as its steps are written (each
/// keyword's `Keyword::scripted_wait`). Only for the order and the slots of
/// the scenarios: an estimate, never a verdict.
fn scripted_wait(steps: &[Spanned<Step>]) -> Duration {
    ScriptedWait::of(steps.iter().map(|s| &s.value))
}

/// Why the harness can't hold the connections a scenario opens, if it can't:
/// an error for the scenario, which says what to raise, rather than a
/// failure the student would be blamed for (or a panic).
fn descriptors_short(steps: &[Spanned<Step>], open_files: u64) -> Option<String> {
    // The harness's own: its runtime, the programs' pipes, sock_diag, the
    // other scenarios' slots.
    const RESERVE: u64 = 64;
    let need = connections(steps) as u64;
    (need + RESERVE > open_files).then(|| {
        format!(
            "the harness could not run this scenario: it opens up to {need} connections, and the harness may have \
             only {open_files} descriptors open (its RLIMIT_NOFILE, raised as far as the hard limit allows); \
             raise the hard limit (`ulimit -Hn`, or LimitNOFILE= for a service) to at least {}",
            need + RESERVE
        )
    })
}

/// How many connections a scenario may hold at once, at most: every one it
/// opens, as if none were closed (a `repeat` round's count once per round).
fn connections(steps: &[Spanned<Step>]) -> usize {
    steps
        .iter()
        .map(|step| step.value.connections())
        .fold(0, usize::saturating_add)
}

/// The users scenarios run as (when we are root; `None` otherwise), each
/// serving one scenario at a time. Two per slot: while one is being
/// cleaned up after its scenario, the slot runs the next on the other.
struct Users {
    free: Mutex<(Vec<Option<Identity>>, usize)>,
    returned: Condvar,
    most: usize,
}

impl Users {
    fn new(jobs: usize) -> Users {
        Users {
            free: Mutex::new((Vec::new(), 0)),
            returned: Condvar::new(),
            most: 2 * jobs,
        }
    }

    /// A user that no scenario is using and that has nothing left running:
    /// a returned one, a new one while there are fewer than `most`, or else
    /// the next one returned.
    fn take(&self) -> Result<Option<Identity>, String> {
        let mut guard = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(identity) = guard.0.pop() {
                return Ok(identity);
            }
            if guard.1 < self.most {
                drop(guard);
                return self.acquire();
            }
            guard = self.returned.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Acquires the users ahead, so that the first scenario of each slot
    /// does not wait for one (an acquire ends what a crashed earlier run may
    /// have left of that user).
    fn fill(&self) {
        while self.free.lock().unwrap_or_else(|e| e.into_inner()).1 < self.most {
            match self.acquire() {
                Ok(identity) => self.give_back(identity),
                Err(_) => return,
            }
        }
    }

    /// A new user, counted against `most`.
    fn acquire(&self) -> Result<Option<Identity>, String> {
        {
            let mut guard = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if guard.1 >= self.most {
                drop(guard);
                return self.take();
            }
            guard.1 += 1;
        }
        let identity = Identity::acquire();
        if identity.is_err() {
            self.free.lock().unwrap_or_else(|e| e.into_inner()).1 -= 1;
        }
        identity
    }

    fn give_back(&self, identity: Option<Identity>) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).0.push(identity);
        self.returned.notify_one();
    }
}

/// What a scenario cost its slot, for `bench/speed.py` (with
/// `SOCKGRADE_LOG=sockgrade::timing=info`): from the moment it had its user
/// and its copy of the submission to the moment the slot could take the
/// next, so its namespace and its clean-up count, not only its steps; and
/// apart, how long the slot waited for the user and the copy (made ahead,
/// but not yet for the first scenarios of a run).
fn timing(i: usize, waited: Duration, began: std::time::Instant, played: Duration) {
    let slot = began.elapsed();
    tracing::info!(
        target: "sockgrade::timing",
        scenario = i,
        slot_us = slot.as_micros() as u64,
        played_us = played.as_micros() as u64,
        released_us = (slot - played).as_micros() as u64,
        waited_us = waited.as_micros() as u64,
    );
}

/// Each scenario's private copy of the submission, made ahead by one thread
/// (see `sandbox::copy_private`) and waited for by the slot that runs it.
struct Copies {
    /// How many copies may wait for their slot.
    ahead: usize,
    made: Mutex<Made>,
    ready: Condvar,
}

#[derive(Default)]
struct Made {
    /// Copies made (or that failed), by scenario, not yet taken.
    waiting: HashMap<usize, Result<Room, String>>,
    /// The copier is done: a slot must never wait for a copy that won't come.
    finished: bool,
}

impl Copies {
    fn make(&self, order: &[usize], built_dir: &Path, work: &Path) {
        /// Done, however the loop ends (a panic included).
        struct Finished<'a>(&'a Copies);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.made.lock().unwrap_or_else(|e| e.into_inner()).finished = true;
                self.0.ready.notify_all();
            }
        }
        let _finished = Finished(self);
        for &i in order {
            // Only a few ahead of the slots: all at once would hold a copy
            // of the submission per scenario on disk, and compete with the
            // first scenarios for the disk and the lock on starts.
            let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
            while made.waiting.len() >= self.ahead {
                made = self.ready.wait(made).unwrap_or_else(|e| e.into_inner());
            }
            drop(made);
            let dir = scenario_dir(work, i);
            let made = sandbox::copy_private(built_dir, &dir)
                .map_err(|e| format!("could not copy the submission: {e}"))
                .and_then(|()| {
                    Room::make(&room::Plan {
                        dir: &dir,
                        read_only: vec![work.join(crate::submission::REFERENCE_PROGRAMS)],
                        no_tcp: false,
                    })
                    .map_err(|e| format!("could not make the scenario's room: {e}"))
                });
            self.made
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiting
                .insert(i, made);
            self.ready.notify_all();
        }
    }

    fn take(&self, i: usize) -> Result<Room, String> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(result) = made.waiting.remove(&i) {
                self.ready.notify_all();
                return result;
            }
            if made.finished {
                return Err("the harness made no copy of the submission for this scenario (a bug in sockgrade)".into());
            }
            made = self.ready.wait(made).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn errored(spec: &Spec, i: usize, why: &str) -> ScenarioResult {
    ScenarioResult::errored(&spec.scenarios[i], why)
}

/// The private copy of the submission that scenario `i` runs in.
fn scenario_dir(work: &Path, i: usize) -> std::path::PathBuf {
    work.join(format!("scenario-{i}"))
}

/// What a slot hands the scenario it runs: the room its copy of the
/// submission is in, the user its programs run as, and what the
/// submission's other scenarios saw of programs that never listened.
struct Given {
    room: Room,
    uid: Option<u32>,
    unready: crate::scenario::Unready,
}

/// One scenario on the slot's thread. A network namespace belongs to the
/// thread that made it: each scenario makes a fresh one (the last one goes
/// when nothing holds it any more), so the slot's thread serves them one
/// after the other, without a thread of each scenario's own to start and
/// wake (up to a millisecond here, on an idle core).
fn run_one(
    spec: &Spec,
    i: usize,
    work: &Path,
    given: Given,
    isolation: Isolation,
    namespaces: &Namespaces,
) -> ScenarioResult {
    let Given { room, uid, unready } = given;
    let dir = &scenario_dir(work, i);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<ScenarioResult, String> {
        if isolation == Isolation::Netns {
            namespaces
                .enter()
                .map_err(|e| format!("could not make a network namespace: {e}"))?;
        }
        let port = isolation::choose_port(isolation).map_err(|e| e.to_string())?;
        let port2 = match isolation {
            // Alone in the namespace: the next port is as free as the first.
            Isolation::Netns => port + 1,
            _ => isolation::choose_port(isolation).map_err(|e| e.to_string())?,
        };
        if let Some(uid) = uid {
            sandbox::chown_tree(dir, uid).map_err(|e| format!("could not hand the submission over: {e}"))?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let setting = Setting {
            dir: dir.to_path_buf(),
            uid,
            port,
            port2,
            own_netns: isolation == Isolation::Netns,
            reference_programs: work.join(crate::submission::REFERENCE_PROGRAMS),
            room,
            unready,
        };
        Ok(runtime.block_on(scenario::play(spec, &spec.scenarios[i], setting)))
    }));
    match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => errored(spec, i, &format!("the harness could not run this scenario: {why}")),
        Err(_) => errored(
            spec,
            i,
            "the harness failed while running this scenario (a bug in sockgrade)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(name: &str) -> Spec {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../specs/{name}.yaml"));
        crate::lang::load(&path).unwrap_or_else(|e| panic!("{}", e.render(false)))
    }

    fn tcp_echo() -> Spec {
        lab("tcp-echo")
    }

    /// The http suite's deliberate waits are seen too: a request head sent a
    /// byte every 100 ms and an idle connection kept 4.8 s get slots that
    /// mostly wait (and a class starts the next submission beside them).
    #[test]
    fn scripted_waits_of_the_http_suite() {
        let spec = lab("http");
        let wait = |name| scripted_wait(scenario(&spec, name));
        assert!(wait("64 clients are served while another sends") >= Duration::from_secs(4));
        assert_eq!(wait("an idle persistent connection"), Duration::from_millis(4800));
    }

    fn scenario<'a>(spec: &'a Spec, name: &str) -> &'a [Spanned<Step>] {
        let found = spec.scenarios.iter().find(|s| s.name.starts_with(name));
        &found.unwrap_or_else(|| panic!("no scenario `{name}`")).steps
    }

    /// The scripted waits put the client's timeout (`not_before: 4s`) first,
    /// give the slow readers, the idle measurement and the 4 s timeout slots
    /// of their own, and leave the quick scenarios with the others.
    #[test]
    fn scripted_waits_of_the_tcp_echo_suite() {
        let spec = tcp_echo();
        let wait = |name| scripted_wait(scenario(&spec, name));
        assert_eq!(
            wait("the client gives up on a server that never answers"),
            Duration::from_secs(4)
        );
        assert_eq!(wait("an idle server uses no CPU"), Duration::from_secs(1));
        // 8 MiB through a reader that takes 16 KiB a millisecond.
        assert_eq!(
            wait("a client that reads slowly still gets every byte"),
            Duration::from_millis(512)
        );
        // Eleven one-byte writes 5 ms apart.
        assert_eq!(wait("a line sent one byte at a time"), Duration::from_millis(50));
        assert_eq!(wait("a line is echoed unchanged"), Duration::ZERO);
        let waiting: Vec<&str> = spec
            .scenarios
            .iter()
            .filter(|s| scripted_wait(&s.steps) >= MOSTLY_WAITING)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(waiting.len(), 4, "{waiting:?}");
    }

    /// A scenario with more connections than the harness may open is an
    /// error that says which limit to raise; the suite fits in the usual
    /// 1024.
    #[test]
    fn descriptors_a_scenario_needs() {
        let spec = tcp_echo();
        for s in &spec.scenarios {
            assert_eq!(descriptors_short(&s.steps, 1024), None, "{}", s.name);
        }
        let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/speed.yaml");
        let bench = crate::lang::load(&bench).unwrap_or_else(|e| panic!("{}", e.render(false)));
        let thousand = scenario(&bench, "concurrent-1000");
        assert_eq!(connections(thousand), 1000);
        assert_eq!(descriptors_short(thousand, 4096), None);
        let why = descriptors_short(thousand, 1024).unwrap_or_default();
        assert!(why.contains("opens up to 1000 connections"), "{why}");
        assert!(why.contains("ulimit -Hn"), "{why}");
    }
}
