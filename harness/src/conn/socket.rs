//! The grader's sockets: its listeners for a client under test, and its
//! connections to a server under test.

use std::io;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The harness's listening sockets for a client under test: 127.0.0.1, and
/// ::1 where IPv6 exists, so a client that resolves `localhost` to ::1 first
/// is served too. Loopback only, whatever the isolation.
pub struct Listener {
    v4: TcpListener,
    v6: Option<TcpListener>,
    /// A port of its own, chosen by the kernel (`listen: { port: own }`),
    /// which a spec names `{port:NAME}`.
    pub own_port: bool,
}

impl Listener {
    /// Listens on `port`; on a port the kernel chooses when it is 0 (the
    /// same number on ::1, where it is free).
    pub fn bind(port: u16) -> io::Result<Listener> {
        let v4 = TcpSocket::new_v4()?;
        v4.set_reuseaddr(true)?;
        v4.bind(([127, 0, 0, 1], port).into())?;
        let port = v4.local_addr()?.port();
        let v6 = TcpSocket::new_v6().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))?;
            s.listen(128)
        });
        Ok(Listener {
            v4: v4.listen(128)?,
            v6: v6.ok(),
            own_port: false,
        })
    }

    pub fn port(&self) -> u16 {
        self.v4.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub async fn accept(&self) -> io::Result<(TcpStream, std::net::SocketAddr)> {
        match &self.v6 {
            Some(v6) => tokio::select! {
                r = self.v4.accept() => r,
                r = v6.accept() => r,
            },
            None => self.v4.accept().await,
        }
    }
}

/// Connects to `addr`, usually without a trip through the event loop: on
/// loopback the kernel completes the handshake within `connect` itself,
/// though a non-blocking connect still answers EINPROGRESS; the socket then
/// already has its peer. Only a handshake still under way (a full backlog)
/// waits for the socket to become writable. (A `connect: { count: 64 }`
/// spent 2.5 ms, 40 us a connection, mostly in those trips.)
pub async fn connect(addr: std::net::SocketAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    loop {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        if stream.peer_addr().is_ok() {
            return Ok(stream);
        }
        stream.writable().await?;
        // Not connected yet after all: wait for the next event, not this one.
        let _ = stream.try_io(tokio::io::Interest::WRITABLE, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
}
