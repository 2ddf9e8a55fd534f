#!/usr/bin/env bash
# Builds ngx_http_ferrocorn_module for the nginx of Debian's own packages,
# so that `load_module` works in their /usr/sbin/nginx:
#
#   scripts/build-system-nginx.sh              # this machine's Debian (1.22 on Debian 12):
#                                              #   dist-system/modules/ngx_http_ferrocorn_module.so
#   scripts/build-system-nginx.sh --debian 13  # Debian 13's nginx (1.26), from a Debian 13 root:
#                                              #   dist-debian13/modules/ngx_http_ferrocorn_module.so
#
# How: take the exact nginx source Debian built its nginx from out of the
# `nginx-dev` package (of the nginx installed here, without starting its
# service; for another release, of the nginx apt would install in the root
# scripts/debian-root.sh makes), run its ./configure here with Debian's
# flags (conf_flags; --with-compat makes the module ABI match), then build
# the module with NGINX_SOURCE_DIR / NGINX_BUILD_DIR pointing there.
# nginx-sys reports the version it finds as DEP_NGINX_VERSION_NUMBER, and
# nginx-module/build.rs gates the struct fields that differ between
# versions on it. The nginx version goes to WORK/src.version and, for
# another release, its nginx-abi-* to WORK/nginx.abi (scripts/package.sh
# reads them).
#
# The same steps work for any nginx: point NGINX_SRC at its configured
# source tree (objs/ngx_auto_config.h present) and skip the apt part.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/debian.sh"

parse_debian_args "$@"
# A cargo target dir of its own: the bindings differ from the vendored
# build's. Another release's is shared with its supervisor's build
# (scripts/build-debian.sh), which compiles the common crates once.
if [ "$DEB_NATIVE" = 1 ]; then
    OUT="$ROOT/dist-system"
    WORK="$ROOT/target/system-nginx"
    TARGET_DIR="$WORK/target"
else
    OUT="$ROOT/dist-debian$DEB_RELEASE"
    WORK="$DEB_WORK/nginx"
    TARGET_DIR="$DEB_WORK/target"
fi
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

# nginx-dev of version $1: from this machine's apt, or the root's ($2).
download_nginx_dev() {
    local version=$1 root=${2:-}
    if [ -z "$root" ]; then
        (cd "$WORK/deb" && apt-get download -q "nginx-dev=$version" >/dev/null)
    else
        local inside=/var/tmp/ferrocorn-nginx-dev
        rm -rf "$root$inside"
        mkdir -m 777 "$root$inside"  # apt-get download runs as _apt
        in_debian_root "$root" sh -c "cd $inside && apt-get download -q nginx-dev=$version >/dev/null"
        mv "$root$inside"/nginx-dev_*.deb "$WORK/deb/"
        rmdir "$root$inside"
    fi
}

unpack_debian_source() {
    rm -rf "$WORK/deb" "$SRC"
    mkdir -p "$WORK/deb"
    chmod 777 "$WORK/deb"  # apt-get download runs as _apt
    download_nginx_dev "$@"
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
    debian_root=""
    if [ "$DEB_NATIVE" = 1 ]; then
        install_debian_nginx
        want=$(dpkg-query -W -f='${Version}' nginx)
    else
        debian_root=$(ensure_debian_root)
        # The version apt installs in the root today, and the ABI it provides.
        in_debian_root "$debian_root" apt-get update -qq
        want=$(in_debian_root "$debian_root" apt-cache policy nginx | awk '$1 == "Candidate:" { print $2 }')
        if [ -z "$want" ] || [ "$want" = "(none)" ]; then die "no nginx in Debian $DEB_RELEASE's archive"; fi
        abi=$(in_debian_root "$debian_root" apt-cache show "nginx=$want" | grep -o 'nginx-abi-[0-9.]*-[0-9]*' | head -n1)
        [ -n "$abi" ] || die "cannot tell the nginx ABI of Debian $DEB_RELEASE's nginx $want (no nginx-abi-* in its Provides)"
    fi
    if [ "$(cat "$WORK/src.version" 2>/dev/null)" != "$want" ] || [ ! -f "$SRC/objs/ngx_auto_config.h" ]; then
        log "nginx source $want from Debian $DEB_RELEASE's nginx-dev, configured with Debian's flags"
        rm -f "$WORK/src.version"
        unpack_debian_source "$want" "$debian_root"
        configure_like_debian
        echo "$want" > "$WORK/src.version"
    fi
    [ "$DEB_NATIVE" = 1 ] || echo "$abi" > "$WORK/nginx.abi"
fi
[ -f "$SRC/objs/ngx_auto_config.h" ] || die "$SRC is not a configured nginx source tree"

log "cargo build --release -p ngx_http_ferrocorn_module against $SRC"
cd "$ROOT"
NGINX_SOURCE_DIR="$SRC" NGINX_BUILD_DIR="$SRC/objs" CARGO_TARGET_DIR="$TARGET_DIR" \
    nice cargo build --release --locked -p ngx_http_ferrocorn_module

mkdir -p "$OUT/modules"
install -m 644 "$TARGET_DIR/release/libngx_http_ferrocorn_module.so" "$OUT/modules/ngx_http_ferrocorn_module.so"
log "built $OUT/modules/ngx_http_ferrocorn_module.so for $(grep -o 'NGINX_VERSION *"[^"]*"' "$SRC/src/core/nginx.h")"
if [ -z "${NGINX_SRC:-}" ] && [ "$DEB_NATIVE" = 1 ]; then
    log "check: $(/usr/sbin/nginx -v 2>&1)"
fi
