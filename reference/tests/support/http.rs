//! Helpers for the http lab's integration tests: starting servers and
//! waiting for them (by asking the kernel, never by sleeping), killing
//! them whatever happens, and speaking raw HTTP on a socket.

#![allow(dead_code)]

include!("tool.rs");

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when dropped, also when the
/// test panics.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port in 20000..30000 (below the kernel's ephemeral range, so no
/// outgoing connection holds it) that was free a moment ago. Callers retry
/// with another one if a server then fails to bind it.
pub fn pick_port() -> u16 {
    loop {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let port = 20000 + (hasher.finish() % 10000) as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// The inodes of the TCP sockets listening on `port`, as the network
/// namespace of `pid` sees them (`/proc/PID/net/tcp` and `tcp6`).
fn listening_inodes(pid: u32, port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        // Columns: sl local_address rem_address st ... uid timeout inode
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let local_port = fields[1].rsplit(':').next().unwrap_or("");
            let listening = fields[3] == "0A"; // TCP_LISTEN
            if listening && u16::from_str_radix(local_port, 16) == Ok(port) {
                inodes.push(fields[9].to_string());
            }
        }
    }
    inodes
}

/// Whether process `pid` owns a socket listening on `port`: one of the
/// listening inodes is among its descriptors (`/proc/PID/fd/N` is a link to
/// `socket:[INODE]`).
pub fn is_listening(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(pid, port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|target| {
                let target = target.to_string_lossy();
                inodes.iter().any(|inode| target == format!("socket:[{inode}]"))
            })
            .unwrap_or(false)
    })
}

/// Waits until `proc` listens on `port`. `Err` if it exits first or does
/// not listen within `bound` (an upper bound: a ready server returns at
/// once).
pub fn wait_listening(proc: &mut Proc, port: u16, bound: Duration) -> Result<(), String> {
    let deadline = Instant::now() + bound;
    loop {
        if is_listening(proc.pid(), port) {
            return Ok(());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(format!("exited before listening: {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("not listening on {port} after {bound:?}"));
        }
        thread::sleep(Duration::from_millis(5)); // polling the kernel's tables
    }
}

/// A running server and its port.
pub struct Server {
    pub proc: Proc,
    pub port: u16,
}

/// Starts `command` (to which `args(port)` are appended) on a free port and
/// waits until it listens. Retries with another port if the chosen one was
/// taken in between.
pub fn start_server(program: &str, args: impl Fn(u16) -> Vec<String>) -> Server {
    let mut last = String::new();
    for _ in 0..5 {
        let port = pick_port();
        let child = Command::new(program)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let mut proc = Proc { child };
        match wait_listening(&mut proc, port, Duration::from_secs(10)) {
            Ok(()) => return Server { proc, port },
            Err(e) => last = e,
        }
    }
    panic!("{program} did not start: {last}");
}

/// `httpd PORT DOCROOT`.
pub fn start_httpd(docroot: &Path) -> Server {
    let docroot = docroot.to_string_lossy().into_owned();
    start_server(env!("CARGO_BIN_EXE_httpd"), move |port| {
        vec![port.to_string(), docroot.clone()]
    })
}

/// `python3 -m http.server` serving `dir` on 127.0.0.1.
pub fn start_python_server(dir: &Path) -> Server {
    let dir = dir.to_string_lossy().into_owned();
    start_server("python3", move |port| {
        [
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            &dir,
            &port.to_string(),
        ]
        .map(String::from)
        .to_vec()
    })
}

/// Runs a command to completion, with `bound` as an upper bound (the child
/// is killed after it). Stdout and stderr are read by `wait_with_output`
/// in its own thread, so a child writing megabytes does not block on a full
/// pipe.
pub fn run(command: &mut Command, bound: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(bound) {
        Ok(output) => output.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("{command:?} still running after {bound:?}");
        }
    }
}

/// `httpget URL`.
pub fn httpget(url: &str) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_httpget")).arg(url),
        Duration::from_secs(20),
    )
}

/// `python3 -c SCRIPT ARGS...`: the script reports by its exit status, and
/// what it printed is shown if it fails.
pub fn python(script: &str, args: &[&str]) {
    let output = run(
        tool("python3").arg("-c").arg(script).args(args),
        Duration::from_secs(20),
    );
    assert!(
        output.status.success(),
        "python script failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A connection to 127.0.0.1:`port` with an upper bound on every read.
pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A response as the tests see it, parsed by hand, independently of the
/// code under test.
#[derive(Debug)]
pub struct Response {
    pub status_line: String,
    pub code: u16,
    /// (lower-case name, value)
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response: the head up to the empty line, then exactly
/// `Content-Length` body bytes (none if `head_only`: the answer to `HEAD`).
/// Bytes of later responses stay in `pending`.
pub fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> Response {
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).expect("read response head");
        assert!(
            n > 0,
            "EOF inside a response head: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(pending[..head_end - 4].to_vec()).expect("ASCII head");
    pending.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap().to_string();
    let code = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().expect("Content-Length number"))
        .expect("every response has a Content-Length");
    let length = if head_only { 0 } else { length };
    while pending.len() < length {
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).expect("read body");
        assert!(n > 0, "EOF inside a body");
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending.drain(..length).collect();
    Response {
        status_line,
        code,
        headers,
        body,
    }
}

/// Sends `request` and reads one response.
pub fn exchange(stream: &mut TcpStream, request: &[u8]) -> Response {
    stream.write_all(request).unwrap();
    let mut pending = Vec::new();
    let response = read_response(stream, &mut pending, request.starts_with(b"HEAD"));
    assert!(pending.is_empty(), "extra bytes after the response");
    response
}

/// Whether the server closes the connection: reads until EOF (true), an
/// error such as a reset (true), or `bound` passing (false). Data read is
/// thrown away.
pub fn closes_within(stream: &mut TcpStream, bound: Duration) -> bool {
    stream.set_read_timeout(Some(bound)).unwrap();
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

/// The number of open descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A one-connection test server on 127.0.0.1 (port chosen by the kernel, so
/// it cannot collide). `handler` gets the accepted connection and the
/// request head it read; the join handle returns that head.
pub fn test_server<F>(handler: F) -> (u16, thread::JoinHandle<String>)
where
    F: FnOnce(&mut TcpStream, &str) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).unwrap_or(0) == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        handler(&mut stream, &head);
        head
    });
    (port, handle)
}

/// Writes `bytes` in pieces of `size`, each its own TCP segment (no Nagle),
/// with a short gap so that the peer's reads see them apart.
pub fn write_in_pieces(stream: &mut TcpStream, bytes: &[u8], size: usize, gap: Duration) {
    for piece in bytes.chunks(size) {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
        thread::sleep(gap);
    }
}

/// `len` bytes: the 256 byte values in order, then pseudo-random bytes (so
/// that a piece lost or repeated anywhere changes the content).
pub fn all_bytes(len: usize) -> Vec<u8> {
    let mut state: u32 = 12345;
    (0..len)
        .map(|i| {
            if i < 256 {
                return i as u8;
            }
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect()
}
