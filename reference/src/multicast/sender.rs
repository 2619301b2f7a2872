//! `mcastsend GROUP PORT`: sends each line of stdin as one datagram to the group.

use std::io::{self, BufRead};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use super::INTERFACE;

/// Sends every line of stdin (without its `\n`) to `group`:`port`; returns
/// `Ok(())` at the end of stdin.
pub fn run(group: Ipv4Addr, port: u16) -> io::Result<()> {
    let socket = open()?;
    let destination = SocketAddrV4::new(group, port);

    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            return Ok(()); // end of input
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        // One line, one datagram. The sender never joins the group: sending to
        // a group needs no membership.
        socket.send_to(&line, destination)?;
    }
}

/// Opens the sending socket. It needs no bind(): the kernel picks a local port
/// at the first send.
fn open() -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;

    // IP_MULTICAST_IF: send multicast through the interface whose address is
    // 127.0.0.1 (lo), instead of wherever the routing table sends the group
    // address (often the default route, or nowhere: "Network is unreachable").
    socket.set_multicast_if_v4(&INTERFACE)?;

    // IP_MULTICAST_TTL 1: no router forwards our datagrams off the local
    // network. 1 is also Linux's default for multicast; we set it anyway,
    // because the lab is about knowing the knob.
    socket.set_multicast_ttl_v4(1)?;

    // IP_MULTICAST_LOOP: deliver a copy to the group's members on this host.
    // On by default; our receivers are on this host, so it must stay on.
    socket.set_multicast_loop_v4(true)?;

    Ok(socket.into())
}
