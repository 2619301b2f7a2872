//! Integration tests of the http lab's reference programs, against
//! independent peers: curl, Python's http.client and http.server, and
//! hand-written bytes on raw sockets.

#[path = "support/http.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const BIG: usize = 3 * 1024 * 1024 + 17;
const SECRET: &str = "TOPSECRET";

/// A document root with one file of each kind, inside a directory that also
/// holds a file the server must never serve.
struct Site {
    _dir: tempfile::TempDir,
    www: PathBuf,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("sub/deeper")).unwrap();
    let files: &[(&str, &[u8])] = &[
        ("index.html", b"<h1>home</h1>\n"),
        ("hello.txt", b"hello, world\n"),
        ("a b.txt", b"a space\n"),
        ("page.htm", b"<p>htm</p>"),
        ("style.css", b"body{}"),
        ("app.js", b"let x;"),
        ("data.json", b"{}"),
        ("pic.png", b"\x89PNG"),
        ("pic.jpg", b"\xff\xd8"),
        ("pic.jpeg", b"\xff\xd8\xff"),
        ("anim.gif", b"GIF89a"),
        ("logo.svg", b"<svg/>"),
        ("blob.bin", b"\x00\x01"),
        ("noext", b"plain"),
        ("empty.txt", b""),
        ("sub/index.html", b"<h1>sub</h1>\n"),
        ("sub/deeper/index.html", b"deeper"),
        ("sub/file.txt", b"in sub\n"),
    ];
    for (name, bytes) in files {
        std::fs::write(www.join(name), bytes).unwrap();
    }
    std::fs::write(www.join("big.dat"), all_bytes(BIG)).unwrap();
    std::os::unix::fs::symlink("../secret.txt", www.join("link.txt")).unwrap();
    Site { _dir: dir, www }
}

fn curl(args: &[&str]) -> std::process::Output {
    run(
        support::tool("curl").args(["-s", "--max-time", "15"]).args(args),
        Duration::from_secs(20),
    )
}

// ---------------------------------------------------------------- httpd

#[test]
fn curl_gets_a_binary_file_byte_for_byte() {
    let site = site();
    let server = start_httpd(&site.www);
    let out = tempfile::tempdir().unwrap();
    let body = out.path().join("body");
    let headers = out.path().join("headers");
    let url = format!("http://127.0.0.1:{}/big.dat", server.port);
    let output = curl(&["-D", headers.to_str().unwrap(), "-o", body.to_str().unwrap(), &url]);
    assert!(output.status.success(), "curl: {output:?}");
    assert!(std::fs::read(&body).unwrap() == all_bytes(BIG), "body differs");
    let headers = std::fs::read_to_string(&headers).unwrap().to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 200 ok\r\n"), "{headers}");
    assert!(headers.contains(&format!("content-length: {BIG}\r\n")), "{headers}");
    assert!(
        headers.contains("content-type: application/octet-stream\r\n"),
        "{headers}"
    );
}

