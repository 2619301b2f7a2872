//! Starting a program the way `posix_spawn` does: a child that shares the
//! harness's memory until it calls `execve` (`clone` with `CLONE_VM |
//! CLONE_VFORK`), so nothing of the harness is copied.
//!
//! Why not `fork`, as `std::process::Command` does once a `pre_exec` hook
//! is set: a fork copies the page tables of the whole harness and write-
//! protects its memory, which on the 2-core VM this was measured on cost
//! 0.3 ms for a 10 MB harness and 0.8 ms for 50 MB, on every program a
//! scenario starts; this costs some 20 us whatever the harness holds.
//! `posix_spawn` itself can't be used: it sets no rlimits, no user, no
//! `no_new_privs`. So the sandbox (`crate::sandbox`) says what the child
//! must do, and this module does it in the child, under the rules of a
//! child that shares its parent's memory:
//!
//! - Everything it uses is prepared before: paths, argv and environment as
//!   C strings, the limits' values. The child allocates nothing (another
//!   thread of the harness may hold the allocator's lock) and can't panic.
//! - It makes raw system calls. In particular it changes its user with the
//!   raw `setresuid`: glibc's `setuid` would ask every thread of the
//!   harness, whose memory the child shares, to change theirs too.
//! - Signals are blocked in the parent thread while the child runs, and the
//!   child sets every handled signal back to its default before it unblocks
//!   them: a handler of the harness must never run in the child.
//! - It reports a failure through memory it shares with the parent (the
//!   errno of the step that failed) and exits with 127.

use nix::libc;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// What the child does between `clone` and `execve`, all decided before.
pub struct Plan {
    /// The program, resolved (no search of PATH in the child).
    pub path: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub dir: CString,
    /// (resource, value): each lowered to this value, soft and hard.
    pub limits: Vec<(u32, u64)>,
    /// Become this user (and group), with no supplementary groups.
    pub uid: Option<u32>,
    /// A pipe for stdin (else /dev/null).
    pub stdin_piped: bool,
    /// The room's mount namespace, entered first (`crate::room`).
    pub mount_ns: Option<RawFd>,
    /// The room's Landlock ruleset, applied last.
    pub landlock: Option<RawFd>,
}

/// A started program: its pid and the harness's ends of its pipes.
pub struct Child {
    pub pid: i32,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Everything the child reads, in memory it shares with the parent.
struct Shared<'a> {
    plan: &'a Plan,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// The child's stdin, stdout and stderr, to become 0, 1 and 2.
    stdio: [RawFd; 3],
    /// The errno of the step that failed, or 0.
    error: AtomicI32,
}

/// The child's stack: it runs only until `execve`, and calls nothing deep.
const STACK: usize = 64 << 10;

pub fn spawn(plan: &Plan) -> io::Result<Child> {
    // The parent's ends are close-on-exec; the child's become 0, 1 and 2.
    let (stdin_theirs, stdin_ours) = if plan.stdin_piped {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null = std::fs::File::open("/dev/null")?;
        (OwnedFd::from(null), None)
    };
    let (stdout_ours, stdout_theirs) = pipe()?;
    let (stderr_ours, stderr_theirs) = pipe()?;
    let argv = terminated(&plan.argv);
    let envp = terminated(&plan.env);
    let shared = Shared {
        plan,
        argv,
        envp,
        stdio: [
            stdin_theirs.as_raw_fd(),
            stdout_theirs.as_raw_fd(),
            stderr_theirs.as_raw_fd(),
        ],
        error: AtomicI32::new(0),
    };
    let mut stack = vec![0u8; STACK];
    // SAFETY: the child runs `child` on its own stack with `shared`, which
    // outlives it: with CLONE_VFORK this thread is suspended until the child
    // has called execve or exited. Signals stay blocked in this thread
    // meanwhile (see the module's comment) and are restored after.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(STACK);
        let top = top.sub(top as usize % 16);
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&shared as *const Shared).cast_mut().cast(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid == -1 {
            return Err(clone_error);
        }
        pid
    };
    drop(stack);
    let error = shared.error.load(Ordering::SeqCst);
    if error != 0 {
        // It exited without exec: collect it, and say why.
        let mut status = 0;
        // SAFETY: our own child, already exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(Child {
        pid,
        stdin: stdin_ours,
        stdout: stdout_ours,
        stderr: stderr_ours,
    })
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    Ok((r, w))
}

