//! The kernel as a witness: what /proc says about a program, without its help.
//!
//! Readiness (a socket of the program listening on the port), open
//! descriptors, zombie children, CPU time and memory are all read here. Every
//! function is a single look; the callers poll with an upper bound.

use crate::spec::Protocol;
use procfs::process::{FDTarget, Process};
use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;

/// One process as /proc shows it.
#[derive(Clone, Debug)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub ticks: u64,
    pub rss_pages: u64,
}

/// Every process on the machine (that we can see), by pid.
pub fn processes() -> HashMap<i32, ProcInfo> {
    let mut out = HashMap::new();
    let Ok(all) = procfs::process::all_processes() else {
        return out;
    };
    for p in all.flatten() {
        if let Ok(stat) = p.stat() {
            out.insert(
                stat.pid,
                ProcInfo {
                    pid: stat.pid,
                    ppid: stat.ppid,
                    state: stat.state,
                    ticks: stat.utime + stat.stime,
                    rss_pages: stat.rss,
                },
            );
        }
    }
    out
}

/// `root` and all its descendants still alive (zombies included).
pub fn tree(root: i32, all: &HashMap<i32, ProcInfo>) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in all.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if all.contains_key(&pid) {
            out.push(pid);
            if let Some(c) = children.get(&pid) {
                stack.extend(c);
            }
        }
    }
    out
}

fn socket_inodes(pid: i32) -> HashSet<u64> {
    let mut out = HashSet::new();
    if let Ok(fds) = Process::new(pid).and_then(|p| p.fd()) {
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target {
                out.insert(inode);
            }
        }
    }
    out
}

/// The TCP sockets (IPv4 and IPv6) of the process's network namespace.
fn tcp_table(process: &Process) -> Vec<procfs::net::TcpNetEntry> {
    let mut entries = process.tcp().unwrap_or_default();
    entries.extend(process.tcp6().unwrap_or_default());
    entries
}

/// Is a socket of one of `pids` listening on `port` (TCP) or bound to it
/// (UDP)? The socket table is read from the process's own network namespace.
pub fn is_ready(pids: &[i32], port: u16, protocol: Protocol) -> bool {
    let Some(&first) = pids.first() else {
        return false;
    };
    let inodes: HashSet<u64> = pids.iter().flat_map(|&p| socket_inodes(p)).collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(process) = Process::new(first) else {
        return false;
    };
    match protocol {
        Protocol::Tcp => {
            let entries = tcp_table(&process);
            entries.iter().any(|e| {
                e.state == procfs::net::TcpState::Listen && e.local_address.port() == port && inodes.contains(&e.inode)
            })
        }
        Protocol::Udp => {
            let mut entries = process.udp().unwrap_or_default();
            entries.extend(process.udp6().unwrap_or_default());
            entries
                .iter()
                .any(|e| e.local_address.port() == port && inodes.contains(&e.inode))
        }
    }
}

/// Open descriptors of one process: number and what it points at
/// (`socket:[1234]`, `/dev/null`, `pipe:[99]`).
pub fn fds(pid: i32) -> Option<std::collections::BTreeMap<i32, String>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut out = std::collections::BTreeMap::new();
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let target = std::fs::read_link(entry.path())
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        out.insert(fd, target);
    }
    Some(out)
}

/// The descriptors of `pid` that are TCP connections, in whatever state:
/// what a server holds for its clients, as opposed to what it holds for
/// itself (listeners, its runtime's epoll and eventfd, files).
///
/// The socket table alone can't say: a connection that has reached CLOSE
/// (reset, or both FINs exchanged) leaves the table while the program may
/// still hold its descriptor. So each socket is looked at directly, through
/// a copy of the descriptor (`pidfd_getfd`). Where that is refused (no right
/// to ptrace the program, an old kernel), the table is the fallback.
pub fn connection_fds(pid: i32) -> HashSet<i32> {
    let Ok(process) = Process::new(pid) else {
        return HashSet::new();
    };
    let Ok(fds) = process.fd() else {
        return HashSet::new();
    };
    let sockets: Vec<(i32, u64)> = fds
        .flatten()
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) => Some((fd.fd, inode)),
            _ => None,
        })
        .collect();
    if let Some(found) = foreign::Descriptors::of(pid).and_then(|theirs| {
        let mut found = HashSet::new();
        for &(fd, _) in &sockets {
            match theirs.copy(fd) {
                Ok(copy) if foreign::is_tcp_connection(&copy) => {
                    found.insert(fd);
                }
                Ok(_) => {}
                // Closed since /proc listed it.
                Err(nix::errno::Errno::EBADF) => {}
                Err(_) => return None,
            }
        }
        Some(found)
    }) {
        return found;
    }
    let connections: HashSet<u64> = tcp_table(&process)
        .into_iter()
        .filter(|e| e.state != procfs::net::TcpState::Listen)
        .map(|e| e.inode)
        .collect();
    sockets
        .into_iter()
        .filter(|(_, inode)| connections.contains(inode))
        .map(|(fd, _)| fd)
        .collect()
}

