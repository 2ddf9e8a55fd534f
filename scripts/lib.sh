# Shared helpers for Ferrocorn's scripts. Sourced, not run.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST="$ROOT/dist"
VENV="$ROOT/.venv"
# Debian's CPython: the project venv's interpreter, and the one the binary
# embeds (pyo3 links its libpython) unless PYO3_PYTHON names another: a
# CPython 3.9-3.13 with a shared libpython (e.g. a pyenv build).
PYTHON=/usr/bin/python3.11
export PYO3_PYTHON="${PYO3_PYTHON:-$PYTHON}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages named, once: nothing happens when all are there.
ensure_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The project venv (.venv) from Debian's python3.11, with tests/requirements.txt.
ensure_venv() {
    ensure_apt python3.11-venv python3.11-dev
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating the project venv in $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha256"
    local want
    want=$(sha256sum "$ROOT/tests/requirements.txt" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing Python packages into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt"
        echo "$want" > "$stamp"
    fi
}

# ferrocorn refuses to run an app as root without --user; the demo,
# benchmark and chaos runs of these scripts run it as whoever ran them,
# root included, on purpose.
if [ "$(id -u)" = 0 ]; then export FERROCORN_ALLOW_ROOT=1; fi
