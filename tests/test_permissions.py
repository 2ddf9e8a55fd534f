"""Who may connect to the supervisor's socket, and who the app runs as.

Issue 7: "socket file mode/owner as configured; the supervisor refuses to
start as root without user/group unless told". `--bind-mode`/`--bind-group`
and the user switch itself are tested in test_service.py and
test_config.py; here: the socket's owner under `--user`/`--group` with
nginx serving through it, the master staying root while workers do not,
Gunicorn's `--umask` restricting the socket, and the refusal to run the app
as root without `--allow-root` (both found missing by these tests, added in
3796c04).
"""

import grp
import os
import pwd
import stat
import subprocess
import time

import pytest
import requests
from servers import APPS_DIR, FERROCORN_BIN


def ids(pid):
    """(real uid, real gid) of a process."""
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


@needs_root
def test_user_and_group_own_the_socket_and_run_the_app_not_the_master(start_dedicated, workdir):
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    stack = start_dedicated(extra_args=["--user", "nobody", "--group", "nogroup"])
    st = os.stat(workdir / "dedicated.sock")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (nobody, nogroup, 0o666)
    workers = stack.ferrocorn.wait_workers()
    for pid in workers:
        # A worker logs its boot once it has switched users; just forked, it is still root.
        stack.ferrocorn.wait_for_log(r"\[%d\] \[INFO\] Booting worker with pid: %d" % (pid, pid))
    assert all(ids(pid) == (nobody, nogroup) for pid in workers)
    assert ids(stack.ferrocorn.proc.pid) == (0, 0)  # the master keeps root: it must re-bind and signal
    response = requests.get(stack.url("/dedicated/pid"), timeout=30)
    assert response.status_code == 200 and int(response.text.split()[0]) in workers


@needs_root
def test_umask_restricts_the_socket_as_with_gunicorn(start_dedicated, workdir):
    """Gunicorn binds its unix socket under `--umask` (gunicorn/sock.py), so
    `-m 007` with `--group www-data` gives a 0770 socket other local users
    cannot connect to. A ferrocorn that made it 0666 whatever the umask would
    open the app to every local user after the switch from such a config."""
    start_dedicated(extra_args=["--umask", "0o007", "--group", "nogroup"])
    mode = stat.S_IMODE(os.stat(workdir / "dedicated.sock").st_mode)
    assert mode & 0o007 == 0, "socket mode %o with --umask 007" % mode


@needs_root
def test_refuses_to_run_the_app_as_root_unless_told(scratch):
    """Issue 7: started as root without --user/--group, the supervisor must
    refuse (the app would run as root) unless explicitly told it may (the
    suite's own servers say so with FERROCORN_ALLOW_ROOT, see conftest)."""
    sock = scratch / "root.sock"
    env = {k: v for k, v in os.environ.items() if k != "FERROCORN_ALLOW_ROOT"}
    proc = subprocess.Popen(
        [str(FERROCORN_BIN), "-b", "unix:%s" % sock, "--chdir", str(APPS_DIR), "basic:app"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline and not sock.exists():
            time.sleep(0.05)
        running = proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        out = proc.communicate(timeout=10)[0].decode(errors="replace")
    assert not running and proc.returncode != 0, "started as root without --user and served:\n%s" % out[-1500:]
    assert "--user" in out and "--allow-root" in out
    assert not sock.exists()
