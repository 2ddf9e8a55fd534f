#!/usr/bin/env bash
# Ferrocorn's benchmark: the same WSGI app behind the same nginx, served by
# nginx alone, the upstream ceiling (nginx -> nginx), Ferrocorn, uWSGI,
# Gunicorn and Granian; writes bench/results.md with a chart (results.png) and
# the raw runs (results.json).
#
#   scripts/bench.sh                quick mode (about 5 minutes)
#   scripts/bench.sh --full         full mode (longer runs, Ferrocorn worker-count curve)
#   scripts/bench.sh --no-build     use dist/ as it is (default: rebuild when stale)
#   scripts/bench.sh --help         every option of the driver (bench/run.py)
#
# Installs what it needs on first use: wrk from Debian's packages, and
# Gunicorn, uWSGI, Granian, Flask and matplotlib into .venv-bench (pinned in
# bench/requirements.txt), kept apart from the project venv; Ferrocorn itself
# with pip into .venv-bench and into .venv-bench-cp311/-cp313 (pyenv's).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BENCH_VENV="$ROOT/.venv-bench"
build=1
args=()
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        *) args+=("$arg") ;;
    esac
done

# uWSGI builds from source at pip install time: it needs a C compiler and Python's headers.
ensure_apt wrk build-essential python3.11 python3.11-venv python3.11-dev

if [ "$build" = 1 ] && { [ ! -x "$DIST/bin/ferrocorn" ] || [ ! -x "$DIST/sbin/nginx" ] \
    || [ ! -f "$DIST/modules/ngx_http_ferrocorn_module.so" ] \
    || [ -n "$(find "$ROOT/protocol" "$ROOT/nginx-module" "$ROOT/worker" -newer "$DIST/bin/ferrocorn" \
        \( -name '*.rs' -o -name '*.proto' -o -name Cargo.toml \) 2>/dev/null | head -n1)" ]; }; then
    "$ROOT/scripts/build.sh"
fi

if [ ! -x "$BENCH_VENV/bin/python" ]; then
    log "creating the bench venv in $BENCH_VENV"
    "$PYTHON" -m venv "$BENCH_VENV"
fi
stamp="$BENCH_VENV/.requirements.sha256"
want=$(sha256sum "$ROOT/bench/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing the benchmark's Python packages into $BENCH_VENV (uWSGI compiles: a minute or two)"
    "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/bench/requirements.txt"
    echo "$want" > "$stamp"
fi

# The pip-installed rows: Ferrocorn built by pip for the bench venv's Python
# (Debian's 3.11, the binary's own) and for pyenv's 3.11 and 3.13 when they
# are on this machine (rows whose venv is missing are skipped, said on the
# page). Each builds in a target dir of its own; rebuilt when sources change.
pip_install_ferrocorn() {  # VENV_DIR PYTHON
    local venv=$1 python=$2 stamp="$1/.ferrocorn-built"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    if [ -x "$venv/bin/ferrocorn" ] && [ -f "$stamp" ] && [ -z "$(find "$ROOT/protocol" "$ROOT/worker" \
        "$ROOT/python-package" "$ROOT/pyproject.toml" -newer "$stamp" \
        \( -name '*.rs' -o -name '*.py' -o -name '*.toml' \) 2>/dev/null | head -n1)" ]; then
        return 0
    fi
    log "pip install Ferrocorn into $venv ($("$venv/bin/python" -V 2>&1))"
    # The bench app imports Flask (its /flask/ workload): the pin of requirements.txt.
    CARGO_TARGET_DIR="$ROOT/target/bench-wheels/$(basename "$venv")" \
        "$venv/bin/pip" install -q --disable-pip-version-check "$ROOT" \
        "$(grep -i '^flask==' "$ROOT/bench/requirements.txt")"
    touch "$stamp"
}
pip_install_ferrocorn "$BENCH_VENV" "$PYTHON"
PYENV_VERSIONS="${PYENV_ROOT:-$HOME/.pyenv}/versions"
for minor in 3.11 3.13; do
    python=$(ls -d "$PYENV_VERSIONS/$minor".*/bin/"python$minor" 2>/dev/null | sort -V | tail -n1 || true)
    if [ -n "$python" ]; then
        pip_install_ferrocorn "$ROOT/.venv-bench-cp${minor/./}" "$python"
    else
        log "no pyenv CPython $minor: its pip-installed row is skipped"
    fi
done

exec "$BENCH_VENV/bin/python" "$ROOT/bench/run.py" ${args[@]+"${args[@]}"}
