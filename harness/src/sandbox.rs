//! Running untrusted code: what a submission's processes may do, and making
//! sure nothing they start outlives its scenario.
//!
//! Each program runs in its own process group, with a cleaned environment, a
//! private working directory, rlimits and no core files. When the harness runs
//! as root (as in CI), each scenario also gets a user id of its own, taken from
//! a range no one else uses and locked for the lifetime of the run: its
//! processes can't touch the harness or other scenarios, RLIMIT_NPROC becomes
//! meaningful (it is ignored for root), and at the end `kill(-1, SIGKILL)`
//! issued *as that user* ends every process it owns, daemons that called
//! setsid() included. Without root, the process group and the process tree
//! are what we can reach.

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{Pid, Uid};
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// User ids handed to scenarios. Chosen far from real accounts.
const UID_BASE: u32 = 64_000;
const UID_COUNT: u32 = 1000;

/// A user id owned by this process until dropped; the lock file makes it
/// exclusive across concurrently running sockgrade processes too.
#[derive(Debug)]
pub struct Identity {
    pub uid: u32,
    _lock: nix::fcntl::Flock<File>,
}

pub fn is_root() -> bool {
    Uid::effective().is_root()
}

impl Identity {
    /// A free user id; `Ok(None)` when we are not root (and can't switch
    /// users). As root, failing to get one is an error: the submission must
    /// never run as root.
    pub fn acquire() -> Result<Option<Identity>, String> {
        if !is_root() {
            return Ok(None);
        }
        let dir = lock_dir()?;
        let start = std::process::id() % UID_COUNT;
        for i in 0..UID_COUNT {
            let uid = UID_BASE + (start + i) % UID_COUNT;
            // Never truncated, never through a link: only locked.
            let Ok(file) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .mode(0o600)
                .open(dir.join(uid.to_string()))
            else {
                continue;
            };
            if let Ok(lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                // A previous run that died may have left processes behind.
                kill_all_of(uid);
                return Ok(Some(Identity { uid, _lock: lock }));
            }
        }
        Err(format!("no free user id in {UID_BASE}..{}", UID_BASE + UID_COUNT))
    }
}

/// Where the user ids' lock files are: root's, mode 0700, away from the
/// world-writable /tmp (where another user once made the folder first,
/// full of links that root then truncated). A folder that is not root's
/// own and private is refused, not used. `SOCKGRADE_UID_LOCKS` names
/// another (the tests' hostile folders).
const LOCK_DIR: &str = "/run/sockgrade-uids";

fn lock_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = std::env::var_os("SOCKGRADE_UID_LOCKS").map_or_else(|| PathBuf::from(LOCK_DIR), PathBuf::from);
    let shown = dir.display();
    // Recursive: a container's image may have no /run at all.
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {shown}: {e}")),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("cannot look at {shown}: {e}"))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown} is not a folder of root's that only root may enter (owner {}, mode {:o}): \
             someone else made it; remove it and grade again",
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    Ok(dir)
}

impl Drop for Identity {
    fn drop(&mut self) {
        kill_all_of(self.uid);
    }
}

/// Raises this process's own limit on open descriptors (the soft limit) as
/// far as the hard limit allows, and returns it: a scenario with a thousand
/// connections needs a thousand descriptors of the harness, and the usual
/// soft limit is 1024. (The programs under test keep theirs: `Limits`.)
pub fn raise_open_files() -> u64 {
    use nix::sys::resource::getrlimit;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Keeps a descriptor of the harness open, close-on-exec, at the highest
/// number a program under test may use (`Limits::open_files - 1`).
///
/// At fork the kernel sizes the child's descriptor table to cover the
/// parent's highest open descriptor, and exec keeps that size, so every
/// program then starts with a table that holds all the descriptors its
/// limit allows and never has to grow it. Growing it is slow in a program
/// with threads: the kernel waits for an RCU grace period, some 10 ms. A
/// threaded server's 65th connection cost it that, or not, depending on
/// whether whoever started sockgrade had left some high descriptor open
/// (a shell's, say): a scenario's timing must not depend on that. The
/// harness's own table, with its many connections, is spared the same way.
pub fn presize_descriptor_tables() {
    use std::os::fd::{FromRawFd, OwnedFd};
    static KEPT: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    KEPT.get_or_init(|| {
        let top = Limits::default().open_files.saturating_sub(1) as i32;
        let null = std::fs::File::open("/dev/null").ok()?;
        let fd = nix::fcntl::fcntl(&null, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(top)).ok()?;
        // SAFETY: a new descriptor of our own, owned from here on.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    });
}

/// The limits a program under test runs with.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub address_space: u64,
    pub open_files: u64,
    pub processes: u64,
    pub file_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_seconds: 60,
            // Threaded servers reserve 8 MiB of stack per thread: 64 threads
            // need half a gigabyte of address space before doing anything.
            address_space: 4 << 30,
            open_files: 1024,
            processes: 512,
            file_size: 64 << 20,
        }
    }
}

