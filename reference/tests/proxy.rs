//! Integration tests of the proxy lab's reference, the way CS:APP's driver
//! checks a proxy: curl fetches through it from a real origin (Python's
//! http.server) and the bytes are compared with a direct fetch; the cache
//! is checked by fetching again once the origin is gone. Plus a client
//! whose origin never answers, which must delay nobody.

#[path = "support/http.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use support::*;

fn start_proxy() -> Server {
    start_server(env!("CARGO_BIN_EXE_proxy"), |port| vec![port.to_string()])
}

/// `curl` through the proxy, or straight to the origin without one.
fn curl(url: &str, proxy: Option<u16>) -> Vec<u8> {
    let mut command = tool("curl");
    command.args(["-s", "--fail", "--max-time", "15"]);
    if let Some(port) = proxy {
        command.args(["--proxy", &format!("http://127.0.0.1:{port}")]);
    }
    let output = run(command.arg(url), Duration::from_secs(20));
    assert!(output.status.success(), "curl {url}: {output:?}");
    output.stdout
}

#[test]
fn curl_through_the_proxy_gets_what_it_gets_directly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.txt"), "a small page\n").unwrap();
    std::fs::write(dir.path().join("big.bin"), all_bytes(3 << 20)).unwrap();
    let origin = start_python_server(dir.path());
    let proxy = start_proxy();
    for name in ["small.txt", "big.bin"] {
        let url = format!("http://127.0.0.1:{}/{name}", origin.port);
        assert!(
            curl(&url, Some(proxy.port)) == curl(&url, None),
            "{name} differs through the proxy"
        );
    }
}

#[test]
fn a_cached_page_is_served_once_its_origin_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cached.bin"), all_bytes(50_000)).unwrap();
    std::fs::write(dir.path().join("huge.bin"), all_bytes(200_000)).unwrap();
    let origin = start_python_server(dir.path());
    let proxy = start_proxy();
    let cached = format!("http://127.0.0.1:{}/cached.bin", origin.port);
    let huge = format!("http://127.0.0.1:{}/huge.bin", origin.port);
    // Read to the proxy's close, which comes once it has stored the object
    // (curl would stop at Content-Length, maybe before that).
    let whole = |url: &str| {
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        write!(client, "GET {url} HTTP/1.0\r\n\r\n").unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).unwrap();
        response
    };
    whole(&cached);
    assert!(whole(&huge).ends_with(&all_bytes(200_000)));
    drop(origin);
    assert!(
        curl(&cached, Some(proxy.port)) == all_bytes(50_000),
        "the cached copy differs"
    );
    let mut command = tool("curl");
    command.args([
        "-s",
        "--fail",
        "--max-time",
        "15",
        "--proxy",
        &format!("http://127.0.0.1:{}", proxy.port),
        &huge,
    ]);
    let output = run(&mut command, Duration::from_secs(20));
    assert!(!output.status.success(), "an object over 102,400 bytes was cached");
}

#[test]
fn an_origin_that_never_answers_delays_no_other_client() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.txt"), "served\n").unwrap();
    let origin = start_python_server(dir.path());
    let proxy = start_proxy();
    // An origin that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut stuck = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    write!(stuck, "GET http://127.0.0.1:{silent_port}/never HTTP/1.0\r\n\r\n").unwrap();
    let (mut upstream, _) = silent.accept().unwrap();
    let mut head = [0u8; 4096];
    let n = upstream.read(&mut head).unwrap();
    assert!(
        head[..n].starts_with(b"GET /never HTTP/1.0\r\n"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    let url = format!("http://127.0.0.1:{}/page.txt", origin.port);
    assert_eq!(curl(&url, Some(proxy.port)), b"served\n");
}
