#!/usr/bin/env bash
# Instructions the front nginx executes per hello-world request, a figure that
# does not depend on how busy the machine is (bench/results.md, History).
#
#   scripts/nginx-instructions.sh [ferrocorn|plain|ceiling] [seconds]
#
# ferrocorn (default): `ferrocorn_pass` to `ferrocorn -w 1` serving a 14-byte
# hello app, through an upstream with `keepalive 32`, as the benchmark's
# "Ferrocorn keepalive" row. plain: the same app behind the README's own
# config, `ferrocorn_pass unix:PATH` with no upstream block (the benchmark's
# "Ferrocorn" row). ceiling: the benchmark's upstream ceiling row,
# `proxy_pass` with keep-alive to a second nginx answering `return 200`.
# The front nginx (1 worker, no master) runs under callgrind; its counters are
# zeroed after a 2 s warm-up, then `wrk -t1 -c8` sends GET /hello for
# `seconds` (default 10); instructions are divided by wrk's request count.
# Uses dist/ as it is (run scripts/build.sh first). Prints the figure and
# leaves the profile for callgrind_annotate in the run directory it names.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mode=${1:-ferrocorn}
secs=${2:-10}
case "$mode" in ferrocorn | plain | ceiling) ;; *) die "usage: $0 [ferrocorn|plain|ceiling] [seconds]" ;; esac
ensure_apt valgrind wrk curl
[ -x "$DIST/sbin/nginx" ] || die "no $DIST/sbin/nginx: run scripts/build.sh first"

run=$(mktemp -d /tmp/ferrocorn-nginx-instructions.XXXXXX)
mkdir -p "$run/logs"
pids=()
cleanup() {
    for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
sock="$run/app.sock"

load=""
upstream="upstream app { server unix:$sock; keepalive 32; }"
# The head of an nginx config, up to inside `http {`: NAME (for its pid and
# error log) and master_process on|off.
nginx_prologue() {
    cat <<EOF
daemon off;
master_process $2;
worker_processes 1;
pid $run/$1.pid;
error_log $run/logs/$1-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/plain;
EOF
}

if [ "$mode" != ceiling ]; then
    cat > "$run/hello_app.py" <<'EOF'
HELLO = b"Hello, World!\n"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
    return [HELLO]
EOF
    "$DIST/bin/ferrocorn" -b "unix:$sock" -w 1 --chdir "$run" hello_app:application \
        > "$run/logs/ferrocorn.log" 2>&1 &
    pids+=($!)
    load="load_module $DIST/modules/ngx_http_ferrocorn_module.so;"
    location="ferrocorn_pass app;"
    if [ "$mode" = plain ]; then
        upstream=""
        location="ferrocorn_pass unix:$sock;"
    fi
else
    { nginx_prologue backend on
        cat <<EOF
    keepalive_requests 1000000;
    server {
        listen unix:$sock;
        location = /hello { return 200 'Hello, World!\n'; }
    }
}
EOF
    } > "$run/backend.conf"
    "$DIST/sbin/nginx" -p "$run" -c "$run/backend.conf" &
    pids+=($!)
    # As bench/driver/servers.py's PROXY_LOCATION.
    location='proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_redirect off;'
fi
{ echo "$load"
    nginx_prologue front off
    cat <<EOF
    sendfile on;
    $upstream
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            $location
        }
    }
}
EOF
} > "$run/front.conf"
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || die "the backend did not listen on $sock (see $run/logs)"

valgrind --tool=callgrind --callgrind-out-file="$run/callgrind.out" \
    "$DIST/sbin/nginx" -p "$run" -c "$run/front.conf" > "$run/logs/valgrind.log" 2>&1 &
vg=$!
pids=("$vg" "${pids[@]}")
url="http://127.0.0.1:$port/hello"
for _ in $(seq 300); do curl -fs "$url" > /dev/null 2>&1 && break; sleep 0.2; done
curl -fs "$url" | grep -q "Hello, World!" || die "no hello world from $url (see $run/logs)"

wrk -t1 -c8 -d2s "$url" > /dev/null
callgrind_control -z "$vg" > /dev/null
wrk -t1 -c8 -d"${secs}s" "$url" > "$run/wrk.txt"
callgrind_control -d "$vg" > /dev/null
if grep -q "Non-2xx\|Socket errors" "$run/wrk.txt"; then die "wrk saw errors: $(cat "$run/wrk.txt")"; fi

requests=$(awk '/requests in/ {print $1}' "$run/wrk.txt")
profile=$(ls -t "$run"/callgrind.out.* | head -n1)
total=$(callgrind_annotate "$profile" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$mode: $((total / requests)) nginx instructions per request ($total over $requests requests)"
echo "profile: callgrind_annotate --inclusive=yes $profile"
