//! Tests of `rpcserver` and `rpcclient` against independent peers: frames are
//! built and checked here byte by byte (not with the crate's own encoder), and
//! the client is tested against small servers written here.

// The process helpers (free ports, readiness from /proc, kill guards) are the
// ones of the tcp-echo tests.
#[path = "support/tcp_echo.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Output;
use std::thread;
use std::time::Duration;

use support::*;

const SERVER: &str = env!("CARGO_BIN_EXE_rpcserver");
const CLIENT: &str = env!("CARGO_BIN_EXE_rpcclient");

/// Upper bound for anything that should happen "at once".
const LIMIT: Duration = Duration::from_secs(10);

const ADD: u8 = 1;
const SUB: u8 = 2;
const MUL: u8 = 3;
const DIV: u8 = 4;

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

/// A request frame, written out independently of the crate's encoder.
fn request(op: u8, a: i64, b: i64) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 17, op];
    v.extend_from_slice(&a.to_be_bytes());
    v.extend_from_slice(&b.to_be_bytes());
    v
}

/// A response frame.
fn response(status: u8, result: i64) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 9, status];
    v.extend_from_slice(&result.to_be_bytes());
    v
}

/// Reads exactly one 13-byte response frame.
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut v = vec![0; 13];
    s.read_exact(&mut v).expect("a 13-byte response");
    v
}

fn ask(s: &mut TcpStream, op: u8, a: i64, b: i64) -> Vec<u8> {
    s.write_all(&request(op, a, b)).unwrap();
    read_response(s)
}

/// Reads until EOF or reset; returns what arrived.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return v,
            Ok(n) => v.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return v,
            Err(e) => panic!("expected the server to close the connection: {e}"),
        }
    }
}

// ---------------------------------------------------------------- server

