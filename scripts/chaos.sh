#!/usr/bin/env bash
# Faults under load (issue 7): real nginx + module + ferrocorn, a bounded
# client loop on loopback, one fault per scenario; figures written to
# bench/reliability.md. Scenario names as arguments run only those
# (kill_worker hang segfault leak supervisor_restart client_aborts).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/build.sh"
ensure_venv
cd "$ROOT"
log "chaos scenarios"
"$VENV/bin/python" "$ROOT/scripts/chaos.py" "$@"