/// Starts untrusted code: cleaned environment, own process group, limits,
/// the scenario's user when there is one, stdin from a pipe (`stdin_piped`)
/// or /dev/null, stdout and stderr to pipes. `program` is resolved against
/// `dir` when it holds a `/` (and in the child's PATH otherwise); `dir` is
/// also the working directory. How the child is made: `crate::spawn`.
pub fn spawn(
    program: &str,
    args: &[String],
    dir: &Path,
    uid: Option<u32>,
    limits: Limits,
    stdin_piped: bool,
    room: &crate::room::Room,
) -> io::Result<crate::spawn::Child> {
    use crate::spawn::c_string;
    use std::os::unix::ffi::OsStrExt;
    const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
    let exe: PathBuf = if program.contains('/') {
        dir.join(program)
    } else {
        // Searched here, as execvp would in the child: the child allocates
        // nothing.
        PATH.split(':')
            .map(|d| Path::new(d).join(program))
            .find(|p| is_executable(p))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("`{program}` is not in {PATH}")))?
    };
    let dir_bytes = dir.as_os_str().as_bytes();
    // In the order of their names, as `std::process::Command` gave them.
    let env = [
        [b"HOME=".as_slice(), dir_bytes].concat(),
        b"LC_ALL=C".to_vec(),
        format!("PATH={PATH}").into_bytes(),
        [b"TMPDIR=".as_slice(), dir_bytes].concat(),
    ];
    // Only ever lower a limit: without root, raising a hard limit above
    // what we have is refused.
    let lower = |resource: Resource, value: u64| -> io::Result<(u32, u64)> {
        let (_, hard) = nix::sys::resource::getrlimit(resource).map_err(io::Error::from)?;
        Ok((resource as u32, value.min(hard)))
    };
    let mut rlimits = vec![
        lower(Resource::RLIMIT_CPU, limits.cpu_seconds)?,
        lower(Resource::RLIMIT_AS, limits.address_space)?,
        lower(Resource::RLIMIT_NOFILE, limits.open_files)?,
        lower(Resource::RLIMIT_FSIZE, limits.file_size)?,
        lower(Resource::RLIMIT_CORE, 0)?,
    ];
    if uid.is_some() {
        rlimits.push(lower(Resource::RLIMIT_NPROC, limits.processes)?);
    }
    let plan = crate::spawn::Plan {
        path: c_string(exe.as_os_str().as_bytes(), "the program's path")?,
        // argv[0] as `std::process::Command` gave it: the path when there
        // is one, else the name.
        argv: std::iter::once(if program.contains('/') {
            exe.as_os_str().as_bytes()
        } else {
            program.as_bytes()
        })
        .chain(args.iter().map(|a| a.as_bytes()))
        .map(|a| c_string(a, "an argument"))
        .collect::<io::Result<_>>()?,
        env: env
            .into_iter()
            .map(|e| c_string(e, "the environment"))
            .collect::<io::Result<_>>()?,
        dir: c_string(dir_bytes, "the working directory")?,
        limits: rlimits,
        uid,
        stdin_piped,
        mount_ns: room.mount_fd(),
        landlock: room.landlock_fd(),
    };
    crate::spawn::spawn(&plan)
}

/// A file that someone may execute.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Ends every process owned by `uid`: we become that user for a moment and
/// send SIGKILL to all it may signal (`kill(-1)`), which is exactly that
/// user's processes (`signal_all_as`). Repeated until /proc shows none, in case one was forking.
pub fn kill_all_of(uid: u32) {
    for _ in 0..100 {
        signal_all_as(uid, nix::libc::SIGKILL);
        if !any_process_of(uid) {
            return;
        }
    }
}