/// Looking at another process's descriptors through copies of them.
mod foreign {
    use nix::errno::Errno;
    use nix::libc;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A pidfd: a handle on one process that can't be confused with a
    /// later process of the same pid.
    pub struct Descriptors(OwnedFd);

    impl Descriptors {
        pub fn of(pid: i32) -> Option<Descriptors> {
            // SAFETY: a system call that returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            (fd >= 0).then(|| Descriptors(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
        }

        /// Our own copy of the process's descriptor `fd` (the same open
        /// socket). EBADF: it is closed; EPERM: we may not look.
        pub fn copy(&self, fd: i32) -> Result<OwnedFd, Errno> {
            // SAFETY: as above.
            let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.0.as_raw_fd(), fd, 0) };
            // SAFETY: as above.
            Errno::result(copy).map(|copy| unsafe { OwnedFd::from_raw_fd(copy as i32) })
        }
    }

    fn int_option(fd: &OwnedFd, option: libc::c_int) -> Option<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
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

    /// An IPv4 or IPv6 TCP socket that is not listening: a connection, or
    /// what is left of one.
    pub fn is_tcp_connection(fd: &OwnedFd) -> bool {
        let inet = matches!(int_option(fd, libc::SO_DOMAIN), Some(libc::AF_INET | libc::AF_INET6));
        let tcp = int_option(fd, libc::SO_PROTOCOL) == Some(libc::IPPROTO_TCP);
        let listening = int_option(fd, libc::SO_ACCEPTCONN) == Some(1);
        inet && tcp && !listening
    }
}

/// Alive: /proc knows it, it is not a zombie, and it is not on its way out
/// (PF_EXITING: its descriptors may already be closed, which must not read
/// as "no leak").
pub fn alive(pid: i32) -> bool {
    const PF_EXITING: u32 = 0x4;
    Process::new(pid)
        .and_then(|p| p.stat())
        .map(|s| s.state != 'Z' && s.flags & PF_EXITING == 0)
        .unwrap_or(false)
}

/// Waiting in the kernel (state S: blocked in accept, read, poll...), not
/// running or runnable. Gone counts as waiting: there is nothing to wait for.
pub fn waiting(pid: i32) -> bool {
    Process::new(pid)
        .and_then(|p| p.stat())
        .map(|s| s.state == 'S')
        .unwrap_or(true)
}

/// Every thread of every process of the program's tree waits in the kernel
/// (state S): blocked in send, poll or accept. A thread that is running or
/// runnable (R), whether it spins or the machine has not run it yet, is not
/// at rest; zombies (Z) have nothing left to do and count as at rest.
pub fn tree_at_rest(pid: i32) -> bool {
    tree(pid, &processes()).into_iter().all(|p| {
        let Ok(process) = Process::new(p) else {
            return true;
        };
        let Ok(tasks) = process.tasks() else {
            return true;
        };
        tasks.flatten().all(|t| {
            t.stat()
                .map(|s| matches!(s.state, 'S' | 'Z' | 'T' | 't' | 'X'))
                .unwrap_or(true)
        })
    })
}

/// Has the process waited for children of its own (their page faults are
/// added to its `cminflt` when it reaps them)? A forking server that reaps
/// its children leaves no other trace once they are gone.
pub fn reaped_children(pid: i32) -> bool {
    Process::new(pid).and_then(|p| p.stat()).is_ok_and(|s| s.cminflt > 0)
}

