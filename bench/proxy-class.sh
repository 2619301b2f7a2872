#!/usr/bin/env bash
# The proxy lab's class bench: the bundled proxy fixtures
# (fixtures/submissions/proxy-*) graded as a class by sockgrade, at the
# default --jobs and at -j 1, beside the course driver's stand-in
# (bench/proxy-driver.sh: curl through the proxy, `sleep 1` between steps).
# Prints each run's wall time and the ratios.
#
#   cargo build --release --workspace
#   bench/proxy-class.sh [RUNS]
set -eu
cd "$(dirname "$0")/.."
runs=${1:-1}
sockgrade=target/release/sockgrade
[ -x "$sockgrade" ] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }

class=$(mktemp -d)
trap 'rm -rf "$class"' EXIT
for f in fixtures/submissions/proxy-*/; do
    cp -r "$f" "$class/$(basename "$f")"
done
n=$(ls "$class" | wc -l)

seconds() { # seconds COMMAND... : wall time of the command, its output dropped
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.1f}')"
}

graded() { # graded OUT: sockgrade wrote a summary, so its time is a grading's
    [ -s "$1/summary.csv" ] || { echo "sockgrade grade wrote no $1/summary.csv: run it by hand to see why" >&2; exit 1; }
}

echo "$n proxy submissions, $runs run(s) each"
for run in $(seq "$runs"); do
    d=$(seconds bench/proxy-driver.sh "$class")
    g=$(seconds "$sockgrade" grade specs/proxy.yaml --submissions "$class" --out "$class.out.$run")
    g1=$(seconds "$sockgrade" grade specs/proxy.yaml --submissions "$class" --out "$class.out1.$run" -j 1)
    graded "$class.out.$run"
    graded "$class.out1.$run"
    rm -rf "$class.out.$run" "$class.out1.$run"
    python3 -c "print(f'run $run: driver stand-in {$d} s; sockgrade {$g} s (default --jobs, {$g/$d:.2f}x), {$g1} s (-j 1, {$g1/$d:.2f}x)')"
done
