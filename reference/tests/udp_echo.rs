//! Tests of `udpechoserver` and `udpechoclient`.
//!
//! The server is driven by plain std `UdpSocket`s; the client talks to a test
//! peer (a `UdpSocket` in the test playing the server) that loses, delays and
//! duplicates replies and sends datagrams that must be ignored.

#[path = "support/udp_mcast.rs"]
mod support;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{bind_peer, free_udp_port, wait_udp_bound, Proc};

const SERVER: &str = env!("CARGO_BIN_EXE_udpechoserver");
const CLIENT: &str = env!("CARGO_BIN_EXE_udpechoclient");

/// Upper bound for anything that should happen "at once".
const SOON: Duration = Duration::from_secs(5);

/// Bounds on the gap between two sends of the same request. The client waits
/// 500 ms; the bounds only have to tell "about 500 ms" from "right away" and
/// from "much later", also on a loaded machine.
const MIN_GAP: Duration = Duration::from_millis(400);
const MAX_GAP: Duration = Duration::from_millis(1200);

// ---------------------------------------------------------------- server --

/// Starts `udpechoserver PORT` and waits until it is bound (at most 2 s, the
/// handout's bound).
fn start_server(port: u16) -> Proc {
    let server = Proc::spawn({
        let mut command = Command::new(SERVER);
        command.arg(port.to_string());
        command
    });
    wait_udp_bound(server.pid(), port, Duration::from_secs(2));
    server
}

/// A client socket of the test, on 127.0.0.1, with an upper bound on receives.
fn test_client() -> UdpSocket {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.set_read_timeout(Some(SOON)).unwrap();
    socket
}

