#!/usr/bin/env python3
"""sockgrade side by side with a course-style harness (bench/peer.py), in one run
on the same machine, against the same server: the reference `echoserver`.

    cargo build --release --workspace
    sudo python3 bench/speed.py [--runs 20]

What it prints:

1. The four scenarios of bench/peer.py, each run --runs times with a fresh
   server by both harnesses, interleaved (peer, sockgrade, sockgrade, peer, ...
   so that a busy moment of the machine hits both alike): medians and the ratio.
   The peer times itself from choosing a port to its server reaped. sockgrade
   runs bench/speed.yaml with `--isolation netns -j 1 --only NAME` and full
   transcripts, and is timed by its own runner (SOCKGRADE_LOG=sockgrade::timing
   =info), at microsecond resolution: from the moment its slot has the
   scenario's user and private copy of the submission (both made ahead by
   threads of their own) to the moment the slot could take the next: the
   network namespace, every step, and the kill of everything the scenario
   started count; the wait until its user has nothing left and its copy is
   removed happens off the slot's path and does not. In a run of one
   scenario the slot waits for its user and copy: that is the last column
   (the reference `echoserver` is 8 MB, with its line tables). The whole
   process, all included, is in part 2.
2. The same 4 x runs scenarios in one process each (`all, whole process`):
   peer.py with --repeat, sockgrade on a spec holding --runs copies of each
   (default --jobs, then -j 1), wall time of the process. The per-scenario
   medians of sockgrade's run are "runs of N in one process", the shape in
   which the delayed-ACK stall of one-byte writes showed (a median of 52 ms).
3. 1,000 concurrent connections, each echoing a line, to the same server:
   the scenario's time, the process's wall time, and the harness's peak
   resident memory (VmHWM of the sockgrade process, read from /proc while it
   runs: the last look before it exits is its peak).
4. The tcp-echo suite (specs/tcp-echo.yaml, the reference) at the default
   --jobs: its wall time against its longest scenario.

Python 3 standard library only. Needs root for the network namespaces.
"""
import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "bench", "speed.yaml")
PEER = os.path.join(ROOT, "bench", "peer.py")
SCENARIOS = ["echo-one", "fragments", "concurrent", "halfclose"]
TIMING = re.compile(r"scenario=(\d+) slot_us=(\d+) played_us=(\d+) released_us=(\d+)(?: waited_us=(\d+))?")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def release_dir():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "release")


