//! Not a family of its own: what a wait of any family looks at to end
//! before its bound, once nothing more can come from the scenario's
//! programs (`accept`, `expect_datagram`, `expect_output`, `expect_exit`;
//! a wait on one connection asks the narrower `Conn::stalled`).
//!
//! Nothing more can come when the grader has handed over everything it
//! sent (no write queued, no datagram held back by a relay), and every
//! program that still runs is settled: its threads wait in the kernel, its
//! sockets hold nothing in flight, and none waits with a timeout, a sleep
//! or a timer (`crate::timed_wait`). That must hold for `STALLED_LOOKS`
//! looks in a row, `LOOK_EVERY` apart, with the CPU time the programs'
//! threads wanted unchanged: a program that did anything in between is
//! not still.

use super::play::Play;
use crate::conn::{Quiet, LOOK_EVERY, STALLED_LOOKS};
use crate::witness;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The looks of one wait. Made before the wait from the scenario's state,
/// it borrows nothing of it, so the wait can hold what it waits on.
pub(super) struct Watch {
    pids: Vec<i32>,
    writes_pending: Vec<Box<dyn Fn() -> bool>>,
    relay_holds: Arc<AtomicUsize>,
    quiet: Quiet,
}

impl Watch {
    pub(super) fn of(play: &Play<'_>) -> Watch {
        Watch {
            pids: play
                .programs
                .values()
                .filter(|p| p.is_running())
                .map(|p| p.pid)
                .collect(),
            writes_pending: play
                .conns
                .values()
                .map(|c| Box::new(c.writes_pending()) as Box<dyn Fn() -> bool>)
                .collect(),
            relay_holds: play.relay_holds.clone(),
            quiet: Quiet::default(),
        }
    }

    /// One look, to take after waiting `LOOK_EVERY`: true once nothing
    /// more can come.
    pub(super) fn still(&mut self) -> bool {
        let found = self.nothing_in_flight();
        self.quiet.look(found)
    }

    /// Runs `work` until it ends (`Some`), or until the looks between
    /// find that nothing more can come (`None`).
    pub(super) async fn unless_still<F: std::future::Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            match tokio::time::timeout(LOOK_EVERY, &mut work).await {
                Ok(done) => return Some(done),
                Err(_) if self.still() => return None,
                Err(_) => {}
            }
        }
    }

    /// How long the looks that found it still lasted, for the failure.
    pub(super) fn looked_ms() -> u128 {
        (LOOK_EVERY * STALLED_LOOKS).as_millis()
    }

    /// Whether a program of the scenario still runs: the failure says
    /// either that all of them wait, or that none is left to act.
    pub(super) fn anyone_running(&self) -> bool {
        self.pids.iter().any(|&pid| witness::alive(pid))
    }

    /// The CPU time the running programs' threads wanted, when nothing is
    /// in flight and nothing will move by itself; `None` otherwise.
    fn nothing_in_flight(&self) -> Option<u64> {
        if self.writes_pending.iter().any(|pending| pending()) || self.relay_holds.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let running: Vec<i32> = self.pids.iter().copied().filter(|&pid| witness::alive(pid)).collect();
        if !running.iter().all(|&pid| witness::tree_settled(pid)) {
            return None;
        }
        if running.iter().any(|&pid| crate::timed_wait::in_tree(pid)) {
            return None;
        }
        running
            .iter()
            .map(|&pid| witness::tree_demand(pid).map(|d| d.values().sum::<u64>()))
            .sum()
    }
}

/// The end of a failure that came early: why nothing more could come.
pub(super) fn why_nothing_more(watch: &Watch, what: &str) -> String {
    if watch.anyone_running() {
        format!(
            "for {}ms the kernel showed every program of the scenario waiting in a system call with nothing in \
             flight toward it: none was about to {what}",
            Watch::looked_ms()
        )
    } else {
        format!("no program of the scenario is running any more: none can {what}")
    }
}
