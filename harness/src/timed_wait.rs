//! Whether a program at rest will move again by itself: a thread that
//! waits in the kernel with a timeout, a sleep or a timer wakes when it
//! runs out, with nothing from the grader.
//!
//! A wait is failed early once the kernel shows that nothing more can come
//! (every thread asleep, nothing in flight, no CPU spent between looks).
//! A server that sleeps 400 ms before it answers, or a UDP client waiting
//! 500 ms for a reply before it sends again, looks exactly so in the
//! meantime; this module tells them apart, from what the kernel shows of
//! each thread's system call (`/proc/PID/task/TID/syscall`: its number and
//! arguments), of the descriptor it waits on (a timerfd; a socket with
//! `SO_RCVTIMEO` or `SO_SNDTIMEO`), and of the process (a SIGALRM handler,
//! for `alarm()` and `setitimer()`; a POSIX timer). What can't be read
//! counts as timed: a wait is then sat out to its bound, as it would be
//! without this look, never failed early on a guess.

use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Some thread of the program's tree waits for something that ends on its
/// own, or we could not tell.
pub fn in_tree(pid: i32) -> bool {
    crate::witness::tree(pid, &crate::witness::processes())
        .into_iter()
        .any(process_waits_on_time)
}

fn process_waits_on_time(pid: i32) -> bool {
    // Gone: it waits for nothing.
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    if catches_alarm(&status) || has_posix_timers(pid) {
        return true;
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let descriptors = crate::witness::foreign::Descriptors::of(pid);
    tasks.flatten().any(|task| {
        let Ok(text) = std::fs::read_to_string(task.path().join("syscall")) else {
            // A thread that ended since the listing waits for nothing; one
            // we may not look at might.
            return task.path().exists();
        };
        match Call::parse(&text) {
            Some(call) => call.ends_on_its_own(pid, descriptors.as_ref()),
            // "running", or not in a system call: not a wait of the kind
            // this module is asked about; at rest is decided elsewhere.
            None => text.trim() == "running",
        }
    })
}

/// A handler for SIGALRM: the process may have set `alarm()` or
/// `setitimer()`, which the kernel does not show, and will wake when it
/// rings (a UDP client's retransmission timer, often).
fn catches_alarm(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGALRM - 1)) != 0)
}

/// POSIX timers (`timer_create`), where the kernel lists them.
fn has_posix_timers(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/timers")).is_ok_and(|t| !t.trim().is_empty())
}

/// A system call a thread is blocked in: its number and six arguments.
struct Call {
    number: i64,
    args: [u64; 6],
}

impl Call {
    /// `NR a1 a2 a3 a4 a5 a6 sp pc`, in hex but for the number; `None` for
    /// `running` and for `-1 sp pc` (blocked outside a system call). The
    /// format has been the same since Linux 2.6.27.
    fn parse(text: &str) -> Option<Call> {
        let mut words = text.split_whitespace();
        let number: i64 = words.next()?.parse().ok()?;
        if number < 0 {
            return None;
        }
        let mut args = [0u64; 6];
        for arg in &mut args {
            *arg = u64::from_str_radix(words.next()?.trim_start_matches("0x"), 16).ok()?;
        }
        Some(Call { number, args })
    }

    /// An `int` argument that is negative (an infinite poll timeout).
    fn negative(&self, i: usize) -> bool {
        (self.args[i] as u32 as i32) < 0
    }