#[test]
fn python_client_keep_alive_types_head_index_query() {
    let site = site();
    let server = start_httpd(&site.www);
    // One HTTPConnection: every request below goes over the same connection
    // (checked by the socket object staying the same).
    let script = r#"
import http.client, sys, os
port, www = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.connect()
sock = c.sock
def get(path, method="GET", body=None):
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    assert c.sock is sock, "connection was not kept alive after " + path
    return r, data
def read(name):
    return open(os.path.join(www, name), "rb").read()

types = {"index.html": "text/html", "page.htm": "text/html", "hello.txt": "text/plain",
         "style.css": "text/css", "app.js": "text/javascript", "data.json": "application/json",
         "pic.png": "image/png", "pic.jpg": "image/jpeg", "pic.jpeg": "image/jpeg",
         "anim.gif": "image/gif", "logo.svg": "image/svg+xml", "blob.bin": "application/octet-stream",
         "noext": "application/octet-stream", "empty.txt": "text/plain"}
for name, ctype in types.items():
    r, data = get("/" + name)
    assert r.status == 200, (name, r.status)
    assert r.getheader("Content-Type") == ctype, (name, r.getheader("Content-Type"))
    assert data == read(name), name
    assert r.getheader("Content-Length") == str(len(data)), name

# HEAD: same status and headers, no body (http.client knows not to read one,
# so a body sent anyway would corrupt the next response).
g, gdata = get("/hello.txt")
h, hdata = get("/hello.txt", "HEAD")
assert h.status == 200 and hdata == b""
for field in ("Content-Type", "Content-Length"):
    assert h.getheader(field) == g.getheader(field), field
h, hdata = get("/nope.txt", "HEAD")
assert h.status == 404 and hdata == b""
assert int(h.getheader("Content-Length")) > 0

# Directories serve index.html, with or without the slash.
for path, name in [("/", "index.html"), ("/sub", "sub/index.html"), ("/sub/", "sub/index.html"),
                   ("/sub/deeper", "sub/deeper/index.html"), ("/index.html", "index.html")]:
    r, data = get(path)
    assert r.status == 200 and data == read(name), path
    assert r.getheader("Content-Type") == "text/html", path

# Query ignored, target percent-decoded.
r, data = get("/hello.txt?x=1&y=/../secret")
assert r.status == 200 and data == read("hello.txt")
r, data = get("/a%20b.txt")
assert r.status == 200 and data == read("a b.txt")
r, data = get("/%68ello.txt")
assert r.status == 200 and data == read("hello.txt")
r, data = get("/sub%2ffile.txt")
assert r.status == 200 and data == read("sub/file.txt")

# Missing file: 404 with a short HTML body, exact length.
r, data = get("/missing.html")
assert r.status == 404, r.status
assert b"<html" in data.lower() and len(data) < 1024, data
assert r.getheader("Content-Length") == str(len(data))

# Other methods: 501, connection still usable (a body is skipped).
for method, body in [("DELETE", None), ("POST", b"x=1&y=2"), ("PUT", b"abc"), ("OPTIONS", None)]:
    r, data = get("/hello.txt", method, body)
    assert r.status == 501, (method, r.status)
    assert r.getheader("Content-Length") == str(len(data))
r, data = get("/hello.txt")
assert r.status == 200 and data == read("hello.txt")
print("ok")
"#;
    python(script, &[&server.port.to_string(), site.www.to_str().unwrap()]);
}

