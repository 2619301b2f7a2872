//! A scenario's room, and the build's: what a submission's programs see of
//! the machine. Each program sees its own copy of the submission (read and
//! write), the system's files (read only), an empty private `/tmp` and
//! `/dev/shm`, and nothing else: not the spec, not the reports, not other
//! submissions, not the grader's own copies.
//!
//! Two walls make the room, each where the machine allows it (`Walls`):
//!
//! - **A mount namespace** (root with CAP_SYS_ADMIN): a new root on a
//!   tmpfs, with the system's folders bound read-only, a few devices, a
//!   `/proc` that shows only the scenario's own processes
//!   (`hidepid=invisible`), tmpfs `/tmp` and `/dev/shm` of bounded size,
//!   the submission's copy and the reference programs at their own paths
//!   (so every path the grader hands out is the same inside). It is made
//!   ahead, on a thread of its own, and a program enters it (`setns`)
//!   between its clone and its exec: one system call on the start's path.
//! - **Landlock** (Linux 5.13 and later, unprivileged, allowed in
//!   containers that refuse namespaces): the same allow-list of files, as
//!   rules the kernel enforces on the program and everything it starts;
//!   from ABI 6 on, no signal to a process outside its own domain (the
//!   grader, classmates), and for the build, from ABI 4 on, no TCP.
//!
//! Without the mount namespace there is no private `/tmp` (the program's
//! `TMPDIR` is its copy; `/tmp` itself is out of reach under Landlock) and
//! `/dev/shm` is shared (as root, a scenario's files there are removed with
//! its user). What is missing is said in every report (`Walls::missing`).

use landlock::{
    Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The system's folders a program may read and execute, where they exist.
const SYSTEM: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc"];
/// Devices a program may use.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];
/// Sizes of the room's own file systems.
const TMP_SIZE: &str = "size=64m";

/// What a room is made for.
pub struct Plan<'a> {
    /// The folder the program works in (read and write).
    pub dir: &'a Path,
    /// Folders it may read and execute besides the system's (the reference
    /// programs), where they exist.
    pub read_only: Vec<PathBuf>,
    /// The build: no network where no namespace takes it away.
    pub no_tcp: bool,
}

/// A room, made: what a program's child enters before its exec.
#[derive(Default)]
pub struct Room {
    /// The mount namespace (`setns`), where one could be made.
    pub mount_ns: Option<OwnedFd>,
    /// The Landlock ruleset (`landlock_restrict_self`), where the kernel has it.
    pub landlock: Option<OwnedFd>,
}

impl Room {
    pub fn mount_fd(&self) -> Option<RawFd> {
        self.mount_ns.as_ref().map(AsRawFd::as_raw_fd)
    }