/// The processes among `pids` (a program's tree, root first) that hold a
/// descriptor of the program's end of the connection between its `port`
/// and the harness's `peer_port`, as the socket table and their descriptor
/// tables show.
pub fn holders(pids: &[i32], port: u16, peer_port: u16) -> Vec<i32> {
    let Some(process) = pids.first().and_then(|&p| Process::new(p).ok()) else {
        return Vec::new();
    };
    let ends: HashSet<u64> = tcp_table(&process)
        .iter()
        .filter(|e| e.local_address.port() == port && e.remote_address.port() == peer_port && e.inode != 0)
        .map(|e| e.inode)
        .collect();
    pids.iter()
        .copied()
        .filter(|&p| !socket_inodes(p).is_disjoint(&ends))
        .collect()
}

/// The queues of both ends of the connection between the program's `port`
/// and the harness's `peer_port`, as (tx, rx) bytes: the harness's end,
/// then the program's. tx is what was written and not yet acknowledged, rx
/// what arrived and was not yet read. `None` unless both ends are in the
/// table of `pid`'s network namespace.
pub fn connection_queues(pid: i32, port: u16, peer_port: u16) -> Option<((u32, u32), (u32, u32))> {
    let table = tcp_table(&Process::new(pid).ok()?);
    let end = |local: u16, remote: u16| {
        table
            .iter()
            .find(|e| e.local_address.port() == local && e.remote_address.port() == remote)
            .map(|e| (e.tx_queue, e.rx_queue))
    };
    Some((end(peer_port, port)?, end(port, peer_port)?))
}

/// Does the program's end of the connection between its `port` and the
/// harness's `peer_port` still stand in the socket table (read in `pid`'s
/// network namespace)? A reset takes it out of the table at once: a socket
/// that took a reset is closed and unhashed. `false` when `pid` is gone.
pub fn connection_listed(pid: i32, port: u16, peer_port: u16) -> bool {
    let Ok(process) = Process::new(pid) else {
        return false;
    };
    tcp_table(&process).iter().any(|e| {
        e.local_address.port() == port
            && e.remote_address.port() == peer_port
            && e.state != procfs::net::TcpState::TimeWait
    })
}

/// Where the program's end of one connection stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Hold {
    /// A descriptor of the program still refers to it.
    Held,
    /// Not accepted yet: it waits in the listen queue.
    Waiting,
    /// Closed by the program (or gone with it).
    Released,
}

/// The program's end of the connection between its `port` and the harness's
/// `peer_port`, found in the namespace's socket table and matched against
/// the socket inodes of `pids`.
///
/// A connection that was reset, or closed on both sides, leaves the table
/// while a descriptor may still hold it (a forking server whose parent
/// forgot to close its copy). So the program's sockets that are not in the
/// table are looked at directly: a TCP connection on `port` whose peer is
/// `peer_port`, or whose peer is gone (a closed socket has none, so it can't
/// be told apart from the others: it counts as held).
pub fn connection_hold(pids: &[i32], port: u16, peer_port: u16) -> Hold {
    let Some(&first) = pids.first() else {
        return Hold::Released;
    };
    let Ok(process) = Process::new(first) else {
        return Hold::Released;
    };
    let entries = tcp_table(&process);
    let in_table: HashSet<u64> = entries.iter().map(|e| e.inode).collect();
    let inodes: HashSet<u64> = pids.iter().flat_map(|&p| socket_inodes(p)).collect();
    let mut hold = Hold::Released;
    for e in &entries {
        if e.local_address.port() != port || e.remote_address.port() != peer_port {
            continue;
        }
        if inodes.contains(&e.inode) {
            return Hold::Held;
        }
        use procfs::net::TcpState::*;
        // An accepted socket has an inode; one still in the accept queue
        // has none and is open.
        if e.inode == 0 && matches!(e.state, Established | CloseWait | SynRecv) {
            hold = Hold::Waiting;
        }
    }
    for &pid in pids {
        if holds_closed_connection(pid, port, peer_port, &in_table) {
            return Hold::Held;
        }
    }
    hold
}

