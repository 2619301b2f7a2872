//! The kernel as a witness: what /proc says about a program, without its help.
//!
//! Readiness (a socket of the program listening on the port), open
//! descriptors, zombie children, CPU time and memory are all read here. Every
//! function is a single look; the callers poll with an upper bound.

use crate::lang::Protocol;
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

/// Readiness as the kernel tells it: is a socket of the program (or of one of
/// its descendants, for servers that listen in a child) listening on the
/// port (TCP), or bound to it (UDP)?
///
/// Asked through sock_diag (`NETLINK_SOCK_DIAG`, what `ss` uses): the kernel
/// answers for that one port, about 20 us a look, so a start can poll
/// tightly and see `listen()` within a fraction of a millisecond. The socket
/// table in /proc costs a whole table parsed per look. Where sock_diag is
/// missing (gVisor has no NETLINK_SOCK_DIAG; a kernel without `udp_diag`),
/// the first failed look falls back to /proc for good.
pub struct Readiness {
    diag: Option<SockDiag>,
}

impl Readiness {
    /// In the calling thread's network namespace: the scenario's, where the
    /// program was started.
    pub fn new() -> Readiness {
        Readiness { diag: SockDiag::open() }
    }

    /// Whether a look is a question about one port (sock_diag), rather
    /// than whole socket tables parsed (/proc).
    pub fn is_cheap(&self) -> bool {
        self.diag.is_some()
    }

    /// One look. `whole_tree`: also look at the program's descendants (a walk
    /// of every process, so only every few looks; with sock_diag, only when
    /// something is bound to the port and not by the program itself).
    pub fn look(&mut self, pid: i32, port: u16, protocol: Protocol, whole_tree: bool) -> bool {
        if let Some(diag) = &mut self.diag {
            match diag.bound(port, protocol) {
                Ok(bound) if bound.is_empty() => return false,
                Ok(bound) => {
                    let owns = |p: i32| socket_inodes(p).iter().any(|i| bound.contains(i));
                    return owns(pid) || (whole_tree && tree(pid, &processes()).into_iter().any(owns));
                }
                Err(e) => {
                    tracing::debug!("sock_diag unavailable ({e}); readiness from /proc");
                    self.diag = None;
                }
            }
        }
        is_ready(&[pid], port, protocol) || (whole_tree && is_ready(&tree(pid, &processes()), port, protocol))
    }
}

/// How many connections wait in the accept queues of the listeners on a
/// port (in the calling thread's network namespace), and the backlog the
/// program gave `listen`: the kernel's counts, the program's help not
/// needed. `None` where sock_diag is unavailable or nothing listens.
pub struct AcceptQueue {
    diag: Option<SockDiag>,
    port: u16,
}

impl AcceptQueue {
    pub fn new(port: u16) -> AcceptQueue {
        AcceptQueue {
            diag: SockDiag::open(),
            port,
        }
    }

    /// (waiting, backlog): every listener's waiting, and the smallest backlog.
    pub fn look(&mut self) -> Option<(u32, u32)> {
        let sockets = self.diag.as_mut()?.sockets(self.port, Protocol::Tcp).ok()?;
        let backlog = sockets.iter().map(|s| s.2).min()?;
        Some((sockets.iter().map(|s| s.1).sum(), backlog))
    }
}

/// A NETLINK_SOCK_DIAG socket: asks the kernel about the sockets on one port.
struct SockDiag {
    socket: socket2::Socket,
    buf: Vec<u8>,
}

