#!/usr/bin/env python3
"""A competent course-style grading harness for the tcp-echo server, written the way
courses write theirs (subprocess + socket, readiness by polling connect), used only
as the performance peer for sockgrade: same scenarios, same server binary, one run.

Copied unchanged (but for this paragraph) from the project's shared/bench/peer.py,
where the speed issue (issue 6, section 4) defines it, so that bench/speed.py
needs nothing outside the repository.

    peer.py SERVER_BINARY [--repeat N] [--scenario NAME]

Scenarios (each starts a fresh server on a fresh port and stops it afterwards):
  echo-one     one connection, "hello\\n" echoed, half-close, EOF
  fragments    "fragmented\\n" sent one byte per write (TCP_NODELAY), echoed, EOF
  concurrent   64 connections at once, each echoes its own line
  halfclose    1 MiB sent then SHUT_WR at once; all of it must come back, then EOF

Prints one line per scenario: name, runs, passed, median ms, and the total wall time.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import threading


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(binary, port):
    proc = subprocess.Popen([binary, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # readiness: poll connect every 5 ms
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.005)
    stop_server(proc)
    raise RuntimeError("server not listening after 2 s")


def stop_server(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def recv_exactly(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    chunks, got = [], 0
    while got < n:
        b = sock.recv(min(65536, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def expect_eof(sock, timeout=2.0):
    sock.settimeout(timeout)
    return sock.recv(1) == b""


def echo_one(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"hello\n")
        ok = recv_exactly(s, 6) == b"hello\n"
        s.shutdown(socket.SHUT_WR)
        return ok and expect_eof(s)


def fragments(port):
    msg = b"fragmented\n"
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(msg)):
            s.send(msg[i:i + 1])
        ok = recv_exactly(s, len(msg)) == msg
        s.shutdown(socket.SHUT_WR)
        return ok and expect_eof(s)


def concurrent(port, n=64):
    socks = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(n)]
    results = [False] * n

    def one(i):
        line = b"client %d\n" % i
        socks[i].sendall(line)
        results[i] = recv_exactly(socks[i], len(line)) == line

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in socks:
        s.close()
    return all(results)


def halfclose(port, size=1 << 20):
    data = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        got = []

        def reader():
            got.append(recv_exactly(s, size, timeout=5))

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join()
        return got[0] == data and expect_eof(s)


SCENARIOS = {"echo-one": echo_one, "fragments": fragments,
             "concurrent": concurrent, "halfclose": halfclose}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--scenario", action="append")
    args = ap.parse_args()
    names = args.scenario or list(SCENARIOS)
    t0 = time.monotonic()
    for name in names:
        times, passed = [], 0
        for _ in range(args.repeat):
            start = time.monotonic()
            port = free_port()
            proc = start_server(args.server, port)
            try:
                passed += bool(SCENARIOS[name](port))
            finally:
                stop_server(proc)
            times.append((time.monotonic() - start) * 1000)
        print(f"{name:12s} runs={args.repeat} passed={passed} median_ms={statistics.median(times):.2f}")
    print(f"total_s={time.monotonic() - t0:.3f}")


if __name__ == "__main__":
    sys.exit(main())
