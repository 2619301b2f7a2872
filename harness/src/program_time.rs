//! Bounds counted in the time the programs could run, not in wall time.
//!
//! A step's `within: 2s` means "a correct program answers sooner". On a
//! machine busy with other work (a class graded beside a build, a CI runner
//! shared with other jobs) a program's threads wait for a CPU, and a bound
//! counted on the wall clock charges that wait to the student. A `Deadline`
//! moves its end by the time the scenario's programs (every thread of every
//! process they started) and the grader's own thread were runnable but not
//! running: the run-queue delay the kernel keeps per thread in
//! `/proc/<pid>/task/<tid>/schedstat`. On a quiet machine that delay is a
//! few microseconds and a deadline is its wall-clock bound; a program that
//! sleeps, or waits in `read`, is never runnable, so its bound passes on
//! time however busy the machine.
//!
//! The delays of all threads are added: two threads waiting at once count
//! twice, which can only make a bound longer. So that a broken program that
//! spins still fails in good time, a bound also passes once the programs
//! have run on a CPU for as long as the bound (they had their time), and in
//! any case at `STRETCH_MOST` times the bound on the wall clock. A kernel
//! without schedstat (gVisor) counts nothing: the bound is wall time there.
//!
//! Deadlines find the scenario's programs on their thread: one scenario
//! plays at a time on its own runtime's thread (`runner`), and `Scenario`
//! marks the thread as the scenario's while it plays, so a bound deep in a
//! step needs no handle passed down to it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// At most this many times its bound, on the wall clock, a deadline waits,
/// however much time the kernel says was stolen.
const STRETCH_MOST: u32 = 10;

/// Past its wall-clock end, a stretched bound looks again at least this
/// often (a quarter of the bound, if longer) whether the programs have had
/// their time on a CPU.
const LOOK_AGAIN: Duration = Duration::from_millis(5);

/// Below this, stolen time is not worth a word in a failure.
const WORTH_SAYING: Duration = Duration::from_millis(20);

thread_local! {
    /// The processes the playing scenario started (roots; their
    /// descendants are found when counting).
    static PROGRAMS: RefCell<Option<Vec<i32>>> = const { RefCell::new(None) };
    /// The grader's helper threads for this scenario (each program's output
    /// reader), by the id each writes once it runs (0 before).
    static HELPERS: RefCell<Vec<Arc<AtomicI32>>> = const { RefCell::new(Vec::new()) };
    /// The last count taken, and when: deadlines that start close together
    /// share it (see `Waits::recent`).
    static LAST: RefCell<Option<(Instant, Arc<Waits>)>> = const { RefCell::new(None) };
}

/// This thread plays a scenario until the value is dropped.
pub struct Scenario(());

impl Scenario {
    pub fn enter() -> Scenario {
        PROGRAMS.with(|p| *p.borrow_mut() = Some(Vec::new()));
        HELPERS.with(|h| h.borrow_mut().clear());
        LAST.with(|l| *l.borrow_mut() = None);
        Scenario(())
    }

    /// A thread of the grader's that works for the scenario: a program
    /// that waits for it (blocked writing to a full pipe) waits for its
    /// turn on a CPU too. The thread calls `Helper::runs` first thing.
    pub fn helper() -> Helper {
        let tid = Arc::new(AtomicI32::new(0));
        HELPERS.with(|h| h.borrow_mut().push(tid.clone()));
        Helper(tid)
    }

    /// A process the scenario started: its threads' waits count from now.
    pub fn started(pid: i32) {
        PROGRAMS.with(|p| {
            if let Some(list) = p.borrow_mut().as_mut() {
                list.push(pid);
            }
        });
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        PROGRAMS.with(|p| *p.borrow_mut() = None);
        HELPERS.with(|h| h.borrow_mut().clear());
        LAST.with(|l| *l.borrow_mut() = None);
    }
}

/// A helper thread's place in the scenario's count (`Scenario::helper`).
#[derive(Clone)]
pub struct Helper(Arc<AtomicI32>);

impl Helper {
    /// Called on the helper thread: its waits count from now on.
    pub fn runs(&self) {
        self.0.store(gettid(), Ordering::Relaxed);
    }

