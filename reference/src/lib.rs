//! The reference programs of the sockgrade labs, written to be read.
//!
//! Each lab has its own module; the binaries under `src/bin/` are thin `main`
//! functions that parse the command line and call into these modules.

pub mod http;
pub mod multicast;
pub mod proxy;
pub mod rpc;
pub mod tcp_echo;
pub mod udp_echo;
