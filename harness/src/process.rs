//! A program under test, running: its output captured with a cap, its stdin
//! fed from the spec, its end observed as soon as the kernel reports it.

use crate::program_time::Deadline;
use crate::sandbox::{self, Limits};
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch, Notify};

/// What a program wrote on one stream: the head and the tail are kept, the
/// middle only counted, so a program printing forever costs nothing.
#[derive(Debug, Default)]
pub struct Captured {
    pub head: Vec<u8>,
    pub tail: VecDeque<u8>,
    pub total: u64,
}

pub const HEAD_CAP: usize = 4 << 20;
pub const TAIL_CAP: usize = 16 << 10;

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = HEAD_CAP.saturating_sub(self.head.len());
        let (into_head, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(into_head);
        self.tail.extend(rest);
        while self.tail.len() > TAIL_CAP {
            self.tail.pop_front();
        }
    }

    /// Everything, when nothing was dropped.
    pub fn whole(&self) -> Option<Vec<u8>> {
        (self.total as usize == self.head.len() + self.tail.len()).then(|| {
            let mut v = self.head.clone();
            v.extend(&self.tail);
            v
        })
    }

    /// The last `n` bytes kept, for a report.
    pub fn last(&self, n: usize) -> (Vec<u8>, u64) {
        let mut all = self.head.clone();
        all.extend(&self.tail);
        let from = all.len().saturating_sub(n);
        (all[from..].to_vec(), self.total - (all.len() - from) as u64)
    }
}

/// How a program ended, in words a student knows.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited {code}")
    } else if let Some(sig) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or(format!("signal {sig}"));
        let core = if status.core_dumped() { " (core dumped)" } else { "" };
        format!("killed by {name}{core}")
    } else {
        "ended".to_string()
    }
}

/// How a program ended, as the end of a sentence: "it exited with status
/// 1", "it was killed by SIGPIPE".
pub fn ended(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None if status.signal().is_some() => format!("was {}", describe_exit(status)),
        None => "ended".into(),
    }
}

pub struct Running {
    pub name: String,
    pub pid: i32,
    pub stdout: Arc<Mutex<Captured>>,
    pub stderr: Arc<Mutex<Captured>>,
    /// Woken whenever output arrives or the program ends.
    pub changed: Arc<Notify>,
    exit: watch::Receiver<Option<ExitStatus>>,
    /// When the grader learnt of its end (a little after it came).
    ended_at: Arc<std::sync::OnceLock<std::time::SystemTime>>,
    /// True once the program ended and its output pipes are drained.
    drained: watch::Receiver<bool>,
    /// Set when the harness itself asked it to end (stop, kill, restart) or
    /// a passed `expect_exit` waited for that end, so a report can tell an
    /// expected end from a crash.
    pub end_expected: bool,
    /// Its output thread: dropped with the program, the thread stops (a
    /// grandchild may hold the pipes open for ever).
    output: Output,
}