    /// Called on the helper thread as it ends: its id may be reused.
    pub fn ended(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// The time on a CPU and the run-queue delay, in nanoseconds, of every
/// thread of the scenario's processes and their descendants, and of this
/// (the grader's) thread.
#[derive(Default)]
struct Waits(HashMap<i32, Sched>);

#[derive(Clone, Copy, Debug, Default)]
struct Sched {
    ran: u64,
    waited: u64,
}

/// What the threads did between two counts.
#[derive(Clone, Copy, Default)]
struct Spent {
    /// Waiting for a CPU, the programs' threads and the grader's helpers.
    waited: Duration,
    /// Waiting for a CPU, the scenario's own thread (see `Deadline::passed`).
    grader_waited: Duration,
    /// On a CPU, the programs' threads.
    ran: Duration,
}

impl Waits {
    /// A count to measure a `bound` from: the last one taken, if it is
    /// younger than a tenth of the bound, else a new one. Counting reads two
    /// files per thread (a thousand for a thread-per-client server with 500
    /// clients), and steps start bounds by the thousand; an older start only
    /// adds what was stolen in that tenth, which a quiet machine never has.
    fn recent(bound: Duration) -> Arc<Waits> {
        Waits::fresh(bound / 10)
    }

    /// The last count taken if it is at most `age` old, else a new one.
    fn fresh(age: Duration) -> Arc<Waits> {
        let now = Instant::now();
        if let Some(last) = LAST.with(|l| {
            l.borrow()
                .as_ref()
                .filter(|(at, _)| now.duration_since(*at) <= age)
                .map(|(_, w)| w.clone())
        }) {
            return last;
        }
        let waits = Arc::new(Waits::now());
        LAST.with(|l| *l.borrow_mut() = Some((now, waits.clone())));
        waits
    }

    fn now() -> Waits {
        let mut waits = HashMap::new();
        let roots = PROGRAMS.with(|p| p.borrow().clone()).unwrap_or_default();
        let mut stack = roots;
        let mut seen = std::collections::HashSet::new();
        while let Some(pid) = stack.pop() {
            if !seen.insert(pid) {
                continue;
            }
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some(sched) = schedstat(&task.path().join("schedstat")) {
                    waits.insert(tid, sched);
                }
                if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                    stack.extend(children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()));
                }
            }
        }
        // The grader's own threads, under keys no program's thread takes.
        if let Some(sched) = schedstat(std::path::Path::new("/proc/thread-self/schedstat")) {
            waits.insert(-gettid(), sched);
        }
        for helper in HELPERS.with(|h| h.borrow().clone()) {
            let tid = helper.load(Ordering::Relaxed);
            if tid == 0 {
                continue;
            }
            if let Some(sched) = schedstat(std::path::Path::new(&format!("/proc/self/task/{tid}/schedstat"))) {
                waits.insert(-tid, sched);
            }
        }
        Waits(waits)
    }

    /// What the threads waited since `before`. A thread that ended in
    /// between is not counted; one that began counts from its start.
    fn since(&self, before: &Waits) -> Spent {
        let (mut ran, mut waited, mut grader_waited) = (0, 0, 0);
        for (tid, now) in &self.0 {
            let then = before.0.get(tid).copied().unwrap_or_default();
            let wait = now.waited.saturating_sub(then.waited);
            match *tid {
                t if t == -gettid() => grader_waited += wait,
                t if t > 0 => {
                    waited += wait;
                    ran += now.ran.saturating_sub(then.ran);
                }
                _ => waited += wait,
            }
        }
        Spent {
            waited: Duration::from_nanos(waited),
            grader_waited: Duration::from_nanos(grader_waited),
            ran: Duration::from_nanos(ran),
        }
    }
}

fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// schedstat: time on the CPU, time waiting on a run queue, timeslices.
fn schedstat(path: &std::path::Path) -> Option<Sched> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some(Sched {
        ran: fields.next()??,
        waited: fields.next()??,
    })
}

/// A moment, with the threads' counts then: what a busy machine took from
/// the time since, for a check that something came no later than it should
/// (a datagram's interval from the previous one). Shares a count up to
/// 100 ms old, as a deadline of a second would.
#[derive(Clone)]
pub struct Mark(Arc<Waits>);

impl Mark {
    pub fn now() -> Mark {
        Mark(Waits::recent(Duration::from_secs(1)))
    }

    /// What the programs' threads and the grader's waited for a CPU since.
    pub fn waited_since(&self) -> Duration {
        Waits::now().since(&self.0).waited
    }
}

/// A bound that started now.
pub struct Deadline {
    bound: Duration,
    began: Instant,
    before: Arc<Waits>,
    /// What the threads did, as of the last look past the wall-clock end.
    spent: Spent,
    /// When to look again whether the bound passed.
    look_at: Instant,
    /// Whether load moves the end (see `on_the_wall_clock`).
    stretches: bool,
    /// The latest end on the wall clock, from the start.
    most: Duration,
}

impl Deadline {
    pub fn after(bound: Duration) -> Deadline {
        let began = Instant::now();
        Deadline {
            bound,
            began,
            before: Waits::recent(bound),
            spent: Spent::default(),
            look_at: began + bound,
            stretches: true,
            most: bound * STRETCH_MOST,
        }
    }