#[test]
fn server_reads_and_writes_big_endian() {
    let (_server, port) = server();
    let mut s = connect(port);
    // 0x0102030405060708 + 0x0000000000000100, every byte written by hand.
    s.write_all(&[
        0, 0, 0, 17, // L = 17
        1,  // add
        1, 2, 3, 4, 5, 6, 7, 8, // a
        0, 0, 0, 0, 0, 0, 1, 0, // b = 256
    ])
    .unwrap();
    let mut back = [0u8; 13];
    s.read_exact(&mut back).unwrap();
    assert_eq!(
        back,
        [
            0, 0, 0, 9, // L = 9
            0, // ok
            1, 2, 3, 4, 5, 6, 8, 8, // 0x0102030405060808
        ]
    );
    // -1 - 1 = -2: two's complement, 0xff...fe.
    s.write_all(&[
        0, 0, 0, 17, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1,
    ])
    .unwrap();
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, [0, 0, 0, 9, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
}

#[test]
fn server_computes_wrapping_and_truncating_and_keeps_serving() {
    let (_server, port) = server();
    let mut s = connect(port);
    let cases: &[(u8, i64, i64, u8, i64)] = &[
        (ADD, 2, 3, 0, 5),
        (ADD, i64::MAX, 1, 0, i64::MIN),
        (SUB, i64::MIN, 1, 0, i64::MAX),
        (SUB, 3, 10, 0, -7),
        (MUL, -4, 5, 0, -20),
        (MUL, i64::MAX, 2, 0, -2),
        (MUL, 1 << 32, 1 << 32, 0, 0),
        (DIV, 7, 2, 0, 3),
        (DIV, -7, 2, 0, -3),
        (DIV, 7, -2, 0, -3),
        (DIV, -7, -2, 0, 3),
        (DIV, 1, 0, 1, 0),
        (DIV, i64::MIN, -1, 0, i64::MIN),
        (DIV, 0, 0, 1, 0),
        (ADD, 40, 2, 0, 42),
    ];
    // Many requests on one connection, including errors in the middle.
    for _ in 0..20 {
        for &(op, a, b, status, result) in cases {
            assert_eq!(ask(&mut s, op, a, b), response(status, result), "op {op} a {a} b {b}");
        }
    }
}

#[test]
fn server_reassembles_requests_sent_one_byte_at_a_time() {
    let (_server, port) = server();
    let mut s = connect(port);
    for (a, b) in [(1, 2), (-100, 58), (i64::MAX, i64::MIN)] {
        // TCP_NODELAY: each one-byte write leaves as its own segment.
        for byte in request(ADD, a, b) {
            s.write_all(&[byte]).unwrap();
        }
        assert_eq!(read_response(&mut s), response(0, a.wrapping_add(b)));
    }
}

#[test]
fn server_answers_coalesced_requests_all_and_in_order() {
    let (_server, port) = server();
    let mut s = connect(port);
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500i64 {
        bytes.extend(request(MUL, i, -3));
        expected.extend(response(0, -3 * i));
        if i % 100 == 50 {
            bytes.extend(request(DIV, i, 0));
            expected.extend(response(1, 0));
        }
    }
    // One write, and a frame split across its end and the next write.
    let split = bytes.len() - 5;
    s.write_all(&bytes[..split]).unwrap();
    s.write_all(&bytes[split..]).unwrap();
    let mut back = vec![0; expected.len()];
    s.read_exact(&mut back).unwrap();
    assert!(back == expected, "the answers differ");
}

#[test]
fn server_answers_bad_lengths_with_status_2_and_keeps_the_connection() {
    let (_server, port) = server();
    let mut s = connect(port);
    for len in [0u32, 1, 9, 16, 18, 100, 70_000, 1 << 20] {
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend(std::iter::repeat_n(ADD, len as usize));
        // The whole frame, its L bytes included, is consumed: a good request
        // right behind it in the same write is the next frame.
        frame.extend(request(SUB, 50, 8));
        s.write_all(&frame).unwrap();
        assert_eq!(read_response(&mut s), response(2, 0), "L = {len}");
        assert_eq!(read_response(&mut s), response(0, 42), "after L = {len}");
    }
}

#[test]
fn server_answers_unknown_opcodes_with_status_2_and_keeps_the_connection() {
    let (_server, port) = server();
    let mut s = connect(port);
    for op in [0u8, 5, 6, 0x80, 0xff] {
        assert_eq!(ask(&mut s, op, 1, 1), response(2, 0), "opcode {op}");
        assert_eq!(ask(&mut s, ADD, 1, 1), response(0, 2));
    }
}

#[test]
fn server_closes_on_oversize_frames_and_serves_the_others() {
    let (mut server, port) = server();
    let mut other = connect(port);
    assert_eq!(ask(&mut other, ADD, 1, 1), response(0, 2));

    // Just the header of a frame one byte over 1 MiB: no answer, then EOF.
    let mut s = connect(port);
    s.write_all(&((1u32 << 20) + 1).to_be_bytes()).unwrap();
    assert_eq!(read_until_closed(&mut s), b"");

    // A good request, then a frame of 4 GiB - 1 with some of its body: the
    // good one is answered, the oversize one is not, and the server closes.
    let mut s = connect(port);
    let mut bytes = request(ADD, 20, 22);
    bytes.extend(u32::MAX.to_be_bytes());
    bytes.extend([7u8; 1000]);
    s.write_all(&bytes).unwrap();
    assert_eq!(read_response(&mut s), response(0, 42));
    assert_eq!(read_until_closed(&mut s), b"");

    assert!(server.is_running());
    assert_eq!(ask(&mut other, MUL, 6, 7), response(0, 42));
    assert_eq!(ask(&mut connect(port), SUB, 6, 7), response(0, -1));
}

#[test]
fn server_serves_a_hundred_clients_at_once_and_survives_rude_ones() {
    let (mut server, port) = server();
    let _silent = connect(port);
    // A client that stops in the middle of a frame and stays.
    let half = connect(port);
    (&half).write_all(&request(ADD, 1, 2)[..10]).unwrap();
    // Clients that reset, with and without a frame in flight.
    for i in 0..5 {
        let s = connect(port);
        (&s).write_all(&request(ADD, i, i)[..(i as usize * 4)]).unwrap();
        reset(s);
    }
    // A client that sends many requests and never reads the answers, then
    // vanishes.
    let greedy = connect(port);
    let mut many = Vec::new();
    for _ in 0..20_000 {
        many.extend(request(ADD, 1, 1));
    }
    greedy.set_nonblocking(true).unwrap();
    let _ = (&greedy).write(&many);
    reset(greedy);

    let mut clients: Vec<TcpStream> = (0..100).map(|_| connect(port)).collect();
    for (i, s) in clients.iter_mut().enumerate().rev() {
        assert_eq!(ask(s, MUL, i as i64, 2), response(0, 2 * i as i64));
    }
    assert!(server.is_running());
}

#[test]
fn server_closes_descriptors_exits_0_on_sigterm_and_restarts_at_once() {
    let (mut server, port) = server();
    let before = fd_count(server.pid());
    for i in 0..20 {
        let mut s = connect(port);
        assert_eq!(ask(&mut s, ADD, i, 1), response(0, i + 1));
        if i % 2 == 0 {
            s.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
        } else {
            reset(s);
        }
    }
    wait_until(LIMIT, "the server to close its descriptors", || {
        fd_count(server.pid()) <= before
    });

    // A connection left open: the server's side closes first on exit, which
    // leaves a TIME_WAIT connection on its port.
    let mut s = connect(port);
    assert_eq!(ask(&mut s, ADD, 1, 1), response(0, 2));
    server.sigterm();
    let status = server.wait_exit(LIMIT);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    assert_eq!(read_until_closed(&mut s), b"");
    drop(s);

    let _again = start_server(SERVER, &[&port.to_string()], port);
    assert_eq!(ask(&mut connect(port), ADD, 2, 2), response(0, 4));
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
        s.set_read_timeout(Some(LIMIT)).unwrap();
        serve(s);
    });
    port
}