impl Running {
    pub fn spawn(
        name: &str,
        argv: &[String],
        dir: &Path,
        uid: Option<u32>,
        stdin: Option<Vec<u8>>,
        room: &crate::room::Room,
    ) -> std::io::Result<Running> {
        // Registered before the start: a SIGCHLD that comes before the
        // waiter's first look is not lost.
        let mut sigchld = signal(SignalKind::child())?;
        let child = {
            let _no_copy = sandbox::starting();
            sandbox::spawn(&argv[0], &argv[1..], dir, uid, Limits::default(), stdin.is_some(), room)?
        };
        let pid = child.pid;
        // Killed and collected however the waiter ends (an aborted runtime).
        let mut reaped = Reaped(pid, None);
        let changed = Arc::new(Notify::new());
        let stdout = Arc::new(Mutex::new(Captured::default()));
        let stderr = Arc::new(Mutex::new(Captured::default()));
        let (drained_all, output) = drain(
            [child.stdout, child.stderr],
            [stdout.clone(), stderr.clone()],
            changed.clone(),
        )?;
        if let (Some(fd), Some(bytes)) = (child.stdin, stdin) {
            // A program that never reads its input must not block us: the
            // write goes on in its own task and is dropped with the program.
            let mut pipe = pipe::Sender::from_owned_fd(fd)?;
            tokio::spawn(async move {
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            });
        }
        let (tx, rx) = watch::channel(None);
        let (drained_tx, drained) = watch::channel(false);
        let notify = changed.clone();
        let ended_at = Arc::new(std::sync::OnceLock::new());
        let end_seen = ended_at.clone();
        tokio::spawn(async move {
            let status = loop {
                if let Some(status) = reaped.look() {
                    break status;
                }
                if sigchld.recv().await.is_none() {
                    break None;
                }
            };
            // The end is known at once (a dead program must never read as
            // running); its output is complete only once the pipes are
            // drained. Bounded: a grandchild may hold them open.
            let _ = end_seen.set(std::time::SystemTime::now());
            let _ = tx.send(status);
            notify.notify_waiters();
            // In the programs' time: the output thread waits for a CPU too.
            let _ = Deadline::after(Duration::from_millis(500)).within(drained_all).await;
            let _ = drained_tx.send(true);
            notify.notify_waiters();
        });
        Ok(Running {
            name: name.to_string(),
            pid,
            stdout,
            stderr,
            changed,
            exit: rx,
            ended_at,
            drained,
            end_expected: false,
            output,
        })
    }

    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Whether it ended before `at`, as far as the grader knows: it learns
    /// of an end a little after it came, so an end it saw before `at` came
    /// before `at`.
    pub fn ended_before(&self, at: std::time::SystemTime) -> bool {
        self.ended_at.get().is_some_and(|t| *t < at)
    }

    /// Ended, and everything it wrote has been read.
    pub fn output_complete(&self) -> bool {
        *self.drained.borrow()
    }

    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Once it ended: waits until its output is complete (the pipes drained,
    /// itself bounded), so that a report shows the last words it wrote.
    pub async fn output_drained(&self) {
        if self.is_running() {
            return;
        }
        let mut rx = self.drained.clone();
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|d| *d)).await;
    }

    /// Waits for the end, at most `bound`.
    pub async fn wait(&mut self, bound: Duration) -> Option<ExitStatus> {
        self.wait_until(&mut Deadline::after(bound)).await
    }

    /// Waits for the end, until `deadline` passes.
    pub async fn wait_until(&mut self, deadline: &mut Deadline) -> Option<ExitStatus> {
        let mut rx = self.exit.clone();
        let _ = deadline.within(rx.wait_for(|s| s.is_some())).await;
        self.exit_status()
    }

    pub fn output(&self, stream: crate::lang::program::Stream) -> &Arc<Mutex<Captured>> {
        match stream {
            crate::lang::program::Stream::Stdout => &self.stdout,
            crate::lang::program::Stream::Stderr => &self.stderr,
        }
    }

    /// Returns once everything the program wrote until now is in `stdout`
    /// and `stderr`: its pipes hold nothing unread and the output thread is
    /// not between a read and its record. For an observation that pairs
    /// what the program printed with what it did on the wire just after
    /// (a line printed, then a datagram sent). Bounded: a program that
    /// writes on and on is looked at as it is.
    pub async fn output_caught_up(&self) {
        let pending = |fd: &OwnedFd| {
            let mut n: nix::libc::c_int = 0;
            // SAFETY: FIONREAD writes one int, the bytes a pipe holds.
            let rc = unsafe { nix::libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(fd), nix::libc::FIONREAD, &mut n) };
            rc == 0 && n > 0
        };
        for _ in 0..100 {
            let unread = self.output.watch.iter().any(pending);
            if !unread && !self.output.reading.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The last lines of stderr, for a failure report.
    pub fn stderr_tail(&self, bytes: usize) -> String {
        let (tail, dropped) = self.stderr.lock().unwrap_or_else(|e| e.into_inner()).last(bytes);
        let text = String::from_utf8_lossy(&tail).into_owned();
        if dropped > 0 {
            format!("[... {dropped} bytes before]\n{text}")
        } else {
            text
        }
    }
}

/// A child of ours, collected once it ended: `look` collects it if it has.
/// Dropped before that (the scenario's runtime ended while it ran), it is
/// killed and collected in the background, so that it never stays a zombie
/// counted against its user.
struct Reaped(i32, Option<Option<ExitStatus>>);

