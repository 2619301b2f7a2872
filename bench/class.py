#!/usr/bin/env python3
"""The class bench: every lab's bundled fixtures graded as a class.

    cargo build --release --workspace
    sudo python3 bench/class.py [--runs N] [--lab LAB ...] [--no-driver]

For each lab, the fixtures of fixtures/submissions/LAB-* are copied into one
folder and graded with `sockgrade grade specs/LAB.yaml --submissions`, at
the default --jobs and at -j 1 (wall time of the process; the best of
--runs). From the reports it counts the scenarios that failed, and of
those the ones that ended early, and why:

- `still`: the kernel showed that nothing more could come (every program
  waiting in a system call with no timeout and nothing in flight), so the
  wait ended there, not at its bound;
- `unready`: a program that never listened in an earlier scenario of the
  submission, started the same way, was not waited for again;
- `bound`: the wait sat out its bound;
- the rest failed on what arrived (wrong bytes, an end, a reset), which
  needs no wait at all.

Each submission's verdicts (its score and every scenario's status) are
compared with its reviewed snapshot (harness/tests/snapshots/grading__NAME.snap,
made by `sockgrade run` of that submission alone): a class graded with
others beside it, quiet or busy, must grade each alike.

For tcp-echo and proxy, the course driver's stand-ins (bench/tcp-echo-driver.sh,
bench/proxy-driver.sh: nc or curl, `sleep 1` between steps) grade the same
folder, timed beside sockgrade, and the number of submissions each found
wrong is printed next to sockgrade's.

Python 3 standard library only. Run as root, as courses do in CI: the
multicast lab and the proxy's port-80 scenario need network namespaces.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABS = ["tcp-echo", "udp-echo", "http", "multicast", "rpc", "proxy"]
DRIVERS = {"tcp-echo": "bench/tcp-echo-driver.sh", "proxy": "bench/proxy-driver.sh"}
STILL = re.compile(r"none was about to|it had nothing more to send|no program of the scenario is running any more")
UNREADY = re.compile(r"is not waited for again")
BOUND = re.compile(r"within \d+ms")


def sockgrade_exe():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "release", "sockgrade")


def timed(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, out


def endings(out_dir):
    """(scenarios, failed, {why: count}) over every report under out_dir."""
    total, failed, why = 0, 0, {"still": 0, "unready": 0, "bound": 0, "what arrived": 0}
    for path in glob.glob(os.path.join(out_dir, "*", "report.json")):
        report = json.load(open(path))
        for s in report["scenarios"]:
            total += 1
            if s["status"] != "failed":
                continue
            failed += 1
            detail = (s.get("failure") or {}).get("detail") or s.get("message") or ""
            if STILL.search(detail):
                why["still"] += 1
            elif UNREADY.search(detail):
                why["unready"] += 1
            elif BOUND.search(detail):
                why["bound"] += 1
            else:
                why["what arrived"] += 1
    return total, failed, why


def verdicts_as_snapshots(out_dir):
    """Names of the submissions whose verdicts differ from their snapshot."""
    differ = []
    for path in sorted(glob.glob(os.path.join(out_dir, "*", "report.json"))):
        name = os.path.basename(os.path.dirname(path))
        snap = os.path.join(ROOT, "harness", "tests", "snapshots", f"grading__{name}.snap")
        if not os.path.exists(snap):
            continue
        expected = open(snap).read().split("---\n", 2)[-1].strip()
        report = json.load(open(path))
        # As tests/support's verdict_table writes it.
        table = [f"score {report['score']}/{report['max_score']}"]
        for s in report["scenarios"]:
            failure = s.get("failure") or {}
            blamed = ""
            if failure.get("precondition"):
                clauses = failure.get("clauses") or s.get("tags") or []
                blamed = f"  [blamed on {', '.join(sorted(clauses))}]"
            table.append(f"{s['status']:<6} {s['name']}{blamed}")
        if "\n".join(table).strip() != expected:
            differ.append(name)
    return differ


def wrong_by_sockgrade(out_dir):
    names = []
    for path in glob.glob(os.path.join(out_dir, "*", "report.json")):
        report = json.load(open(path))
        if report["score"] != report["max_score"]:
            names.append(os.path.basename(os.path.dirname(path)))
    return sorted(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="runs of each grading; the best is shown")
    ap.add_argument("--lab", action="append", choices=LABS, help="only these labs (default: all)")
    ap.add_argument("--no-driver", action="store_true", help="leave out the driver stand-ins")
    a = ap.parse_args()
    exe = sockgrade_exe()
    if not os.path.exists(exe):
        sys.exit("build first: cargo build --release --workspace")
    print(f"sockgrade: {exe}\ncores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}\n")
    for lab in a.lab or LABS:
        fixtures = sorted(glob.glob(os.path.join(ROOT, "fixtures", "submissions", f"{lab}-*")))
        with tempfile.TemporaryDirectory(prefix=f"class-{lab}-") as tmp:
            class_dir = os.path.join(tmp, "class")
            os.mkdir(class_dir)
            for f in fixtures:
                shutil.copytree(f, os.path.join(class_dir, os.path.basename(f)), symlinks=True)
            walls = {}
            for jobs in [None, "1"]:
                best = None
                for run in range(a.runs):
                    out_dir = os.path.join(tmp, f"out-{jobs or 'default'}-{run}")
                    cmd = [exe, "grade", f"specs/{lab}.yaml", "--submissions", class_dir, "--out", out_dir]
                    cmd += ["-j", jobs] if jobs else []
                    wall, out = timed(cmd)
                    if out.returncode != 0 or not os.path.exists(os.path.join(out_dir, "summary.csv")):
                        sys.exit(f"sockgrade grade failed for {lab}: {out.stderr}")
                    best = wall if best is None else min(best, wall)
                    last = out_dir
                walls[jobs or "default"] = (best, last)
            total, failed, why = endings(walls["default"][1])
            differ = sorted(set(verdicts_as_snapshots(walls["default"][1]) + verdicts_as_snapshots(walls["1"][1])))
            wrong = wrong_by_sockgrade(walls["default"][1])
            print(f"{lab}: {len(fixtures)} submissions, {total} scenarios, {failed} failed")
            print(f"  sockgrade  {walls['default'][0]:6.1f} s default --jobs   {walls['1'][0]:6.1f} s -j 1")
            print("  failed scenarios by how their wait ended: "
                  + ", ".join(f"{k} {v}" for k, v in why.items()))
            print(f"  submissions below full marks: {len(wrong)}; verdicts unlike their snapshot: "
                  f"{', '.join(differ) if differ else 'none'}")
            driver = DRIVERS.get(lab)
            if driver and not a.no_driver:
                wall, out = timed(["bash", driver, class_dir])
                lines = [l for l in out.stdout.splitlines() if l.strip()]
                full = max((int(l.split()[-1]) for l in lines if l.split()[-1].isdigit()), default=0)
                short = [l.split()[0] for l in lines if not l.split()[-1].isdigit() or int(l.split()[-1]) < full]
                print(f"  driver stand-in ({driver}) {wall:6.1f} s; sockgrade at the default --jobs takes "
                      f"{walls['default'][0] / wall:.2f}x its time, at -j 1 {walls['1'][0] / wall:.2f}x")
                print(f"  submissions below full marks by the stand-in: {len(short)}")
            print()


if __name__ == "__main__":
    main()
