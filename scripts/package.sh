#!/usr/bin/env bash
# Builds a Debian package of Ferrocorn with dpkg-deb from a staged tree:
#
#   /usr/bin/ferrocorn                                   the supervisor (dist/bin/ferrocorn)
#   /usr/bin/ferrocornctl                                a link to it: `ferrocorn ctl`
#   /usr/lib/nginx/modules/ngx_http_ferrocorn_module.so  the module built for Debian's nginx (dist-system/)
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
# a mismatched nginx instead of nginx failing at start.
#
# Without dist-system/modules/ngx_http_ferrocorn_module.so (made by
# scripts/build-system-nginx.sh), the package carries the supervisor only
# and says so; FERROCORN_BUILD_MODULE=1 builds the module first.
#
# Output: target/deb/ferrocorn_VERSION_ARCH.deb (path printed last).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ensure_apt dpkg-dev
[ -x "$DIST/bin/ferrocorn" ] || "$ROOT/scripts/build.sh"
MODULE="$ROOT/dist-system/modules/ngx_http_ferrocorn_module.so"
if [ ! -f "$MODULE" ] && [ "${FERROCORN_BUILD_MODULE:-0}" = 1 ]; then
    "$ROOT/scripts/build-system-nginx.sh"
fi

VERSION=$("$DIST/bin/ferrocorn" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
STAGE="$ROOT/target/deb/stage"
OUT="$ROOT/target/deb/ferrocorn_${VERSION}_${ARCH}.deb"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN"

install -D -m 755 "$DIST/bin/ferrocorn" "$STAGE/usr/bin/ferrocorn"
strip --strip-unneeded "$STAGE/usr/bin/ferrocorn" 2>/dev/null || true
ln -s ferrocorn "$STAGE/usr/bin/ferrocornctl"

depends="libc6, libpython3.11 (>= 3.11.2), adduser"
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
    # which may be a different version).
    installed=$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)
    [ -n "$installed" ] || die "Debian's nginx is not installed: the module's nginx ABI is unknown"
    built_for=$(cat "$ROOT/target/system-nginx/src.version" 2>/dev/null || true)
    [ -z "$built_for" ] || [ "$built_for" = "$installed" ] \
        || die "$MODULE was built for nginx $built_for but $installed is installed: run scripts/build-system-nginx.sh"
    abi=$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[0-9.]*-[0-9]*' | head -n1)
    [ -n "$abi" ] || die "cannot tell Debian's nginx ABI (dpkg-query: no nginx-abi-* in nginx's Provides)"
    depends="$depends, $abi"
    with_module=1
else
    log "no $MODULE: packaging the supervisor only (run scripts/build-system-nginx.sh for the module)"
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
 CPython 3.11. Gunicorn's command-line options and config files; one
 socket-activated systemd instance per app (ferrocorn@NAME).
EOF

mkdir -p "$(dirname "$OUT")"
dpkg-deb --root-owner-group --build "$STAGE" "$OUT" >/dev/null
[ "$with_module" = 1 ] || log "note: built WITHOUT the nginx module"
log "built $OUT"
echo "$OUT"
