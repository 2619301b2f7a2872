//! `udpechoserver PORT`: sends every datagram back to whoever sent it.
//!
//! A UDP server has no connections to accept and no per-client state to keep:
//! one socket receives the datagrams of every client, interleaved, and
//! `recv_from` tells us who sent each one. Replying to *that* address is what
//! makes many clients work at once.

use std::io;
use std::net::Ipv4Addr;

use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};

use super::MAX_DATAGRAM;

/// Serves on `PORT` until SIGTERM, then returns `Ok(())`.
pub async fn run(port: u16) -> io::Result<()> {
    // Install the SIGTERM handler *before* binding: whoever starts us considers
    // us ready as soon as the port is bound, and may send SIGTERM right then.
    // Until a handler exists, SIGTERM's default action would kill us instead of
    // letting us exit with status 0.
    let mut sigterm = signal(SignalKind::terminate())?;
    let socket = bind(port).await?;

    // `serve` never returns; SIGTERM ends the `select!`, which drops the
    // `serve` future (there is nothing to clean up: the socket closes when
    // `socket` goes out of scope).
    tokio::select! {
        () = serve(&socket) => {}
        _ = sigterm.recv() => {}
    }
    Ok(())
}

/// Binds the server's socket to `PORT` on every local address (0.0.0.0).
///
/// Unlike the TCP servers, we do *not* set `SO_REUSEADDR`. A TCP server needs it
/// to restart while its old connections sit in TIME_WAIT; UDP has no
/// connections and no TIME_WAIT, so the port is free again the moment the old
/// process's socket is closed. On a UDP socket, `SO_REUSEADDR` would instead let
/// a second server bind the same port beside us and silently take part of our
/// traffic, which is what multicast receivers want (see `multicast`) and what
/// an echo server does not.
async fn bind(port: u16) -> io::Result<UdpSocket> {
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).await
}

/// The echo loop: receive a datagram, send the same bytes back to its sender.
async fn serve(socket: &UdpSocket) {
    // One byte more than the largest datagram we echo. `recv_from` silently
    // truncates a datagram that does not fit in the buffer (the rest is lost,
    // not kept for the next call), so with a buffer of exactly MAX_DATAGRAM
    // bytes we could not tell a 8192-byte datagram from a bigger one cut short.
    // With one spare byte, `len > MAX_DATAGRAM` means "too big": we drop it
    // rather than echo a copy that is not the same bytes.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (len, sender) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // Nothing a client does can make recv_from fail for good on an
                // unconnected UDP socket; log a transient error and carry on.
                eprintln!("udpechoserver: recv_from: {e}");
                continue;
            }
        };
        if len > MAX_DATAGRAM {
            eprintln!("udpechoserver: dropped a datagram of more than {MAX_DATAGRAM} bytes from {sender}");
            continue;
        }
        // An empty datagram (len == 0) is a datagram too: we answer it with an
        // empty one. (With TCP, reading 0 bytes would mean end of stream.)
        if let Err(e) = socket.send_to(&buf[..len], sender).await {
            // One client's unreachable address must not stop us serving the
            // others: log it and go on with the next datagram.
            eprintln!("udpechoserver: send_to {sender}: {e}");
        }
    }
}
