//! When a connection has stalled: the kernel shows that the program at its
//! far end can send nothing more on it.

use super::Conn;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long an expectation waits without a byte before it looks at the
/// kernel, and how many looks in a row must find the stream stalled.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(50);
pub(crate) const STALLED_LOOKS: u32 = 4;

/// Consecutive looks at a quiet connection: stalled once `STALLED_LOOKS`
/// looks in a row found it so with the program's CPU time unchanged.
#[derive(Default)]
pub(crate) struct Quiet {
    looks: u32,
    cpu: Option<u64>,
}

impl Quiet {
    /// Takes one look's finding; true once the stream is stalled.
    pub(crate) fn look(&mut self, stalled: Option<u64>) -> bool {
        match stalled {
            Some(cpu) if self.cpu.is_none_or(|before| before == cpu) => {
                self.looks += 1;
                self.cpu = Some(cpu);
            }
            Some(cpu) => {
                self.looks = 1;
                self.cpu = Some(cpu);
            }
            None => *self = Quiet::default(),
        }
        self.looks >= STALLED_LOOKS
    }
}

impl Conn {
    /// What the kernel shows when the program at the far end can send
    /// nothing more on this connection: the harness has handed over all it
    /// sent and the program has taken it (both ends' queues are empty), and
    /// the program waits in a system call with nothing queued toward us, and
    /// not one that ends by itself (`timed_wait`). The
    /// CPU time its threads wanted, to tell a later look that it did nothing
    /// in between. `None` when any of that is not so, or unknown.
    pub(super) fn stalled(&self) -> Option<u64> {
        let far = self.far_end?;
        if self.pending.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let (ours, theirs) = crate::witness::connection_queues(far.pid, far.port, self.local_port)?;
        if ours != (0, 0) || theirs != (0, 0) || !crate::witness::tree_at_rest(far.pid) {
            return None;
        }
        // Asleep with a timeout: it may yet send when it wakes.
        if crate::timed_wait::in_tree(far.pid) {
            return None;
        }
        Some(crate::witness::tree_demand(far.pid)?.values().sum())
    }
}
