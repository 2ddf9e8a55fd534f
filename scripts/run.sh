#!/usr/bin/env bash
# Ferrocorn's main job, in one command: builds if needed, makes the project
# venv, then runs nginx (with ngx_http_ferrocorn_module) in front of a
# ferrocorn supervisor serving an example WSGI app, and prints the URL.
# Ctrl-C stops both.
#
#   scripts/run.sh [MODULE:APP]      default: app:application from examples/
#   PORT=8080 WORKERS=2 scripts/run.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APP=${1:-app:application}
PORT=${PORT:-8080}
WORKERS=${WORKERS:-2}

if [ ! -x "$DIST/bin/ferrocorn" ] || [ ! -x "$DIST/sbin/nginx" ] \
    || [ -n "$(find "$ROOT/protocol" "$ROOT/nginx-module" "$ROOT/worker" -newer "$DIST/bin/ferrocorn" \
        \( -name '*.rs' -o -name '*.proto' -o -name Cargo.toml \) 2>/dev/null | head -n1)" ]; then
    "$ROOT/scripts/build.sh"
fi
ensure_venv

# nginx's workers run as "nobody" when nginx starts as root: keep the socket
# in a world-traversable directory outside any private home.
RUN=$(mktemp -d "${TMPDIR:-/tmp}/ferrocorn-run.XXXXXX")
chmod 755 "$RUN"
mkdir -p "$RUN/logs"
SOCK="$RUN/ferrocorn.sock"

cat > "$RUN/nginx.conf" <<CONF
load_module $DIST/modules/ngx_http_ferrocorn_module.so;
daemon off;
worker_processes 1;
error_log $RUN/logs/error.log info;
pid $RUN/nginx.pid;
events { worker_connections 1024; }
http {
    access_log $RUN/logs/access.log;
    server {
        listen 127.0.0.1:$PORT;
        location / {
            ferrocorn_pass unix:$SOCK;
            ferrocorn_param SERVER_SOFTWARE_FRONT nginx/\$nginx_version;
        }
    }
}
CONF

pids=()
stop() {
    trap - INT TERM EXIT
    log "stopping"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap stop INT TERM EXIT

"$DIST/bin/ferrocorn" --bind "unix:$SOCK" --workers "$WORKERS" \
    --control-socket "$RUN/ferrocorn.ctl" \
    --chdir "$ROOT/examples" --virtualenv "$VENV" "$APP" &
pids+=($!)
for _ in $(seq 100); do [ -S "$SOCK" ] && break; kill -0 "${pids[0]}" 2>/dev/null || exit 1; sleep 0.1; done
"$DIST/sbin/nginx" -p "$RUN" -e "$RUN/logs/error.log" -c "$RUN/nginx.conf" &
pids+=($!)
# Ready when nginx answers through the module; gone means it failed to start.
for _ in $(seq 100); do
    kill -0 "${pids[1]}" 2>/dev/null || { tail -n 5 "$RUN/logs/error.log" >&2; die "nginx did not start"; }
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.1
done

log "Ferrocorn is serving $APP through nginx: open http://127.0.0.1:$PORT/  (Ctrl-C stops)"
log "nginx logs: $RUN/logs/"
log "workers: $DIST/bin/ferrocorn ctl -s $RUN/ferrocorn.ctl show workers"
wait -n "${pids[@]}" || true