#[test]
fn traversal_never_leaves_docroot() {
    let site = site();
    let server = start_httpd(&site.www);
    let base = format!("http://127.0.0.1:{}", server.port);
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/./../secret.txt",
        "/link.txt", // a symbolic link pointing out of the document root
    ] {
        // --path-as-is: curl would otherwise remove the dots itself.
        let output = curl(&["--path-as-is", "-w", "\n%{http_code}", &format!("{base}{path}")]);
        let text = String::from_utf8_lossy(&output.stdout);
        let code = text.rsplit('\n').next().unwrap();
        assert!(code == "403" || code == "404", "{path}: status {code}");
        assert!(!text.contains(SECRET), "{path} served the secret");
    }
    // Also raw, in case a client "helps": a target that is not a path.
    let mut stream = connect(server.port);
    let response = exchange(&mut stream, b"GET ../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.code, 400);
    // A `..` that stays inside is fine.
    let mut stream = connect(server.port);
    let response = exchange(&mut stream, b"GET /sub/../hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((response.code, response.body.as_slice()), (200, &b"hello, world\n"[..]));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let site = site();
    let server = start_httpd(&site.www);
    let mut stream = connect(server.port);
    // Five requests in one write; the server must answer each, in order.
    let requests = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
                     HEAD /sub/ HTTP/1.1\r\nHost: x\r\n\r\n\
                     GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
                     GET /big.dat HTTP/1.1\r\nHost: x\r\n\r\n\
                     GET /data.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(requests).unwrap();
    let mut pending = Vec::new();
    let r = read_response(&mut stream, &mut pending, false);
    assert_eq!((r.code, r.body.as_slice()), (200, &b"hello, world\n"[..]));
    let r = read_response(&mut stream, &mut pending, true);
    assert_eq!(r.code, 200);
    assert_eq!(r.header("content-length"), Some("13"));
    let r = read_response(&mut stream, &mut pending, false);
    assert_eq!(r.code, 404);
    let r = read_response(&mut stream, &mut pending, false);
    assert_eq!(r.code, 200);
    assert!(r.body == all_bytes(BIG));
    let r = read_response(&mut stream, &mut pending, false);
    assert_eq!((r.code, r.body.as_slice()), (200, &b"{}"[..]));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(pending.is_empty());
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
}

#[test]
fn request_head_one_byte_at_a_time() {
    let site = site();
    let server = start_httpd(&site.www);
    let mut stream = connect(server.port);
    let request = b"GET /sub/file.txt HTTP/1.1\r\nHost: localhost\r\nX-Long: abcdef\r\n\r\n";
    write_in_pieces(&mut stream, request, 1, Duration::from_millis(2));
    let mut pending = Vec::new();
    let r = read_response(&mut stream, &mut pending, false);
    assert_eq!((r.code, r.body.as_slice()), (200, &b"in sub\n"[..]));
    // The connection is still usable.
    let r = exchange(&mut stream, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.code, 200);
}

#[test]
fn oversized_head_gets_431_and_close() {
    let site = site();
    let server = start_httpd(&site.www);
    // A whole head of 10 KiB in one write.
    let mut stream = connect(server.port);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(10 * 1024));
    let r = exchange(&mut stream, request.as_bytes());
    assert!(r.code == 431 || r.code == 400, "{}", r.status_line);
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
    // Header bytes that never end: refused as soon as they pass the limit.
    let mut stream = connect(server.port);
    stream.write_all(b"GET / HTTP/1.1\r\nX-Endless: ").unwrap();
    stream.write_all(&vec![b'b'; 9 * 1024]).unwrap();
    let mut pending = Vec::new();
    let r = read_response(&mut stream, &mut pending, false);
    assert_eq!(r.code, 431, "{}", r.status_line);
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
}

#[test]
fn malformed_requests_get_400_and_close() {
    let site = site();
    let server = start_httpd(&site.www);
    for request in [
        &b"garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / FTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\n\r\n",
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
    ] {
        let mut stream = connect(server.port);
        let r = exchange(&mut stream, request);
        assert_eq!(r.code, 400, "{:?}", String::from_utf8_lossy(request));
        assert!(
            closes_within(&mut stream, Duration::from_secs(5)),
            "no close after {:?}",
            String::from_utf8_lossy(request)
        );
    }
    // Garbage after a good request on the same connection: the good one is
    // answered, then 400.
    let mut stream = connect(server.port);
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\n\r\nthis is not http\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    assert_eq!(read_response(&mut stream, &mut pending, false).code, 200);
    assert_eq!(read_response(&mut stream, &mut pending, false).code, 400);
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
    // The server is still there.
    let r = exchange(&mut connect(server.port), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.code, 200);
}

