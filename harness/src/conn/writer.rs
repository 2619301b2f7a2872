//! The writer task of a connection: the grader's writes, in order (sends,
//! then shutdown or close), so that a large send never blocks the steps
//! that read.

use super::Filled;
use crate::escape::os_error;
use crate::program_time::Deadline;
use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

pub(super) enum WriteOp {
    Data {
        bytes: Bytes,
        sizes: Vec<usize>,
        gap: Duration,
        /// Hold back the last partial segment (TCP_CORK) for a shutdown that
        /// follows, so the last bytes and the FIN arrive in one segment.
        cork: bool,
        done: Option<oneshot::Sender<()>>,
    },
    Shutdown,
    Close,
    /// Write until the program's window closes (see `Conn::push_until_full`).
    Fill {
        at_most: usize,
        deadline: Deadline,
        done: oneshot::Sender<Result<Filled, String>>,
    },
}

/// Marks a writer operation done when dropped.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Hands an operation to the writer task, counted as pending until done.
pub(super) fn queue(tx: &mpsc::UnboundedSender<WriteOp>, pending: &AtomicUsize, op: WriteOp) -> bool {
    pending.fetch_add(1, Ordering::SeqCst);
    if tx.send(op).is_err() {
        pending.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

pub(super) async fn writer(
    stream: Arc<TcpStream>,
    mut ops: mpsc::UnboundedReceiver<WriteOp>,
    error: Arc<std::sync::Mutex<Option<String>>>,
    reset: Arc<std::sync::atomic::AtomicBool>,
    pending: Arc<AtomicUsize>,
) {
    write_ops(stream, &mut ops, error, reset, pending.clone()).await;
    // Stopped by a failed write or a close: what is still queued will never
    // be written, and must not count as pending (else `written` stays false
    // and every later barrier waits on it).
    ops.close();
    while ops.try_recv().is_ok() {
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the queued operations in order until one fails or closes.
async fn write_ops(
    stream: Arc<TcpStream>,
    ops: &mut mpsc::UnboundedReceiver<WriteOp>,
    error: Arc<std::sync::Mutex<Option<String>>>,
    reset: Arc<std::sync::atomic::AtomicBool>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(op) = ops.recv().await {
        // Done when this operation ends, however it ends.
        let _done = Done(&pending);
        match op {
            WriteOp::Data {
                bytes,
                sizes,
                gap,
                cork,
                done,
            } => {
                if cork {
                    // The shutdown queued behind these bytes uncorks: the
                    // kernel then sends the last bytes and the FIN together.
                    let _ = socket2::SockRef::from(stream.as_ref()).set_tcp_cork(true);
                }
                let mut offset = 0;
                for (i, size) in sizes.iter().enumerate() {
                    if i > 0 && !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    if let Err(e) = write_all(&stream, &bytes[offset..offset + size]).await {
                        // EPIPE too: the reset came in while nothing was
                        // being sent, and the write is the first to meet it.
                        if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) {
                            reset.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        let text = format!("write failed after {offset} of {} bytes: {}", bytes.len(), os_error(&e));
                        *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                        return;
                    }
                    offset += size;
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            WriteOp::Shutdown => {
                let _ = socket2::SockRef::from(stream.as_ref()).shutdown(std::net::Shutdown::Write);
            }
            WriteOp::Close => return,
            WriteOp::Fill {
                at_most,
                deadline,
                done,
            } => {
                let result = push_until_full(&stream, at_most, deadline).await;
                if let Err(e) = &result {
                    if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) {
                        reset.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let _ = done.send(result.map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut => e.to_string(),
                    _ => format!("write failed: {}", os_error(&e)),
                }));
            }
        }
    }
}

/// Writes text lines until the send buffer is full and the peer's window is
/// closed, or `at_most` bytes were written.
async fn push_until_full(stream: &TcpStream, at_most: usize, mut deadline: Deadline) -> io::Result<Filled> {
    const LINE: &[u8] = b"filling every buffer between us until you stop reading\n";
    let chunk: Vec<u8> = LINE.repeat((64 << 10) / LINE.len());
    // The handshake advertised a window: a kernel that reports it shows it
    // open now. Zero here means the kernel does not report it.
    let reports_window = peer_window(stream).is_some_and(|w| w > 0);
    let mut written = 0;
    while written < at_most {
        let offset = written % chunk.len();
        let n = (at_most - written).min(chunk.len() - offset);
        match stream.try_write(&chunk[offset..offset + n]) {
            Ok(k) => {
                written += k;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        // The send buffer is full. Done if the program's window is closed
        // too; else write again once the buffer drains, looking at the
        // window every millisecond meanwhile (no event says it closed).
        loop {
            if reports_window && peer_window(stream) == Some(0) {
                return Ok(Filled {
                    written,
                    window_closed: true,
                });
            }
            if deadline.passed() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the program kept reading without sending back ({} taken) until the bound passed",
                        crate::escape::bytes(written)
                    ),
                ));
            }
            if let Ok(ready) = tokio::time::timeout(Duration::from_millis(1), stream.writable()).await {
                ready?;
                break;
            }
        }
    }
    Ok(Filled {
        written,
        window_closed: false,
    })
}

/// The receive window the peer advertised last (TCP_INFO `tcpi_snd_wnd`,
/// Linux 5.19 and later); `None` where the kernel has no TCP_INFO.
fn peer_window(stream: &TcpStream) -> Option<u32> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a plain
    // C struct for which all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // An older kernel fills fewer bytes: a window it did not write is unknown.
    let end = std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd) + 4;
    (rc == 0 && len as usize >= end).then_some(info.tcpi_snd_wnd)
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
