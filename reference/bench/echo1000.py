#!/usr/bin/env python3
"""The reference echoserver with 1,000 concurrent clients: each connects, sends
a line, and reads the echo while all 1,000 are connected; then each
half-closes and expects EOF. Prints the time and the server's memory.

    cargo build --release -p reference && python3 reference/bench/echo1000.py [--clients N]

Loopback only; the server is started on a free port and stopped at the end.
"""
import argparse, os, selectors, signal, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(ROOT, "target", "release", "echoserver")


def listening(pid, port):
    """The server's socket listens on the port (read from /proc, not probed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A" and fields[9] in inodes:
                    return True
    return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=1000)
    n = p.parse_args().clients
    if not os.path.exists(SERVER):
        sys.exit("build first: cargo build --release -p reference")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen([SERVER, str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 2
        while not listening(server.pid, port):
            if time.time() > deadline:
                sys.exit("the server did not listen within 2 s")
            time.sleep(0.001)
        line = b"hello from one of many clients\n"
        start = time.perf_counter()
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        for s in socks:
            s.sendall(line)
        sel = selectors.DefaultSelector()
        got = {}
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            got[s] = b""
        pending = n
        while pending:
            for key, _ in sel.select(timeout=10):
                s = key.fileobj
                got[s] += s.recv(4096)
                if got[s] == line:
                    sel.unregister(s)
                    pending -= 1
        echoed = time.perf_counter() - start
        with open(f"/proc/{server.pid}/status") as f:
            rss = next(l for l in f if l.startswith("VmRSS")).split()[1]
        for s in socks:
            s.setblocking(True)
            s.shutdown(socket.SHUT_WR)
        for s in socks:
            assert s.recv(1) == b"", "expected EOF"
            s.close()
        total = time.perf_counter() - start
        print(f"{n} concurrent clients: all echoed in {echoed * 1000:.0f} ms, "
              f"all closed in {total * 1000:.0f} ms; server RSS {int(rss) // 1024} MiB")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=5)


if __name__ == "__main__":
    main()
