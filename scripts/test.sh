#!/usr/bin/env bash
# Runs every test: the Rust unit tests of all crates, then the end-to-end
# suite (tests/, pytest) against the real dist/ install tree: real nginx with
# the module, real ferrocorn supervisors, real apps, real HTTP clients; and
# the Python package from a venv of each CPython the machine has
# (scripts/python-venvs.sh, tests/test_pythons.py).
# Extra arguments go to pytest (e.g. scripts/test.sh -k upload -x).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/build.sh"
ensure_venv
ensure_apt curl iproute2   # iproute2: ss, which tests read listen queues with

cd "$ROOT"
log "cargo test (unit tests)"
# Same profile as the build: the vendored nginx is not compiled a second time.
cargo test --release --locked --workspace

log "the Python package, built and installed for each CPython 3.9-3.13 found"
"$ROOT/scripts/python-venvs.sh"

log "end-to-end suite (pytest)"
"$VENV/bin/python" -m pytest "$ROOT/tests" "$@"
