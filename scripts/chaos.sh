#!/usr/bin/env bash
# Faults under load (issue 7): real nginx + module + ferrocorn, bounded
# client loops on loopback, one fault per scenario; each scenario's figures
# are merged into bench/reliability.md (rows of scenarios not run are kept).
# About 7 minutes in all. Scenario names as arguments run only those:
#   hup kill_worker hang segfault leak supervisor_restart failover client_aborts
#   term_pair term_single keepalive no_replay preload soak
# --soak-minutes N sets the soak's length (2 by default; issue 7 asks 10).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/build.sh"
ensure_venv
cd "$ROOT"
log "chaos scenarios"
"$VENV/bin/python" "$ROOT/scripts/chaos.py" "$@"