/// Does `pid` hold, among the sockets the table no longer shows, a TCP
/// connection on `port` (or on no port any more) to `peer_port` (or to no
/// peer any more)?
fn holds_closed_connection(pid: i32, port: u16, peer_port: u16, in_table: &HashSet<u64>) -> bool {
    let Ok(fds) = Process::new(pid).and_then(|p| p.fd()) else {
        return false;
    };
    let Some(theirs) = foreign::Descriptors::of(pid) else {
        return false;
    };
    fds.flatten()
        .filter(|fd| matches!(fd.target, FDTarget::Socket(inode) if !in_table.contains(&inode)))
        .filter_map(|fd| theirs.copy(fd.fd).ok())
        .filter(foreign::is_tcp_connection)
        .any(|copy| {
            let local = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(copy.as_raw_fd());
            // Linux may forget the local port of a closed socket (0).
            let on_port = matches!(local.ok().and_then(|a| port_of(&a)), Some(p) if p == port || p == 0);
            let peer = nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(copy.as_raw_fd());
            on_port
                && match peer {
                    Ok(a) => port_of(&a) == Some(peer_port),
                    Err(_) => true,
                }
        })
}

fn port_of(address: &nix::sys::socket::SockaddrStorage) -> Option<u16> {
    address
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| address.as_sockaddr_in6().map(|a| a.port()))
}

/// Children of `pid` that have exited and not been waited for.
pub fn zombies(pid: i32, all: &HashMap<i32, ProcInfo>) -> Vec<i32> {
    let mut z: Vec<i32> = all
        .values()
        .filter(|p| p.ppid == pid && p.state == 'Z')
        .map(|p| p.pid)
        .collect();
    z.sort_unstable();
    z
}

/// Clock ticks per second, for CPU time in /proc/PID/stat.
pub fn ticks_per_second() -> u64 {
    procfs::ticks_per_second()
}

pub fn page_size() -> u64 {
    procfs::page_size()
}

/// What a process and its descendants use: CPU ticks, resident bytes, and
/// how many processes they are.
pub fn tree_usage(pid: i32) -> (u64, u64, usize) {
    let all = processes();
    let pids = tree(pid, &all);
    let members = || pids.iter().filter_map(|p| all.get(p));
    let ticks: u64 = members().map(|p| p.ticks).sum();
    let rss: u64 = members().map(|p| p.rss_pages).sum();
    (ticks, rss * page_size(), pids.len())
}

/// How long each thread of a process and its descendants has wanted a CPU:
/// nanoseconds running plus waiting to run (`/proc/PID/task/TID/schedstat`),
/// by thread id. `None` where the kernel keeps no schedstat (gVisor).
///
/// Unlike CPU time, this does not depend on the machine's load: a thread
/// that spins or yields in a loop is running or runnable all the time, on a
/// busy machine as on an idle one, while a thread blocked in the kernel is
/// neither.
pub fn tree_demand(pid: i32) -> Option<HashMap<i32, u64>> {
    let mut out = HashMap::new();
    for p in tree(pid, &processes()) {
        let Ok(tasks) = Process::new(p).and_then(|p| p.tasks()) else {
            continue;
        };
        for task in tasks.flatten() {
            match task.schedstat() {
                Ok(s) => {
                    out.insert(task.tid, s.sum_exec_runtime + s.run_delay);
                }
                // Gone since the listing: its time no longer matters.
                Err(procfs::ProcError::NotFound(_)) => {}
                Err(_) => return None,
            }
        }
    }
    Some(out)
}

/// Resident bytes of a process and its descendants.
pub fn tree_rss(pid: i32) -> u64 {
    tree_usage(pid).1
}

/// Polls `check` until it says done or `bound` passes; returns its last value
/// (`Err` when the bound passed). The looks above are single looks: there is
/// no event for "a descriptor was closed", so callers poll them, quickly at
/// first and then every 20 ms.
pub async fn poll_until<T>(bound: std::time::Duration, mut check: impl FnMut() -> (bool, T)) -> Result<T, T> {
    use std::time::Duration;
    let deadline = tokio::time::Instant::now() + bound;
    let mut pause = Duration::from_millis(1);
    loop {
        let (done, value) = check();
        if done {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(value);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
