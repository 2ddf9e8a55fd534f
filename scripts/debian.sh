# Debian releases Ferrocorn is packaged for, and the roots that build and
# test a release other than this machine's. Sourced after lib.sh, not run.
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2153  # DEB_* are for the scripts sourcing this; ROOT is lib.sh's
#
# The release of this machine is built natively (Debian's python and nginx
# installed here: dist/, dist-system/). Another release is built on this
# machine through a root of that release made by `debootstrap --variant=minbase`
# (target/debianN/root): its nginx source and nginx-abi come from the root's
# apt, the module is compiled here (a module built on an older glibc loads in
# a newer one), the supervisor embeds a CPython of the release's minor
# version built with --enable-shared (pyenv's: same libpythonX.Y.so.1.0
# soname as Debian's libpythonX.Y), and the package is installed and tested
# inside the root with chroot.

# Exit status of a script that cannot run on this machine at all (not root,
# chroot not permitted, no debootstrap): tests skip on it, not fail.
CANNOT_RUN_HERE=77

# Sets DEB_RELEASE, DEB_CODENAME, DEB_PYTHON (python3.Y) and DEB_PYTHON_MIN
# (the release's own CPython, the least libpython the package accepts) for
# Debian release $1.
debian_release() {
    case "$1" in
        12) DEB_CODENAME=bookworm DEB_PYTHON=python3.11 DEB_PYTHON_MIN=3.11.2 ;;
        13) DEB_CODENAME=trixie DEB_PYTHON=python3.13 DEB_PYTHON_MIN=3.13.5 ;;
        *) die "Debian '$1' is not supported: --debian 12 (bookworm) or --debian 13 (trixie)" ;;
    esac
    DEB_RELEASE=$1
}

# The Debian release of this machine (12, 13, ...), or nothing.
host_debian_release() {
    (
        # shellcheck disable=SC1091
        . /etc/os-release 2>/dev/null || exit 0
        [ "${ID:-}" = debian ] && echo "${VERSION_ID:-}"
    )
}

# Parses a script's arguments: `--debian N` (default: this machine's
# release). Sets what debian_release sets, plus DEB_NATIVE (1 when N is this
# machine's release) and DEB_WORK (target/debianN, for a release built
# through a root).
parse_debian_args() {
    local release=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --debian) [ $# -ge 2 ] || die "--debian needs a release: 12 or 13"; release=$2; shift 2 ;;
            --debian=*) release=${1#--debian=}; shift ;;
            *) die "unknown argument '$1' (usage: $(basename "$0") [--debian 12|13])" ;;
        esac
    done
    local host
    host=$(host_debian_release)
    if [ -z "$release" ]; then
        [ -n "$host" ] || die "this machine is not Debian: say which release to build for, --debian 12 or --debian 13"
        release=$host
    fi
    debian_release "$release"
    DEB_NATIVE=0
    [ "$release" = "$host" ] && DEB_NATIVE=1
    DEB_WORK="$ROOT/target/debian$release"
}

# The URI of the Debian archive (or, with `security`, of the security
# archive) this machine's apt uses: the deb822 sources in
# /etc/apt/sources.list.d/*.sources, else the one-line lists.
apt_mirror() {
    local want=${1:-main} uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v want="$want" '
        function flush() {
            if (!found && types ~ /(^| )deb( |$)/ && uris != "" && ((want == "security") == (suites ~ /-security/)))
                { split(uris, u, " "); print u[1]; found = 1 }
            types = uris = suites = ""
        }
        /^[ \t]*$/ { flush(); next }
        /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
        /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
        /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
        END { flush() }')
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v want="$want" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }   # [ options ]
                if ((want == "security") == ($(i + 1) ~ /-security/)) { print $i; exit }
            }')
    fi
    echo "$uri"
}

# Runs a command inside root $1 (chroot), with /proc mounted for it and
# unmounted after, also when the command fails or the script is
# interrupted. A /proc already mounted there (by a test) is left alone.
in_debian_root() {
    local root=$1
    shift
    (
        mounted=""
        # shellcheck disable=SC2317  # run by the trap
        release_proc() { [ -z "$mounted" ] || umount "$root/proc" || umount -l "$root/proc"; }
        trap release_proc EXIT
        trap 'exit 130' INT TERM
        if ! mountpoint -q "$root/proc"; then
            mount -t proc proc "$root/proc"
            mounted=1
        fi
        chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
    )
}

# Removes a root, never crossing into a file system mounted in it (/proc).
remove_debian_root() {
    local root=$1
    [ -e "$root" ] || return 0
    # Deepest first; /proc/self/mounts escapes blanks in paths (\040).
    awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r mnt; do
        umount "$mnt" || umount -l "$mnt"
    done
    rm -rf --one-file-system "$root"
}

# Makes the minbase root of the release (once: reused while its stamp, the
# last thing written, is there; a half-made root is removed and made again)
# and prints its path. Services never start in it (policy-rc.d exits 101).
# Its apt lists are refreshed by whoever needs the current archive.
ensure_debian_root() {
    local root="$DEB_WORK/root" stamp="$DEB_WORK/root.done"
    if [ ! -f "$stamp" ]; then
        [ "$(id -u)" = 0 ] || { echo "making a Debian $DEB_RELEASE root (debootstrap, chroot) needs root" >&2; exit $CANNOT_RUN_HERE; }
        chroot / true 2>/dev/null || { echo "chroot is not permitted here" >&2; exit $CANNOT_RUN_HERE; }
        if ! command -v debootstrap >/dev/null; then
            ensure_apt debootstrap || { echo "debootstrap cannot be installed here" >&2; exit $CANNOT_RUN_HERE; }
        fi
        local mirror security
        mirror=$(apt_mirror main)
        security=$(apt_mirror security)
        [ -n "$mirror" ] || die "no Debian archive in this machine's apt sources (/etc/apt/sources.list*)"
        mkdir -p "$DEB_WORK"
        if [ -e "$root" ]; then
            log "removing the half-made Debian $DEB_RELEASE root $root"
            remove_debian_root "$root"
        fi
        log "debootstrap --variant=minbase $DEB_CODENAME $root (log: $DEB_WORK/debootstrap.log)"
        local started=$SECONDS
        if ! debootstrap --variant=minbase "$DEB_CODENAME" "$root" "$mirror" >"$DEB_WORK/debootstrap.log" 2>&1; then
            remove_debian_root "$root"
            die "debootstrap failed: see $DEB_WORK/debootstrap.log"
        fi
        log "debootstrap took $((SECONDS - started))s"
        {
            echo "deb $mirror $DEB_CODENAME main"
            echo "deb $mirror $DEB_CODENAME-updates main"
            [ -z "$security" ] || echo "deb $security $DEB_CODENAME-security main"
        } > "$root/etc/apt/sources.list"
        printf '#!/bin/sh\n# Services never start in this build and test root.\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
        chmod 755 "$root/usr/sbin/policy-rc.d"
        in_debian_root "$root" apt-get update -qq
        touch "$stamp"
    fi
    echo "$root"
}
