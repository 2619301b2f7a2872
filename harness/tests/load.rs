//! A busy machine does not change a verdict: bounds count the time the
//! programs could run, not the wall clock (`harness/src/program_time.rs`).
//! The grader, the program under test and six processes that spin share one
//! CPU here, so every answer takes several times its CPU time on the wall
//! clock (fixtures/load/load.yaml says what each scenario needs).

mod support;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::process::{Child, Command};
use support::run_json;

/// Processes that spin on the CPU this thread is pinned to; killed however
/// the test ends.
struct Spinners(Vec<Child>);

impl Spinners {
    fn start(n: usize) -> Spinners {
        Spinners(
            (0..n)
                .map(|_| Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap())
                .collect(),
        )
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_cpu_shared_with_spinning_processes_does_not_change_a_verdict() {
    // Children inherit the affinity of the thread that starts them. The
    // first CPU this thread may use (a container's cpuset may leave out 0).
    let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
    let cpu = (0..CpuSet::count())
        .find(|&i| allowed.is_set(i).unwrap_or(false))
        .unwrap();
    let mut one = CpuSet::new();
    one.set(cpu).unwrap();
    sched_setaffinity(Pid::from_raw(0), &one).unwrap();
    let _spinners = Spinners::start(6);

    let (report, _) = run_json(&["fixtures/load/load.yaml", "--submission", "fixtures/load/worker"]);
    let scenarios = report["scenarios"].as_array().unwrap();
    let (quick, slow) = (&scenarios[0], &scenarios[1]);
    assert_eq!(quick["status"], "passed", "{}", quick["message"]);
    assert_eq!(slow["status"], "failed", "{}", slow["message"]);
    let message = slow["message"].as_str().unwrap();
    assert!(message.contains("within 200ms"), "{message}");
    // The wait for a CPU was seen, and said.
    assert!(message.contains("the machine was busy"), "{message}");
}