/// Reads one request frame written by the client: (opcode, a, b); `None` at EOF.
fn read_request(s: &mut TcpStream) -> Option<(u8, i64, i64)> {
    let mut frame = [0u8; 21];
    match s.read_exact(&mut frame) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
        Err(e) => panic!("reading a request: {e}"),
    }
    assert_eq!(frame[..4], [0, 0, 0, 17], "the length prefix");
    let a = i64::from_be_bytes(frame[5..13].try_into().unwrap());
    let b = i64::from_be_bytes(frame[13..21].try_into().unwrap());
    Some((frame[4], a, b))
}

/// What the test servers answer: a computation of their own.
fn compute(op: u8, a: i64, b: i64) -> Vec<u8> {
    match op {
        ADD => response(0, a.wrapping_add(b)),
        SUB => response(0, a.wrapping_sub(b)),
        MUL => response(0, a.wrapping_mul(b)),
        DIV if b == 0 => response(1, 0),
        DIV => response(0, a.wrapping_div(b)),
        _ => response(2, 0),
    }
}

fn run(port: u16, host: &str, input: &str) -> Output {
    run_client(CLIENT, &[host, &port.to_string()], input.as_bytes(), LIMIT * 2).0
}

fn assert_ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn client_prints_one_line_per_command_against_the_reference_server() {
    let (_server, port) = server();
    let input = "add 2 3\n\
                 sub -9223372036854775808 1\n\
                 hello\n\
                 mul 9223372036854775807 -1\n\
                 div -7 2\n\
                 add 1\n\
                 div 5 0\n\
                 add 9223372036854775808 0\n\
                 \n\
                 div -9223372036854775808 -1\n\
                 pow 2 3\n\
                 add 1 2 3\n\
                 sub 0 -9223372036854775807";
    let out = run(port, "localhost", input);
    assert_eq!(
        assert_ok(&out),
        "5\n\
         9223372036854775807\n\
         error: bad input\n\
         -9223372036854775807\n\
         -3\n\
         error: bad input\n\
         error: division by zero\n\
         error: bad input\n\
         error: bad input\n\
         -9223372036854775808\n\
         error: bad input\n\
         error: bad input\n\
         9223372036854775807\n"
    );
}

