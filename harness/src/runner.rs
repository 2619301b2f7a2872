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
use std::sync::Mutex;

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
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let (queue, results, copy_errors) = (&queue, &results, &copy_errors);
            s.spawn(move || {
                // One user per worker, reused for its scenarios one at a time.
                let identity = Identity::acquire();
                loop {
                    let Some(i) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    let began = std::time::Instant::now();
                    let result = match &identity {
                        Err(why) => errored(spec, i, &format!("the harness could not run this scenario: {why}")),
                        Ok(identity) => {
                            let uid = identity.as_ref().map(|id| id.uid);
                            let dir = scenario_dir(work, i);
                            let result = match copy_errors.get(&i) {
                                Some(why) => errored(spec, i, why),
                                None => run_one(spec, i, &dir, uid, options.isolation),
                            };
                            let played = began.elapsed();
                            // Whatever happened in there (a panic skips the
                            // scenario's own clean-up), nothing of it survives,
                            // and nothing of it counts against the next
                            // scenario of this user.
                            if let Some(uid) = uid {
                                sandbox::end_all_of(uid);
                            }
                            let _ = std::fs::remove_dir_all(&dir);
                            timing(i, began, played);
                            result
                        }
                    };
                    results.lock().unwrap().push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
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
