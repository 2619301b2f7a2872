//! Tests of `echoserver` and `echoclient` against independent peers: the
//! server against raw std sockets, the client against small servers written
//! here that misbehave on purpose.

#[path = "support/tcp_echo.rs"]
mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const SERVER: &str = env!("CARGO_BIN_EXE_echoserver");
const CLIENT: &str = env!("CARGO_BIN_EXE_echoclient");

/// Upper bound for anything that should happen "at once".
const LIMIT: Duration = Duration::from_secs(10);

fn server() -> (Proc, u16) {
    let port = free_port();
    let proc = start_server(SERVER, &[&port.to_string()], port);
    (proc, port)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until EOF (with the stream's read timeout as the upper bound).
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read until EOF");
    v
}

/// Deterministic test data that is not all the same byte.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn assert_echoes(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).unwrap();
    let mut back = vec![0; data.len()];
    s.read_exact(&mut back).expect("read the echo");
    assert_eq!(back, data);
}

// ---------------------------------------------------------------- server

#[test]
fn server_echoes_one_byte_at_a_time_without_waiting_for_a_newline() {
    let (_server, port) = server();
    let mut s = connect(port);
    // Each byte must come back before we send the next: the server may not
    // wait for a newline or a full buffer.
    for &b in b"no newline here, one byte at a time" {
        s.write_all(&[b]).unwrap();
        let mut back = [0u8; 1];
        s.read_exact(&mut back).expect("the echo of a single byte");
        assert_eq!(back[0], b);
    }
    // The connection stays usable for any number of exchanges.
    for i in 0..50 {
        assert_echoes(&mut s, format!("line {i}\n").as_bytes());
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut s), b"");
}

#[test]
fn server_echoes_a_megabyte_sent_at_once() {
    let (_server, port) = server();
    let mut s = connect(port);
    let data = pattern(1 << 20);
    // Send from a thread while we read: neither side may wait for the other.
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || w.write_all(&sent).unwrap());
    let mut back = vec![0; data.len()];
    s.read_exact(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "the megabyte came back altered");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut s), b"");
}

#[test]
fn server_sends_everything_after_half_close_even_to_a_slow_reader() {
    let (_server, port) = server();
    let mut s = connect(port);
    // 4 MiB: more than the socket buffers of both sides hold, so the server
    // must wait for us (back-pressure) and still lose nothing.
    let data = pattern(4 << 20);
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    // Send everything and shut down our side at once, with most of the echo
    // still in flight.
    let writer = thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    // Read slowly: small reads.
    let mut back = Vec::with_capacity(data.len());
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    writer.join().unwrap();
    assert_eq!(back.len(), data.len(), "bytes echoed before EOF");
    assert!(back == data, "the echo came back altered");
}

#[test]
fn server_survives_resets_and_clients_that_stop_reading() {
    let (mut server, port) = server();
    // A client that sends and resets (SO_LINGER 0 makes close() send RST).
    for _ in 0..5 {
        let s = connect(port);
        (&s).write_all(b"hello and goodbye\n").unwrap();
        reset(s);
    }
    // A client that sends a lot, never reads, then resets while the server is
    // blocked writing to it: the server's write fails with EPIPE/ECONNRESET
    // (and SIGPIPE must not kill it).
    let s = connect(port);
    let data = pattern(4 << 20);
    s.set_nonblocking(true).unwrap();
    let mut sent = 0;
    // Fill the pipe until it is full in both directions.
    loop {
        match (&s).write(&data[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
        if sent == data.len() {
            break;
        }
    }
    reset(s);
    // And a client that closes normally while the server is still sending.
    let s = connect(port);
    (&s).write_all(&data[..1 << 20]).unwrap();
    drop(s);

    assert!(server.is_running(), "the server died");
    let mut s = connect(port);
    assert_echoes(&mut s, b"still here?\n");
    assert!(server.is_running(), "the server died");
}

#[test]
fn server_serves_a_hundred_clients_at_once_and_a_silent_one_delays_nobody() {
    let (_server, port) = server();
    // The silent client connects first and never sends anything.
    let _silent = connect(port);
    // All connections are open at the same time: a server that handles one
    // client at a time would never answer the later ones.
    let mut clients: Vec<TcpStream> = (0..100).map(|_| connect(port)).collect();
    for (i, s) in clients.iter_mut().enumerate().rev() {
        assert_echoes(s, format!("client {i}\n").as_bytes());
    }
    for (i, s) in clients.iter_mut().enumerate() {
        assert_echoes(s, format!("again {i}\n").as_bytes());
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(s), b"");
    }
}

#[test]
fn server_backlog_holds_at_least_16_pending_connections() {
    let (server, port) = server();
    // A stopped server accepts nothing: every connection made now waits in
    // the listen backlog, where the kernel completes its handshake.
    server.signal("STOP");
    let pending: Vec<TcpStream> = (0..40).map(|_| connect(port)).collect();
    for (i, s) in pending.iter().enumerate() {
        (&*s).write_all(format!("pending {i}\n").as_bytes()).unwrap();
    }
    server.signal("CONT");
    for (i, mut s) in pending.into_iter().enumerate() {
        let want = format!("pending {i}\n");
        let mut back = vec![0; want.len()];
        s.read_exact(&mut back).expect("the echo of a connection that waited");
        assert_eq!(back, want.as_bytes());
    }
}

#[test]
fn server_closes_each_connection_descriptor() {
    let (server, port) = server();
    let before = fd_count(server.pid());
    for _ in 0..20 {
        let mut s = connect(port);
        assert_echoes(&mut s, b"x");
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut s), b"");
    }
    for _ in 0..20 {
        reset(connect(port));
    }
    // The server closes asynchronously; wait (with an upper bound) for it.
    wait_until(LIMIT, "the server to close its descriptors", || {
        fd_count(server.pid()) <= before
    });
}

