//! `rpcserver PORT`: answers calculator requests, any number per connection.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

use super::arith::{compute, DivisionByZero};
use super::frame::{append_frame, Frame, FrameReader, TooLong};
use super::message::{Request, Response, REQUEST_LEN};
use crate::tcp_echo::listen::listen;

/// How much one `read` may take from a connection.
const CHUNK: usize = 8 * 1024;

/// Runs the server on `port` until SIGTERM, then returns `Ok(())`.
///
/// An error is returned only if the server cannot start. SIGPIPE cannot kill
/// us: Rust's standard library sets it to "ignore" before `main`, so writing
/// to a vanished client fails with EPIPE, handled like any other error on
/// that connection.
pub async fn run(port: u16) -> io::Result<()> {
    // Install the SIGTERM handler before the port opens (see the echo server).
    let mut sigterm = signal(SignalKind::terminate())?;
    // The same listening socket as the echo server: SO_REUSEADDR, 0.0.0.0,
    // a large backlog.
    let listener = listen(port)?;
    eprintln!("rpcserver: listening on port {port}");

    tokio::select! {
        _ = sigterm.recv() => eprintln!("rpcserver: SIGTERM, exiting"),
        _ = accept_loop(&listener) => {}
    }
    Ok(())
}

/// Accepts connections forever, giving each its own task.
async fn accept_loop(listener: &TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // One task per connection: a silent client blocks nobody else.
                tokio::spawn(async move {
                    if let Err(e) = serve(stream).await {
                        eprintln!("rpcserver: {peer}: {e}");
                    }
                });
            }
            Err(e) => {
                // Not fatal (a connection reset in the backlog, EMFILE...);
                // pause so that a persisting cause does not spin the CPU.
                eprintln!("rpcserver: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers the requests of one connection until the client closes it.
async fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut frames = FrameReader::new(REQUEST_LEN);
    let mut chunk = vec![0u8; CHUNK];
    // The responses to the requests of one read, sent with one write.
    let mut out = Vec::new();
    loop {
        // Answer every whole request we have, in order.
        loop {
            let response = match frames.next_frame() {
                Ok(Some(Frame::Body(body))) => answer(&body),
                // A frame of the wrong length: the reader has consumed (and
                // thrown away) its L bytes, so the next frame starts right
                // after it and the connection stays usable.
                Ok(Some(Frame::Skipped(_))) => Response::BadRequest,
                Ok(None) => break, // need more bytes
                Err(TooLong(len)) => {
                    // Over 1 MiB: no answer to it, and we stop reading this
                    // client. Send the answers to the requests before it,
                    // then close. (Bytes the client sent that we never read
                    // make the kernel end the connection with a reset.)
                    eprintln!("rpcserver: frame of {len} bytes announced, closing");
                    stream.write_all(&out).await?;
                    stream.shutdown().await?;
                    return Ok(());
                }
            };
            append_frame(&mut out, &response.encode());
        }
        // Write before reading more: a client that sends but never reads
        // stops being read from (TCP flow control pushes back on it), and
        // `out` never holds more than the answers to one read's worth.
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // End-of-file: the client is done. Dropping the stream closes it.
            if frames.is_mid_frame() {
                eprintln!("rpcserver: client closed in the middle of a frame");
            }
            return Ok(());
        }
        frames.push(&chunk[..n]);
    }
}

/// The response to a 17-byte request body.
fn answer(body: &[u8]) -> Response {
    match Request::decode(body) {
        None => Response::BadRequest, // unknown opcode
        Some(req) => match compute(req.op, req.a, req.b) {
            Ok(result) => Response::Ok(result),
            Err(DivisionByZero) => Response::DivisionByZero,
        },
    }
}
