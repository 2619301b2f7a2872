#!/usr/bin/env bash
# A course driver's stand-in for the tcp-echo lab: grades each submission
# the way course scripts for echo labs do, so that sockgrade's class grading
# can be timed beside it (bench/class.py). It is not a grader we ship.
#
# For each submission: build it; start ./echoserver on a free port and wait
# for it with a loop of `sleep 1`; then, with nc and `sleep 1` between the
# tests:
#   - one line through nc comes back (20 points);
#   - a 100 KB file of lines comes back whole (20);
#   - a second client is served while a first one holds its connection
#     open (20);
#   - ./echoclient, run against a Python echo server with a few lines on
#     its stdin, prints them back (20);
#   - the server is gone one second after SIGTERM (20).
# It never looks at partial writes, half-closes, descriptors, zombies,
# resets or timing.
#
#   bench/tcp-echo-driver.sh DIR      # every subdirectory of DIR is a submission
# Prints one line per submission: name and the five tests' points, total.
# Needs nc (netcat-openbsd) and python3.
set -u

parent=${1:?usage: bench/tcp-echo-driver.sh DIR}
command -v nc >/dev/null || { echo "needs nc (netcat-openbsd)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

python3 - "$work/big.txt" <<'PY'
import random, sys
r = random.Random(3)
open(sys.argv[1], "w").write("".join(f"line {i} {r.random()}\n" for i in range(4000)))
PY
printf 'first line\nsecond line\nthe last one\n' >"$work/lines.txt"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# As course drivers do: try the port once a second, five times.
wait_for_port() {
    for _ in 1 2 3 4 5; do
        if nc -z 127.0.0.1 "$1" 2>/dev/null; then return 0; fi
        sleep 1
    done
    return 1
}

through() { # through PORT FILE OUT: FILE through nc, what came back in OUT
    timeout 10 nc -N -w 5 127.0.0.1 "$1" <"$2" >"$3" 2>/dev/null
}

grade() {
    local src=$1 name dir one=0 big=0 two=0 client=0 term=0
    name=$(basename "$src")
    dir=$work/$name
    cp -r "$src" "$dir"
    if ! make -s -C "$dir" >/dev/null 2>&1; then
        echo "$name 0 0 0 0 0 0 (did not build)"
        return
    fi
    local port server
    port=$(free_port)
    if [ -x "$dir/echoserver" ]; then
        # A session of its own, so that the clean-up below ends the
        # children of a forking or pre-forking server too.
        (cd "$dir" && exec setsid ./echoserver "$port" >/dev/null 2>&1) &
        server=$!
        if wait_for_port "$port"; then
            printf 'hello, echo\n' >"$work/one.txt"
            through "$port" "$work/one.txt" "$work/out"
            cmp -s "$work/out" "$work/one.txt" && one=20
            sleep 1
            through "$port" "$work/big.txt" "$work/out"
            cmp -s "$work/out" "$work/big.txt" && big=20
            sleep 1
            # The first client holds its connection, silent, for 3 seconds.
            (sleep 3 | nc 127.0.0.1 "$port" >/dev/null 2>&1) &
            local holder=$!
            sleep 1
            through "$port" "$work/one.txt" "$work/out"
            cmp -s "$work/out" "$work/one.txt" && two=20
            kill "$holder" 2>/dev/null
            wait "$holder" 2>/dev/null
            kill -TERM "$server" 2>/dev/null
            sleep 1
            kill -0 "$server" 2>/dev/null || term=20
        fi
        kill -KILL -- -"$server" 2>/dev/null
        wait "$server" 2>/dev/null
    fi
    if [ -x "$dir/echoclient" ]; then
        port=$(free_port)
        python3 -c 'import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
def echo(c):
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()' "$port" &
        local echo=$!
        wait_for_port "$port"
        (cd "$dir" && timeout 10 ./echoclient 127.0.0.1 "$port" <"$work/lines.txt" >"$work/out" 2>/dev/null)
        cmp -s "$work/out" "$work/lines.txt" && client=20
        kill "$echo" 2>/dev/null
        wait "$echo" 2>/dev/null
    fi
    echo "$name $one $big $two $client $term $((one + big + two + client + term))"
}

for s in "$parent"/*/; do
    grade "${s%/}"
done
