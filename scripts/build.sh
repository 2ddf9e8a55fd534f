#!/usr/bin/env bash
# Builds Ferrocorn's release install tree:
#   dist/sbin/nginx                               nginx 1.28, the build the module is compiled against
#   dist/modules/ngx_http_ferrocorn_module.so     the nginx module
#   dist/bin/ferrocorn                            the supervisor (and, linked as ferrocornctl, `ferrocorn ctl`)
#   dist/conf/mime.types                          nginx's MIME table, for configs that include it
# Installs the Debian packages the build needs on first use.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ensure_apt build-essential pkg-config libpcre2-dev libclang-dev libssl-dev zlib1g-dev \
    python3.11 python3.11-dev curl
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) and re-run"

log "cargo build --release"
cd "$ROOT"
cargo build --release --locked -p ngx_http_ferrocorn_module -p ferrocorn

# The vendored nginx lands in nginx-sys's build dir; take the newest one.
objs=$(ls -dt target/release/build/nginx-sys-*/out/objs 2>/dev/null | while read -r d; do
    [ -x "$d/nginx" ] && { echo "$d"; break; }; done)
[ -n "$objs" ] || die "nginx binary not found under target/release/build/nginx-sys-*/out/objs"

mkdir -p "$DIST/sbin" "$DIST/modules" "$DIST/bin" "$DIST/conf"
install -m 755 "$objs/nginx" "$DIST/sbin/nginx"
install -m 755 target/release/libngx_http_ferrocorn_module.so "$DIST/modules/ngx_http_ferrocorn_module.so"
install -m 755 target/release/ferrocorn "$DIST/bin/ferrocorn"
ln -sfn ferrocorn "$DIST/bin/ferrocornctl"   # `ferrocornctl CMD` = `ferrocorn ctl CMD`
src=$(dirname "$(dirname "$objs")")
mime=$(find "$src" ~/.cargo/registry/src -path '*nginx*/conf/mime.types' 2>/dev/null | head -n1 || true)
[ -n "$mime" ] && install -m 644 "$mime" "$DIST/conf/mime.types"
log "built: $("$DIST/sbin/nginx" -v 2>&1), $("$DIST/bin/ferrocorn" --version 2>&1) in $DIST"
