//! The multicast lab: `mcastrecv GROUP PORT` and `mcastsend GROUP PORT`.
//!
//! A multicast datagram is sent once, to a *group* address (224.0.0.0/4; the
//! lab uses the administratively scoped 239.0.0.0/8), and the network delivers
//! a copy to every socket that joined the group on the interface it arrived
//! on. The sender needs no membership and does not know who listens.
//!
//! Everything runs on one host over the loopback interface, so both sides name
//! that interface explicitly by its address, 127.0.0.1:
//!
//! - [`receiver`]: joins the group *on* 127.0.0.1 (`IP_ADD_MEMBERSHIP`);
//!   joining on "any" interface would let the kernel pick one by route lookup
//!   of the group address, usually the default route's interface, not `lo`.
//! - [`sender`]: sends *through* 127.0.0.1 (`IP_MULTICAST_IF`), for the same
//!   reason: without it the kernel routes the group address like any other.

use std::net::Ipv4Addr;

pub mod receiver;
pub mod sender;

/// The address of the interface that both sides use: the loopback one.
pub const INTERFACE: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Parses `GROUP`: a dotted IPv4 address in the multicast range 224.0.0.0/4.
pub fn parse_group(text: &str) -> Result<Ipv4Addr, String> {
    match text.parse::<Ipv4Addr>() {
        Ok(group) if group.is_multicast() => Ok(group),
        Ok(_) => Err(format!("{text} is not a multicast address (224.0.0.0/4)")),
        Err(_) => Err(format!("{text} is not a dotted IPv4 address")),
    }
}
