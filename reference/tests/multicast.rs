//! Tests of `mcastrecv` and `mcastsend`.
//!
//! Where the test runs as root, each test gets its own network namespace
//! holding nothing but `lo` (brought up), so tests cannot hear each other's
//! groups, and so the interface clauses become observable. In that namespace
//! there is deliberately no route for 224.0.0.0/4 (and no default route):
//!
//! - a sender that does not set `IP_MULTICAST_IF` to 127.0.0.1 fails with
//!   ENETUNREACH, since the kernel has no route for the group address;
//! - a receiver that joins on INADDR_ANY instead of 127.0.0.1 fails with
//!   ENODEV, for the same reason (the kernel picks the interface by route).
//!
//! Measured on the development machine: with lo up, that is all multicast over
//! loopback needs when both sides name 127.0.0.1 (no `multicast on` flag on
//! lo, no route). Without root the tests run on the host's loopback, where
//! they still check delivery, output, TTL and sigterm, but a sender without
//! `IP_MULTICAST_IF` might go unnoticed.

#[path = "support/udp_mcast.rs"]
mod support;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{free_udp_port, igmp_users_in, igmp_users_on_lo, random, udp_bound, wait_for, Proc};

const MCASTRECV: &str = env!("CARGO_BIN_EXE_mcastrecv");
const MCASTSEND: &str = env!("CARGO_BIN_EXE_mcastsend");

/// Upper bound for anything that should happen "at once".
const SOON: Duration = Duration::from_secs(5);

/// The network the programs of one test run in: a private namespace if we
/// may create one, else the host's.
struct Net {
    namespace: Option<String>,
}

impl Net {
    fn new() -> Net {
        let name = format!("sockgrade-mc-{}-{}", std::process::id(), random() % 1_000_000);
        let created = quiet(support::tool("ip").args(["netns", "add", &name]));
        let net = Net {
            namespace: created.then_some(name),
        };
        if let Some(name) = &net.namespace {
            assert!(
                quiet(support::tool("ip").args(["-n", name, "link", "set", "lo", "up"])),
                "bring lo up in {name}"
            );
        } else {
            eprintln!("note: cannot create a network namespace (not root?); using the host's loopback");
        }
        net
    }

    /// A command running `program` in this network.
    fn command(&self, program: &str) -> Command {
        match &self.namespace {
            // `ip netns exec` enters the namespace and then exec()s the
            // program: the child's pid is the program's.
            Some(name) => {
                let mut command = support::tool("ip");
                command.args(["netns", "exec", name, program]);
                command
            }
            None => Command::new(program),
        }
    }

    /// The text of /proc/net/igmp as seen in this network.
    fn igmp(&self) -> String {
        let output = self.command("cat").arg("/proc/net/igmp").output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(name) = &self.namespace {
            quiet(support::tool("ip").args(["netns", "delete", name]));
        }
    }
}