impl SockDiag {
    fn open() -> Option<SockDiag> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(
            Domain::from(nix::libc::AF_NETLINK),
            Type::RAW,
            Some(nix::libc::NETLINK_SOCK_DIAG.into()),
        )
        .ok()?;
        // The kernel answers a dump while we send it; the bound is for a
        // kernel that would not answer at all.
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .ok()?;
        Some(SockDiag {
            socket,
            buf: vec![0; 32 << 10],
        })
    }

    /// The inodes of the sockets on `port`, IPv4 and IPv6: TCP sockets that
    /// listen, UDP sockets in any state (an unconnected bound one is CLOSE).
    fn bound(&mut self, port: u16, protocol: Protocol) -> std::io::Result<Vec<u64>> {
        Ok(self.sockets(port, protocol)?.into_iter().map(|s| s.0).collect())
    }

    /// The sockets of `bound`, each with its receive and send queues: for a
    /// listener, the connections waiting in its accept queue and the most
    /// it may hold (its `listen` backlog).
    fn sockets(&mut self, port: u16, protocol: Protocol) -> std::io::Result<Vec<(u64, u32, u32)>> {
        use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
        use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
        use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
        use netlink_packet_sock_diag::SockDiagMessage;
        use std::io::{Error, ErrorKind, Read, Write};
        let (proto, states) = match protocol {
            Protocol::Tcp => (IPPROTO_TCP, StateFlags::LISTEN),
            Protocol::Udp => (IPPROTO_UDP, StateFlags::all()),
        };
        let mut found = Vec::new();
        for family in [AF_INET, AF_INET6] {
            // The kernel skips listeners on other ports itself (the source
            // port of the request); the reply is checked all the same.
            let mut socket_id = if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            };
            socket_id.source_port = port;
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            let mut request = NetlinkMessage::new(
                header,
                SockDiagMessage::InetRequest(InetRequest {
                    family,
                    protocol: proto,
                    extensions: ExtensionFlags::empty(),
                    states: states.clone(),
                    socket_id,
                })
                .into(),
            );
            request.finalize();
            let mut bytes = vec![0; request.buffer_len()];
            request.serialize(&mut bytes);
            (&self.socket).write_all(&bytes)?;
            'replies: loop {
                let n = (&self.socket).read(&mut self.buf)?;
                let mut offset = 0;
                while offset < n {
                    let reply = NetlinkMessage::<SockDiagMessage>::deserialize(&self.buf[offset..n])
                        .map_err(|e| Error::new(ErrorKind::InvalidData, e.to_string()))?;
                    match reply.payload {
                        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r))
                            if r.header.socket_id.source_port == port =>
                        {
                            found.push((u64::from(r.header.inode), r.header.recv_queue, r.header.send_queue));
                        }
                        NetlinkPayload::Done(_) => break 'replies,
                        NetlinkPayload::Error(e) => return Err(e.to_io()),
                        _ => {}
                    }
                    // Messages are aligned to 4 bytes.
                    let len = (reply.header.length as usize + 3) & !3;
                    if len == 0 {
                        break;
                    }
                    offset += len;
                }
            }
        }
        Ok(found)
    }
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
pub(crate) mod foreign {
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
/// So does stopped (T, by SIGSTOP; t, by a tracer): it can't move until it
/// is continued, so it will be no more at rest than it is (waiting for it to
/// reach S cost every SIGCONT its whole bound, 500 ms).
pub fn waiting(pid: i32) -> bool {
    Process::new(pid)
        .and_then(|p| p.stat())
        .map(|s| resting(s.state))
        .unwrap_or(true)
}

/// A process or thread state (`/proc/.../stat`) that is at rest: waiting in
/// the kernel (S), stopped (T, t), or finished (Z, X). Running or runnable
/// (R) is not, nor is an uninterruptible wait (D), which ends on its own.
fn resting(state: char) -> bool {
    matches!(state, 'S' | 'T' | 't' | 'Z' | 'X')
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
        tasks
            .flatten()
            .all(|t| t.stat().map(|s| resting(s.state)).unwrap_or(true))
    })
}

/// The CPU time each thread of the program's tree has had (`schedstat`'s
/// run time, ns), by thread. `None` where the kernel keeps no schedstat.
pub fn tree_run_times(pid: i32) -> Option<HashMap<i32, u64>> {
    let threads = tree_schedstats(pid)?;
    Some(threads.into_iter().map(|(t, s)| (t.tid, s.sum_exec_runtime)).collect())
}

