#!/usr/bin/env bash
# Builds ngx_http_ferrocorn_module for the nginx of Debian's own packages
# (1.22 on Debian 12), so that `load_module` works in /usr/sbin/nginx:
#
#   dist-system/modules/ngx_http_ferrocorn_module.so
#
# How: install Debian's nginx (without starting its service), take the
# exact nginx source Debian built it from out of the `nginx-dev` package,
# run its ./configure with Debian's flags (conf_flags; --with-compat makes
# the module ABI match), then build the module with NGINX_SOURCE_DIR /
# NGINX_BUILD_DIR pointing there. nginx-sys reports the version it finds as
# DEP_NGINX_VERSION_NUMBER, and nginx-module/build.rs gates the struct
# fields that differ between versions on it.
#
# The same steps work for any nginx: point NGINX_SRC at its configured
# source tree (objs/ngx_auto_config.h present) and skip the apt part.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT="$ROOT/dist-system"
WORK="$ROOT/target/system-nginx"
SRC="${NGINX_SRC:-$WORK/src}"

# Debian's postinst starts the service unless policy-rc.d says no (exit
# 101); keep it from grabbing port 80 here.
install_debian_nginx() {
    dpkg-query -W -f='${Status}' nginx 2>/dev/null | grep -q 'install ok installed' && return 0
    local policy=/usr/sbin/policy-rc.d created=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        created=1
    fi
    ensure_apt nginx
    [ -n "$created" ] && as_root rm -f "$policy"
    return 0
}

unpack_debian_source() {
    rm -rf "$WORK/deb" "$SRC"
    mkdir -p "$WORK/deb"
    chmod 777 "$WORK/deb"  # apt-get download runs as _apt
    (cd "$WORK/deb" && apt-get download -q nginx-dev >/dev/null)
    dpkg-deb -x "$WORK"/deb/nginx-dev_*.deb "$WORK/deb/root"
    cp -a "$WORK/deb/root/usr/share/nginx/src" "$SRC"
}

configure_like_debian() {
    # conf_flags defines NGX_CONF_FLAGS, the configure arguments of the package.
    # shellcheck disable=SC1091
    . "$SRC/conf_flags"
    (cd "$SRC" && ./configure "${NGX_CONF_FLAGS[@]}" >"$WORK/configure.log" 2>&1) \
        || die "configure failed: see $WORK/configure.log"
}

ensure_apt build-essential pkg-config libpcre2-dev libclang-dev libssl-dev zlib1g-dev dpkg-dev
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) and re-run"
mkdir -p "$WORK"

if [ -z "${NGINX_SRC:-}" ]; then
    install_debian_nginx
    want=$(dpkg-query -W -f='${Version}' nginx)
    if [ "$(cat "$WORK/src.version" 2>/dev/null)" != "$want" ] || [ ! -f "$SRC/objs/ngx_auto_config.h" ]; then
        log "nginx source $want from nginx-dev, configured with Debian's flags"
        unpack_debian_source
        configure_like_debian
        echo "$want" > "$WORK/src.version"
    fi
fi
[ -f "$SRC/objs/ngx_auto_config.h" ] || die "$SRC is not a configured nginx source tree"

log "cargo build --release -p ngx_http_ferrocorn_module against $SRC"
cd "$ROOT"
# A target dir of its own: the bindings differ from the vendored build's.
NGINX_SOURCE_DIR="$SRC" NGINX_BUILD_DIR="$SRC/objs" CARGO_TARGET_DIR="$WORK/target" \
    nice cargo build --release --locked -p ngx_http_ferrocorn_module

mkdir -p "$OUT/modules"
install -m 644 "$WORK/target/release/libngx_http_ferrocorn_module.so" "$OUT/modules/ngx_http_ferrocorn_module.so"
log "built $OUT/modules/ngx_http_ferrocorn_module.so for $(grep -o 'NGINX_VERSION *"[^"]*"' "$SRC/src/core/nginx.h")"
if [ -z "${NGINX_SRC:-}" ]; then
    log "check: $(/usr/sbin/nginx -v 2>&1)"
fi