/// `kill(-1, signal)` issued as `uid`: to every process of that user.
///
/// The calling thread becomes `uid` for that one system call and then root
/// again. Linux keeps credentials per thread: the raw `setresuid` system
/// call changes only the calling thread (glibc's `setresuid()` would change
/// every thread of the harness), and with the saved user id kept at 0 the
/// thread may go back. While it is `uid` its effective capabilities are
/// cleared, so the kernel lets it signal exactly the processes whose real or
/// saved user id is `uid`; `kill(-1)` never signals the sender's own
/// process. No fork of the harness (a millisecond and more) and no helper
/// thread (waking one on an idle core took up to 2 ms here) for one call.
pub(crate) fn signal_all_as(uid: u32, signal: i32) {
    use nix::libc;
    let ids = || {
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: three valid pointers to u32.
        let ok = unsafe { libc::getresuid(&mut r, &mut e, &mut s) } == 0;
        ok.then_some((r, e, s))
    };
    // SAFETY: raw system calls on this thread's own credentials. If it
    // can't become `uid` it must not kill anything: as root, kill(-1) would
    // end every process on the machine; hence the check of what it became.
    unsafe {
        if libc::syscall(libc::SYS_setresuid, uid, uid, 0) == 0 && ids() == Some((uid, uid, 0)) {
            libc::kill(-1, signal);
        }
        if ids() != Some((0, 0, 0)) && (libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0 || ids() != Some((0, 0, 0))) {
            // Never seen: the kernel lets a saved user id be taken back.
            // The thread is then less privileged, not more: what it does
            // next as root fails with an error.
            tracing::error!("a harness thread could not become root again after signalling user {uid}");
        }
    }
}

/// Whether a process of `uid` is alive (not yet a zombie).
fn any_process_of(uid: u32) -> bool {
    processes_of(uid).iter().any(|p| p.state != 'Z')
}

/// A process of a scenario's user, as /proc shows it.
struct Owned {
    pid: i32,
    ppid: i32,
    state: char,
}

/// Every process of `uid`, zombies included. The owner of /proc/PID is root
/// for a non-dumpable process, so the ids come from its status: real,
/// effective or saved. Only the three lines needed are read out of each
/// status (a full parse of every process's status and stat made this look
/// cost a millisecond and more).
fn processes_of(uid: u32) -> Vec<Owned> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut text = String::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        text.clear();
        let Ok(mut file) = File::open(format!("/proc/{pid}/status")) else {
            continue;
        };
        if io::Read::read_to_string(&mut file, &mut text).is_err() {
            continue;
        }
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| rest.trim_start().to_string())
        };
        let owned = field("Uid:").is_some_and(|ids| {
            // Real, effective, saved, filesystem.
            ids.split_whitespace().take(3).any(|id| id.parse() == Ok(uid))
        });
        if !owned {
            continue;
        }
        out.push(Owned {
            pid,
            ppid: field("PPid:").and_then(|p| p.parse().ok()).unwrap_or(0),
            state: field("State:").and_then(|s| s.chars().next()).unwrap_or('?'),
        });
    }
    out
}

/// Makes this process the reaper of the orphans of what it starts: when a
/// server dies, its children are re-parented to us instead of to PID 1.
/// A killed process still counts against its user's RLIMIT_NPROC until it is
/// reaped, and PID 1 may reap late (a second and more here) or never (a
/// container's init that doesn't), so a scenario's user would start the next
/// scenario with its last one's dead still counted. See `end_all_of`.
pub(crate) fn adopt_orphans() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("cannot become the reaper of orphans: {e}");
    }
}

/// One look at the process group `pgid` after it was killed: reaps its
/// members that are zombies we adopted (`adopt_orphans`), and says how many
/// processes of the group are left. A killed forking server's children are
/// such orphans; until they are reaped they count against the user's process
/// limit, and a server restarted at once could not fork.
pub(crate) fn reap_group(pgid: i32) -> usize {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let me = std::process::id() as i32;
    let Ok(all) = procfs::process::all_processes() else {
        return 0;
    };
    let members: Vec<_> = all
        .flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.pgrp == pgid)
        .collect();
    let mut left = members.len();
    for m in members.iter().filter(|m| m.ppid == me && m.state == 'Z') {
        if waitpid(Pid::from_raw(m.pid), Some(WaitPidFlag::WNOHANG)).is_ok() {
            left -= 1;
        }
    }
    left
}

