#!/usr/bin/env bash
# Builds a Debian package of Ferrocorn with dpkg-deb from a staged tree:
#
#   scripts/package.sh              # for this machine's Debian release (12: python3.11, nginx 1.22)
#   scripts/package.sh --debian 13  # for Debian 13 (python3.13, nginx 1.26), built on Debian 12
#                                   # through a Debian 13 root (scripts/debian.sh, scripts/build-debian.sh)
#
#   /usr/bin/ferrocorn                                   the supervisor embedding the release's CPython
#                                                        (dist/bin/ferrocorn; dist-debianN/bin/ for another release)
#   /usr/bin/ferrocornctl                                a link to it: `ferrocorn ctl`
#   /usr/lib/nginx/modules/ngx_http_ferrocorn_module.so  the module built for the release's nginx
#                                                        (dist-system/; dist-debianN/modules/ for another release)
#   /usr/share/nginx/modules-available/mod-http-ferrocorn.conf
#                                                        its load_module snippet, linked from
#                                                        /etc/nginx/modules-enabled/ by postinst as
#                                                        Debian's libnginx-mod-* packages do
#   /lib/systemd/system/ferrocorn@.service               one instance per app: ferrocorn@NAME (Type=notify)
#   /lib/systemd/system/ferrocorn@.socket                its socket, /run/ferrocorn/NAME.sock, held by
#                                                        systemd (socket activation; root:www-data 0660)
#   /etc/ferrocorn/example.conf.py                       an instance's settings (copy to NAME.conf.py)
#   /usr/share/doc/ferrocorn/examples/nginx-site.conf    a sample site
#   a `ferrocorn` system user (postinst)
#
# The package depends on the nginx ABI the module was built for
# (nginx-abi-X.Y.Z-N, which Debian's nginx package provides), so apt refuses
# a mismatched nginx instead of nginx failing at start; and on the release's
# python3.Y, whose /usr/bin/python3.Y the workers start as (sys.executable)
# and which evaluates the config files.
#
# Without the module (made by scripts/build-system-nginx.sh [--debian N]),
# the package carries the supervisor only and says so;
# FERROCORN_BUILD_MODULE=1 builds the module first. A missing supervisor is
# built (scripts/build.sh; scripts/build-debian.sh --debian N).
#
# Output: target/deb/ferrocorn_VERSION~debN_ARCH.deb (path printed last).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/debian.sh"

parse_debian_args "$@"
ensure_apt dpkg-dev
if [ "$DEB_NATIVE" = 1 ]; then
    SUPERVISOR="$DIST/bin/ferrocorn"
    MODULE="$ROOT/dist-system/modules/ngx_http_ferrocorn_module.so"
    [ -x "$SUPERVISOR" ] || "$ROOT/scripts/build.sh"
else
    SUPERVISOR="$ROOT/dist-debian$DEB_RELEASE/bin/ferrocorn"
    MODULE="$ROOT/dist-debian$DEB_RELEASE/modules/ngx_http_ferrocorn_module.so"
    [ -x "$SUPERVISOR" ] || "$ROOT/scripts/build-debian.sh" --debian "$DEB_RELEASE"
fi
if [ ! -f "$MODULE" ] && [ "${FERROCORN_BUILD_MODULE:-0}" = 1 ]; then
    "$ROOT/scripts/build-system-nginx.sh" --debian "$DEB_RELEASE"
fi

# The workspace's version (a supervisor for another release does not run here).
VERSION=$(awk -F'"' '/^\[workspace.package\]/ { in_ws = 1 } in_ws && /^version *=/ { print $2; exit }' "$ROOT/Cargo.toml")
[ -n "$VERSION" ] || die "no version in $ROOT/Cargo.toml's [workspace.package]"
VERSION="$VERSION~deb$DEB_RELEASE"
ARCH=$(dpkg --print-architecture)
STAGE="$ROOT/target/deb/stage-deb$DEB_RELEASE"
OUT="$ROOT/target/deb/ferrocorn_${VERSION}_${ARCH}.deb"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN"

install -D -m 755 "$SUPERVISOR" "$STAGE/usr/bin/ferrocorn"
strip --strip-unneeded "$STAGE/usr/bin/ferrocorn" 2>/dev/null || true
ln -s ferrocorn "$STAGE/usr/bin/ferrocornctl"

