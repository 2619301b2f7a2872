//! One datagram endpoint of the harness: a UDP socket towards the program
//! under test (as its client, its server, a member of its multicast group,
//! or a sender to that group).
//!
//! Every datagram is read with `recvmsg`, so that what the kernel knows of
//! it comes along: when it arrived (SO_TIMESTAMPNS, stamped as it arrived,
//! so a busy harness that reads late still measures a retransmission
//! interval right), and on a group member's socket its TTL (IP_RECVTTL) and
//! the interface it came through (IP_PKTINFO).

use crate::program_time::Deadline;
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// What an endpoint is to the program, which says where its datagrams go
/// and where the ones it expects come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `udp_open`: a client of the program's `{port}`.
    Client,
    /// `udp_bind`: the server for a client under test; answers its last sender.
    Server,
    /// `join`: a member of the group on 127.0.0.1, hearing a sender under test.
    Member,
    /// `multicast_sender`: sends to the group through 127.0.0.1, TTL 1.
    Sender,
}

/// One datagram that arrived.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub bytes: Vec<u8>,
    pub from: SocketAddr,
    /// When the kernel took it in (the socket's time stamp), or when it was
    /// read where the kernel gives none.
    pub arrived: SystemTime,
    /// The IP TTL, on a member's socket.
    pub ttl: Option<i32>,
    /// The interface it came through, on a member's socket.
    pub interface: Option<u32>,
    /// It was longer than the buffer (MSG_TRUNC): never for a datagram of IPv4.
    pub truncated: bool,
}

pub struct Endpoint {
    pub name: String,
    pub role: Role,
    socket: std::sync::Arc<UdpSocket>,
    /// Where `send_datagram` goes: the program's port, the group, or (for
    /// the server role) the sender of the last datagram received.
    pub peer: Option<SocketAddr>,
    /// The bytes of the last datagram sent, for `expect_datagram: { echo: true }`.
    pub last_sent: Option<Vec<u8>>,
    /// When the last datagram arrived, for `interval`.
    pub last_arrival: Option<SystemTime>,
    /// The threads' counts when the last datagram was taken (an `interval`'s
    /// upper bound leaves out what a busy machine took).
    pub last_mark: Option<crate::program_time::Mark>,
    /// A datagram read, and found to have arrived after the step that read
    /// it was over (see `hold`): the next read takes it.
    held: Option<Datagram>,
}

/// One more byte than the largest IPv4 datagram: a read never cuts one.
const BUFFER: usize = 65_536;

