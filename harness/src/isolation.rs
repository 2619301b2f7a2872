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
    /// Nobody will take more: the maker stops.
    closed: bool,
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
            while made.waiting.len() >= self.ahead && !made.closed {
                made = self.ready.wait(made).unwrap_or_else(|e| e.into_inner());
            }
            if made.closed {
                return;
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

    /// No scenario will enter another: the maker stops.
    pub fn close(&self) {
        self.made.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
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

/// Where the decoy interface's route sends multicast: its own address.
pub const DECOY_ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 83, 0, 1);

/// Makes a scenario's network ready for multicast, once per scenario.
///
/// In a namespace of its own, a decoy interface (a veth pair, `sgdecoy0`)
/// gets the multicast route 224.0.0.0/4, as the default route of a real
/// host would: a sender that does not name 127.0.0.1 (`IP_MULTICAST_IF`)
/// then sends through the decoy, where a member of the harness joined on it
/// too sees it arrive, and a receiver that joins on any interface joins on
/// the decoy, where `/proc/net/igmp` shows it. Without a decoy (no veth in
/// this kernel, no `ip`), a bare namespace has no multicast route at all,
/// and such programs fail with ENETUNREACH or ENODEV instead: the same
/// scenarios fail, with less to say why. Returns the decoy's address.
///
/// On the host's network (`--isolation none`), whether multicast over
/// loopback works at all is found out once; where it does not, every
/// multicast scenario is an error with that reason, not a failure.
pub fn prepare_multicast(own_netns: bool) -> Result<Option<std::net::Ipv4Addr>, String> {
    if !own_netns {
        return loopback_multicast().clone().map(|()| None);
    }
    let commands = format!(
        "link add sgdecoy0 type veth peer name sgdecoy1\n\
         link set sgdecoy1 up\n\
         link set sgdecoy0 up\n\
         addr add {DECOY_ADDRESS}/24 dev sgdecoy0\n\
         route add 224.0.0.0/4 dev sgdecoy0\n"
    );
    let made = std::process::Command::new("ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().map(|mut i| i.write_all(commands.as_bytes()));
            child.wait_with_output()
        });
    match made {
        Ok(out) if out.status.success() => Ok(Some(DECOY_ADDRESS)),
        // Said where the harness logs, not in a student's report: the
        // scenarios still run, in a bare namespace.
        Ok(out) => {
            tracing::warn!(
                "no decoy interface for multicast: ip: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!("no decoy interface for multicast: could not run ip: {e}");
            Ok(None)
        }
    }
}

/// Whether a datagram sent to a group through 127.0.0.1 reaches a member
/// joined on 127.0.0.1, on the host's network: asked once.
fn loopback_multicast() -> &'static Result<(), String> {
    static FOUND: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        try_loopback_multicast().map_err(|e| {
            format!(
                "multicast over loopback does not work on this machine's network ({e}); \
                 run with network namespaces (as root, `--isolation netns`), where the grader sets it up"
            )
        })
    })
}

fn try_loopback_multicast() -> io::Result<()> {
    use socket2::{Domain, Socket, Type};
    use std::net::{Ipv4Addr, SocketAddr};
    let group = Ipv4Addr::new(239, 83, 255, 254);
    let member = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    member.set_reuse_address(true)?;
    member.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    let port = member.local_addr()?.as_socket().map(|a| a.port()).unwrap_or(0);
    member.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)?;
    member.set_read_timeout(Some(std::time::Duration::from_millis(500)))?;
    let sender = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
    sender.set_multicast_ttl_v4(1)?;
    sender.send_to(b"sockgrade", &SocketAddr::from((group, port)).into())?;
    let mut buf = [std::mem::MaybeUninit::new(0u8); 16];
    let (n, _) = member.recv_from(&mut buf)?;
    if n != 9 {
        return Err(io::Error::other("the datagram came back changed"));
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