def sockgrade(exe, spec, *args):
    """Runs sockgrade; returns (report, [(index, slot_ms, played_ms, released_ms, waited_ms)], wall_s, peak_kib)."""
    env = dict(os.environ, SOCKGRADE_LOG="sockgrade::timing=info", NO_COLOR="1")
    cmd = [exe, "run", spec, "--reference", "--format", "json", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()

    def watch():
        # VmHWM only grows: the last look before the process ends is its peak.
        while not done.is_set():
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
            except (OSError, ValueError):
                pass
            done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    try:
        report = json.loads(out)
    except ValueError:
        sys.exit(f"sockgrade failed ({proc.returncode}): {err.decode()}")
    failed = [f"{s['name']}: {s['status']}: {s['message']}" for s in report["scenarios"] if s["status"] != "passed"]
    if failed:
        sys.exit("sockgrade did not pass everything:\n" + "\n".join(failed))
    timings = []
    for line in ANSI.sub("", err.decode()).splitlines():
        m = TIMING.search(line)
        if m:
            i, slot, played, released, waited = (int(g or 0) for g in m.groups())
            timings.append((i, slot / 1000, played / 1000, released / 1000, waited / 1000))
    if len(timings) != len(report["scenarios"]):
        sys.exit("no timing lines from sockgrade: is it a build with `sockgrade::timing`?")
    return report, sorted(timings), wall, peak[0]


def peer(server, name, repeat=1):
    """Runs bench/peer.py; returns ({scenario: median ms}, total s)."""
    out = subprocess.run([sys.executable, PEER, server, "--repeat", str(repeat), *(["--scenario", name] if name else [])],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    medians, total = {}, None
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+runs=(\d+) passed=(\d+) median_ms=([\d.]+)", line)
        if m:
            if m.group(2) != m.group(3):
                sys.exit(f"the peer failed a scenario: {line}")
            medians[m.group(1)] = float(m.group(4))
        elif line.startswith("total_s="):
            total = float(line.split("=")[1])
    return medians, total


def load_peer():
    """bench/peer.py as a module, to run its scenarios in this process."""
    spec = importlib.util.spec_from_file_location("peer", PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peer_once(module, server, name):
    """One run of a peer scenario, exactly as peer.py's main loop times it
    (from choosing a port to its server reaped), in this long-lived process:
    the state of a course script grading its second scenario and every one
    after. Returns ms."""
    start = time.monotonic()
    port = module.free_port()
    proc = module.start_server(server, port)
    try:
        ok = module.SCENARIOS[name](port)
    finally:
        module.stop_server(proc)
    ms = (time.monotonic() - start) * 1000
    if not ok:
        sys.exit(f"the peer failed {name}")
    return ms


def copies(runs):
    """A spec with `runs` copies of each of the four scenarios, in the peer's order."""
    text = open(SPEC).read()
    head, _, rest = text.partition("scenarios:\n")
    blocks = re.split(r"(?m)^(?=  - name: )", rest)
    out = [head, "scenarios:\n"]
    for name in SCENARIOS:
        block = next(b for b in blocks if b.startswith(f"  - name: {name} "))
        for k in range(runs):
            out.append(block.replace(f"  - name: {name} ", f"  - name: {name}/{k + 1} ", 1).rstrip() + "\n\n")
    return "".join(out)


def echo_gap(transcript):
    """Milliseconds from the bytes queued on `a` to their echo, in a full transcript."""
    times = [float(m.group(1)) for m in re.finditer(r'(?m)^\s*([\d.]+)ms  a +(?:->|<-) "', transcript)]
    return times[1] - times[0] if len(times) >= 2 else None


def fmt(ms):
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="fresh servers per scenario and harness")
    ap.add_argument("--big-runs", type=int, default=5, help="runs of the 1,000-connection scenario")
    ap.add_argument("--suite-runs", type=int, default=3, help="runs of the tcp-echo suite")
    ap.add_argument("--skip", action="append", default=[], choices=["side", "whole", "big", "suite"])
    a = ap.parse_args()
    exe = os.path.join(release_dir(), "sockgrade")
    server = os.path.join(release_dir(), "echoserver")
    if not (os.path.exists(exe) and os.path.exists(server)):
        sys.exit(f"build first: cargo build --release --workspace (looked in {release_dir()})")
    if os.geteuid() != 0:
        sys.exit("run as root: sockgrade is measured with --isolation netns")
    print(f"sockgrade: {exe}\nserver:    {server}\ncores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}\n")
    index = {}
    report, _, _, _ = sockgrade(exe, SPEC, "--isolation", "netns", "--only", "echo-one")
    if "side" not in a.skip:
        module = load_peer()
        for name in SCENARIOS:  # its first run in a process is not its steady state
            peer_once(module, server, name)
        peer_ms = {n: [] for n in SCENARIOS}
        cold = {n: [] for n in SCENARIOS}
        ours = {n: [] for n in SCENARIOS}
        waited = {n: [] for n in SCENARIOS}
        for r in range(a.runs):
            for k, name in enumerate(SCENARIOS):
                order = ["peer", "sockgrade", "cold"] if (r + k) % 2 == 0 else ["sockgrade", "peer", "cold"]
                for who in order:
                    if who == "peer":
                        peer_ms[name].append(peer_once(module, server, name))
                    elif who == "cold":
                        cold[name].append(peer(server, name)[0][name])
                    else:
                        _, t, _, _ = sockgrade(exe, SPEC, "--isolation", "netns", "-j", "1", "--only", name + " ")
                        ours[name].append(t[0][1])
                        waited[name].append(t[0][4])
            print(f"\rround {r + 1}/{a.runs}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        print(f"Side by side, {a.runs} fresh servers per scenario and harness, interleaved (medians; min-max):")
        print(f"{'scenario':<12} {'peer':>22} {'sockgrade netns -j 1':>24} {'ratio':>6}  {'+ copy and user':>15}"
              f"  {'peer, a fresh interpreter each run':>34}")
        for name in SCENARIOS:
            p, s, c = peer_ms[name], ours[name], cold[name]
            print(f"{name:<12} {statistics.median(p):>8.1f} ms ({min(p):.1f}-{max(p):.1f}) "
                  f"{statistics.median(s):>9.1f} ms ({min(s):.1f}-{max(s):.1f}) "
                  f"{statistics.median(s) / statistics.median(p):>6.2f}  {statistics.median(waited[name]):>12.1f} ms"
                  f"  {statistics.median(c):>12.1f} ms ({min(c):.1f}-{max(c):.1f}), ratio "
                  f"{statistics.median(s) / statistics.median(c):.2f}")
        print()
    if "whole" not in a.skip:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="speed-copies-") as f:
            f.write(copies(a.runs))
            f.flush()
            os.chmod(f.name, 0o644)
            start = time.perf_counter()
            medians, total = peer(server, None, a.runs)
            peer_wall = time.perf_counter() - start
            rows = []
            for jobs in [None, "1"]:
                args = ["--isolation", "netns"] + (["-j", jobs] if jobs else [])
                report, t, wall, _ = sockgrade(exe, f.name, *args)
                rows.append((jobs, report, t, wall))
        n = len(SCENARIOS) * a.runs
        print(f"All {n} in one process each (peer.py --repeat {a.runs}; sockgrade on {a.runs} copies of each):")
        print(f"  peer       {total:.2f} s of scenarios, {peer_wall:.2f} s with the interpreter's start")
        for jobs, report, t, wall in rows:
            print(f"  sockgrade  {wall:.2f} s wall, netns, {'-j ' + jobs if jobs else 'default --jobs'}")
        _, report, t, _ = rows[1]
        print(f"  per scenario in sockgrade's -j 1 run (runs of {a.runs} in one process; medians, max):")
        for k, name in enumerate(SCENARIOS):
            slots = [x[1] for x in t[k * a.runs:(k + 1) * a.runs]]
            print(f"    {name:<12} {statistics.median(slots):6.1f} ms   max {max(slots):6.1f} ms   "
                  f"over 40 ms: {sum(s > 40 for s in slots)} of {len(slots)}   (peer {medians[name]:.1f} ms)")
        # The delayed-ACK stall shows as 40-50 ms between the last one-byte
        # write and the echo, in the transcript of `fragments`.
        gaps = [echo_gap(s["transcript"]) for s in report["scenarios"] if s["name"].startswith("fragments/")]
        gaps = [g for g in gaps if g is not None]
        print(f"  fragments, queued to echoed (transcript): median {statistics.median(gaps):.1f} ms, "
              f"max {max(gaps):.1f} ms, stalls of 35-60 ms: {sum(35 <= g <= 60 for g in gaps)} of {len(gaps)}")
        print()
    if "big" not in a.skip:
        slots, walls, peaks = [], [], []
        for _ in range(a.big_runs):
            _, t, wall, peak = sockgrade(exe, SPEC, "--isolation", "netns", "-j", "1", "--only", "concurrent-1000")
            slots.append(t[0][1])
            walls.append(wall)
            peaks.append(peak)
        print(f"1,000 concurrent connections, each echoing a line, {a.big_runs} runs (netns, -j 1):")
        print(f"  scenario  median {fmt(statistics.median(slots))}  (min {fmt(min(slots))}, max {fmt(max(slots))})")
        print(f"  process   median {fmt(statistics.median(walls) * 1000)} wall")
        print(f"  harness peak resident  median {statistics.median(peaks) / 1024:.1f} MiB  (max {max(peaks) / 1024:.1f} MiB)")
        print()
    if "suite" not in a.skip:
        rows = []
        for _ in range(a.suite_runs):
            report, t, wall, _ = sockgrade(exe, os.path.join(ROOT, "specs", "tcp-echo.yaml"))
            longest = max(t, key=lambda x: x[1])
            rows.append((wall, longest[1] / 1000, report["scenarios"][longest[0]]["name"], report["score"]))
        print(f"The tcp-echo suite at the default --jobs (the reference), {a.suite_runs} runs:")
        for wall, longest, name, score in rows:
            print(f"  wall {wall:.2f} s, longest scenario {longest:.2f} s ({name}): {wall / longest:.2f}x, score {score}")
        walls = sorted(r[0] / r[1] for r in rows)
        print(f"  median ratio {statistics.median(walls):.2f}x")


if __name__ == "__main__":
    main()