impl Endpoint {
    /// A client of `127.0.0.1:port`, on a port the kernel chooses.
    pub fn client(name: &str, port: u16) -> io::Result<Endpoint> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Endpoint::new(name, Role::Client, socket, Some(server))
    }

    /// The server for a client under test, on `port`: one dual-stack socket
    /// on `::`, so a client that resolves `localhost` to 127.0.0.1 or to ::1
    /// finds it (every address of the scenario's namespace; 127.0.0.1 alone
    /// where there is no IPv6).
    pub fn server(name: &str, port: u16) -> io::Result<Endpoint> {
        let dual = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
            s.set_only_v6(false)?;
            s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
            Ok(s)
        });
        let socket = match dual {
            Ok(s) => s,
            Err(_) => {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
                s
            }
        };
        Endpoint::new(name, Role::Server, socket, None)
    }

    /// A member of `group` on the interface 127.0.0.1, bound to `port` of
    /// any address beside the programs under test (SO_REUSEADDR), reading
    /// each datagram's TTL and interface.
    ///
    /// Where the scenario has a decoy interface, the member joins there too:
    /// a sender that did not name 127.0.0.1 sends through the decoy, and the
    /// datagram is then heard, and told apart by its interface.
    pub fn member(name: &str, group: Ipv4Addr, port: u16, decoy: Option<Ipv4Addr>) -> io::Result<Endpoint> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
        socket.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)?;
        if let Some(decoy) = decoy {
            socket.join_multicast_v4(&group, &decoy)?;
        }
        socket::setsockopt(&socket, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
        socket::setsockopt(&socket, sockopt::Ipv4RecvTtl, &true).map_err(io::Error::from)?;
        Endpoint::new(name, Role::Member, socket, None)
    }

    /// A sender to `group`:`port` through 127.0.0.1, TTL 1.
    pub fn sender(name: &str, group: Ipv4Addr, port: u16) -> io::Result<Endpoint> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
        socket.set_multicast_ttl_v4(1)?;
        socket.set_multicast_loop_v4(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        let peer = SocketAddr::V4(SocketAddrV4::new(group, port));
        Endpoint::new(name, Role::Sender, socket, Some(peer))
    }

    fn new(name: &str, role: Role, socket: Socket, peer: Option<SocketAddr>) -> io::Result<Endpoint> {
        socket.set_nonblocking(true)?;
        // Not every kernel stamps datagrams; the time of the read stands in.
        let _ = socket::setsockopt(&socket, sockopt::ReceiveTimestampns, &true);
        Ok(Endpoint {
            name: name.to_string(),
            role,
            socket: std::sync::Arc::new(UdpSocket::from_std(socket.into())?),
            peer,
            last_sent: None,
            last_arrival: None,
            last_mark: None,
            held: None,
        })
    }

    /// The socket alone, for a relay that reads it in the background.
    pub fn into_socket(self) -> std::sync::Arc<UdpSocket> {
        self.socket
    }

    /// The harness's own address, to tell its endpoints apart in reports.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok().map(canonical)
    }

    /// Sends `bytes` to `to` as one datagram.
    pub async fn send_to(&mut self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        let to = self.outgoing(to);
        let sent = self.socket.send_to(bytes, to).await?;
        if sent != bytes.len() {
            return Err(io::Error::other(format!("sent {sent} of {} bytes", bytes.len())));
        }
        self.last_sent = Some(bytes.to_vec());
        Ok(())
    }

    /// Sends `bytes` to `to` `copies` times, `gap` apart, in the background:
    /// later steps run meanwhile (a client under test is fed stale replies
    /// while the scenario waits for its resend).
    pub fn send_in_background(&mut self, bytes: Vec<u8>, to: SocketAddr, copies: usize, gap: Duration) {
        let socket = self.socket.clone();
        let to = self.outgoing(to);
        self.last_sent = Some(bytes.clone());
        tokio::spawn(async move {
            for i in 0..copies {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                // A failed send is a lost datagram: the scenario notices
                // what the program did without it.
                let _ = socket.send_to(&bytes, to).await;
            }
        });
    }

    fn outgoing(&self, to: SocketAddr) -> SocketAddr {
        for_socket(&self.socket, to)
    }

    /// Gives back a datagram for the next read: the kernel's stamp says it
    /// came after the span the read was for, and only a grader that got its
    /// turn on a CPU late read it within the span.
    pub fn hold(&mut self, datagram: Datagram) {
        self.held = Some(datagram);
    }

    /// The next datagram, if one arrives before `deadline` passes.
    pub async fn recv(&mut self, deadline: &mut Deadline) -> io::Result<Option<Datagram>> {
        if let Some(held) = self.held.take() {
            return Ok(Some(held));
        }
        let got = deadline
            .within(self.socket.async_io(Interest::READABLE, || read_one(&self.socket)))
            .await;
        let datagram = match got {
            None => return Ok(None),
            Some(result) => result?,
        };
        if self.role == Role::Server {
            self.peer = Some(datagram.from);
        }
        Ok(Some(datagram))
    }
}

/// One `recvmsg`, with its control messages.
fn read_one(socket: &UdpSocket) -> io::Result<Datagram> {
    let mut buffer = vec![0u8; BUFFER];
    let mut control = nix::cmsg_space!(libc_timespec, nix::libc::in_pktinfo, i32);
    let mut iov = [IoSliceMut::new(&mut buffer)];
    let msg = socket::recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let mut arrived = None;
    let mut ttl = None;
    let mut interface = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::ScmTimestampns(t) => {
                arrived = Some(SystemTime::UNIX_EPOCH + Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32));
            }
            ControlMessageOwned::Ipv4Ttl(t) => ttl = Some(t),
            ControlMessageOwned::Ipv4PacketInfo(info) => interface = Some(info.ipi_ifindex as u32),
            _ => {}
        }
    }
    let from = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port()))))
        })
        .map(canonical)
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    let len = msg.bytes;
    buffer.truncate(len);
    Ok(Datagram {
        bytes: buffer,
        from,
        arrived: arrived.unwrap_or_else(SystemTime::now),
        ttl,
        interface,
        truncated,
    })
}

#[allow(non_camel_case_types)]
type libc_timespec = nix::libc::timespec;

/// `to` as `socket` can write to it: a dual-stack socket writes to IPv4
/// peers as mapped addresses.
pub fn for_socket(socket: &UdpSocket, to: SocketAddr) -> SocketAddr {
    match (socket.local_addr(), to) {
        (Ok(SocketAddr::V6(_)), SocketAddr::V4(v4)) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        _ => to,
    }
}

/// An IPv4 address as itself, not mapped into IPv6.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// The name of interface `index` (`lo`), as the kernel calls it.
pub fn interface_name(index: u32) -> String {
    nix::net::if_::if_indextoname(index)
        .ok()
        .and_then(|n| n.into_string().ok())
        .unwrap_or_else(|| format!("interface {index}"))
}

/// The index of `lo`.
pub fn loopback_index() -> Option<u32> {
    nix::net::if_::if_nametoindex("lo").ok()
}
