#!/usr/bin/env bash
# Builds what scripts/package.sh packages for a Debian release:
#
#   scripts/build-debian.sh              # this machine's release: scripts/build.sh (dist/bin/ferrocorn)
#                                        # + scripts/build-system-nginx.sh (dist-system/modules/)
#   scripts/build-debian.sh --debian 13  # Debian 13 on Debian 12 (see scripts/debian.sh):
#                                        #   dist-debian13/modules/ngx_http_ferrocorn_module.so  for its nginx 1.26
#                                        #   dist-debian13/bin/ferrocorn                         embedding its python3.13
#
# For another release the supervisor is linked against a CPython of that
# release's minor version built with --enable-shared (the same
# libpython3.Y.so.1.0 soname as Debian's libpython3.Y package): $DEB_BUILD_PYTHON,
# else pyenv's newest 3.Y.*. Its workers start CPython as the release's
# /usr/bin/python3.Y (FERROCORN_EMBED_PYTHON, see worker/build.rs). Cargo
# builds into target/debianN/target (shared with that module's build), so the
# native build is not redone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/debian.sh"

parse_debian_args "$@"
if [ "$DEB_NATIVE" = 1 ]; then
    "$ROOT/scripts/build.sh"
    exec "$ROOT/scripts/build-system-nginx.sh" --debian "$DEB_RELEASE"
fi

# A CPython $1 (3.Y) with a shared libpython3.Y.so.1.0: $DEB_BUILD_PYTHON or pyenv's.
shared_python() {
    local want=$1 candidates=() python
    if [ -n "${DEB_BUILD_PYTHON:-}" ]; then
        candidates=("$DEB_BUILD_PYTHON")
    else
        local pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
        command -v pyenv >/dev/null && pyenv_root=$(pyenv root)
        mapfile -t candidates < <(printf '%s\n' "$pyenv_root/versions/$want".*/bin/python"$want" | sort -V -r)
    fi
    for python in "${candidates[@]}"; do
        [ -x "$python" ] || continue
        if [ "$("$python" -c 'import sys, sysconfig as s; print("%d.%d" % sys.version_info[:2], s.get_config_var("INSTSONAME"))' 2>/dev/null)" \
            = "$want libpython$want.so.1.0" ]; then
            echo "$python"
            return 0
        fi
    done
    die "no CPython $want with a shared libpython$want.so.1.0 to link Debian $DEB_RELEASE's supervisor against: install one (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install $want) or set DEB_BUILD_PYTHON"
}

version=${DEB_PYTHON#python}
python=$(shared_python "$version")
"$ROOT/scripts/build-system-nginx.sh" --debian "$DEB_RELEASE"

ensure_apt build-essential pkg-config
log "cargo build --release -p ferrocorn against $python, for Debian $DEB_RELEASE's /usr/bin/$DEB_PYTHON"
cd "$ROOT"
PYO3_PYTHON="$python" FERROCORN_EMBED_PYTHON="/usr/bin/$DEB_PYTHON" CARGO_TARGET_DIR="$DEB_WORK/target" \
    nice cargo build --release --locked -p ferrocorn

OUT="$ROOT/dist-debian$DEB_RELEASE"
mkdir -p "$OUT/bin"
install -m 755 "$DEB_WORK/target/release/ferrocorn" "$OUT/bin/ferrocorn"
soname=$(objdump -p "$OUT/bin/ferrocorn" | awk '$1 == "NEEDED" && $2 ~ /^libpython/ { print $2 }')
[ "$soname" = "libpython$version.so.1.0" ] || die "$OUT/bin/ferrocorn needs '$soname', not libpython$version.so.1.0"
log "built $OUT/bin/ferrocorn (needs $soname) and $OUT/modules/ngx_http_ferrocorn_module.so"
