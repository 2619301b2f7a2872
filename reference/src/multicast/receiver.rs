//! `mcastrecv GROUP PORT`: joins `GROUP` and prints every datagram it receives.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncWriteExt, Stdout};
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};

use super::INTERFACE;

/// A buffer as big as the largest UDP payload over IPv4 (65507 bytes): no
/// datagram is ever truncated, so each is printed whole.
const RECV_BUFFER: usize = 65536;

/// Receives and prints datagrams sent to `group`:`port` until SIGTERM, then
/// leaves the group and returns `Ok(())`.
pub async fn run(group: Ipv4Addr, port: u16) -> io::Result<()> {
    // Handle SIGTERM before we look ready (bound and joined), so a SIGTERM
    // sent as soon as we are ready is ours to handle and not a kill.
    let mut sigterm = signal(SignalKind::terminate())?;
    let socket = open(group, port)?;

    let result = tokio::select! {
        result = print_datagrams(&socket) => result,
        _ = sigterm.recv() => Ok(()),
    };

    // Leave the group before exiting. Strictly, closing the socket would do
    // it too: the kernel drops a socket's memberships when the socket is
    // closed, also when a process dies without cleaning up. Saying it
    // explicitly shows the pair of calls: IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP.
    socket.leave_multicast_v4(group, INTERFACE)?;
    result
}

/// Opens the receiving socket: bound to `PORT` on any address, member of
/// `group` on the loopback interface.
fn open(group: Ipv4Addr, port: u16) -> io::Result<UdpSocket> {
    // socket2 rather than `UdpSocket::bind`: SO_REUSEADDR must be set *before*
    // bind(), and std binds in the same call that creates the socket.
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;

    // Several receivers on one host all bind the same port, one socket each.
    // Without SO_REUSEADDR the second bind() fails with EADDRINUSE. With it
    // (set on *every* such socket), they share the port and the kernel hands
    // each multicast datagram to every one of them. (For unicast datagrams to
    // a shared port only one socket would get each: that is why the echo
    // server does not set it.)
    socket.set_reuse_address(true)?;

    // Bind to the port on any address (0.0.0.0): the kernel delivers a
    // datagram to this socket if its destination port matches and the socket
    // (or, with several, some socket) joined its group.
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;

    // IP_ADD_MEMBERSHIP: join `group` on the interface whose address is
    // 127.0.0.1 (lo). The membership belongs to this socket; it shows in
    // /proc/net/igmp under `lo`.
    socket.join_multicast_v4(&group, &INTERFACE)?;

    socket.set_nonblocking(true)?; // tokio needs a non-blocking socket
    UdpSocket::from_std(socket.into())
}

/// Writes each datagram's bytes, then `\n`, to stdout, flushed at once.
async fn print_datagrams(socket: &UdpSocket) -> io::Result<()> {
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (len, _sender) = socket.recv_from(&mut buf).await?;
        // The bytes as they came: binary ones too, and an empty datagram gives
        // an empty line.
        print_line(&mut stdout, &buf[..len]).await?;
    }
}

async fn print_line(stdout: &mut Stdout, bytes: &[u8]) -> io::Result<()> {
    stdout.write_all(bytes).await?;
    stdout.write_all(b"\n").await?;
    // Flush now, not when we exit: whoever reads our output (a pipe, so not
    // line buffered) wants each datagram as it arrives.
    stdout.flush().await
}