    /// The same bound, stretched at most to `most` on the wall clock: for a
    /// guard over many steps (a scenario's bound), each of which has its
    /// own, so that a broken program is not kept ten times as long.
    pub fn at_most(mut self, most: Duration) -> Deadline {
        self.most = most.max(self.bound);
        self
    }

    /// A span that load does not stretch: how long something must *not*
    /// happen (`expect_silence`, `expect_no_datagram`). A program slowed
    /// down by load does things later, never sooner, so the wall clock is
    /// on the safe side here; stretched, a span would take in what a correct
    /// program does on its own wall-clock timer (a resend due 500 ms after
    /// its request).
    pub fn on_the_wall_clock(span: Duration) -> Deadline {
        let began = Instant::now();
        Deadline {
            bound: span,
            began,
            before: Arc::new(Waits::default()),
            spent: Spent::default(),
            look_at: began + span,
            stretches: false,
            most: span,
        }
    }

    /// The wall-clock instant the bound ends at, as far as is known: a
    /// waiter sleeps until then and asks `passed` again.
    pub fn end(&self) -> Instant {
        self.look_at
    }

    /// Whether the bound has passed in the programs' time. Reads the
    /// kernel's counts only once the wall-clock end is reached.
    pub fn passed(&mut self) -> bool {
        let now = Instant::now();
        if now < self.look_at {
            return false;
        }
        if !self.stretches {
            return true;
        }
        // Counts up to 5 ms old are shared: a thousand deadlines that end
        // together read the kernel's counts once, not a thousand times.
        self.spent = Waits::fresh(Duration::from_millis(5)).since(&self.before);
        let most = self.began + self.most;
        let stretched = (self.began + self.bound + self.stolen()).min(most);
        if now >= stretched || self.spent.ran >= self.bound {
            return true;
        }
        self.look_at = stretched.min(now + (self.bound / 4).max(LOOK_AGAIN));
        false
    }

    /// What load took from the bound: every wait of the programs' threads
    /// and the grader's helpers, and the scenario thread's own up to the
    /// bound. The grader being late once (to send what the program is to
    /// answer) is the program's loss; but a grader that polls is runnable
    /// all along, and on a busy machine would stretch every bound it polls
    /// for by as much as it lasted.
    fn stolen(&self) -> Duration {
        self.spent.waited + self.spent.grader_waited.min(self.bound)
    }

    /// What is left of the bound, on the wall clock, as far as is known.
    pub fn left(&self) -> Duration {
        self.end().saturating_duration_since(Instant::now())
    }

    /// Runs `work` until it ends or the bound passes (`None`).
    pub async fn within<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            if let Ok(done) = tokio::time::timeout_at(self.end(), &mut work).await {
                return Some(done);
            }
            if self.passed() {
                return None;
            }
        }
    }

    /// For a failure at this bound: how much of the wall-clock time was
    /// not counted, when the machine was busy enough for it to matter.
    pub fn busy_note(&self) -> Option<String> {
        (self.stolen() >= WORTH_SAYING).then(|| {
            format!(
                "the machine was busy: in the {}ms this bound lasted on the wall clock, the programs ran {}ms on a \
                 CPU, and their threads and the grader's, counted one by one, waited {}ms in all for one, which the bound does not count",
                self.began.elapsed().as_millis(),
                self.spent.ran.as_millis(),
                self.stolen().as_millis(),
            )
        })
    }
}

/// A failure at a bound, with what the machine's load took from it.
pub fn with_busy_note(why: String, deadline: &Deadline) -> String {
    match deadline.busy_note() {
        Some(note) => format!("{why}\n  {note}"),
        None => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_has_a_run_delay_for_this_thread() {
        // Every kernel courses grade on has schedstat; gVisor has none,
        // and there a deadline is its wall-clock bound.
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            assert!(schedstat(std::path::Path::new("/proc/thread-self/schedstat")).is_some());
        }
    }

    #[test]
    fn a_child_and_its_threads_are_counted() {
        let _scenario = Scenario::enter();
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        Scenario::started(child.id() as i32);
        let waits = Waits::now();
        let _ = child.kill();
        let _ = child.wait();
        assert!(waits.0.contains_key(&(child.id() as i32)), "{:?}", waits.0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_deadline_on_a_quiet_thread_ends_near_its_bound() {
        let _scenario = Scenario::enter();
        let mut deadline = Deadline::after(Duration::from_millis(30));
        let got = deadline.within(std::future::pending::<()>()).await;
        assert!(got.is_none());
        assert!(deadline.began.elapsed() < Duration::from_millis(30) * STRETCH_MOST);
    }
}