/// A null-terminated array of pointers to `strings`, for execve.
fn terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child, from `clone` to `execve`. Only raw system calls.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Shared`, alive while we run (vfork).
    let shared = unsafe { &*(arg as *const Shared) };
    let plan = shared.plan;
    // SAFETY: system calls on this process's own state, with pointers into
    // memory prepared by the parent; no allocation, no locks.
    unsafe {
        let fail = |shared: &Shared| -> ! {
            shared.error.store(errno().max(1), Ordering::SeqCst);
            libc::_exit(127)
        };
        // Handlers back to their default: the harness's would run on its
        // memory. Ignored signals stay ignored across exec, as with fork,
        // except SIGPIPE, which the harness ignores (as Rust programs do) and
        // a C program expects to die of.
        for signal in 1..=libc::SIGRTMAX() {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let ignored = old.sa_sigaction == libc::SIG_IGN;
            if old.sa_sigaction != libc::SIG_DFL && (!ignored || signal == libc::SIGPIPE) {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // Its own process group, which the harness signals as a whole.
        if libc::setpgid(0, 0) != 0 {
            fail(shared);
        }
        for (target, &fd) in shared.stdio.iter().enumerate() {
            let target = target as RawFd;
            let ok = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) == target
            };
            if !ok {
                fail(shared);
            }
        }
        // Into the room, while still root: its paths are the grader's.
        if let Some(fd) = plan.mount_ns {
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                fail(shared);
            }
        }
        if libc::chdir(plan.dir.as_ptr()) != 0 {
            fail(shared);
        }
        // The program inherits nothing but stdin, stdout and stderr: whoever
        // started the harness (a shell, cargo's jobserver, a CI runner) may
        // have left descriptors open without close-on-exec. Marked (one
        // `close_range`): exec closes them.
        if close_inherited_descriptors().is_err() {
            fail(shared);
        }
        for &(resource, value) in &plan.limits {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource as _, &limit) != 0 {
                fail(shared);
            }
        }
        if let Some(uid) = plan.uid {
            // Raw system calls: these change this process only.
            if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setresgid, uid, uid, uid) != 0
                || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
            {
                fail(shared);
            }
        }
        // If the harness thread that started us dies, so do we. (After the
        // change of user, which clears it.)
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
            // No setuid binary can give the program back any privilege.
            || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        {
            fail(shared);
        }
        // Landlock's walls, for this program and all it starts.
        if let Some(fd) = plan.landlock {
            if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
                fail(shared);
            }
        }
        libc::execve(plan.path.as_ptr(), shared.argv.as_ptr(), shared.envp.as_ptr());
        fail(shared)
    }
}

fn errno() -> i32 {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// A C string of `s`, or an error naming what held a NUL byte.
pub fn c_string(s: impl Into<Vec<u8>>, what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{what} contains a NUL byte")))
}

/// Marks every descriptor above stderr close-on-exec. `close_range` with
/// `CLOSE_RANGE_CLOEXEC` does it in one call (Linux 5.11); older kernels and
/// sandboxes that lack it get one `fcntl` per possible descriptor.
/// Raw system calls only: it runs in the child, before exec.
pub(crate) fn close_inherited_descriptors() -> io::Result<()> {
    use nix::libc;
    // SAFETY: raw system calls on descriptors of this (forked) process.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) == 0 {
            return Ok(());
        }
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        let top = limit.rlim_cur.min(1 << 20) as libc::c_int;
        for fd in 3..top {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok(())
}
