//! Helpers shared by the udp-echo and multicast tests: free ports, readiness
//! read from /proc (never a sleep), and a guard that kills and reaps the
//! programs a test started, also when the test fails.

#![allow(dead_code)] // each test file uses its own subset

include!("tool.rs");

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the bounded waits below look again. Polling the kernel's state
/// is not sleeping to synchronise: we never assume anything happened because
/// time passed, we look until it has.
const POLL: Duration = Duration::from_millis(2);

/// A pseudo-random number, different for each call, test process and run.
pub fn random() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let mut x = nanos ^ (std::process::id() << 16) ^ COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed);
    // xorshift32 scrambles the bits
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x
}

/// A random port in 20000..30000 (below Linux's ephemeral range, so no
/// client socket is sitting on it by chance).
fn random_port() -> u16 {
    20000 + (random() % 10000) as u16
}

/// A UDP port in 20000..30000 that nobody on this host is bound to right now.
pub fn free_udp_port() -> u16 {
    loop {
        let port = random_port();
        if UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
}

/// A UDP socket bound to 127.0.0.1 on a random port in 20000..30000: a test
/// peer playing the server. Returns it with its port.
pub fn bind_peer() -> (UdpSocket, u16) {
    loop {
        let port = random_port();
        if let Ok(socket) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) {
            return (socket, port);
        }
    }
}

/// Looks at `probe` until it returns `Some`, at most `limit`; panics with
/// `what` if it never does.
pub fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(POLL);
    }
}

/// The inodes of the sockets that process `pid` holds (its /proc/<pid>/fd
/// links read `socket:[INODE]`).
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Is a UDP socket of process `pid` bound to `port`? Read from the process's
/// own view, /proc/<pid>/net/udp, which is the table of *its* network
/// namespace.
pub fn udp_bound(pid: u32, port: u16) -> bool {
    let inodes = socket_inodes(pid);
    let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/udp")) else {
        return false;
    };
    // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when
    //  retrnsmt   uid  timeout inode ..."; local_address is HEXIP:HEXPORT.
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bound_port = fields
            .get(1)
            .and_then(|local| local.split(':').nth(1))
            .and_then(|hex| u16::from_str_radix(hex, 16).ok());
        let inode = fields.get(9).and_then(|inode| inode.parse::<u64>().ok());
        bound_port == Some(port) && inode.is_some_and(|inode| inodes.contains(&inode))
    })
}

/// Waits (at most `limit`) until process `pid` has a UDP socket bound to `port`.
pub fn wait_udp_bound(pid: u32, port: u16, limit: Duration) {
    wait_for(limit, &format!("process {pid} bound to UDP port {port}"), || {
        udp_bound(pid, port).then_some(())
    });
}

/// How many sockets joined `group` on device `lo`, from /proc/<pid>/net/igmp
/// (the table of the network namespace process `pid` lives in).
///
/// The file lists each device, then its groups indented below it; a group is
/// the 32-bit address as it lies in memory (network byte order) printed as a
/// host-order hex number, so 239.1.2.3 reads `030201EF` on a little-endian
/// machine; `Users` counts the sockets that joined.
pub fn igmp_users_on_lo(pid: u32, group: Ipv4Addr) -> Option<u32> {
    let table = fs::read_to_string(format!("/proc/{pid}/net/igmp")).ok()?;
    igmp_users_in(&table, group)
}

/// The same, parsed from the text of an igmp table.
pub fn igmp_users_in(table: &str, group: Ipv4Addr) -> Option<u32> {
    let wanted = format!("{:08X}", u32::from_ne_bytes(group.octets()));
    let mut device = String::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(char::is_whitespace) {
            // "1	lo        :     2      V3": a device line
            device = fields.get(1).unwrap_or(&"").to_string();
        } else if device == "lo" && fields.first() == Some(&wanted.as_str()) {
            return fields.get(1)?.parse().ok();
        }
    }
    None
}

/// A program the test started. Dropping it kills and reaps it.
pub struct Proc {
    pub child: Child,
    stdout: Option<Receiver<Vec<u8>>>,
    /// Everything read from stdout so far (when collecting).
    pub out: Vec<u8>,
    stderr: tempfile::NamedTempFile,
}

impl Proc {
    /// Starts `command` with stdin and stdout as pipes and stderr into a file.
    /// Stdout is not read until `collect_stdout` is called.
    pub fn spawn(mut command: Command) -> Proc {
        let stderr = tempfile::NamedTempFile::new().expect("temp file");
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen temp file"))
            .spawn()
            .expect("start the program");
        Proc {
            child,
            stdout: None,
            out: Vec::new(),
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().expect("stdin still open")
    }

    /// Writes `bytes` to the program's stdin.
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        self.stdin().write_all(bytes).expect("write to stdin");
    }

    /// Closes the program's stdin: it sees end of input.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Starts a thread that reads the program's stdout as it comes.
    pub fn collect_stdout(&mut self) {
        let mut pipe = self.child.stdout.take().expect("stdout not yet taken");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                if sender.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        self.stdout = Some(receiver);
    }

    /// Waits (at most `limit`) until stdout has produced at least `len` bytes;
    /// returns all bytes so far (possibly more than `len`).
    pub fn wait_stdout_len(&mut self, len: usize, limit: Duration) -> &[u8] {
        let deadline = Instant::now() + limit;
        let receiver = self.stdout.as_ref().expect("collect_stdout first");
        while self.out.len() < len {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(chunk) => self.out.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "stdout: wanted {len} bytes within {limit:?}, got {:?}",
                    String::from_utf8_lossy(&self.out)
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "stdout closed after {:?}, wanted {len} bytes",
                    String::from_utf8_lossy(&self.out)
                ),
            }
        }
        &self.out
    }

    /// Waits until stdout is closed (the program exited), at most `limit`;
    /// returns everything it wrote.
    pub fn wait_stdout_eof(&mut self, limit: Duration) -> &[u8] {
        let deadline = Instant::now() + limit;
        let receiver = self.stdout.as_ref().expect("collect_stdout first");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(chunk) => self.out.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Disconnected) => return &self.out,
                Err(RecvTimeoutError::Timeout) => panic!("stdout not closed within {limit:?}"),
            }
        }
    }

    /// What the program wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Sends SIGTERM (std cannot send signals; kill(1) can).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the program to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let pid = self.pid();
        wait_for(limit, &format!("process {pid} exits"), || {
            self.child.try_wait().expect("try_wait")
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