    fn ends_on_its_own(&self, pid: i32, descriptors: Option<&crate::witness::foreign::Descriptors>) -> bool {
        let a = &self.args;
        match self.number {
            libc::SYS_nanosleep | libc::SYS_clock_nanosleep => true,
            libc::SYS_ppoll | libc::SYS_pselect6 | libc::SYS_epoll_pwait2 | libc::SYS_rt_sigtimedwait => {
                let timeout = match self.number {
                    libc::SYS_ppoll | libc::SYS_rt_sigtimedwait => a[2],
                    libc::SYS_epoll_pwait2 => a[3],
                    _ => a[4],
                };
                timeout != 0
            }
            libc::SYS_epoll_pwait => !self.negative(3),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_poll => !self.negative(2),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_epoll_wait => !self.negative(3),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_select => a[4] != 0,
            libc::SYS_futex => {
                const WAITS: [u64; 5] = [
                    libc::FUTEX_WAIT as u64,
                    libc::FUTEX_LOCK_PI as u64,
                    libc::FUTEX_WAIT_BITSET as u64,
                    libc::FUTEX_WAIT_REQUEUE_PI as u64,
                    13, // FUTEX_LOCK_PI2
                ];
                let command = a[1] & !((libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64);
                WAITS.contains(&command) && a[3] != 0
            }
            libc::SYS_futex_waitv | libc::SYS_semtimedop => a[3] != 0,
            libc::SYS_mq_timedreceive | libc::SYS_mq_timedsend | libc::SYS_io_getevents | libc::SYS_recvmmsg => {
                a[4] != 0
            }
            // io_pgetevents, which the libc crate does not name.
            333 if cfg!(target_arch = "x86_64") => a[4] != 0,
            292 if cfg!(target_arch = "aarch64") => a[4] != 0,
            // Its own timeouts are in the ring, out of sight.
            libc::SYS_io_uring_enter => true,
            libc::SYS_read | libc::SYS_readv | libc::SYS_recvfrom | libc::SYS_recvmsg => {
                descriptor_times_out(pid, a[0], descriptors, libc::SO_RCVTIMEO)
            }
            libc::SYS_accept | libc::SYS_accept4 => descriptor_times_out(pid, a[0], descriptors, libc::SO_RCVTIMEO),
            libc::SYS_write | libc::SYS_writev | libc::SYS_sendto | libc::SYS_sendmsg | libc::SYS_connect => {
                descriptor_times_out(pid, a[0], descriptors, libc::SO_SNDTIMEO)
            }
            // Every other wait (wait4, pause, sigsuspend, a futex without a
            // timeout...) lasts until something else happens.
            _ => false,
        }
    }
}

/// The descriptor a blocking call waits on ends the wait by itself: a
/// timerfd, or a socket with a receive (or send) timeout. Unknown counts as
/// yes.
fn descriptor_times_out(
    pid: i32,
    fd: u64,
    descriptors: Option<&crate::witness::foreign::Descriptors>,
    option: libc::c_int,
) -> bool {
    let Ok(fd) = i32::try_from(fd) else {
        return true;
    };
    let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
        // Closed meanwhile: the call has returned.
        return false;
    };
    let target = target.to_string_lossy();
    if target.starts_with("anon_inode:[timerfd]") {
        return true;
    }
    if !target.starts_with("socket:") {
        return false;
    }
    let Some(copy) = descriptors.and_then(|d| d.copy(fd).ok()) else {
        return true;
    };
    socket_timeout(&copy, option).is_none_or(|t| t.tv_sec != 0 || t.tv_usec != 0)
}

fn socket_timeout(fd: &OwnedFd, option: libc::c_int) -> Option<libc::timeval> {
    let mut value = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for the duration of the call.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_line() {
        let call = Call::parse("7 0x55d0c5a2b2a0 0x2 0xffffffff 0x0 0x0 0x0 0x7ffd5c8 0x7f4e").unwrap();
        assert_eq!(call.number, 7);
        assert!(call.negative(2));
        assert!(Call::parse("running").is_none());
        assert!(Call::parse("-1 0x7ffd 0x7f4e").is_none());
    }

    #[test]
    fn an_alarm_handler_counts() {
        // SIGALRM is signal 14: bit 13.
        assert!(catches_alarm("SigCgt:\t0000000000002000\n"));
        assert!(!catches_alarm("SigCgt:\t0000000000004000\n"));
    }
}
