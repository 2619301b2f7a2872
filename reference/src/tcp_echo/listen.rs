//! Opening a listening TCP socket, one system call at a time.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket};

/// How many connections the kernel may hold for us, fully established but not
/// yet returned by `accept`, before it stops completing new handshakes.
///
/// The handout asks for at least 16. We serve up to thousands of clients, and
/// a burst of them may connect in the instant between two `accept` calls, so we
/// ask for more. The kernel silently caps the value at
/// `/proc/sys/net/core/somaxconn` (4096 on current Linux).
pub const BACKLOG: u32 = 1024;

/// Opens a TCP socket listening on `0.0.0.0:port` (every IPv4 address of
/// this machine).
///
/// This is `socket()`, `setsockopt(SO_REUSEADDR)`, `bind()`, `listen()`,
/// written out instead of hidden in `TcpListener::bind`, so that each step
/// can be explained.
pub fn listen(port: u16) -> io::Result<TcpListener> {
    // socket(AF_INET, SOCK_STREAM, 0), already in non-blocking mode, as
    // tokio needs it.
    let socket = TcpSocket::new_v4()?;

    // SO_REUSEADDR: when a server is killed, the connections it had closed
    // stay in TIME_WAIT for a minute or so, and they still use our port.
    // Without this option, bind() fails with EADDRINUSE until they are gone,
    // so a restarted server could not listen on its port at once. With it,
    // the kernel lets us bind as long as nobody else is *listening* there.
    socket.set_reuseaddr(true)?;

    socket.bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;

    // listen() turns the socket into a passive one: from now on the kernel
    // completes handshakes on our behalf and queues the connections until we
    // accept() them.
    socket.listen(BACKLOG)
}
