#!/usr/bin/env bash
# Instructions one ferrocorn worker executes per hello-world request, a figure
# that does not depend on how busy the machine is (bench/results.md, History).
#
#   scripts/worker-instructions.sh [VENV] [requests]
#
# Without VENV: the standalone binary dist/bin/ferrocorn (its embedded
# Python). With VENV: VENV/bin/ferrocorn, Ferrocorn pip-installed in that
# venv, on the venv's own Python. Either serves the 14-byte hello app with
# `-w 1` behind dist/sbin/nginx (`ferrocorn_pass` to an upstream with
# `keepalive 32`). The ferrocorn processes run under callgrind, twice: once
# serving 500 requests (GET /hello, one after another on one kept-alive
# connection, by curl), once 500 + `requests` (default 2000). The
# difference of the worker's whole-life instruction counts, divided by
# `requests`, is the cost of one request with start-up, warm-up and exit
# taken out (user space only: the kernel's socket work is not in it).
# callgrind_control cannot reach a forked worker, hence the two runs.
# Uses dist/ as it is (run scripts/build.sh first).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

venv=${1:-}
extra=${2:-2000}
base=500
ensure_apt valgrind curl
[ -x "$DIST/sbin/nginx" ] || die "no $DIST/sbin/nginx: run scripts/build.sh first"
if [ -n "$venv" ]; then
    ferrocorn="$venv/bin/ferrocorn"
    [ -x "$ferrocorn" ] || die "no $ferrocorn: pip install Ferrocorn into $venv first"
else
    ferrocorn="$DIST/bin/ferrocorn"
fi

run=$(mktemp -d /tmp/ferrocorn-worker-instructions.XXXXXX)
chmod 755 "$run"
pids=()
cleanup() {
    for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
sock="$run/app.sock"
url="http://127.0.0.1:$port/hello"

cat > "$run/hello_app.py" <<'PY'
HELLO = b"Hello, World!\n"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
    return [HELLO]
PY

cat > "$run/front.conf" <<CONF
load_module $DIST/modules/ngx_http_ferrocorn_module.so;
daemon off;
master_process off;
worker_processes 1;
pid $run/front.pid;
error_log $run/front-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    upstream app { server unix:$sock; keepalive 32; }
    server {
        listen 127.0.0.1:$port;
        location / { ferrocorn_pass app; }
    }
}
CONF

# Serves COUNT requests from a fresh ferrocorn under callgrind; prints the
# worker's instruction count over its whole life.
worker_instructions() { # COUNT
    local out="$run/run-$1" master worker=""
    mkdir -p "$out"
    rm -f "$sock"
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
        "$ferrocorn" -b "unix:$sock" -w 1 --no-control-socket --chdir "$run" hello_app:application \
        > "$out/ferrocorn.log" 2>&1 &
    master=$!
    pids+=("$master")
    for _ in $(seq 600); do
        worker=$(pgrep -P "$master" | head -n1 || true)
        [ -n "$worker" ] && grep -q "Booting worker" "$out/ferrocorn.log" && break
        sleep 0.1
    done
    [ -n "$worker" ] || die "no worker under the master $master (see $out)"
    # One connection from curl to nginx, kept alive for every request.
    for _ in $(seq "$1"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done > "$out/curl.conf"
    curl -fsS --retry 50 --retry-connrefused --retry-delay 0 --config "$out/curl.conf" \
        || die "a request failed (see $out)"
    kill -TERM "$master"
    wait "$master" || true
    callgrind_annotate "$out/callgrind.out.$worker" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

"$DIST/sbin/nginx" -p "$run" -c "$run/front.conf" &
pids+=($!)
small=$(worker_instructions "$base")
large=$(worker_instructions $((base + extra)))
echo "$("$ferrocorn" --version): $(((large - small) / extra)) worker instructions per request" \
    "($large - $small over $extra requests)"