/// Ends every process of `uid` and waits until the kernel holds nothing of
/// it, zombies included, reaping those that are our children (orphans we
/// adopted: `adopt_orphans`). Then nothing of the last scenario counts
/// against the next one of this user. Only for when the scenario's own
/// programs were waited for: it would reap them too.
pub fn end_all_of(uid: u32) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let me = std::process::id() as i32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // One look at /proc per round (each reads every process's status):
    // the kill first, then the look that finds nothing, mostly at once.
    signal_all_as(uid, nix::libc::SIGKILL);
    loop {
        let left = processes_of(uid);
        if left.is_empty() {
            return;
        }
        for p in left.iter().filter(|p| p.ppid == me && p.state == 'Z') {
            let _ = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
        }
        if left.iter().any(|p| p.state != 'Z') {
            kill_all_of(uid);
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!("{} processes of user {uid} are still not reaped", left.len());
            return;
        }
        // Zombies that are not ours wait for their parent (PID 1) to reap
        // them; there is no event for that, so look again shortly.
        if left.iter().all(|p| p.ppid != me) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Without a user of its own: SIGKILL the program's group and every
/// descendant /proc still shows.
pub fn kill_tree(pid: i32) {
    // The tree first: once the group is dead, its children are re-parented
    // and can no longer be found from `pid`.
    let tree = crate::witness::tree(pid, &crate::witness::processes());
    for &p in &tree {
        let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
    }
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    for p in tree {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// Held (shared) while a program is started, and (exclusively) while a
/// scenario's copy of the submission is written. Writing an executable while
/// another thread forks lets the child inherit the open file until its own
/// exec, and exec of that executable then fails with ETXTBSY ("text file
/// busy"). A start returns only once its child has exec'd (and so closed
/// what it inherited), so the two never overlap. This lets each scenario's
/// copy be made just before it runs, while others run, instead of every
/// copy before the first scenario (31 copies of the reference programs took
/// 0.7 s at the start of every run).
static STARTING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// While this lives, no scenario's copy is being written.
pub(crate) fn starting() -> std::sync::RwLockReadGuard<'static, ()> {
    STARTING.read().unwrap_or_else(|e| e.into_inner())
}

/// A scenario's private copy of the built submission (see `STARTING`),
/// made by root from the grader's own copy (`crate::tree`). When the
/// scenario's programs will run as a user of their own (we are root), its
/// executables are shared with the grader's copy rather than copied.
pub fn copy_private(from: &Path, to: &Path) -> Result<(), crate::tree::CopyError> {
    let _no_start = STARTING.write().unwrap_or_else(|e| e.into_inner());
    if is_root() {
        crate::tree::copy_sharing_executables(from, to).map(drop)
    } else {
        crate::tree::copy(from, to, None, true).map(drop)
    }
}

/// Gives a whole tree that the grader just made (a scenario's copy, its
/// docroot) to `uid`, without the write bits of others. A file with more
/// than one link is shared with the grader's own copy
/// (`tree::copy_sharing_executables`) and stays root's: handing it over
/// would hand over the grader's copy too, and with it every later scenario.
pub fn chown_tree(path: &Path, uid: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid)?;
        }
    } else if meta.is_file() && std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    if !std::fs::symlink_metadata(path)?.is_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::symlink_metadata(path)?.permissions().mode();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o022))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The thread that signals as a scenario's user is root again after,
    /// whether the user had processes or not (as root only: without root
    /// there is no user to become).
    #[test]
    fn signalling_as_a_user_leaves_the_thread_root() {
        if !super::is_root() {
            return;
        }
        let ids = || {
            let (mut r, mut e, mut s) = (1, 1, 1);
            // SAFETY: three valid pointers to u32.
            assert_eq!(unsafe { nix::libc::getresuid(&mut r, &mut e, &mut s) }, 0);
            (r, e, s)
        };
        let capabilities = || {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
            let line = |name: &str| status.lines().find(|l| l.starts_with(name)).map(str::to_string);
            (line("CapPrm:"), line("CapEff:"))
        };
        let before = capabilities();
        // A user id of the range that no process has: signal 0 checks only.
        super::signal_all_as(super::UID_BASE + super::UID_COUNT - 1, 0);
        assert_eq!(ids(), (0, 0, 0));
        // With every capability root had.
        assert_eq!(capabilities(), before);
    }
}