#[test]
fn other_methods_get_501() {
    let site = site();
    let server = start_httpd(&site.www);
    let mut stream = connect(server.port);
    for method in ["DELETE", "POST", "PUT", "PATCH", "BREW", "get"] {
        let request = format!("{method} /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = exchange(&mut stream, request.as_bytes());
        assert_eq!(r.code, 501, "{method}");
        assert_eq!(r.header("content-length").unwrap(), r.body.len().to_string());
    }
    // A body in chunked coding: we do not decode request bodies, so we
    // cannot find the next request: answered, then closed.
    let request = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let r = exchange(&mut stream, request);
    assert_eq!(r.code, 501);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
}

#[test]
fn http10_closes_unless_keep_alive_and_11_close() {
    let site = site();
    let server = start_httpd(&site.www);
    // HTTP/1.0: closed after the response.
    let mut stream = connect(server.port);
    let r = exchange(&mut stream, b"GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(r.code, 200);
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
    // HTTP/1.0 with keep-alive: stays open.
    let mut stream = connect(server.port);
    for _ in 0..3 {
        let r = exchange(
            &mut stream,
            b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        );
        assert_eq!(r.code, 200);
    }
    // HTTP/1.1: stays open until `Connection: close`.
    let mut stream = connect(server.port);
    for _ in 0..3 {
        assert_eq!(exchange(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").code, 200);
    }
    let r = exchange(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.code, 200);
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
}

#[test]
fn idle_connection_is_kept_at_least_5_seconds() {
    let site = site();
    let server = start_httpd(&site.www);
    let mut stream = connect(server.port);
    assert_eq!(exchange(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").code, 200);
    // Waiting is the point of this test: the connection must survive 5 s of
    // silence.
    assert!(
        !closes_within(&mut stream, Duration::from_millis(5300)),
        "closed before 5 s"
    );
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(exchange(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").code, 200);
}

#[test]
fn slow_client_delays_nobody_and_many_connections() {
    let site = site();
    let server = start_httpd(&site.www);
    let port = server.port;
    // One client sends its request one byte every 100 ms (about 3 s)...
    let slow = thread::spawn(move || {
        let mut stream = connect(port);
        let request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
        write_in_pieces(&mut stream, request, 1, Duration::from_millis(100));
        let mut pending = Vec::new();
        read_response(&mut stream, &mut pending, false).code
    });
    // ...while 64 others, connected at the same time, are each served.
    let started = Instant::now();
    let mut streams: Vec<_> = (0..64).map(|_| connect(port)).collect();
    for stream in &mut streams {
        stream
            .write_all(b"GET /sub/file.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    for stream in &mut streams {
        let mut pending = Vec::new();
        assert_eq!(read_response(stream, &mut pending, false).code, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "64 clients took {:?} next to a slow one",
        started.elapsed()
    );
    assert!(!slow.is_finished(), "the slow client should still be sending");
    assert_eq!(slow.join().unwrap(), 200);

    // A thousand connections open at once, all served.
    let mut streams: Vec<_> = (0..1000).map(|_| connect(port)).collect();
    for stream in &mut streams {
        stream.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    }
    for stream in &mut streams {
        let mut pending = Vec::new();
        assert_eq!(read_response(stream, &mut pending, false).code, 200);
    }
}

#[test]
fn survives_clients_that_vanish_and_frees_descriptors() {
    let site = site();
    let server = start_httpd(&site.www);
    let baseline = fd_count(server.proc.pid());
    for reset in [false, true, false, true] {
        let mut stream = connect(server.port);
        stream.write_all(b"GET /big.dat HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut first = [0u8; 1000];
        stream.read_exact(&mut first).unwrap();
        if reset {
            // SO_LINGER with a zero timeout: close() sends a reset (RST).
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        drop(stream); // mid-download: the server's next writes fail (EPIPE)
    }
    // Connected, sent half a request, gone.
    let mut stream = connect(server.port);
    stream.write_all(b"GET /hello").unwrap();
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    // Connected and gone without a word.
    drop(connect(server.port));

    let mut stream = connect(server.port);
    let r = exchange(&mut stream, b"GET /big.dat HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.code == 200 && r.body == all_bytes(BIG));
    drop(stream);
    // Every connection's descriptor is closed once its client is gone
    // (polled: the server notices the last close asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fd_count(server.proc.pid()) > baseline {
        assert!(
            Instant::now() < deadline,
            "descriptors: {} now, {baseline} at start",
            fd_count(server.proc.pid())
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_exits_0_and_restarts_on_the_same_port() {
    let site = site();
    let mut server = start_httpd(&site.www);
    // A connection the server closes: its side goes to TIME_WAIT.
    let mut stream = connect(server.port);
    assert_eq!(exchange(&mut stream, b"GET / HTTP/1.0\r\n\r\n").code, 200);
    assert!(closes_within(&mut stream, Duration::from_secs(5)));

    let pid = server.proc.pid().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(status) = server.proc.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running 3 s after SIGTERM");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");

    // Restart on the same port at once (SO_REUSEADDR).
    let docroot = site.www.to_string_lossy().into_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_httpd"))
        .args([server.port.to_string(), docroot])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut again = Proc { child };
    wait_listening(&mut again, server.port, Duration::from_secs(5)).expect("restart");
    assert_eq!(exchange(&mut connect(server.port), b"GET / HTTP/1.0\r\n\r\n").code, 200);
}

// -------------------------------------------------------------- httpget

fn stderr_line(output: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(text.lines().count(), 1, "not one line on stderr: {text:?}");
    text.trim_end().to_string()
}

#[test]
fn httpget_against_python_http_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.dat"), all_bytes(BIG)).unwrap();
    let server = start_python_server(dir.path());
    // Python answers with HTTP/1.0, Content-Length, then closes.
    let output = httpget(&format!("http://localhost:{}/big.dat", server.port));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout == all_bytes(BIG), "body differs");
    let output = httpget(&format!("http://127.0.0.1:{}/nothing", server.port));
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(stderr_line(&output), "HTTP/1.0 404 File not found");
}

#[test]
fn httpget_against_our_httpd() {
    let site = site();
    let server = start_httpd(&site.www);
    let output = httpget(&format!("http://localhost:{}/big.dat", server.port));
    assert!(output.status.success());
    assert!(output.stdout == all_bytes(BIG));
    let output = httpget(&format!("http://127.0.0.1:{}/sub", server.port));
    assert_eq!(output.stdout, b"<h1>sub</h1>\n");
}

#[test]
fn httpget_request_and_fragmented_response() {
    let body = all_bytes(3000);
    let response = [
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body.clone(),
    ]
    .concat();
    let (port, server) = test_server(move |stream, _head| {
        // The head one byte at a time, the body in pieces of 7.
        let head_len = response.len() - 3000;
        write_in_pieces(stream, &response[..head_len], 1, Duration::from_millis(1));
        write_in_pieces(stream, &response[head_len..], 7, Duration::ZERO);
    });
    let output = httpget(&format!("http://localhost:{port}/some/path.txt?q=1"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout == body);
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /some/path.txt?q=1 HTTP/1.1\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains(&format!("\r\nhost: localhost:{port}\r\n")), "{head}");
    assert!(lower.contains("\r\nconnection: close\r\n"), "{head}");
}

#[test]
fn httpget_stops_after_content_length_on_open_connection() {
    let (port, server) = test_server(|stream, _| {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
            .unwrap();
        // Keep the connection open until the client closes it (an upper
        // bound guards against a client that never does).
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = [0u8; 16];
        let _ = stream.read(&mut sink);
    });
    let started = Instant::now();
    let output = httpget(&format!("http://127.0.0.1:{port}/"));
    assert!(output.status.success());
    assert_eq!(output.stdout, b"hello");
    assert!(started.elapsed() < Duration::from_secs(5), "waited for the close");
    server.join().unwrap();
}

#[test]
fn httpget_decodes_chunked_with_extensions_and_trailers() {
    let body = all_bytes(70_000);
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n".to_vec();
    let mut rest = &body[..];
    for (i, size) in [1usize, 16, 255, 4096, 65536].iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let size = (*size).min(rest.len());
        let ext = if i % 2 == 0 { ";name=value;flag" } else { "" };
        response.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
        response.extend_from_slice(&rest[..size]);
        response.extend_from_slice(b"\r\n");
        rest = &rest[size..];
    }
    response.extend_from_slice(b"0;last\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n");
    let (port, server) = test_server(move |stream, _| {
        write_in_pieces(stream, &response, 1000, Duration::ZERO);
        // and close right after the last byte
    });
    let output = httpget(&format!("http://127.0.0.1:{port}/"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout == body, "chunked body differs");
    server.join().unwrap();
}

#[test]
fn httpget_reads_until_close_without_length() {
    let body = all_bytes(100_000);
    let response = [
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec(),
        body.clone(),
    ]
    .concat();
    let (port, server) = test_server(move |stream, _| {
        write_in_pieces(stream, &response, 9000, Duration::ZERO);
    });
    let output = httpget(&format!("http://127.0.0.1:{port}/"));
    assert!(output.status.success());
    assert!(output.stdout == body);
    server.join().unwrap();
}

/// httpget against a server that sends `response` then closes: exit 1 and
/// one line on stderr.
fn httpget_fails_on(response: &'static [u8]) -> String {
    let (port, server) = test_server(move |stream, _| {
        stream.write_all(response).unwrap();
    });
    let output = httpget(&format!("http://127.0.0.1:{port}/x"));
    server.join().unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{:?}: {}",
        String::from_utf8_lossy(response),
        String::from_utf8_lossy(&output.stderr)
    );
    stderr_line(&output)
}

#[test]
fn httpget_status_other_than_200() {
    let line = httpget_fails_on(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!");
    assert_eq!(line, "HTTP/1.1 404 Not Found");
    let line = httpget_fails_on(b"HTTP/1.1 301 Moved Permanently\r\nLocation: /y\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(line, "HTTP/1.1 301 Moved Permanently");
}

#[test]
fn httpget_truncated_bodies() {
    httpget_fails_on(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
    httpget_fails_on(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc");
    httpget_fails_on(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    httpget_fails_on(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n");
    httpget_fails_on(b"");
}

#[test]
fn httpget_malformed_responses() {
    for response in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
    ] {
        httpget_fails_on(response);
    }
}

#[test]
fn httpget_refused_and_bad_urls() {
    // A port that was just free: nobody listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = httpget(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(output.status.code(), Some(1));
    stderr_line(&output);
    for url in [
        "ftp://127.0.0.1/",
        "http://127.0.0.1:99999/",
        "nonsense",
        "http://no-such-host.invalid/",
    ] {
        let output = httpget(url);
        assert_eq!(output.status.code(), Some(1), "{url}");
        stderr_line(&output);
    }
}

/// Port 80 without colliding with anything: in a network namespace of our
/// own (`unshare -n`, which needs root or user namespaces), where a Python
/// test server binds 127.0.0.1:80 *before* it starts httpget, so no waiting
/// is needed.
#[test]
fn httpget_default_port_80_in_a_network_namespace() {
    let probe = support::tool("unshare").args(["-n", "true"]).status();
    if !probe.map(|s| s.success()).unwrap_or(false) {
        eprintln!("skipped: cannot create a network namespace here");
        return;
    }
    let script = r#"
import socket, subprocess, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 80))
listener.listen(1)
child = subprocess.Popen([sys.argv[1], "http://localhost/index.html"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
listener.settimeout(10)
conn, _ = listener.accept()
conn.settimeout(10)
head = b""
while not head.endswith(b"\r\n\r\n"):
    data = conn.recv(1)
    assert data, head
    head += data
conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nport80")
conn.close()
out, err = child.communicate(timeout=10)
assert child.returncode == 0, err
assert out == b"port80", out
assert head.startswith(b"GET /index.html HTTP/1.1\r\n"), head
assert b"\r\nHost: localhost\r\n" in head, head
print("ok")
"#;
    let output = run(
        support::tool("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up && exec python3 -c \"$0\" \"$1\""])
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_httpget")),
        Duration::from_secs(20),
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
