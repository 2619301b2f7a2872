#!/usr/bin/env python3
"""Runs a spec many times while the machine is busy and reports, per
scenario, how often its verdict differed from its most common one.

    cargo build --release --workspace
    python3 bench/flips.py --runs 20                       # the reference
    python3 bench/flips.py --runs 5 --submission fixtures/submissions/tcp-echo-sigpipe

The load is `stress-ng --cpu N` (Debian's stress-ng), started before the
first run and stopped after the last; --no-load runs on a quiet machine.
"""
import argparse, collections, json, os, shutil, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "sockgrade")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="specs/tcp-echo.yaml")
    p.add_argument("--submission", help="a submission directory (default: the reference programs)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--cpu", type=int, default=2, help="stress-ng --cpu workers")
    p.add_argument("--no-load", action="store_true")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", action="append", default=[], help="a scenario's name (repeatable), as sockgrade run --only")
    p.add_argument("--isolation", help="as sockgrade run --isolation (`none`: no network namespace)")
    p.add_argument("--as-nobody", action="store_true",
                   help="run sockgrade as the user nobody (setpriv), as on a platform without root")
    a = p.parse_args()
    if not os.path.exists(EXE):
        sys.exit("build first: cargo build --release --workspace")
    target = ["--submission", a.submission] if a.submission else ["--reference"]
    load = None
    if not a.no_load:
        if not shutil.which("stress-ng"):
            sys.exit("stress-ng is not installed (apt-get install stress-ng), or pass --no-load")
        load = subprocess.Popen(["stress-ng", "--cpu", str(a.cpu), "--quiet"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    verdicts = collections.defaultdict(list)
    messages = collections.defaultdict(list)
    try:
        for run in range(a.runs):
            only = [w for name in a.only for w in ("--only", name)]
            isolation = ["--isolation", a.isolation] if a.isolation else []
            user = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"] if a.as_nobody else []
            out = subprocess.run([*user, EXE, "run", a.spec, *target, "--format", "json", "--jobs", str(a.jobs),
                                  *isolation, *only], cwd=ROOT, capture_output=True)
            report = json.loads(out.stdout)
            for s in report["scenarios"]:
                verdicts[s["name"]].append(s["status"])
                if s["status"] != "passed":
                    messages[s["name"]].append(s["message"])
            print(f"run {run + 1}/{a.runs}: score {report['score']}/{report['max_score']}", flush=True)
    finally:
        if load:
            os.killpg(load.pid, 15)
            load.wait()
    flips = 0
    for name, vs in verdicts.items():
        common, n = collections.Counter(vs).most_common(1)[0]
        if n != len(vs):
            flips += len(vs) - n
            print(f"FLIP {name}: {dict(collections.Counter(vs))}")
            for m in messages[name][:2]:
                print("    " + m.replace("\n", "\n    "))
    load_text = "no load" if a.no_load else f"stress-ng --cpu {a.cpu}"
    print(f"{len(verdicts)} scenarios x {a.runs} runs under {load_text}: {flips} flipped verdicts")


if __name__ == "__main__":
    main()
