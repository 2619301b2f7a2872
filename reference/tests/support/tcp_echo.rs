//! Helpers for the tcp-echo tests: free ports, readiness from /proc, and a guard
//! that kills the programs a test started, even when the test fails.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A port in 20000..30000 (below Linux's ephemeral range, so no client socket
/// of the system can be sitting on it) that nobody is bound to right now.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() ^ (std::process::id() << 8);
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) as u32;
        let port = 20000 + ((seed.wrapping_add(offset.wrapping_mul(7919))) % 10000) as u16;
        if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
}

/// A running program; killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running? (Reaps it if it exited.)
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM (std cannot send signals, so ask kill(1)).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (TERM, STOP, CONT...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the program to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the program did not exit within {limit:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server `exe PORT...` and waits until it listens on `port`.
pub fn start_server(exe: &str, args: &[&str], port: u16) -> Proc {
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut proc = Proc { child };
    wait_listening(&mut proc, port, Duration::from_secs(5));
    proc
}

/// The inodes of the sockets process `pid` holds (from the `socket:[N]` links
/// in /proc/PID/fd).
pub fn socket_inodes(pid: u32) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return inodes;
    };
    for entry in dir.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let target = target.to_string_lossy();
            if let Some(inode) = target.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                if let Ok(inode) = inode.parse() {
                    inodes.insert(inode);
                }
            }
        }
    }
    inodes
}

/// The number of descriptors process `pid` has open.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Does process `pid` own a TCP socket in state LISTEN (0A) on `port`?
pub fn is_listening(pid: u32, port: u16) -> bool {
    let inodes = socket_inodes(pid);
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // Lines: "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ..."
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 9
            && f[3] == "0A"
            && f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
            && f[9].parse::<u64>().is_ok_and(|i| inodes.contains(&i))
    })
}

/// Waits (at most `limit`) until the process listens on `port`, asking the
/// kernel rather than connecting (a probe would be a client of its own).
pub fn wait_listening(proc: &mut Proc, port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !is_listening(proc.pid(), port) {
        assert!(proc.is_running(), "the server exited before it listened");
        assert!(
            Instant::now() < deadline,
            "the server did not listen on {port} within {limit:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (at most `limit`) until `cond` holds, checking every few milliseconds.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a client with `input` on its stdin; returns its output and how long it ran.
/// The client is killed if it runs longer than `limit`.
pub fn run_client(exe: &str, args: &[&str], input: &[u8], limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let mut proc = Proc { child };
    let mut stdin = proc.child.stdin.take().unwrap();
    let input = input.to_vec();
    // Feed stdin from a thread while we drain stdout: a big input and a big
    // output would otherwise block each other.
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = proc.child.stdout.take().unwrap();
    let mut stderr = proc.child.stderr.take().unwrap();
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let pid = proc.pid();
    let watchdog_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = watchdog_done.clone();
    let watchdog = thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    });
    let mut out = Vec::new();
    let _ = stdout.read_to_end(&mut out);
    let status = proc.child.wait().unwrap();
    let elapsed = start.elapsed();
    watchdog_done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    let _ = feeder.join();
    let err = err_reader.join().unwrap();
    (
        Output {
            status,
            stdout: out,
            stderr: err,
        },
        elapsed,
    )
}

/// Asserts that a client failed the way the handout asks: exit 1, one line on stderr.
pub fn assert_failed_with_one_line(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr, got {stderr:?}");
}

/// Closes `s` with a reset: SO_LINGER with a zero timeout makes close() send
/// RST instead of FIN.
pub fn reset(s: std::net::TcpStream) {
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
}