depends="libc6, lib$DEB_PYTHON (>= $DEB_PYTHON_MIN), $DEB_PYTHON (>= $DEB_PYTHON_MIN), adduser"
if [ -f "$MODULE" ]; then
    install -D -m 644 "$MODULE" "$STAGE/usr/lib/nginx/modules/ngx_http_ferrocorn_module.so"
    strip --strip-unneeded "$STAGE/usr/lib/nginx/modules/ngx_http_ferrocorn_module.so" 2>/dev/null || true
    install -d "$STAGE/usr/share/nginx/modules-available"
    # An absolute path (Debian's own snippets say modules/..., relative to
    # nginx's prefix): the snippet also works for `nginx -p DIR`.
    echo "load_module /usr/lib/nginx/modules/ngx_http_ferrocorn_module.so;" \
        > "$STAGE/usr/share/nginx/modules-available/mod-http-ferrocorn.conf"
    # Debian's nginx provides nginx-abi-<upstream version>-<abi revision>; the
    # module is only good for the one it was built against: the installed
    # nginx whose source build-system-nginx.sh used (not apt's candidate,
    # which may be a different version); for another release, the one
    # build-system-nginx.sh --debian N found in that release's archive.
    if [ "$DEB_NATIVE" = 1 ]; then
        installed=$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)
        [ -n "$installed" ] || die "Debian's nginx is not installed: the module's nginx ABI is unknown"
        built_for=$(cat "$ROOT/target/system-nginx/src.version" 2>/dev/null || true)
        [ -z "$built_for" ] || [ "$built_for" = "$installed" ] \
            || die "$MODULE was built for nginx $built_for but $installed is installed: run scripts/build-system-nginx.sh"
        abi=$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[0-9.]*-[0-9]*' | head -n1)
        [ -n "$abi" ] || die "cannot tell Debian's nginx ABI (dpkg-query: no nginx-abi-* in nginx's Provides)"
    else
        abi=$(cat "$DEB_WORK/nginx/nginx.abi" 2>/dev/null || true)
        [ -n "$abi" ] || die "the nginx ABI $MODULE was built for is unknown: run scripts/build-system-nginx.sh --debian $DEB_RELEASE"
    fi
    depends="$depends, $abi"
    with_module=1
else
    log "no $MODULE: packaging the supervisor only (run scripts/build-system-nginx.sh --debian $DEB_RELEASE for the module)"
    with_module=0
fi

# The units and the example settings are deploy/'s, tested by tests/test_service.py.
install -D -m 644 "$ROOT/deploy/ferrocorn@.service" "$STAGE/lib/systemd/system/ferrocorn@.service"
install -D -m 644 "$ROOT/deploy/ferrocorn@.socket" "$STAGE/lib/systemd/system/ferrocorn@.socket"
install -D -m 644 "$ROOT/deploy/example.conf.py" "$STAGE/etc/ferrocorn/example.conf.py"

install -D -m 644 /dev/stdin "$STAGE/usr/share/doc/ferrocorn/examples/nginx-site.conf" <<'EOF'
# /etc/nginx/sites-available/myproject: the app of ferrocorn@myproject.
server {
    listen 80;
    server_name example.com;

    location /static/ {
        alias /srv/myproject/static/;
    }

    location / {
        ferrocorn_pass unix:/run/ferrocorn/myproject.sock;
    }
}
EOF
install -m 644 "$ROOT/README.md" "$STAGE/usr/share/doc/ferrocorn/README.md"
if [ -d "$ROOT/docs" ]; then
    install -d "$STAGE/usr/share/doc/ferrocorn/guides"
    install -m 644 "$ROOT"/docs/*.md "$STAGE/usr/share/doc/ferrocorn/guides/"
fi

cat > "$STAGE/DEBIAN/conffiles" <<'EOF'
/etc/ferrocorn/example.conf.py
EOF

cat > "$STAGE/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
    if ! getent passwd ferrocorn >/dev/null; then
        adduser --system --group --no-create-home --home /nonexistent --quiet ferrocorn
    fi
    if [ $with_module = 1 ] && [ -d /etc/nginx/modules-enabled ] \\
        && [ ! -e /etc/nginx/modules-enabled/50-mod-http-ferrocorn.conf ]; then
        ln -s /usr/share/nginx/modules-available/mod-http-ferrocorn.conf \\
            /etc/nginx/modules-enabled/50-mod-http-ferrocorn.conf
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
    fi
fi
exit 0
EOF

cat > "$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
case "$1" in
    remove|purge)
        rm -f /etc/nginx/modules-enabled/50-mod-http-ferrocorn.conf
        if [ -d /run/systemd/system ]; then
            systemctl daemon-reload >/dev/null || true
        fi
        ;;
esac
if [ "$1" = purge ]; then
    rmdir /etc/ferrocorn 2>/dev/null || true
    # The module's default ferrocorn_temp_path beside Debian's uwsgi temp
    # path, made by nginx at start (nginx-common's purge removes the others).
    rm -rf /var/lib/nginx/ferrocorn
    if getent passwd ferrocorn >/dev/null; then
        deluser --quiet --system ferrocorn >/dev/null 2>&1 || true
    fi
    if getent group ferrocorn >/dev/null; then
        delgroup --quiet --system --only-if-empty ferrocorn >/dev/null 2>&1 || true
    fi
fi
exit 0
EOF
chmod 755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/postrm"

size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<EOF
Package: ferrocorn
Version: $VERSION
Architecture: $ARCH
Maintainer: Ferrocorn maintainers <maintainers@example.invalid>
Installed-Size: $size
Depends: $depends
Recommends: nginx
Section: httpd
Priority: optional
Homepage: https://example.invalid/ferrocorn
Description: WSGI application server behind nginx, written in Rust
 Ferrocorn serves Python WSGI apps behind nginx: an nginx module talks a
 compact binary protocol to a pre-fork supervisor whose workers embed
 CPython ${DEB_PYTHON#python}. Gunicorn's command-line options and config files;
 one socket-activated systemd instance per app (ferrocorn@NAME). Built for
 Debian $DEB_RELEASE ($DEB_CODENAME).
EOF

mkdir -p "$(dirname "$OUT")"
dpkg-deb --root-owner-group --build "$STAGE" "$OUT" >/dev/null
[ "$with_module" = 1 ] || log "note: built WITHOUT the nginx module"
log "built $OUT"
echo "$OUT"
