#!/usr/bin/env bash
# The course driver's stand-in for the proxy lab: grades each submission the
# way CS:APP's proxylab driver.sh does, so that sockgrade's class grading can
# be timed beside it (bench/proxy-class.sh). It is not a grader we ship.
#
# Like driver.sh, for each submission: build it, start a real origin
# (Python's http.server) and the proxy on free ports, waiting for each with
# a loop of `sleep 1`; fetch five files through the proxy with curl and
# compare them with the files (basic, 40 points); fetch one while another
# request hangs on an origin that never answers (concurrency, 15); fetch
# three files, kill the origin, `sleep 1`, fetch them again (cache, 15).
# It never looks at what the proxy sends upstream.
#
#   bench/proxy-driver.sh DIR      # every subdirectory of DIR is a submission
# Prints one line per submission: name, basic, concurrency, cache, total.
set -u

parent=${1:?usage: bench/proxy-driver.sh DIR}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# The origin's files: three text pages and two binary ones.
www=$work/www
mkdir -p "$www"
printf '<html><body>home</body></html>\n' >"$www/home.html"
python3 - "$www" <<'PY'
import os, random, sys
www = sys.argv[1]
r = random.Random(7)
open(os.path.join(www, "csapp.txt"), "w").write("".join(f"line {i} {r.random()}\n" for i in range(1500)))
open(os.path.join(www, "tiny.txt"), "w").write("".join(f"tiny {i}\n" for i in range(300)))
open(os.path.join(www, "godzilla.bin"), "wb").write(bytes(r.randrange(256) for _ in range(60000)))
open(os.path.join(www, "tiny.bin"), "wb").write(bytes(r.randrange(256) for _ in range(20000)))
PY
files="home.html csapp.txt tiny.txt godzilla.bin tiny.bin"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# driver.sh waits for a port with netstat and `sleep 1`, at most 5 times.
wait_for_port() {
    for _ in 1 2 3 4 5; do
        if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
        sleep 1
    done
    return 1
}

fetch() { # fetch URL OUT [PROXYPORT]
    if [ -n "${3:-}" ]; then
        curl -s --max-time 5 --proxy "http://127.0.0.1:$3" -o "$2" "$1"
    else
        curl -s --max-time 5 -o "$2" "$1"
    fi
}

grade() {
    local src=$1 name dir basic=0 concurrency=0 cache=0
    name=$(basename "$src")
    dir=$work/$name
    cp -r "$src" "$dir"
    if ! make -s -C "$dir" >/dev/null 2>&1 || [ ! -x "$dir/proxy" ]; then
        echo "$name 0 0 0 0 (did not build)"
        return
    fi
    local origin_port proxy_port
    origin_port=$(free_port)
    (cd "$www" && exec python3 -m http.server --bind 127.0.0.1 "$origin_port" >/dev/null 2>&1) &
    local origin=$!
    proxy_port=$(free_port)
    # A session of its own: the clean-up ends whatever the proxy forked.
    (cd "$dir" && exec setsid ./proxy "$proxy_port" >/dev/null 2>&1) &
    local proxy=$!
    if ! wait_for_port "$origin_port" || ! wait_for_port "$proxy_port"; then
        kill "$origin" 2>/dev/null; kill -KILL -- -"$proxy" 2>/dev/null
        echo "$name 0 0 0 0 (no port)"
        return
    fi

    # Basic: each file through the proxy, compared with the file.
    for f in $files; do
        fetch "http://localhost:$origin_port/$f" "$work/out" "$proxy_port"
        cmp -s "$work/out" "$www/$f" && basic=$((basic + 8))
    done

    # Concurrency: a request hangs on an origin that never answers.
    local nop_port
    nop_port=$(free_port)
    python3 -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
held=[]
while True: held.append(s.accept())' "$nop_port" &
    local nop=$!
    wait_for_port "$nop_port"
    fetch "http://localhost:$nop_port/nop-file.txt" /dev/null "$proxy_port" &
    local hung=$!
    sleep 1
    fetch "http://localhost:$origin_port/home.html" "$work/out" "$proxy_port"
    cmp -s "$work/out" "$www/home.html" && concurrency=15
    kill "$nop" "$hung" 2>/dev/null

    # Cache: fetch three files, kill the origin, fetch them again.
    for f in tiny.txt home.html csapp.txt; do
        fetch "http://localhost:$origin_port/$f" /dev/null "$proxy_port"
    done
    kill "$origin" 2>/dev/null
    wait "$origin" 2>/dev/null
    sleep 1
    fetch "http://localhost:$origin_port/home.html" "$work/out" "$proxy_port"
    cmp -s "$work/out" "$www/home.html" && cache=15

    kill -KILL -- -"$proxy" 2>/dev/null
    wait "$proxy" 2>/dev/null
    echo "$name $basic $concurrency $cache $((basic + concurrency + cache))"
}

for s in "$parent"/*/; do
    grade "${s%/}"
done
