//! Ports and network isolation.
//!
//! With `netns`, each scenario runs in a network namespace of its own, made
//! by the scenario's thread with unshare(CLONE_NEWNET): sockets that thread
//! opens and processes it starts live there, with only a loopback interface.
//! Scenarios can't see each other's ports, and a restarted server finds only
//! its own TIME_WAIT sockets. Without it, ports come from a range below the
//! kernel's ephemeral ports (which outgoing connections use), each checked
//! free and never handed out twice by this process.

use std::collections::HashSet;
use std::io;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// netns when we may create one, none otherwise.
    Auto,
    /// A network namespace per scenario (needs root or CAP_SYS_ADMIN).
    Netns,
    /// The host's network; ports chosen so that they don't collide.
    None,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Netns => "netns",
            Isolation::None => "none",
        }
    }

    /// What `auto` means on this machine.
    pub fn resolve(self) -> io::Result<Isolation> {
        match self {
            Isolation::Auto => Ok(if netns_available() {
                Isolation::Netns
            } else {
                Isolation::None
            }),
            Isolation::Netns if !netns_available() => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "--isolation netns needs the right to create network namespaces (run as root)",
            )),
            other => Ok(other),
        }
    }
}

/// Tries it in a throwaway thread: namespaces are per thread.
pub fn netns_available() -> bool {
    std::thread::spawn(enter_netns)
        .join()
        .map(|r| r.is_ok())
        .unwrap_or(false)
}

/// Moves the calling thread into a new network namespace with `lo` up.
pub fn enter_netns() -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    loopback_up()
}

/// Network namespaces made ahead, on a thread of their own, for the
/// scenarios to enter (`setns`, some 10 us) rather than make on their path
/// (`unshare` and `lo` up, some 300 us). A namespace lives while a thread,
/// a process or a descriptor holds it: here, a descriptor of it until a
/// scenario's thread enters it.
pub struct Namespaces {
    made: Mutex<Made>,
    ready: std::sync::Condvar,
    /// How many may wait for their scenario.
    ahead: usize,
}

#[derive(Default)]
struct Made {
    waiting: Vec<Result<std::os::fd::OwnedFd, String>>,
    /// The maker is done: nobody waits for a namespace that won't come.
    finished: bool,
}

impl Namespaces {
    pub fn new(ahead: usize) -> Namespaces {
        Namespaces {
            made: Mutex::default(),
            ready: std::sync::Condvar::new(),
            ahead: ahead.max(1),
        }
    }

    /// Makes `count` namespaces, at most `ahead` of those who enter them.
    /// On a thread that does nothing else: it ends up inside the last one.
    pub fn make(&self, count: usize) {
        /// Done, however the loop ends.
        struct Finished<'a>(&'a Namespaces);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.made.lock().unwrap_or_else(|e| e.into_inner()).finished = true;
                self.0.ready.notify_all();
            }
        }
        let _finished = Finished(self);
        for _ in 0..count {
            let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
            while made.waiting.len() >= self.ahead {
                made = self.ready.wait(made).unwrap_or_else(|e| e.into_inner());
            }
            drop(made);
            let namespace = enter_netns()
                .and_then(|()| std::fs::File::open("/proc/thread-self/ns/net"))
                .map(std::os::fd::OwnedFd::from)
                .map_err(|e| e.to_string());
            self.made
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiting
                .push(namespace);
            self.ready.notify_all();
        }
    }

    /// Moves the calling thread into a namespace made ahead (waiting for
    /// one if need be), or into a new one if none could be made there.
    pub fn enter(&self) -> io::Result<()> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        let namespace = loop {
            if let Some(namespace) = made.waiting.pop() {
                break Some(namespace);
            }
            if made.finished {
                break None;
            }
            made = self.ready.wait(made).unwrap_or_else(|e| e.into_inner());
        };
        drop(made);
        self.ready.notify_all();
        match namespace {
            Some(Ok(fd)) => nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from),
            Some(Err(_)) | None => enter_netns(),
        }
    }
}

/// `ip link set lo up`, done with the two ioctls that command uses.
fn loopback_up() -> io::Result<()> {
    use nix::libc;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: ifreq is plain data; the name is NUL-terminated within IFNAMSIZ.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port for a scenario. In a namespace of its own any port is free; we
/// still pick one below the ephemeral range, so the harness's own outgoing
/// connections can never take it.
pub fn choose_port(isolation: Isolation) -> io::Result<u16> {
    let (low, high) = ephemeral_range();
    // Below the ephemeral range, or above it where it starts too low.
    let (from, to) = if low > 11_000 {
        (10_000u16, low - 1)
    } else {
        (high.saturating_add(1).min(64_000), 65_535)
    };
    if isolation == Isolation::Netns {
        return Ok(from + (std::process::id() % 1000) as u16);
    }
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    let span = u32::from(to - from);
    let mut seed = std::process::id().wrapping_mul(2654435761) ^ nanos();
    for _ in 0..span {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let port = from + ((seed >> 8) % span) as u16;
        if !used.contains(&port) && free(port) {
            used.insert(port);
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port below the ephemeral range",
    ))
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Free for both TCP and UDP right now (a bind that is undone at once; not a
/// connection anybody sees).
fn free(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    std::net::TcpListener::bind(addr).is_ok() && std::net::UdpSocket::bind(addr).is_ok()
}

fn ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut numbers = text.split_whitespace().filter_map(|n| n.parse().ok());
    (numbers.next().unwrap_or(32768), numbers.next().unwrap_or(60999))
}