/// Runs a command with no output; did it succeed?
fn quiet(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A random group in 239.0.0.0/8, the administratively scoped range.
fn random_group() -> Ipv4Addr {
    let r = random();
    Ipv4Addr::new(239, (r >> 16) as u8, (r >> 8) as u8, 1 + (r % 254) as u8)
}

/// Starts `mcastrecv GROUP PORT` and waits (at most the handout's 2 s) until
/// its socket is bound to `PORT` and the group on `lo` counts `members`
/// sockets, this one included: ready, learned from the kernel.
fn start_receiver(net: &Net, group: Ipv4Addr, port: u16, members: u32) -> Proc {
    let mut command = net.command(MCASTRECV);
    command.args([group.to_string(), port.to_string()]);
    let mut receiver = Proc::spawn(command);
    receiver.collect_stdout();
    let pid = receiver.pid();
    wait_for(
        Duration::from_secs(2),
        &format!("mcastrecv bound to {port} and joined {group} on lo"),
        || {
            let joined = igmp_users_on_lo(pid, group).unwrap_or(0) >= members;
            (udp_bound(pid, port) && joined).then_some(())
        },
    );
    receiver
}

/// Runs `mcastsend GROUP PORT` with `input` on stdin; checks it exits 0.
fn send(net: &Net, group: Ipv4Addr, port: u16, input: &[u8]) {
    let mut command = net.command(MCASTSEND);
    command.args([group.to_string(), port.to_string()]);
    let mut sender = Proc::spawn(command);
    sender.write_stdin(input);
    sender.close_stdin();
    let status = sender.wait_exit(SOON);
    assert_eq!(status.code(), Some(0), "mcastsend: {}", sender.stderr());
}

#[test]
fn two_receivers_on_one_port_each_get_every_datagram() {
    let net = Net::new();
    let group = random_group();
    let port = free_udp_port();
    let mut first = start_receiver(&net, group, port, 1);
    let mut second = start_receiver(&net, group, port, 2);

    // Lines without `\n`: text, an empty one, binary bytes, and a last line
    // with no `\n` at all.
    send(&net, group, port, b"hello\n\n\x00\x01\x7f\xfe\xff\r\nlast");
    let expected = b"hello\n\n\x00\x01\x7f\xfe\xff\r\nlast\n";

    // Both receivers are still running: what we read was flushed at once.
    for receiver in [&mut first, &mut second] {
        let out = receiver.wait_stdout_len(expected.len(), SOON);
        assert_eq!(String::from_utf8_lossy(out), String::from_utf8_lossy(expected));
        assert_eq!(out, expected);
    }

    // SIGTERM: exit status 0, and the membership is gone.
    first.sigterm();
    let status = first.wait_exit(SOON);
    assert_eq!(status.code(), Some(0), "mcastrecv: {status}, {}", first.stderr());
    assert_eq!(igmp_users_on_lo(second.pid(), group), Some(1));

    second.sigterm();
    let status = second.wait_exit(SOON);
    assert_eq!(status.code(), Some(0), "mcastrecv: {status}, {}", second.stderr());
    assert_eq!(igmp_users_in(&net.igmp(), group), None, "nobody left in the group");

    // Nothing more was printed, e.g. no datagram twice.
    assert_eq!(first.wait_stdout_eof(SOON), expected);
    assert_eq!(second.wait_stdout_eof(SOON), expected);
}

/// A receiver written in Python (an independent peer) that reports, for each
/// datagram, the TTL it arrived with (IP_RECVTTL), the interface it arrived on
/// (IP_PKTINFO), its source address and its bytes in hex.
const PY_RECEIVER: &str = r#"
import socket, struct, sys
IP_PKTINFO, IP_RECVTTL, IP_TTL = 8, 12, 2
group, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
print("ready", flush=True)
while True:
    data, ancillary, flags, source = s.recvmsg(65536, 1024)
    info = {}
    for level, kind, payload in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_TTL:
            info["ttl"] = struct.unpack("i", payload[:4])[0]
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            info["ifindex"] = struct.unpack("i", payload[:4])[0]
    print(f"ttl={info.get('ttl')} ifindex={info.get('ifindex')} from={source[0]} data={data.hex()}",
          flush=True)
"#;

/// Sending to a group without IP_MULTICAST_IF, as a careless sender would.
const PY_CARELESS_SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
    print("sent")
except OSError as e:
    print("failed", e.errno)
"#;

#[test]
fn sender_uses_ttl_1_through_the_loopback_interface() {
    let net = Net::new();
    let group = random_group();
    let port = free_udp_port();

    let mut command = net.command("python3");
    command.args(["-c", PY_RECEIVER, &group.to_string(), &port.to_string()]);
    let mut receiver = Proc::spawn(command);
    receiver.collect_stdout();
    assert_eq!(receiver.wait_stdout_len(6, SOON), b"ready\n");

    send(&net, group, port, b"probe\n");

    // ifindex 1 is lo (the first interface the kernel registers); the source
    // address 127.0.0.1 is lo's address, taken from IP_MULTICAST_IF.
    let expected = b"ready\nttl=1 ifindex=1 from=127.0.0.1 data=70726f6265\n";
    let out = receiver.wait_stdout_len(expected.len(), SOON);
    assert_eq!(String::from_utf8_lossy(out), String::from_utf8_lossy(expected));

    // The control: in our namespace, the same send without IP_MULTICAST_IF
    // fails, so the delivery above proves mcastsend set it.
    if net.namespace.is_some() {
        let output = net
            .command("python3")
            .args(["-c", PY_CARELESS_SENDER, &group.to_string(), &port.to_string()])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "failed 101\n"); // ENETUNREACH
    }
}

#[test]
fn receiver_exits_on_sigterm_even_when_nobody_reads_its_output() {
    let net = Net::new();
    let group = random_group();
    let port = free_udp_port();

    let mut command = net.command(MCASTRECV);
    command.args([group.to_string(), port.to_string()]);
    let mut receiver = Proc::spawn(command); // stdout is a pipe we never read
    let pid = receiver.pid();
    wait_for(SOON, "mcastrecv ready", || {
        let joined = igmp_users_on_lo(pid, group) == Some(1);
        (udp_bound(pid, port) && joined).then_some(())
    });

    // 40 datagrams of 4000 bytes: 160 kB, more than a pipe holds (64 kB), so
    // the receiver ends up blocked writing to stdout.
    let line = [b'z'; 4000];
    let input: Vec<u8> = (0..40).flat_map(|_| line.iter().chain(b"\n")).copied().collect();
    send(&net, group, port, &input);

    receiver.sigterm();
    let status = receiver.wait_exit(SOON);
    assert_eq!(status.code(), Some(0), "mcastrecv: {status}, {}", receiver.stderr());
}

#[test]
fn sender_exits_0_on_empty_input_and_sends_nothing() {
    let net = Net::new();
    let group = random_group();
    let port = free_udp_port();
    let mut receiver = start_receiver(&net, group, port, 1);
    send(&net, group, port, b"");
    send(&net, group, port, b"marker\n");
    // The first line the receiver prints is the marker: the empty input sent
    // nothing (not even an empty datagram).
    assert_eq!(receiver.wait_stdout_len(7, SOON), b"marker\n");
}
