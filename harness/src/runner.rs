//! Runs the scenarios of a spec against a built submission: `jobs` at once,
//! each on a thread of its own (network namespaces belong to threads), each
//! with a fresh copy of the submission, a fresh port and its own user.

use crate::isolation::{self, Isolation};
use crate::sandbox::{self, Identity};
use crate::scenario::{self, Setting};
use crate::spec::Spec;
use crate::verdict::ScenarioResult;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Condvar, Mutex};

pub struct Options {
    pub jobs: usize,
    pub isolation: Isolation,
    /// Only scenarios whose name contains one of these (all when empty).
    pub filter: Vec<String>,
}

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
    // Every scenario's private copy is made now, before any scenario starts
    // a process. Writing an executable while another thread forks lets the
    // child inherit the open file for a moment, and exec of that file then
    // fails with ETXTBSY ("text file busy").
    let mut copy_errors = std::collections::HashMap::new();
    for &i in &selected {
        if let Err(e) = sandbox::copy_dir(built_dir, &scenario_dir(work, i), None) {
            copy_errors.insert(i, format!("could not copy the submission: {e}"));
        }
    }
    if sandbox::is_root() {
        sandbox::adopt_orphans();
    }
    let queue = Mutex::new(selected.iter().copied().collect::<VecDeque<usize>>());
    let results: Mutex<Vec<(usize, ScenarioResult)>> = Mutex::new(Vec::new());
    let jobs = options.jobs.max(1).min(selected.len().max(1));
    let users = Users::new(jobs);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let (queue, results, copy_errors, users) = (&queue, &results, &copy_errors, &users);
            s.spawn(move || loop {
                let Some(i) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    break;
                };
                let began = std::time::Instant::now();
                let dir = scenario_dir(work, i);
                // A user with nothing left of an earlier scenario.
                let identity = users.take();
                let result = match (&identity, copy_errors.get(&i)) {
                    (Err(why), _) => errored(spec, i, &format!("the harness could not run this scenario: {why}")),
                    (Ok(_), Some(why)) => errored(spec, i, why),
                    (Ok(identity), None) => {
                        let uid = identity.as_ref().map(|id| id.uid);
                        run_one(spec, i, &dir, uid, options.isolation)
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
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                    if let Ok(identity) = identity {
                        users.give_back(identity);
                    }
                });
                timing(i, began, played);
                results.lock().unwrap_or_else(|e| e.into_inner()).push((i, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
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
            let (free, acquired) = &mut *guard;
            if let Some(identity) = free.pop() {
                return Ok(identity);
            }
            if *acquired < self.most {
                *acquired += 1;
                drop(guard);
                let identity = Identity::acquire();
                if identity.is_err() {
                    self.free.lock().unwrap_or_else(|e| e.into_inner()).1 -= 1;
                }
                return identity;
            }
            guard = self.returned.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, identity: Option<Identity>) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).0.push(identity);
        self.returned.notify_one();
    }
}

/// What a scenario cost its slot, for `bench/speed.py` (with
/// `SOCKGRADE_LOG=sockgrade::timing=info`): from the moment the slot took it
/// to the moment the slot could take the next, so the namespace, the
/// clean-up and the release of its user count, not only the steps.
fn timing(i: usize, began: std::time::Instant, played: std::time::Duration) {
    let slot = began.elapsed();
    tracing::info!(
        target: "sockgrade::timing",
        scenario = i,
        slot_us = slot.as_micros() as u64,
        played_us = played.as_micros() as u64,
        released_us = (slot - played).as_micros() as u64,
    );
}

fn errored(spec: &Spec, i: usize, why: &str) -> ScenarioResult {
    ScenarioResult::errored(&spec.scenarios[i], why)
}

/// The private copy of the submission that scenario `i` runs in.
fn scenario_dir(work: &Path, i: usize) -> std::path::PathBuf {
    work.join(format!("scenario-{i}"))
}

/// One scenario on a thread of its own: a namespace made on it stays on it.
fn run_one(spec: &Spec, i: usize, dir: &Path, uid: Option<u32>, isolation: Isolation) -> ScenarioResult {
    let outcome = std::thread::scope(|s| {
        s.spawn(|| -> Result<ScenarioResult, String> {
            if isolation == Isolation::Netns {
                isolation::enter_netns().map_err(|e| format!("could not make a network namespace: {e}"))?;
            }
            let port = isolation::choose_port(isolation).map_err(|e| e.to_string())?;
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
            };
            Ok(runtime.block_on(scenario::play(spec, &spec.scenarios[i], setting)))
        })
        .join()
    });
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
