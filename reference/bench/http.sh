#!/usr/bin/env bash
# Benchmark: the reference httpd against nginx, serving the same file on
# loopback, measured with wrk (keep-alive connections, bounded in time).
#
#   reference/bench/http.sh            # from anywhere in the workspace
#   DURATION=10s CONNECTIONS=128 FILE_SIZE=65536 reference/bench/http.sh
#
# Installs nginx-light and wrk with apt-get when they are missing (needs
# root), builds httpd with --release, starts both servers on 127.0.0.1 only,
# runs wrk against each for DURATION, prints both figures and their ratio,
# and stops everything it started. Both servers and wrk share the machine's
# cores, so the figures say more about each other than in absolute terms.
set -euo pipefail

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
FILE_SIZE=${FILE_SIZE:-4096}

here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/../.." && pwd)

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    echo "installing nginx-light and wrk..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wrk >/dev/null
fi

echo "building httpd (release)..." >&2
(cd "$workspace" && cargo build --release -q -p reference --bin httpd)
httpd="${CARGO_TARGET_DIR:-$workspace/target}/release/httpd"

work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as another user and must read it
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/www" "$work/logs" "$work/tmp"
head -c "$FILE_SIZE" /dev/urandom >"$work/www/file.bin"
chmod -R a+rX "$work/www"

# A free port on 127.0.0.1 in 20000..30000: nobody answers a connection to it.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# Wait (at most 5 s) until something listens on the port, as the kernel says.
wait_listening() {
    local port=$1 i
    for i in $(seq 500); do
        if ss -Hltn "sport = :$port" | grep -q LISTEN; then return 0; fi
        sleep 0.01
    done
    echo "nothing listens on port $port" >&2
    return 1
}

httpd_port=$(free_port)
"$httpd" "$httpd_port" "$work/www" 2>"$work/logs/httpd.log" &
pids+=($!)
wait_listening "$httpd_port"

nginx_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 30s;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp;
    scgi_temp_path $work/tmp;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:$nginx_port;
        root $work/www;
    }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_listening "$nginx_port"

# Both answer the same bytes?
cmp -s <(curl -s "http://127.0.0.1:$httpd_port/file.bin") "$work/www/file.bin"
cmp -s <(curl -s "http://127.0.0.1:$nginx_port/file.bin") "$work/www/file.bin"

requests_per_second() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$1/file.bin" |
        tee -a "$work/logs/wrk.log" | awk '/^Requests\/sec:/ { print $2 }'
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, file of $FILE_SIZE bytes, $(nproc) cores" >&2
httpd_rps=$(requests_per_second "$httpd_port")
nginx_rps=$(requests_per_second "$nginx_port")
errors=$(grep -E 'Non-2xx|Socket errors' "$work/logs/wrk.log" || true)
[ -n "$errors" ] && echo "wrk reported: $errors" >&2

echo "httpd: $httpd_rps requests/s"
echo "nginx: $nginx_rps requests/s"
awk -v a="$httpd_rps" -v b="$nginx_rps" 'BEGIN { printf "ratio httpd/nginx: %.2f\n", a / b }'
