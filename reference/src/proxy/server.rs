//! `proxy PORT`: accept clients, each on a thread of its own.
//!
//! A client's thread reads its request, answers it from the cache or from
//! the origin, and closes. Everything it opened is closed when the thread's
//! values are dropped, on every path out, errors included: that is how the
//! proxy leaks no descriptor.
//!
//! Rust's runtime ignores SIGPIPE before `main`, so writing to a client that
//! is gone fails with EPIPE (or ECONNRESET) instead of killing the process;
//! a C proxy must call `signal(SIGPIPE, SIG_IGN)` itself.

use super::cache::Cache;
use super::request::{self, HeadError};
use super::uri;
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

/// Listens on `port` (every IPv4 address) and serves clients until killed.
pub fn run(port: u16) -> io::Result<()> {
    // std sets SO_REUSEADDR on a listener: a restart binds the port at once.
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    let cache = Arc::new(Cache::new(super::MAX_CACHE_SIZE, super::MAX_OBJECT_SIZE));
    for client in listener.incoming() {
        let client = match client {
            Ok(client) => client,
            // A client that reset before we accepted it, or no descriptor
            // left for now: serve the next one.
            Err(e) => {
                eprintln!("proxy: accept: {e}");
                continue;
            }
        };
        let cache = Arc::clone(&cache);
        let spawned = thread::Builder::new().spawn(move || serve(client, &cache));
        if let Err(e) = spawned {
            // The client is dropped (closed) with the closure.
            eprintln!("proxy: no thread for a client: {e}");
        }
    }
    Ok(())
}

/// One client: one request, one response, then close.
fn serve(client: TcpStream, cache: &Cache) {
    let Ok(reading) = client.try_clone() else { return };
    let mut reader = BufReader::new(reading);
    let mut client = client;
    let request = match request::read_head(&mut reader) {
        Ok(request) => request,
        Err(HeadError::Gone) => return,
        Err(HeadError::Malformed(why)) => return answer(&mut client, "400 Bad Request", &why),
    };
    if request.method != "GET" {
        return answer(&mut client, "501 Not Implemented", "only GET is proxied");
    }
    let uri = match uri::parse(&request.uri) {
        Ok(uri) => uri,
        Err(why) => return answer(&mut client, "400 Bad Request", &why),
    };

    // The key is the URI as the client wrote it.
    if let Some(object) = cache.get(&request.uri) {
        let _ = client.write_all(&object);
        return;
    }

    // `connect` tries each address the name resolves to, in turn.
    let mut origin = match TcpStream::connect((uri.host.as_str(), uri.port)) {
        Ok(origin) => origin,
        Err(e) => {
            return answer(
                &mut client,
                "502 Bad Gateway",
                &format!("cannot reach {}: {e}", uri.authority),
            )
        }
    };
    if let Err(e) = origin.write_all(&request::origin_request(&request, &uri)) {
        return answer(
            &mut client,
            "502 Bad Gateway",
            &format!("cannot send to {}: {e}", uri.authority),
        );
    }
    if let Some(object) = relay(&mut origin, &mut client, cache.max_object()) {
        // An origin that closed without a word, or answered something that
        // is not HTTP, is not worth keeping: the next client should get a
        // fresh try at it.
        if object.starts_with(b"HTTP/") {
            cache.insert(&request.uri, object);
        }
    }
}

/// Copies the origin's response to the client as it arrives, until the
/// origin closes. Returns all the origin sent if it is small enough to
/// cache and the origin closed normally; `None` if it was too large, the
/// origin reset, or the client left (then we stop at once: nobody wants
/// the rest). A body cut short of its Content-Length is not noticed: the
/// proxy relays bytes, it does not parse responses.
fn relay(origin: &mut TcpStream, client: &mut TcpStream, max_object: usize) -> Option<Vec<u8>> {
    let mut buffer = [0u8; 16 * 1024];
    let mut object = Some(Vec::new());
    loop {
        let n = match origin.read(&mut buffer) {
            Ok(0) => return object,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A reset origin: the client got what came; nothing is stored.
            Err(_) => return None,
        };
        client.write_all(&buffer[..n]).ok()?;
        // Once the object passes the limit, stop keeping it (and free what
        // was kept) but go on relaying.
        if let Some(kept) = &mut object {
            if kept.len() + n <= max_object {
                kept.extend_from_slice(&buffer[..n]);
            } else {
                object = None;
            }
        }
    }
}

/// A short error response, for a request the proxy can't serve.
fn answer(client: &mut TcpStream, status: &str, why: &str) {
    let body = format!("proxy: {why}\n");
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The client may be gone already; there is nobody to tell then.
    let _ = client.write_all(head.as_bytes());
    let _ = client.write_all(body.as_bytes());
}
