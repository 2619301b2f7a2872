//! The proxy lab: a caching web proxy (`proxy PORT`), as CS:APP's proxylab
//! asks for it. A browser sends the proxy `GET http://host:port/path
//! HTTP/1.1`; the proxy fetches `/path` from that origin server with a
//! request of its own, relays the answer byte for byte, and keeps small
//! answers in memory to serve them again without the origin.
//!
//! It is written the way the lab is taught, with one thread per client and
//! blocking sockets, rather than the event loop of the http reference: the
//! point of the lab is the threads and the cache they share.
//!
//! The modules, one job each:
//!
//! - [`uri`]: `http://HOST[:PORT][/PATH]` taken apart.
//! - [`request`]: the client's request head read, and the origin's request
//!   written from it (which header fields are kept, replaced or added).
//! - [`cache`]: the shared cache: a size bound, a per-object bound, least
//!   recently used eviction, safe to use from every thread.
//! - [`server`]: accept, a thread per client, relay, store.

pub mod cache;
pub mod request;
pub mod server;
pub mod uri;

/// The most bytes of objects the cache holds (the handout's
/// `MAX_CACHE_SIZE`).
pub const MAX_CACHE_SIZE: usize = 1_049_000;

/// The largest object the cache keeps (`MAX_OBJECT_SIZE`). We count the
/// whole response, head and body, since that is what we store and serve.
pub const MAX_OBJECT_SIZE: usize = 102_400;
