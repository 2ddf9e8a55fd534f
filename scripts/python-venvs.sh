#!/usr/bin/env bash
# Builds Ferrocorn's Python package for every CPython 3.9-3.13 this machine
# has, and a venv of each with it installed as a user installs it, for
# tests/test_pythons.py:
#
#   target/pyvenvs/cp3X/                 `python3.X -m venv`, with
#                                        tests/requirements-pythons.txt (Flask)
#   target/wheels/cp3X/ferrocorn-*.whl   `pip wheel <checkout>` by that venv's pip,
#                                        then `pip install WHEEL` into the venv
#   target/wheels/build-cp3X/            its cargo target dir (one per Python, so
#                                        the builds do not undo each other's)
#   target/pyvenvs/manifest.json         per version: interpreter, venv, wheel and
#                                        timings, or why it is missing or broken
#
# A CPython is looked for in pyenv's versions (PYENV_ROOT, `pyenv root`, or
# /root/.pyenv; the newest patch release of each minor), then as python3.X
# on PATH. One that is missing is recorded, not fatal: the tests skip it by
# name. A build or install that fails is recorded with its log, and that
# Python's tests fail with it. Run by scripts/test.sh before pytest; rerun,
# cargo finds the sources unchanged and each Python takes seconds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MINORS=(9 10 11 12 13)
WHEELS="$ROOT/target/wheels"
VENVS="$ROOT/target/pyvenvs"
MANIFEST="$VENVS/manifest.json"
REQUIREMENTS="$ROOT/tests/requirements-pythons.txt"
mkdir -p "$WHEELS" "$VENVS"

pyenv_root() {
    if [ -n "${PYENV_ROOT:-}" ]; then echo "$PYENV_ROOT"
    elif command -v pyenv >/dev/null && pyenv root 2>/dev/null; then :
    else echo /root/.pyenv
    fi
}
PYENV_DIR=$(pyenv_root)

# "IMPLEMENTATION MAJOR.MINOR.PATCH" of an interpreter, or nothing.
identify() {
    "$1" -c 'import platform, sys; print(platform.python_implementation(), "%d.%d.%d" % sys.version_info[:3])' \
        2>/dev/null || true
}

# The interpreter for 3.MINOR: pyenv's newest 3.MINOR.N, else python3.MINOR
# on PATH; it must run and be that CPython. Prints its path, or nothing.
find_python() {
    local minor=$1 candidates=() dir
    while read -r dir; do
        [ -n "$dir" ] && candidates+=("$dir/bin/python3.$minor")
    done < <(ls -d "$PYENV_DIR"/versions/3."$minor".* 2>/dev/null \
                 | grep -E "/3\.$minor\.[0-9]+$" | sort -V -r)
    if command -v "python3.$minor" >/dev/null; then candidates+=("$(command -v "python3.$minor")"); fi
    local py
    for py in "${candidates[@]}"; do
        [ -x "$py" ] || continue
        case "$(identify "$py")" in
            "CPython 3.$minor."*) echo "$py"; return ;;
        esac
    done
}

# One record of the manifest: key=value arguments, as JSON lines gathered
# in $RECORDS and written at the end.
RECORDS=$(mktemp)
trap 'rm -f "$RECORDS"' EXIT
record() {
    "$PYTHON" -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:])))' "$@" >> "$RECORDS"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Makes (or keeps) the venv of 3.MINOR from interpreter $2, with
# tests/requirements-pythons.txt from PyPI.
make_venv() {
    local minor=$1 py=$2 venv="$VENVS/cp3$1" log="$VENVS/cp3$1.log"
    : >"$log"
    # A venv of another interpreter (pyenv moved to a new patch) is made anew.
    if [ -x "$venv/bin/python" ] && [ "$(identify "$venv/bin/python")" != "$(identify "$py")" ]; then
        rm -rf "$venv"
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" >>"$log" 2>&1 || return 1
    fi
    local want
    want=$(sha "$REQUIREMENTS")
    if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
        "$venv/bin/pip" install --disable-pip-version-check -q -r "$REQUIREMENTS" >>"$log" 2>&1 || return 1
        echo "$want" >"$venv/.requirements.sha256"
    fi
}

# A new Python's cargo target dir starts as a copy of another Python's:
# cargo then rebuilds only what depends on the Python (pyo3 and up, about
# half of a build) instead of every dependency again. Copied, not linked:
# cargo rewrites the files it rebuilds.
seed_target_dir() {
    local target=$1 seed
    [ -d "$target" ] && return 0
    seed=$(ls -dt "$WHEELS"/build-cp3* 2>/dev/null | head -n1 || true)
    if [ -n "$seed" ]; then cp -a "$seed" "$target"; fi
}