/// Every thread of the program's tree that could run has had the CPU since
/// `before` (`tree_run_times`), or is gone: none is still waiting for the
/// CPU with work it was handed before. A thread asleep in the kernel, or one
/// that came since, counts as done.
pub fn tree_ran_since(pid: i32, before: &HashMap<i32, u64>) -> bool {
    let Some(threads) = tree_schedstats(pid) else {
        return true;
    };
    threads.iter().all(|(task, s)| {
        let runnable = task.stat().is_ok_and(|stat| stat.state == 'R');
        let ran = before.get(&task.tid).is_none_or(|then| s.sum_exec_runtime > *then);
        !runnable || ran
    })
}

/// The program's tree is at rest (`tree_at_rest`) and nothing is in flight
/// on its TCP sockets: none holds bytes unread or unacknowledged.
pub fn tree_settled(pid: i32) -> bool {
    if !tree_at_rest(pid) {
        return false;
    }
    let Ok(process) = Process::new(pid) else {
        return true;
    };
    let mut inodes = HashSet::new();
    for p in tree(pid, &processes()) {
        inodes.extend(socket_inodes(p));
    }
    tcp_table(&process)
        .iter()
        .filter(|e| inodes.contains(&e.inode))
        .all(|e| e.rx_queue == 0 && (e.tx_queue == 0 || e.state == procfs::net::TcpState::Listen))
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
    // A connection reset while it waited in the accept queue leaves the
    // table at once, but waits there still, for the program to accept it:
    // not released while the listener's queue holds any connection (its
    // rx_queue counts them).
    let queued = entries
        .iter()
        .any(|e| e.state == procfs::net::TcpState::Listen && e.local_address.port() == port && e.rx_queue > 0);
    if hold == Hold::Released && queued {
        return Hold::Waiting;
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
    let threads = tree_schedstats(pid)?;
    Some(
        threads
            .into_iter()
            .map(|(t, s)| (t.tid, s.sum_exec_runtime + s.run_delay))
            .collect(),
    )
}

/// Each thread of a process and its descendants, with what the kernel
/// counted of its time (`/proc/PID/task/TID/schedstat`). `None` where the
/// kernel keeps no schedstat (gVisor).
fn tree_schedstats(pid: i32) -> Option<Vec<(procfs::process::Task, procfs::process::Schedstat)>> {
    let mut out = Vec::new();
    for p in tree(pid, &processes()) {
        let Ok(tasks) = Process::new(p).and_then(|p| p.tasks()) else {
            continue;
        };
        for task in tasks.flatten() {
            match task.schedstat() {
                Ok(s) => out.push((task, s)),
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

/// How many sockets are joined to `group` on `lo`, as `/proc/net/igmp`
/// shows it: of the network namespace of process `pid`, or of the calling
/// thread (the scenario's namespace; `/proc/net` is the main thread's).
pub fn igmp_members(pid: Option<i32>, group: std::net::Ipv4Addr) -> u32 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/net/igmp"),
        None => "/proc/thread-self/net/igmp".to_string(),
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    igmp_users(&text, "lo", group)
}

/// The `Users` of `group` under `device` in the text of `/proc/net/igmp`:
/// a device line (`1\tlo        :     2      V3`), then a line per group
/// (`\t\t\t\t090909EF     1 0:00000000\t\t0`), its address the raw
/// network-order word printed in hex.
fn igmp_users(text: &str, device: &str, group: std::net::Ipv4Addr) -> u32 {
    let mut in_device = false;
    for line in text.lines().skip(1) {
        if !line.starts_with('\t') {
            in_device = line.split_whitespace().nth(1) == Some(device);
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hex), Some(users)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(raw) = u32::from_str_radix(hex, 16) else {
            continue;
        };
        if in_device && std::net::Ipv4Addr::from(raw.to_ne_bytes()) == group {
            return users.parse().unwrap_or(0);
        }
    }
    0
}

/// Polls `check` until it says done or `bound` passes; returns its last value
/// (`Err` when the bound passed). The looks above are single looks: there is
/// no event for "a descriptor was closed", so callers poll them, quickly at
/// first (from 100 us, with `FinePause`: what is looked for is usually a
/// fraction of a millisecond away) and then every 20 ms.
pub async fn poll_until<T>(bound: std::time::Duration, mut check: impl FnMut() -> (bool, T)) -> Result<T, T> {
    use std::time::Duration;
    // In the programs' time: what is looked for is often a program's work.
    let mut deadline = crate::program_time::Deadline::after(bound);
    let mut pause = Duration::from_micros(100);
    let mut fine = FinePause::new();
    loop {
        let (done, value) = check();
        if done {
            return Ok(value);
        }
        if deadline.passed() {
            return Err(value);
        }
        let pause_now = pause.min(deadline.left());
        match &mut fine {
            Some(fine) if pause_now < Duration::from_millis(2) => fine.sleep(pause_now).await,
            _ => tokio::time::sleep(pause_now).await,
        }
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Pauses finer than tokio's timer, whose wheel turns in whole milliseconds
/// (a 100 us sleep takes 1 ms or more): a timerfd, which the kernel fires to
/// the microsecond, waited for like any descriptor. For polls that must see
/// a change within a fraction of a millisecond. `None` where timerfd is
/// missing; callers then sleep with tokio.
pub struct FinePause(tokio::io::unix::AsyncFd<Timer>);

pub struct Timer(nix::sys::timerfd::TimerFd);

impl std::os::fd::AsRawFd for Timer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl FinePause {
    pub fn new() -> Option<FinePause> {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()?;
        // SAFETY: `Timer` owns the timerfd for as long as the AsyncFd holds
        // it, and always gives the same descriptor.
        unsafe { tokio::io::unix::AsyncFd::register_with_interest(Timer(fd), tokio::io::Interest::READABLE) }
            .ok()
            .map(FinePause)
    }

    /// Returns after `pause`.
    pub async fn sleep(&mut self, pause: std::time::Duration) {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        // A timerfd set to zero is disarmed, and would never fire.
        if pause.is_zero() {
            return tokio::task::yield_now().await;
        }
        let timer = &self.0.get_ref().0;
        if timer
            .set(
                Expiration::OneShot(TimeSpec::from_duration(pause)),
                TimerSetTimeFlags::empty(),
            )
            .is_err()
        {
            return tokio::time::sleep(pause).await;
        }
        loop {
            let Ok(mut ready) = self.0.readable().await else {
                return tokio::time::sleep(pause).await;
            };
            // Reading the expiration count re-arms readiness; WouldBlock:
            // woken early, not yet expired.
            match ready.try_io(|fd| fd.get_ref().0.wait().map_err(std::io::Error::from)) {
                Ok(_) => return,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igmp_users_of_a_group_on_a_device() {
        let text = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
                    1\tlo        :     2      V3\n\
                    \t\t\t\t090909EF     2 0:00000000\t\t0\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    3\tsgA       :     2      V3\n\
                    \t\t\t\t0A0909EF     1 0:00000000\t\t0\n";
        let group = std::net::Ipv4Addr::new(239, 9, 9, 9);
        assert_eq!(igmp_users(text, "lo", group), 2);
        assert_eq!(igmp_users(text, "sgA", group), 0);
        assert_eq!(igmp_users(text, "sgA", std::net::Ipv4Addr::new(239, 9, 9, 10)), 1);
    }

    /// Both ways of looking (sock_diag, and /proc where it is missing, as on
    /// gVisor) see this process's own listener and UDP socket, and nothing
    /// on a port where nothing listens.
    #[test]
    fn readiness_with_and_without_sock_diag() {
        let me = std::process::id() as i32;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp_port = udp.local_addr().unwrap().port();
        // Bound but not listening: not ready.
        let bound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let quiet = bound.local_addr().unwrap().port();
        drop(bound);
        let mut with = Readiness::new();
        assert!(with.diag.is_some(), "this kernel has sock_diag");
        let mut without = Readiness { diag: None };
        for r in [&mut with, &mut without] {
            assert!(r.look(me, tcp_port, Protocol::Tcp, false));
            assert!(r.look(me, udp_port, Protocol::Udp, false));
            assert!(!r.look(me, quiet, Protocol::Tcp, true));
        }
        // The listener of another process is not that program's readiness.
        let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let ready = with.look(other.id() as i32, tcp_port, Protocol::Tcp, true);
        let _ = other.kill();
        let _ = other.wait();
        assert!(!ready);
    }
}
