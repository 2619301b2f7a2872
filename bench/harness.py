#!/usr/bin/env python3
"""How long the harness takes: the median wall time of a trivial scenario
(start the server, one echo, stop) and of the whole tcp-echo suite, each with
and without network-namespace isolation, against the reference programs.

    cargo build --release --workspace && python3 bench/harness.py [--runs N]

Wall time of the whole `sockgrade run` process, so process start and spec
loading count too. The suite's figure is dominated by the scenarios that
wait on purpose (the client's 5 s timeout, the 1 s idle measurement).
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "sockgrade")


def median_ms(args, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([EXE, "run", *args, "--reference", "--format", "json"],
                              cwd=ROOT, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
        if done.returncode != 0:
            try:
                failed = [f"{s['name']}: {s['message']}" for s in json.loads(done.stdout)["scenarios"]
                          if s["status"] != "passed"]
            except ValueError:
                failed = [done.stderr.decode()]
            sys.exit(f"sockgrade failed ({done.returncode}):\n" + "\n".join(failed))
    return statistics.median(times), min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of the trivial scenario (the suite gets a quarter)")
    runs = parser.parse_args().runs
    if not os.path.exists(EXE):
        sys.exit("build first: cargo build --release --workspace")
    print(f"{'what':<34} {'isolation':<10} {'median':>10} {'min':>10} {'max':>10}  runs")
    for isolation in ["netns", "none"]:
        for name, spec, n in [("trivial scenario", "fixtures/specs/trivial.yaml", runs),
                              ("whole tcp-echo suite (-j 2)", "specs/tcp-echo.yaml", max(3, runs // 4))]:
            med, lo, hi = median_ms([spec, "--isolation", isolation, "--jobs", "2"], n)
            print(f"{name:<34} {isolation:<10} {med:>8.0f}ms {lo:>8.0f}ms {hi:>8.0f}ms  {n}")


if __name__ == "__main__":
    main()
