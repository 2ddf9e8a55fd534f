"""The Debian 13 package (`scripts/package.sh --debian 13`: python3.13,
nginx 1.26), built on this Debian 12 machine and tested in Debian 13.

A Debian 13 root made by `debootstrap --variant=minbase trixie` from the
archive this machine's apt uses (scripts/debian-root.sh; kept under
target/debian13/ and reused across runs) stands in for the Debian 13
system: scripts/build-debian.sh builds the module against its nginx's own
configured source and the supervisor embedding CPython 3.13, and
test_package.py's tests run in it unchanged, through chroot: `apt-get
install ./ferrocorn_*~deb13_*.deb` (apt brings nginx and libpython3.13 from
Debian 13), the exact nginx-abi dependency, the root's `/usr/sbin/nginx -t`
with the modules-enabled snippet, an instance started as the installed
ferrocorn@.service says serving through the root's nginx on a loopback
port (the root shares this machine's network), workers running Python 3.13,
then `apt-get purge` leaving nothing. What the install pulled in is removed
again after, so each run installs into a bare root.

Needs root; skipped only when this machine cannot make the root at all (not
root, chroot not permitted, no debootstrap). Every process the tests start
in the root is killed and its /proc unmounted at the end, failed or not.
"""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from servers import REPO, wait_until
# Collected here again, for this root, in this order: the purge test last.
from test_package import (  # noqa: F401
    System,
    build_and_install,
    scratch_root,
    test_debian_nginx_conf_itself_passes_t,
    test_debian_nginx_t_loads_the_module_through_modules_enabled,
    test_files_are_where_the_issue_says,
    test_instance_serves_through_debian_nginx,
    test_package_depends_on_the_exact_nginx_abi,
    test_purge_leaves_nothing_and_debian_nginx_works,
)

# First use makes the root and builds the module and supervisor (minutes); later runs take seconds.
pytestmark = pytest.mark.timeout(1800)

DEBIAN_ROOT_SH = REPO / "scripts" / "debian-root.sh"
BUILD_DEBIAN_SH = REPO / "scripts" / "build-debian.sh"
# scripts/debian.sh's exit status for "this machine cannot make a root at all".
CANNOT_RUN_HERE = 77


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def debian13_root():
    """The Debian 13 root, with /proc mounted while the tests run in it."""
    if os.geteuid() != 0:
        pytest.skip("making a Debian 13 root (debootstrap, chroot) needs root (CI runs the suite as root)")
    made = subprocess.run([str(DEBIAN_ROOT_SH), "--debian", "13"], capture_output=True, text=True, timeout=1200)
    if made.returncode == CANNOT_RUN_HERE:
        pytest.skip("cannot make a Debian 13 root here: %s" % made.stderr.strip())
    assert made.returncode == 0, tail(made.stderr)
    root = Path(made.stdout.strip().splitlines()[-1])
    proc = root / "proc"
    mounted = not os.path.ismount(proc)
    if mounted:
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield root
    finally:
        inside = System("13", root)
        for pid in inside.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert wait_until(lambda: not inside.pids(), 15), "processes left in %s: %s" % (root, inside.pids())
        if mounted:
            subprocess.run(["umount", str(proc)], check=True)


@pytest.fixture(scope="module")
def system(debian13_root):
    return System("13", debian13_root)


@pytest.fixture(scope="module")
def package(system):
    built = subprocess.run([str(BUILD_DEBIAN_SH), "--debian", "13"], capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, tail(built.stderr)
    try:
        yield from build_and_install(system, "--debian", "13")
    finally:
        # Back to the bare root: nginx, libpython3.13... came with the package.
        system.apt_get("autoremove", "--purge")