#[test]
fn server_exits_0_on_sigterm_and_restarts_on_the_same_port_at_once() {
    let (mut server, port) = server();
    // Leave connections behind that the server side closes first: those end
    // in TIME_WAIT on the server's port.
    let mut s = connect(port);
    assert_echoes(&mut s, b"before SIGTERM\n");
    server.sigterm();
    let status = server.wait_exit(LIMIT);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    assert_eq!(read_to_eof(&mut s), b"");
    drop(s);

    // SO_REUSEADDR: the new server binds despite the TIME_WAIT connection.
    let mut again = start_server(SERVER, &[&port.to_string()], port);
    let mut s = connect(port);
    assert_echoes(&mut s, b"after restart\n");
    assert!(again.is_running());
}

// ---------------------------------------------------------------- client

/// A test server on an ephemeral port of 127.0.0.1 that runs `serve` on its
/// first connection, in a thread.
fn test_server(serve: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        serve(s);
    });
    port
}

/// Echoes what arrives, in pieces of `piece` bytes (each sent separately
/// thanks to TCP_NODELAY), until EOF; then closes.
fn fragmenting_echo(piece: usize) -> impl FnOnce(TcpStream) + Send + 'static {
    move |mut s| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for chunk in buf[..n].chunks(piece) {
                if s.write_all(chunk).is_err() {
                    return;
                }
            }
        }
    }
}

fn run(port: u16, host: &str, input: &[u8], limit: Duration) -> (std::process::Output, Duration) {
    run_client(CLIENT, &[host, &port.to_string()], input, limit)
}

fn assert_ok(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn client_prints_every_echo_against_the_reference_server_and_localhost() {
    let (_server, port) = server();
    let input = b"first line\nsecond line\n\nlast line without newline";
    let (out, _) = run(port, "localhost", input, LIMIT);
    assert_ok(&out);
    assert_eq!(out.stdout, input);
}

#[test]
fn client_reassembles_an_echo_that_arrives_one_byte_at_a_time() {
    let port = test_server(fragmenting_echo(1));
    let input = b"one byte\nat a time\nno newline";
    let (out, _) = run(port, "127.0.0.1", input, LIMIT);
    assert_ok(&out);
    assert_eq!(out.stdout, input);
}

#[test]
fn client_handles_lines_of_a_mebibyte_and_more() {
    let port = test_server(fragmenting_echo(1000));
    let mut input = Vec::new();
    for len in [1 << 20, (1 << 20) + 12345, 3 << 20] {
        let mut line: Vec<u8> = pattern(len).into_iter().map(|b| b'a' + b % 26).collect();
        line.push(b'\n');
        input.extend_from_slice(&line);
    }
    input.extend_from_slice(b"tail");
    let (out, _) = run(port, "127.0.0.1", &input, LIMIT * 2);
    assert_ok(&out);
    assert!(out.stdout == input, "the long lines came back altered");
}

#[test]
fn client_waits_as_long_as_the_server_makes_progress() {
    // One byte every 2 s: 6 s in all, more than the 5 s timeout, but never
    // 5 s without progress.
    let port = test_server(|mut s| {
        let mut line = [0u8; 4];
        s.read_exact(&mut line).unwrap();
        for b in line {
            let _ = s.write_all(&[b]);
            thread::sleep(Duration::from_secs(2));
        }
    });
    let (out, elapsed) = run(port, "127.0.0.1", b"abc\n", LIMIT * 2);
    assert_ok(&out);
    assert_eq!(out.stdout, b"abc\n");
    assert!(elapsed > Duration::from_secs(5), "ran {elapsed:?}");
}

#[test]
fn client_fails_when_the_server_closes_before_the_whole_echo() {
    let port = test_server(|mut s| {
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).unwrap();
        s.write_all(&line[..line.len() / 2]).unwrap();
        // Dropping closes: the client reads EOF in the middle of the echo.
    });
    let (out, _) = run(port, "127.0.0.1", b"half of this line comes back\nmore\n", LIMIT);
    assert_failed_with_one_line(&out);
}

#[test]
fn client_gives_up_after_5_seconds_without_progress() {
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let port = test_server(move |s| {
        // Read nothing, answer nothing, keep the connection open until the
        // test is over.
        let _ = release.recv();
        drop(s);
    });
    let (out, elapsed) = run(port, "127.0.0.1", b"anybody there?\n", LIMIT * 2);
    drop(hold);
    assert_failed_with_one_line(&out);
    assert!(
        elapsed >= Duration::from_millis(4500) && elapsed < Duration::from_secs(12),
        "gave up after {elapsed:?}"
    );
}

#[test]
fn client_reports_a_refused_connection() {
    // A port nobody listens on: bind it, learn its number, close it.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = Instant::now();
    let (out, _) = run(port, "127.0.0.1", b"hello\n", LIMIT);
    assert_failed_with_one_line(&out);
    assert!(start.elapsed() < LIMIT);
}

#[test]
fn client_reports_an_unknown_host() {
    let (out, _) = run(9, "no-such-host.invalid", b"hello\n", LIMIT * 2);
    assert_failed_with_one_line(&out);
}

#[test]
fn client_with_empty_input_exits_0() {
    let (_server, port) = server();
    let (out, _) = run(port, "127.0.0.1", b"", LIMIT);
    assert_ok(&out);
    assert_eq!(out.stdout, b"");
}