    pub fn landlock_fd(&self) -> Option<RawFd> {
        self.landlock.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Makes the room for `plan` with the walls this machine has.
    pub fn make(plan: &Plan) -> Result<Room, String> {
        let walls = Walls::here();
        if walls.mount {
            // A thread of its own: it leaves the grader's mount namespace
            // for the room's and ends there.
            let made = std::thread::scope(|s| s.spawn(|| enter_new_room(plan, walls.landlock)).join());
            return made.unwrap_or_else(|_| Err("the thread that makes the room failed".into()));
        }
        Ok(Room {
            mount_ns: None,
            landlock: landlock_ruleset(plan, walls.landlock, false)?,
        })
    }
}

/// Inside a fresh thread: a new mount namespace laid out as the room, its
/// descriptor, and the Landlock ruleset of the room's own paths.
fn enter_new_room(plan: &Plan, landlock: i32) -> Result<Room, String> {
    use nix::sched::{unshare, CloneFlags};
    let err = |what: &str, e: nix::Error| format!("{what}: {e}");
    unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS).map_err(|e| err("unshare", e))?;
    // Nothing done here reaches the grader's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| err("making / private", e))?;
    // The folders to bind may be hidden by the new root's tmpfs (they are
    // inside the grader's working folder): held open first.
    let open = |p: &Path| {
        nix::fcntl::open(
            p,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| err(&format!("opening {}", p.display()), e))
    };
    let dir = open(plan.dir)?;
    let read_only: Vec<(PathBuf, OwnedFd)> = plan
        .read_only
        .iter()
        .filter(|p| p.is_dir())
        .map(|p| open(p).map(|fd| (p.clone(), fd)))
        .collect::<Result<_, _>>()?;
    // The new root: a small tmpfs over the working folder's parent, in
    // this namespace only.
    let root = plan.dir.parent().ok_or("the working folder has no parent")?;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=1m,mode=755"),
    )
    .map_err(|e| err("the room's root", e))?;
    let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()));
    let bind = |from: &Path, to: &Path, flags: MsFlags| -> Result<(), String> {
        mount(
            Some(from),
            to,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err(&format!("binding {}", from.display()), e))?;
        if !flags.is_empty() {
            mount(
                None::<&str>,
                to,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                None::<&str>,
            )
            .map_err(|e| err(&format!("remounting {}", to.display()), e))?;
        }
        Ok(())
    };
    let read_only_flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for name in SYSTEM {
        let host = Path::new("/").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        let target = root.join(name);
        if meta.file_type().is_symlink() {
            // /bin -> usr/bin on a merged /usr: the same link.
            let to = std::fs::read_link(&host).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(to, &target).map_err(|e| e.to_string())?;
        } else if meta.is_dir() {
            mkdir(&target)?;
            bind(&host, &target, read_only_flags)?;
        }
    }
    // /dev: a few devices, and a private /dev/shm.
    let dev = root.join("dev");
    mkdir(&dev)?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=755"),
    )
    .map_err(|e| err("/dev", e))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if host.exists() {
            std::fs::File::create(dev.join(name)).map_err(|e| e.to_string())?;
            bind(&host, &dev.join(name), MsFlags::empty())?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(|e| e.to_string())?;
    }
    for (path, mode) in [(dev.join("shm"), "1777"), (root.join("tmp"), "1777")] {
        mkdir(&path)?;
        mount(
            Some("tmpfs"),
            &path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("{TMP_SIZE},mode={mode}").as_str()),
        )
        .map_err(|e| err("a private tmpfs", e))?;
    }
    // /proc showing only what the program's user may see of its own; where
    // a new proc can't be mounted (a container that masks parts of its
    // own), the grader's, bound.
    let proc = root.join("proc");
    mkdir(&proc)?;
    let fresh = mount(
        Some("proc"),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("hidepid=invisible"),
    );
    if fresh.is_err() {
        bind(Path::new("/proc"), &proc, MsFlags::empty())?;
    }
    let sys = root.join("sys");
    mkdir(&sys)?;
    bind(Path::new("/sys"), &sys, read_only_flags)?;
    // The submission's copy and the reference programs, at their own paths.
    let by_fd = |fd: &OwnedFd| PathBuf::from(format!("/proc/thread-self/fd/{}", fd.as_raw_fd()));
    mkdir(&inside(plan.dir))?;
    bind(&by_fd(&dir), &inside(plan.dir), MsFlags::empty())?;
    for (path, fd) in &read_only {
        mkdir(&inside(path))?;
        bind(&by_fd(fd), &inside(path), read_only_flags)?;
    }
    // Into it; the grader's tree goes.
    std::env::set_current_dir(root).map_err(|e| e.to_string())?;
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detaching the grader's tree", e))?;
    std::env::set_current_dir("/").map_err(|e| e.to_string())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| err("the room's root read-only", e))?;
    let mount_ns = std::fs::File::open("/proc/thread-self/ns/mnt")
        .map(OwnedFd::from)
        .map_err(|e| format!("the room's namespace: {e}"))?;
    // The same paths, as the room has them: its /tmp and /dev/shm are its own.
    let landlock = landlock_ruleset(plan, landlock, true)?;
    Ok(Room {
        mount_ns: Some(mount_ns),
        landlock,
    })
}

/// The Landlock rules of a room: the system read-only, the program's
/// folder read and write, and `/tmp` and `/dev/shm` read and write (in a
/// room of its own, they are its own; else `/tmp` is left out and
/// `/dev/shm` is the machine's). `None` where the kernel has no Landlock.
fn landlock_ruleset(plan: &Plan, abi: i32, own_tmp: bool) -> Result<Option<OwnedFd>, String> {
    if abi < 1 {
        return Ok(None);
    }
    let abi = ABI::from(abi);
    let err = |e: landlock::RulesetError| format!("Landlock: {e}");
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi)).map_err(err)?;
    if plan.no_tcp && abi >= ABI::V4 {
        // Handled and never allowed: no TCP bind or connect at all.
        ruleset = ruleset.handle_access(AccessNet::from_all(abi)).map_err(err)?;
    }
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    let mut rule = |path: &Path, access: landlock::BitFlags<AccessFs>| -> Result<(), String> {
        let Ok(fd) = PathFd::new(path) else {
            // Not on this machine: nothing to allow.
            return Ok(());
        };
        let access = if path.is_dir() {
            access
        } else {
            access & AccessFs::from_file(abi)
        };
        created
            .as_mut()
            .add_rule(PathBeneath::new(fd, access))
            .map(drop)
            .map_err(err)
    };
    if own_tmp {
        // In a room of its own, everything there is the program's to read.
        rule(Path::new("/"), AccessFs::from_read(abi))?;
        rule(Path::new("/tmp"), AccessFs::from_all(abi))?;
    } else {
        for name in SYSTEM {
            rule(&Path::new("/").join(name), AccessFs::from_read(abi))?;
        }
        for path in &plan.read_only {
            rule(path, AccessFs::from_read(abi))?;
        }
        rule(Path::new("/proc"), AccessFs::from_read(abi))?;
        rule(Path::new("/sys"), AccessFs::from_read(abi))?;
    }
    for name in DEVICES {
        rule(&Path::new("/dev").join(name), AccessFs::from_file(abi))?;
    }
    rule(plan.dir, AccessFs::from_all(abi))?;
    rule(Path::new("/dev/shm"), AccessFs::from_all(abi))?;
    Ok(Option::<OwnedFd>::from(created))
}