fn server_addr(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

/// Sends `request` to the server and returns the one reply, checking it came
/// from the server.
fn round_trip(socket: &UdpSocket, server: SocketAddr, request: &[u8]) -> Vec<u8> {
    socket.send_to(request, server).unwrap();
    let mut buf = vec![0u8; 65536];
    let (len, sender) = socket.recv_from(&mut buf).expect("a reply from the server");
    assert_eq!(sender, server, "the reply comes from the server's port");
    buf.truncate(len);
    buf
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn server_echoes_every_byte_value_empty_and_large_datagrams() {
    let port = free_udp_port();
    let _server = start_server(port);
    let server = server_addr(port);
    let socket = test_client();

    let every_byte: Vec<u8> = (0..=255).collect();
    assert_eq!(round_trip(&socket, server, &every_byte), every_byte);
    for byte in 0..=255u8 {
        assert_eq!(round_trip(&socket, server, &[byte]), [byte]);
    }

    // An empty datagram is answered with an empty datagram.
    assert_eq!(round_trip(&socket, server, b""), b"");

    // 8192 bytes come back whole.
    let large: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(round_trip(&socket, server, &large), large);

    // Bigger than the lab allows: not echoed truncated (the reference drops
    // it), and the server goes on serving.
    socket.send_to(&vec![b'x'; 9000], server).unwrap();
    assert_eq!(round_trip(&socket, server, b"after"), b"after");
}

#[test]
fn server_replies_to_each_sender_with_many_clients_interleaved() {
    let port = free_udp_port();
    let server_proc = start_server(port);
    let server = server_addr(port);
    let fds_before = open_fds(server_proc.pid());

    // 32 clients; in each round every client sends before any reads, so the
    // server sees their datagrams interleaved (at most 32 in flight: far below
    // what the socket buffers hold, so nothing is lost on loopback).
    let clients: Vec<UdpSocket> = (0..32).map(|_| test_client()).collect();
    for round in 0..4 {
        for (i, client) in clients.iter().enumerate() {
            client
                .send_to(format!("client {i} round {round}").as_bytes(), server)
                .unwrap();
        }
        for (i, client) in clients.iter().enumerate() {
            let mut buf = [0u8; 100];
            let (len, sender) = client.recv_from(&mut buf).expect("a reply");
            assert_eq!(sender, server);
            assert_eq!(
                String::from_utf8_lossy(&buf[..len]),
                format!("client {i} round {round}"),
                "each reply goes to the sender of its own request"
            );
        }
    }

    // Keeps its resources in bounds: no descriptor per client.
    assert_eq!(open_fds(server_proc.pid()), fds_before);
}

#[test]
fn server_exits_on_sigterm_and_restarts_on_the_same_port_at_once() {
    let port = free_udp_port();
    let server = server_addr(port);
    let socket = test_client();

    let mut first = start_server(port);
    assert_eq!(round_trip(&socket, server, b"one"), b"one");
    first.sigterm();
    let status = first.wait_exit(SOON);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");

    // Restarted at once: bound within the 2 s of `start_server`.
    let mut second = start_server(port);
    assert_eq!(round_trip(&socket, server, b"two"), b"two");
    // Killed without a chance to clean up, and restarted again.
    second.child.kill().unwrap();
    second.wait_exit(SOON);

    let _third = start_server(port);
    assert_eq!(round_trip(&socket, server, b"three"), b"three");
}

// ---------------------------------------------------------------- client --

/// Starts `udpechoclient HOST PORT` with stdout collected.
fn start_client(host: &str, port: u16) -> Proc {
    let mut client = Proc::spawn({
        let mut command = Command::new(CLIENT);
        command.args([host, &port.to_string()]);
        command
    });
    client.collect_stdout();
    client
}

/// One datagram the peer received: when, what, from whom.
struct Received {
    at: Instant,
    bytes: Vec<u8>,
    from: SocketAddr,
}

/// Receives one datagram on the peer (at most `SOON`).
fn receive(peer: &UdpSocket) -> Received {
    peer.set_read_timeout(Some(SOON)).unwrap();
    let mut buf = vec![0u8; 65536];
    let (len, from) = peer.recv_from(&mut buf).expect("a datagram from the client");
    Received {
        at: Instant::now(),
        bytes: buf[..len].to_vec(),
        from,
    }
}

/// Checks that `later` is a retransmission of `earlier`, about 500 ms later.
fn assert_retransmission(earlier: &Received, later: &Received) {
    assert_eq!(later.bytes, earlier.bytes, "a retransmission holds the same bytes");
    assert_eq!(later.from, earlier.from, "from the same socket");
    let gap = later.at - earlier.at;
    assert!(
        (MIN_GAP..=MAX_GAP).contains(&gap),
        "retransmitted after {gap:?}, wanted about 500 ms"
    );
}

/// Checks the client exited 0 having printed exactly `expected`.
fn assert_success(client: &mut Proc, expected: &[u8]) {
    let out = client.wait_stdout_eof(SOON).to_vec();
    let status = client.wait_exit(SOON);
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(expected));
    assert_eq!(out, expected);
    assert_eq!(status.code(), Some(0), "stderr: {}", client.stderr());
}

#[test]
fn client_sends_each_line_as_one_datagram_to_a_host_name() {
    let (peer, port) = bind_peer();
    let mut client = start_client("localhost", port);
    // An empty line, binary bytes, and a last line without `\n`.
    let lines: [&[u8]; 4] = [b"hello world", b"", b"\x00\x01\xfe\xff\r\t", b"no newline"];
    client.write_stdin(b"hello world\n\n\x00\x01\xfe\xff\r\t\nno newline");
    client.close_stdin();

    for line in lines {
        let request = receive(&peer);
        assert_eq!(request.bytes, line, "one datagram per line, without its \\n");
        peer.send_to(&request.bytes, request.from).unwrap();
    }
    assert_success(&mut client, b"hello world\n\n\x00\x01\xfe\xff\r\t\nno newline\n");
}

#[test]
fn client_against_the_real_server() {
    let port = free_udp_port();
    let _server = start_server(port);
    let mut client = start_client("127.0.0.1", port);
    let input: Vec<u8> = (1..=50).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
    client.write_stdin(&input);
    client.close_stdin();
    assert_success(&mut client, &input);
}

#[test]
fn client_exits_0_at_once_on_empty_input() {
    let (_peer, port) = bind_peer();
    let mut client = start_client("127.0.0.1", port);
    client.close_stdin();
    assert_success(&mut client, b"");
}

#[test]
fn client_retransmits_when_requests_are_lost() {
    let (peer, port) = bind_peer();
    let mut client = start_client("127.0.0.1", port);
    client.write_stdin(b"lossy\n");
    client.close_stdin();

    // The first two sends get "lost"; the third is answered.
    let first = receive(&peer);
    let second = receive(&peer);
    let third = receive(&peer);
    assert_eq!(first.bytes, b"lossy");
    assert_retransmission(&first, &second);
    assert_retransmission(&second, &third);
    peer.send_to(b"lossy", third.from).unwrap();

    assert_success(&mut client, b"lossy\n");
}

#[test]
fn client_ignores_late_duplicated_and_foreign_datagrams() {
    let (peer, port) = bind_peer();
    let foreign = test_client();
    let mut client = start_client("127.0.0.1", port);
    client.write_stdin(b"one\ntwo\n");
    client.close_stdin();

    // "one": its reply is delayed past a retransmission, then arrives twice
    // (the late reply to the first send and the reply to the second).
    let one = receive(&peer);
    let one_again = receive(&peer);
    assert_retransmission(&one, &one_again);
    peer.send_to(b"one", one.from).unwrap();
    peer.send_to(b"one", one.from).unwrap();

    // "two": first come the duplicate "one" (already queued above), a stale
    // "one" again, garbage, and "two" from a foreign address: none of them
    // is the reply, so the client must retransmit "two".
    let two = receive(&peer);
    assert_eq!(two.bytes, b"two");
    peer.send_to(b"one", two.from).unwrap();
    peer.send_to(b"tw", two.from).unwrap();
    peer.send_to(b"two\n", two.from).unwrap();
    foreign.send_to(b"two", two.from).unwrap();
    let two_again = receive(&peer);
    assert_retransmission(&two, &two_again);
    peer.send_to(b"two", two.from).unwrap();

    assert_success(&mut client, b"one\ntwo\n");
}

#[test]
fn client_timer_is_not_reset_by_ignored_datagrams() {
    let (peer, port) = bind_peer();
    let mut client = start_client("127.0.0.1", port);
    client.write_stdin(b"ping\n");
    client.close_stdin();

    // While the client waits, feed it a stale datagram every 50 ms. If each
    // one restarted its 500 ms timer, it would never retransmit.
    let first = receive(&peer);
    peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 100];
    let retransmitted = loop {
        peer.send_to(b"pong", first.from).unwrap();
        if let Ok((len, from)) = peer.recv_from(&mut buf) {
            break Received {
                at: Instant::now(),
                bytes: buf[..len].to_vec(),
                from,
            };
        }
        assert!(
            first.at.elapsed() < MAX_GAP,
            "no retransmission within {MAX_GAP:?} while stale datagrams kept coming"
        );
        std::thread::sleep(Duration::from_millis(50)); // pacing of the stale stream
    };
    assert_retransmission(&first, &retransmitted);
    peer.send_to(b"ping", first.from).unwrap();

    assert_success(&mut client, b"ping\n");
}

#[test]
fn client_gives_up_after_three_retransmissions() {
    let (peer, port) = bind_peer();
    let mut client = start_client("127.0.0.1", port);
    client.write_stdin(b"anyone?\nnever sent\n");
    client.close_stdin();

    // Never answer: 4 sends about 500 ms apart, then `timeout`, status 1.
    let sends: Vec<Received> = (0..4).map(|_| receive(&peer)).collect();
    assert_eq!(sends[0].bytes, b"anyone?");
    for pair in sends.windows(2) {
        assert_retransmission(&pair[0], &pair[1]);
    }
    let status = client.wait_exit(SOON);
    let waited = sends[0].at.elapsed();
    assert_eq!(status.code(), Some(1));
    assert_eq!(client.stderr(), "timeout\n");
    assert_eq!(client.wait_stdout_eof(SOON), b"");
    // It gave up about 2 s after the first send (4 x 500 ms), not sooner.
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "gave up {waited:?} after the first send"
    );

    // And no fifth send, nor the next line.
    peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 100];
    let extra = peer.recv_from(&mut buf).map(|(len, _)| buf[..len].to_vec());
    assert!(extra.is_err(), "an extra datagram: {extra:?}");
}