impl Reaped {
    /// `Some(status)` once it ended (`Some(None)`: collected by someone
    /// else, the status unknown); `None` while it runs.
    fn look(&mut self) -> Option<Option<ExitStatus>> {
        use std::os::unix::process::ExitStatusExt;
        if self.1.is_none() {
            let mut raw = 0;
            // SAFETY: a pid we started; WNOHANG never blocks.
            match unsafe { nix::libc::waitpid(self.0, &mut raw, nix::libc::WNOHANG) } {
                0 => {}
                -1 if std::io::Error::last_os_error().raw_os_error() == Some(nix::libc::EINTR) => {}
                -1 => self.1 = Some(None),
                _ => self.1 = Some(Some(ExitStatus::from_raw(raw))),
            }
        }
        self.1
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.look().is_some() {
            return;
        }
        let pid = self.0;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        std::thread::spawn(move || {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        });
    }
}

/// Reads a program's stdout and stderr on a thread of its own until both
/// end, or until the returned descriptor is dropped. A task on the
/// scenario's runtime would read one pipeful per turn of the runtime, and a
/// runtime busy with 64 connections turns slowly: a program that writes a
/// lot would wait for us, blocked in `write`, and be late for the
/// scenario's bounds. A thread reads at pipe speed whatever the scenario
/// does. The pipes are made larger than the 64 KiB default, for fewer
/// wake-ups (`PIPE_SIZE`).
fn drain(
    pipes: [OwnedFd; 2],
    into: [Arc<Mutex<Captured>>; 2],
    changed: Arc<Notify>,
) -> std::io::Result<(oneshot::Receiver<()>, Output)> {
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    for pipe in &pipes {
        let _ = fcntl(pipe, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    let (stop, stop_draining) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let watch = [pipes[0].try_clone()?, pipes[1].try_clone()?];
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = reading.clone();
    let (done, drained_all) = oneshot::channel();
    let helper = crate::program_time::Scenario::helper();
    let helper_done = helper.clone();
    std::thread::Builder::new().name("output".into()).spawn(move || {
        helper.runs();
        let mut open: Vec<(OwnedFd, Arc<Mutex<Captured>>)> = pipes.into_iter().zip(into).collect();
        let mut buf = vec![0u8; 256 << 10];
        while !open.is_empty() {
            let mut fds = vec![PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
            fds.extend(open.iter().map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
            let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(true)).collect();
            if ready[0] {
                break;
            }
            let mut ended = Vec::new();
            for (i, (fd, captured)) in open.iter().enumerate() {
                if !ready[i + 1] {
                    continue;
                }
                busy.store(true, std::sync::atomic::Ordering::SeqCst);
                match nix::unistd::read(fd, &mut buf) {
                    Ok(0) => ended.push(i),
                    Ok(n) => {
                        captured.lock().unwrap_or_else(|e| e.into_inner()).push(&buf[..n]);
                        changed.notify_waiters();
                    }
                    Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                    Err(_) => ended.push(i),
                }
                busy.store(false, std::sync::atomic::Ordering::SeqCst);
            }
            for i in ended.into_iter().rev() {
                open.remove(i);
            }
        }
        let _ = done.send(());
        helper_done.ended();
    })?;
    Ok((
        drained_all,
        Output {
            _stop: stop_draining,
            watch,
            reading,
        },
    ))
}

/// The size of a program's stdout and stderr pipes: four times the default.
/// Pipes count against their user's limit (`pipe-user-pages-soft`, 64 MiB);
/// 1 MiB ones would reach it with some thirty programs alive at once under
/// `--isolation none`, where the grader and the programs are one user.
const PIPE_SIZE: i32 = 256 << 10;

/// A program's output thread, as its `Running` holds it.
struct Output {
    /// Dropped, the thread's poll wakes and it ends.
    _stop: OwnedFd,
    /// The read ends of stdout and stderr, to ask what they hold.
    watch: [OwnedFd; 2],
    /// Between a read and its record.
    reading: Arc<std::sync::atomic::AtomicBool>,
}
