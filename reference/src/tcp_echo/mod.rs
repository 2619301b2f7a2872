//! Lab "TCP echo": a concurrent echo server and a line-by-line echo client.
//!
//! What this lab teaches, and where to look:
//!
//! - [`listen`]: how a server socket is set up (`SO_REUSEADDR`, `bind`, the
//!   listen backlog) and why each step is there.
//! - [`server`]: one task per connection, a loop around `read` because TCP is a
//!   byte stream (one `read` returns any part of what was sent), back-pressure
//!   (write what you read before reading more), half-close (end-of-file means
//!   "the client will send nothing more", not "the client is gone").
//! - [`client`]: resolving a host name, connecting, sending a line and reading
//!   until its whole echo has arrived, giving up when the server makes no
//!   progress for a while.
//!
//! The binaries `echoserver` and `echoclient` (in `src/bin/`) only parse the
//! command line and call [`server::run`] and [`client::run`].

pub mod client;
pub mod listen;
pub mod server;