# Builds the wheel for 3.MINOR with the venv's pip, as `VENV/bin/pip install
# <checkout>` would; prints its path. The venv's own interpreter path is part
# of what cargo sees (pyo3's configuration): building with it, here and in
# the test that pip-installs the checkout, leaves cargo nothing to redo.
build_wheel() {
    local minor=$1 venv="$VENVS/cp3$1" out="$WHEELS/cp3$1" log="$WHEELS/cp3$1.log"
    local target="$WHEELS/build-cp3$1"
    rm -rf "$out"
    seed_target_dir "$target"
    # A cargo target dir of its own; `nice`: the machine is shared.
    CARGO_TARGET_DIR="$target" nice "$venv/bin/pip" wheel "$ROOT" --no-deps \
        --disable-pip-version-check -q -w "$out" >"$log" 2>&1 || return 1
    ls "$out"/ferrocorn-*-cp3"$minor"-*.whl
}

# Installs wheel $2 into the venv of 3.MINOR, as a user installs a wheel.
install_wheel() {
    local venv="$VENVS/cp3$1" wheel=$2 log="$VENVS/cp3$1.log"
    # The version stays 0.1.0 while the code changes: a new wheel replaces
    # the installed one only when forced.
    local want
    want=$(sha "$wheel")
    if [ "$(cat "$venv/.wheel.sha256" 2>/dev/null)" != "$want" ]; then
        "$venv/bin/pip" install --disable-pip-version-check -q --force-reinstall --no-deps "$wheel" \
            >>"$log" 2>&1 || return 1
        echo "$want" >"$venv/.wheel.sha256"
    fi
    "$venv/bin/ferrocorn" --version >>"$log" 2>&1
}

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

for minor in "${MINORS[@]}"; do
    version="3.$minor"
    py=$(find_python "$minor")
    if [ -z "$py" ]; then
        log "CPython $version: not installed (looked in $PYENV_DIR/versions/$version.* and for python$version on PATH)"
        record version="$version" \
            missing="no $PYENV_DIR/versions/$version.* and no python$version on PATH"
        continue
    fi
    full=$(identify "$py" | cut -d' ' -f2)
    log "CPython $full ($py): venv, wheel, install"
    t0=$(now)
    if ! make_venv "$minor" "$py"; then
        log "CPython $full: the venv could not be made, see $VENVS/cp3$minor.log"
        tail -n 20 "$VENVS/cp3$minor.log" >&2
        record version="$version" python="$py" full_version="$full" \
            error="python -m venv or pip install -r tests/requirements-pythons.txt failed: see $VENVS/cp3$minor.log"
        continue
    fi
    t1=$(now)
    if ! wheel=$(build_wheel "$minor"); then
        log "CPython $full: pip wheel failed, see $WHEELS/cp3$minor.log"
        tail -n 20 "$WHEELS/cp3$minor.log" >&2
        record version="$version" python="$py" full_version="$full" \
            error="pip wheel failed: see $WHEELS/cp3$minor.log"
        continue
    fi
    t2=$(now)
    if ! install_wheel "$minor" "$wheel"; then
        log "CPython $full: pip install of the wheel failed, see $VENVS/cp3$minor.log"
        tail -n 20 "$VENVS/cp3$minor.log" >&2
        record version="$version" python="$py" full_version="$full" wheel="$wheel" \
            error="pip install $wheel failed: see $VENVS/cp3$minor.log"
        continue
    fi
    t3=$(now)
    log "CPython $full: venv $(seconds "$t0" "$t1")s, wheel $(seconds "$t1" "$t2")s, install $(seconds "$t2" "$t3")s"
    record version="$version" python="$py" full_version="$full" wheel="$wheel" venv="$VENVS/cp3$minor" \
        cargo_target_dir="$WHEELS/build-cp3$minor" venv_seconds="$(seconds "$t0" "$t1")" \
        wheel_seconds="$(seconds "$t1" "$t2")" install_seconds="$(seconds "$t2" "$t3")"
done

"$PYTHON" -c '
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
json.dump({r.pop("version"): r for r in records}, open(sys.argv[2], "w"), indent=2, sort_keys=True)
' "$RECORDS" "$MANIFEST"
log "Python matrix: $MANIFEST"