/// The walls this machine allows, found once.
#[derive(Clone, Copy, Debug)]
pub struct Walls {
    /// A user per scenario (sockgrade runs as root).
    pub user: bool,
    /// Mount namespaces (CAP_SYS_ADMIN).
    pub mount: bool,
    /// Landlock's ABI version, 0 where it is missing.
    pub landlock: i32,
    /// Network namespaces.
    pub netns: bool,
}

impl Walls {
    pub fn here() -> Walls {
        static FOUND: std::sync::OnceLock<Walls> = std::sync::OnceLock::new();
        *FOUND.get_or_init(|| Walls {
            user: crate::sandbox::is_root(),
            mount: mount_namespaces(),
            landlock: landlock_abi(),
            netns: crate::isolation::netns_available(),
        })
    }

    /// Files are walled off: the spec, the reports and other submissions
    /// are out of a program's reach.
    pub fn files(&self) -> bool {
        self.mount || self.landlock >= 1
    }

    /// A program can't signal or trace the grader or a classmate.
    pub fn processes(&self) -> bool {
        self.user || self.landlock >= 6
    }

    /// Enough to grade submissions that are not trusted.
    pub fn sealed(&self) -> bool {
        self.files() && self.processes()
    }

    /// The walls present, in words, for reports.
    pub fn present(&self, netns: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.user {
            out.push("a user of its own per scenario".to_string());
        }
        if self.mount {
            out.push("its own view of the files (mount namespace; private /tmp and /dev/shm)".to_string());
        }
        if self.landlock >= 1 {
            out.push(format!(
                "Landlock (ABI {}): files outside its room refused",
                self.landlock
            ));
        }
        if netns {
            out.push("its own network, the build none".to_string());
        }
        out
    }

    /// What is missing, each with what it means.
    pub fn missing(&self, netns: bool) -> Vec<String> {
        let mut out = Vec::new();
        if !self.user {
            out.push(
                "no user of its own (sockgrade is not root): programs run as the grader's user, \
                 with no process limit of their own, and a daemon may outlive its scenario"
                    .to_string(),
            );
        }
        if !self.mount {
            out.push(
                "no mount namespace (CAP_SYS_ADMIN is missing): /tmp is out of reach rather than private, \
                 and /dev/shm is shared"
                    .to_string(),
            );
        }
        if self.landlock < 1 && !self.mount {
            out.push(
                "no Landlock (Linux before 5.13, or disabled): only file permissions keep a program from \
                 the spec, the reports and other submissions"
                    .to_string(),
            );
        }
        if !self.user && self.landlock < 6 {
            out.push(
                "no signal scope (Landlock before ABI 6): a program may signal the grader's other processes"
                    .to_string(),
            );
        }
        if !netns {
            let build = if self.landlock >= 4 {
                "the build has no TCP (Landlock) but may send UDP"
            } else {
                "the build may use the network"
            };
            out.push(format!(
                "no network namespace: programs share the machine's network; {build}"
            ));
        }
        out
    }
}

/// Whether this process may make a whole room (a mount namespace, tmpfs,
/// binds, `pivot_root`): tried once on a folder of its own, so that a
/// kernel that allows some of it (gVisor, a container's seccomp profile)
/// falls back to Landlock rather than failing every scenario.
fn mount_namespaces() -> bool {
    let Ok(parent) = tempfile::Builder::new().prefix("sockgrade-room-").tempdir() else {
        return false;
    };
    let dir = parent.path().join("trial");
    if std::fs::create_dir(&dir).is_err() {
        return false;
    }
    let plan = Plan {
        dir: &dir,
        read_only: Vec::new(),
        no_tcp: false,
    };
    let made = std::thread::scope(|s| s.spawn(|| enter_new_room(&plan, 0)).join());
    match made {
        Ok(Ok(_)) => true,
        Ok(Err(why)) => {
            tracing::info!("no mount namespaces for rooms here: {why}");
            false
        }
        Err(_) => false,
    }
}

/// The kernel's Landlock ABI version, 0 where it has none.
fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: the version query takes no attributes.
    let version = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(version).unwrap_or(0).max(0)
}

/// Removes what user `uid` left in the machine's `/dev/shm` (named
/// semaphores, shared memory), where scenarios have no `/dev/shm` of their
/// own: an earlier scenario's semaphore, left with its user's mode, made
/// `sem_open` fail for the next user of the same name. Entries only
/// (`unlink`, `rmdir` of what is empty), never through a link.
pub fn remove_shared_memory_of(uid: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.uid() != uid {
            continue;
        }
        let _ = if meta.is_dir() {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
    }
}