#[test]
fn client_writes_and_reads_frames_big_endian() {
    let port = test_server(|mut s| {
        let mut frame = [0u8; 21];
        s.read_exact(&mut frame).unwrap();
        // "sub 72623859790382856 -2": every byte checked by hand.
        assert_eq!(
            frame,
            [0, 0, 0, 17, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
        // Answer 0x0000000000000102 = 258, whatever the question.
        s.write_all(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 2]).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
    let out = run(port, "127.0.0.1", "sub 72623859790382856 -2\n");
    assert_eq!(assert_ok(&out), "258\n");
}

#[test]
fn client_reads_responses_arriving_one_byte_at_a_time() {
    let port = test_server(|mut s| {
        while let Some((op, a, b)) = read_request(&mut s) {
            for byte in compute(op, a, b) {
                if s.write_all(&[byte]).is_err() {
                    return;
                }
            }
        }
    });
    let out = run(port, "127.0.0.1", "add 1 2\nmul -3 4\ndiv 1 0\nsub 10 3\n");
    assert_eq!(assert_ok(&out), "3\n-12\nerror: division by zero\n7\n");
}

#[test]
fn client_handles_coalesced_responses_and_statuses_1_and_2() {
    // This server reads all four requests before it answers, then answers
    // them in one write: a client that waits for each answer before it sends
    // the next request would wait forever here, so this also checks that the
    // client pipelines.
    let port = test_server(|mut s| {
        let mut answers = Vec::new();
        for i in 0..4 {
            let (op, a, b) = read_request(&mut s).expect("four requests");
            answers.extend(if i == 2 { response(2, 0) } else { compute(op, a, b) });
        }
        s.write_all(&answers).unwrap();
        assert!(read_request(&mut s).is_none());
    });
    let out = run(port, "127.0.0.1", "add 20 22\ndiv 7 0\nmul 2 2\nbad line\nsub 0 1\n");
    assert_eq!(
        assert_ok(&out),
        "42\nerror: division by zero\nerror: bad request\nerror: bad input\n-1\n"
    );
}

#[test]
fn client_sends_nothing_for_bad_input() {
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let port = test_server(move |mut s| {
        let mut requests = Vec::new();
        while let Some((op, a, b)) = read_request(&mut s) {
            requests.push((op, a, b));
            s.write_all(&compute(op, a, b)).unwrap();
        }
        got_tx.send(requests).unwrap();
    });
    let out = run(
        port,
        "127.0.0.1",
        "nonsense\nadd 1\nadd 1 x\nadd 1 2 3\nmul 6 7\nsub 99999999999999999999 1\n",
    );
    assert_eq!(
        assert_ok(&out),
        "error: bad input\nerror: bad input\nerror: bad input\nerror: bad input\n42\nerror: bad input\n"
    );
    let requests = got_rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(requests, vec![(MUL, 6, 7)]);
}

#[test]
fn client_reports_a_connection_lost_before_every_answer() {
    let port = test_server(|mut s| {
        let (op, a, b) = read_request(&mut s).unwrap();
        let _ = read_request(&mut s);
        s.write_all(&compute(op, a, b)).unwrap();
        // Close with the second answer still owed.
    });
    let out = run(port, "127.0.0.1", "add 1 1\nadd 2 2\n");
    assert_failed_with_one_line(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
}

#[test]
fn client_reports_a_refused_connection_and_an_unknown_host() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert_failed_with_one_line(&run(port, "127.0.0.1", "add 1 1\n"));
    assert_failed_with_one_line(&run(port, "no-such-host.invalid", "add 1 1\n"));
}

#[test]
fn client_with_no_commands_exits_0() {
    let (_server, port) = server();
    assert_eq!(assert_ok(&run(port, "127.0.0.1", "")), "");
    assert_eq!(
        assert_ok(&run(port, "127.0.0.1", "just\nbad input")),
        "error: bad input\nerror: bad input\n"
    );
}
