//! The http lab: a small web server (`httpd PORT DOCROOT`) and a web client
//! (`httpget URL`), speaking HTTP/1.1 as RFC 9110 and RFC 9112 describe it.
//!
//! HTTP is an application protocol on top of a TCP byte stream. TCP gives us
//! bytes, not messages, so the first job of both programs is *framing*:
//! finding where a message ends.
//!
//! - The **head** of a message (start line and header fields) ends at the
//!   first empty line (`\r\n\r\n`). Until that line has arrived we keep reading
//!   and keep what we read; see [`request`] for the server side and [`client`]
//!   for the client side.
//! - The **body** follows the head, and its end is told by the head:
//!   `Content-Length` bytes, or the chunked transfer coding (each chunk says
//!   its own size), or, for a response that has neither, the server closing
//!   the connection.
//!
//! The modules, one job each:
//!
//! - [`request`]: the server finds and parses one request head (on `httparse`).
//! - [`path`]: the request target becomes a file under the document root,
//!   and never a file outside it.
//! - [`mime`]: the `Content-Type` for a file name.
//! - [`response`]: the bytes of a response head, and the short error pages.
//! - [`date`]: the `Date` header's format (an "HTTP-date").
//! - [`server`]: the `httpd` event loop (tokio): accept, keep-alive,
//!   pipelining, timeouts, streaming files.
//! - [`url`]: `http://HOST[:PORT]/PATH` taken apart.
//! - [`client`]: `httpget`: one request, one response, the body to stdout.

pub mod client;
pub mod date;
pub mod mime;
pub mod path;
pub mod request;
pub mod response;
pub mod server;
pub mod url;
