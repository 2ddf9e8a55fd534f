#!/usr/bin/env bash
# A root of another Debian release, for building and testing its package on
# this machine (see scripts/debian.sh):
#
#   scripts/debian-root.sh --debian 13               # makes target/debian13/root once, prints its path
#   scripts/debian-root.sh --debian 13 -- CMD ARG... # runs CMD in it (chroot, /proc mounted for the run)
#
# The root is `debootstrap --variant=minbase CODENAME` from the Debian
# archive this machine's apt uses, with the release's -updates and
# -security suites; it is reused across runs. Needs root. Exits 77 (and
# says why) when this machine cannot make one at all.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/debian.sh"

args=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    args+=("$1")
    shift
done
[ $# -eq 0 ] || shift  # the --
parse_debian_args "${args[@]}"
[ "$DEB_NATIVE" = 0 ] || die "this machine is Debian $DEB_RELEASE: no root needed"

root=$(ensure_debian_root)
if [ $# -eq 0 ]; then
    echo "$root"
else
    in_debian_root "$root" "$@"
fi
