#!/usr/bin/env bash
# Runs every test: rustfmt and clippy as errors, the Rust unit tests of all
# crates, then the end-to-end suite (tests/, pytest) against the real dist/
# install tree: real nginx with the module, real ferrocorn supervisors, real
# apps, real HTTP clients; and the Python package from a venv of each
# CPython the machine has (scripts/python-venvs.sh, tests/test_pythons.py).
# Extra arguments go to pytest (e.g. scripts/test.sh -k upload -x).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/build.sh"
ensure_venv
ensure_apt curl iproute2   # iproute2: ss, which tests read listen queues with

cd "$ROOT"
# The style is kept here, so CI fails on a lapse: rustfmt's layout, and
# clippy with the workspace's lints ([workspace.lints] in Cargo.toml: every
# unsafe block says why it is sound) as errors.
log "cargo fmt --check, cargo clippy"
for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
cargo fmt --all --check || die "cargo fmt --check: run 'cargo fmt --all'"
cargo clippy --release --locked --workspace --all-targets -- -D warnings

log "cargo test (unit tests)"
# Same profile as the build: the vendored nginx is not compiled a second time.
cargo test --release --locked --workspace

log "the Python package, built and installed for each CPython 3.9-3.13 found"
"$ROOT/scripts/python-venvs.sh"

log "end-to-end suite (pytest)"
"$VENV/bin/python" -m pytest "$ROOT/tests" "$@"
