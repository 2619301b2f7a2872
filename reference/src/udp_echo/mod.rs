//! The UDP echo lab: `udpechoserver PORT` and `udpechoclient HOST PORT`.
//!
//! UDP moves *datagrams*, not a byte stream. Each `send_to` becomes exactly one
//! datagram and each `recv_from` returns exactly one datagram, whole: there is no
//! "partial read" to loop over as with TCP, and no "end of a message" to find,
//! because the datagram *is* the message. The price is that the network may lose,
//! duplicate or reorder datagrams, and nobody tells you. The server does not
//! care (it answers whatever arrives); the client has to (it retransmits and
//! throws away replies that are not the one it waits for).
//!
//! - [`server`]: one socket, one loop, one reply per datagram.
//! - [`client`]: one request at a time, a 500 ms retransmission timer, give up
//!   after 3 retransmissions.

pub mod client;
pub mod server;

/// The largest datagram the lab asks us to echo, in bytes.
pub const MAX_DATAGRAM: usize = 8192;
