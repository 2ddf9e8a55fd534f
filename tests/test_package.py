"""The Debian package (scripts/package.sh) on this machine, as an operator uses it.

Builds the .deb (module built for Debian's nginx, as in test_system_nginx.py),
installs it with `apt-get install ./ferrocorn_*.deb`, checks the files and
the exact nginx-abi dependency, runs Debian's `/usr/sbin/nginx -t` with the
package's modules-enabled snippet, starts an instance the way systemd runs
`ferrocorn@NAME` (the installed units' ExecStart, User=, the socket unit's
socket as fd 3, a NOTIFY_SOCKET for Type=notify: no systemd runs here),
serves requests through Debian's nginx with the packaged sample site, and
finally `apt-get purge`s it: no file of the package, no /etc/ferrocorn, no
`ferrocorn` user left, Debian's nginx still installed and working.

Needs root, dpkg and apt (CI's throwaway machine); skipped otherwise. A
leftover install of an earlier failed run is purged first.
"""

import configparser
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from servers import REPO, ServerLog, free_port, kill_group, pids_with_cmdline, wait_until
from test_service import FakeSystemd, fields
from test_system_nginx import SYSTEM_NGINX, system_module  # noqa: F401

# First use builds the module for Debian's nginx (minutes); later runs take seconds.
pytestmark = pytest.mark.timeout(900)

PACKAGE_SH = REPO / "scripts" / "package.sh"
UNIT_DIR = Path("/lib/systemd/system")
SNIPPET = Path("/usr/share/nginx/modules-available/mod-http-ferrocorn.conf")
ENABLED = Path("/etc/nginx/modules-enabled/50-mod-http-ferrocorn.conf")
MODULE = Path("/usr/lib/nginx/modules/ngx_http_ferrocorn_module.so")
SAMPLE_SITE = Path("/usr/share/doc/ferrocorn/examples/nginx-site.conf")
# The module's default temp path beside Debian's uwsgi one (made by any nginx start).
DEFAULT_TEMP = Path("/var/lib/nginx/ferrocorn")
# Instance names of this test: a leftover process of a failed run is found by it.
INSTANCE_PREFIX = "pkgtest-"
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

APP = """\
import json, os

def application(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    reply = json.dumps({
        "uid": os.getuid(), "pid": os.getpid(), "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"], "query": environ["QUERY_STRING"], "length": len(body),
        "body_head": body[:32].decode("latin-1"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))])
    return [reply]
"""

# Debian's nginx with the package's snippet(s) from modules-enabled, as
# /etc/nginx/nginx.conf loads them, on a free port instead of :80.
NGINX_CONF = """\
user www-data;
include /etc/nginx/modules-enabled/*.conf;
daemon off;
master_process on;
worker_processes 1;
pid nginx.pid;

events {{
    worker_connections 64;
}}

http {{
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    {ferrocorn_temp}
{site}
}}
"""


def run(cmd, check=True, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    if check:
        assert result.returncode == 0, "%s: exit %d\n%s\n%s" % (cmd, result.returncode, result.stdout, result.stderr)
    return result


def package_status(name):
    """dpkg's status abbreviation ("ii ", "rc ", ...) or "" when dpkg does not know the package."""
    result = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", name], check=False)
    return result.stdout if result.returncode == 0 else ""


def purge_leftovers():
    """A failed earlier run may have left an instance running or the package installed."""
    for pid in pids_with_cmdline("/etc/ferrocorn/" + INSTANCE_PREFIX):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for conf in Path("/etc/ferrocorn").glob(INSTANCE_PREFIX + "*.conf.py"):
        conf.unlink()
    for sock in Path("/run/ferrocorn").glob(INSTANCE_PREFIX + "*.sock"):
        sock.unlink()
    if package_status("ferrocorn").strip():
        run(["apt-get", "purge", "-y", "ferrocorn"], env=APT_ENV)


def unit(path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


class Package:
    """The built .deb and what the install put on this machine."""

    def __init__(self, deb):
        self.deb = deb
        self.installed_files = []  # dpkg -L, right after the install
        # The package's directories that were there before the install (/usr/bin, ...).
        self.dirs_before = {path for path in self.contents() if os.path.isdir(path)}

    def contents(self):
        """Absolute paths in the .deb (dpkg-deb -c)."""
        paths = []
        for line in run(["dpkg-deb", "-c", str(self.deb)]).stdout.splitlines():
            name = line.split(None, 5)[5].split(" -> ")[0]
            paths.append(("/" + name[2:] if name.startswith("./") else name).rstrip("/") or "/")
        return paths


@pytest.fixture(scope="module")
def root_with_apt():
    """Checked before anything is built or installed."""
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root (CI runs the suite as root)")
    for tool in ("dpkg", "dpkg-deb", "dpkg-query", "apt-get"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not available: not a Debian system" % tool)


@pytest.fixture(scope="module")
def package(root_with_apt, system_module):  # noqa: F811 (system_module is test_system_nginx's fixture)
    purge_leftovers()
    built = run([str(PACKAGE_SH)])
    deb = Path(built.stdout.strip().splitlines()[-1])
    assert deb.is_file() and deb.name.startswith("ferrocorn_") and deb.suffix == ".deb", built.stdout
    pkg = Package(deb)
    try:
        run(["apt-get", "install", "-y", str(deb)], env=APT_ENV)
        assert package_status("ferrocorn") == "ii "
        pkg.installed_files = [p for p in run(["dpkg", "-L", "ferrocorn"]).stdout.splitlines() if p != "/."]
        yield pkg
    finally:
        # Whatever the tests did: leave the machine as it was.
        purge_leftovers()


@pytest.fixture
def scratch_root():
    """A 0755 directory nginx's www-data and the ferrocorn user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="ferrocorn-pkg-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    if not os.environ.get("FERROCORN_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


def test_package_depends_on_the_exact_nginx_abi(package):
    control = run(["dpkg-deb", "-f", str(package.deb), "Depends"]).stdout
    info = run(["dpkg", "-I", str(package.deb)]).stdout
    abi = re.search(r"nginx-abi-[0-9.]+-[0-9]+", run(["dpkg-query", "-W", "-f=${Provides}", "nginx"]).stdout)
    assert abi, "Debian's nginx provides no nginx-abi-*"
    assert abi.group(0) in [d.strip() for d in control.split(",")], control
    assert "Depends:" in info and abi.group(0) in info
    # apt would refuse a different nginx: no other ABI satisfies it.
    assert re.findall(r"nginx-abi-[0-9.]+-[0-9]+", control) == [abi.group(0)]


def test_files_are_where_the_issue_says(package):
    listed = set(package.installed_files)
    for path in (
        "/usr/bin/ferrocorn",
        str(MODULE),
        str(SNIPPET),
        "/lib/systemd/system/ferrocorn@.service",
        "/lib/systemd/system/ferrocorn@.socket",
        "/etc/ferrocorn/example.conf.py",
        str(SAMPLE_SITE),
    ):
        assert path in listed, "%s is not in dpkg -L ferrocorn" % path
        assert Path(path).is_file(), path
    assert os.access("/usr/bin/ferrocorn", os.X_OK)
    version = run(["/usr/bin/ferrocorn", "--version"]).stdout
    assert version.startswith("ferrocorn ") and version.split()[1] in package.deb.name
    # gunicornc's twin under its own name.
    assert "/usr/bin/ferrocornctl" in listed and os.readlink("/usr/bin/ferrocornctl") == "ferrocorn"
    assert "usage: ferrocorn ctl" in run(["/usr/bin/ferrocornctl", "--help"]).stdout
    # Enabled as Debian's libnginx-mod-* are: a link in modules-enabled to the snippet.
    assert ENABLED.is_symlink() and ENABLED.resolve() == SNIPPET
    assert re.fullmatch(r"load_module \S*ngx_http_ferrocorn_module\.so;\s*", SNIPPET.read_text())
    # The instance units and the example settings are deploy/'s.
    for name in ("ferrocorn@.service", "ferrocorn@.socket"):
        assert (UNIT_DIR / name).read_text() == (REPO / "deploy" / name).read_text()
    assert "/etc/ferrocorn/example.conf.py" in run(["dpkg-query", "-W", "-f=${Conffiles}", "ferrocorn"]).stdout
    # The system user the unit runs as.
    user = pwd.getpwnam("ferrocorn")
    assert user.pw_uid < 1000, "not a system user: uid %d" % user.pw_uid
    assert grp.getgrgid(user.pw_gid).gr_name == "ferrocorn"
    assert unit(UNIT_DIR / "ferrocorn@.service")["Service"]["User"] == "ferrocorn"


def write_nginx_conf(prefix, site, ferrocorn_temp=True):
    (prefix / "logs").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    indented = "\n".join(("    " + line) if line.strip() else "" for line in site.splitlines())
    conf.write_text(
        NGINX_CONF.format(
            site=indented,
            # Keeps the module's default (<prefix>/ferrocorn_temp) inside the work dir too.
            ferrocorn_temp="ferrocorn_temp_path ferrocorn_temp;" if ferrocorn_temp else "",
        )
    )
    return conf


def nginx_args(prefix, *extra):
    conf, error_log = str(prefix / "nginx.conf"), str(prefix / "error.log")
    return [SYSTEM_NGINX, "-p", "%s/" % prefix, "-e", error_log, "-c", conf] + list(extra)


def test_debian_nginx_t_loads_the_module_through_modules_enabled(package, scratch_root):
    site = "server {\n    listen 127.0.0.1:%d;\n    location / {\n        ferrocorn_pass unix:%s/app.sock;\n    }\n}\n"
    site = site % (free_port(), scratch_root)
    write_nginx_conf(scratch_root, site)
    result = run(nginx_args(scratch_root, "-t"), check=False)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr
    # The same config without the snippet: ferrocorn_* is unknown, so -t above did load it.
    conf = scratch_root / "nginx.conf"
    conf.write_text(conf.read_text().replace("include /etc/nginx/modules-enabled/*.conf;", ""))
    result = run(nginx_args(scratch_root, "-t"), check=False)
    assert result.returncode != 0 and 'unknown directive "ferrocorn_' in result.stderr, result.stderr


def netns_available():
    return shutil.which("unshare") is not None and run(["unshare", "--net", "true"], check=False).returncode == 0


def test_debian_nginx_conf_itself_passes_t(package):
    """`nginx -t` on Debian's own /etc/nginx/nginx.conf, in a network namespace of its own:
    -t binds the default site's port 80, which must not touch the machine's."""
    if not netns_available():
        pytest.skip("unshare --net is not permitted here: Debian's nginx.conf binds port 80 even for -t")
    result = run(["unshare", "--net", SYSTEM_NGINX, "-t"], check=False)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr


# systemd's part for ferrocorn@NAME: the socket unit's socket at fd 3,
# LISTEN_PID = our own pid (kept by exec), User=/Group= dropped to, exec.
ACTIVATE = """\
import os, sys
fd = int(os.environ.pop("TEST_SOCKET_FD"))
uid, gid = int(os.environ.pop("TEST_UID")), int(os.environ.pop("TEST_GID"))
os.dup2(fd, 3)
os.close(fd)
os.set_inheritable(3, True)
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])
"""


def instance_settings(instance, app_dir):
    """/etc/ferrocorn/NAME.conf.py as the unit's comment says: the example, edited."""
    text = Path("/etc/ferrocorn/example.conf.py").read_text()
    edits = {
        "wsgi_app": 'wsgi_app = "pkgapp:application"',
        "chdir": 'chdir = "%s"' % app_dir,
        "virtualenv": None,  # the test app needs nothing beyond the standard library
        "workers": "workers = 2",
    }
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in edits:
            if edits[key] is not None:
                lines.append(edits.pop(key))
            else:
                edits.pop(key)
            continue
        lines.append(line)
    assert not edits, "example.conf.py no longer sets %s" % sorted(edits)
    path = Path("/etc/ferrocorn/%s.conf.py" % instance)
    path.write_text("\n".join(lines) + "\n")
    return path


class Instance:
    """ferrocorn@NAME.socket + ferrocorn@NAME.service, played as systemd plays them."""

    def __init__(self, name, workdir):
        self.name = name
        self.socket_unit = unit(UNIT_DIR / "ferrocorn@.socket")["Socket"]
        self.service_unit = unit(UNIT_DIR / "ferrocorn@.service")["Service"]
        self.path = Path(self.socket_unit["ListenStream"].replace("%i", name))
        self.made_dir = None
        self.runtime_dir = None
        self.listener = None
        self.proc = None
        self.systemd = FakeSystemd(workdir / "notify.sock")
        os.chmod(workdir / "notify.sock", 0o777)  # systemd's notify socket is writable by services
        self.journal = ServerLog(workdir / "journal.log", "ferrocorn@%s stdout+stderr (the journal)" % name)

    def listen(self):
        """What ferrocorn@NAME.socket does: ListenStream, DirectoryMode, SocketUser/Group/Mode, Backlog."""
        run_dir = self.path.parent
        if not run_dir.exists():
            run_dir.mkdir(parents=True, mode=int(self.socket_unit["DirectoryMode"], 8))
            self.made_dir = run_dir
        if self.path.exists():
            self.path.unlink()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        os.chown(
            self.path,
            pwd.getpwnam(self.socket_unit["SocketUser"]).pw_uid,
            grp.getgrnam(self.socket_unit["SocketGroup"]).gr_gid,
        )
        os.chmod(self.path, int(self.socket_unit["SocketMode"], 8))
        self.listener.listen(int(self.socket_unit["Backlog"]))

    def make_runtime_dir(self, user, group):
        """RuntimeDirectory=: /run/DIR, owned by User=/Group=, RuntimeDirectoryMode."""
        path = Path("/run") / self.service_unit["RuntimeDirectory"].replace("%i", self.name)
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, user.pw_uid, group.gr_gid)
        os.chmod(path, int(self.service_unit["RuntimeDirectoryMode"], 8))
        self.runtime_dir = path

    def exec_start(self):
        argv = shlex.split(self.service_unit["ExecStart"].replace("%i", self.name))
        assert argv[0] == "/usr/bin/ferrocorn", argv
        return argv

    def start(self):
        user = pwd.getpwnam(self.service_unit["User"])
        group = grp.getgrnam(self.service_unit["Group"])
        self.make_runtime_dir(user, group)
        env = {
            # A service's environment under systemd: nothing of ours leaks in.
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": user.pw_dir,
            "USER": user.pw_name,
            "LOGNAME": user.pw_name,
            "SHELL": user.pw_shell,
            "LISTEN_FDS": "1",
            "LISTEN_FDNAMES": self.socket_unit["FileDescriptorName"].replace("%i", self.name),
            "NOTIFY_SOCKET": self.systemd.address,
            "TEST_SOCKET_FD": str(self.listener.fileno()),
            "TEST_UID": str(user.pw_uid),
            "TEST_GID": str(group.gr_gid),
        }
        out = open(self.journal.path, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ACTIVATE] + self.exec_start(),
                env=env,
                pass_fds=[self.listener.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        finally:
            out.close()
        # Type=notify: the unit is started once READY=1 arrives.
        ready = self.systemd.wait_for(lambda m: "READY=1" in m or "STOPPING=1" in m, timeout=60)
        assert "READY=1" in ready, "%s\n%s" % (ready, self.journal.tail())
        assert fields(ready)["MAINPID"] == str(self.proc.pid)

    def stop(self):
        """KillSignal to the main process (KillMode=mixed), as `systemctl stop` does."""
        self.proc.send_signal(getattr(signal, self.service_unit["KillSignal"]))
        return self.proc.wait(timeout=int(self.service_unit["TimeoutStopSec"]))

    def close(self):
        if self.proc is not None:
            kill_group(self.proc)
        self.systemd.close()
        if self.listener is not None:
            self.listener.close()
        if self.path.exists():
            self.path.unlink()
        if self.made_dir is not None:
            shutil.rmtree(self.made_dir, ignore_errors=True)
        if self.runtime_dir is not None:  # systemd removes RuntimeDirectory= at stop
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        settings = Path("/etc/ferrocorn/%s.conf.py" % self.name)
        if settings.exists():
            settings.unlink()


class DebianNginx:
    """/usr/sbin/nginx -p DIR -c DIR/nginx.conf, daemon off, in its own process group."""

    def __init__(self, prefix, port):
        self.prefix = prefix
        self.port = port
        self.error_log = ServerLog(prefix / "error.log", "Debian nginx error.log")
        self.proc = None

    def start(self):
        out = open(self.prefix / "stderr.log", "ab")
        try:
            self.proc = subprocess.Popen(
                nginx_args(self.prefix),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        up = wait_until(lambda: self.proc.poll() is not None or self._answers(), 30)
        assert up and self.proc.poll() is None, "nginx did not come up:\n%s" % self.error_log.tail()
        return self

    def _answers(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)
            kill_group(self.proc)


def test_instance_serves_through_debian_nginx(package, scratch_root):
    instance = "%s%d" % (INSTANCE_PREFIX, os.getpid())
    app_dir = scratch_root / "app"
    app_dir.mkdir(mode=0o755)
    (app_dir / "pkgapp.py").write_text(APP)
    static = scratch_root / "static"
    static.mkdir(mode=0o755)
    (static / "hello.txt").write_text("static through nginx\n")
    for path in (app_dir / "pkgapp.py", static / "hello.txt"):
        os.chmod(path, 0o644)
    instance_settings(instance, app_dir)

    # The packaged sample site, with this instance, a free port and the test's static dir.
    port = free_port()
    site = SAMPLE_SITE.read_text()
    assert "listen 80;" in site and "myproject" in site
    site = site.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
    site = site.replace("/srv/myproject/static/", "%s/" % static).replace("myproject", instance)
    nginx_prefix = scratch_root / "nginx"
    nginx_prefix.mkdir(mode=0o755)
    write_nginx_conf(nginx_prefix, site)
    checked = run(nginx_args(nginx_prefix, "-t"), check=False)
    assert checked.returncode == 0, checked.stderr

    service = Instance(instance, scratch_root)
    nginx = DebianNginx(nginx_prefix, port)
    try:
        service.listen()
        assert service.path == Path("/run/ferrocorn/%s.sock" % instance)
        service.start()
        nginx.start()
        ferrocorn_uid = pwd.getpwnam("ferrocorn").pw_uid

        got = requests.get(nginx.url("/hello/world?x=1"), timeout=30)
        assert got.status_code == 200, got.text
        seen = got.json()
        assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/hello/world", "x=1")
        assert seen["uid"] == ferrocorn_uid, "workers run as the unit's User="
        body = os.urandom(300_000)
        posted = requests.post(nginx.url("/upload"), data=body, timeout=30).json()
        assert posted["length"] == len(body) and posted["body_head"] == body[:32].decode("latin-1")
        static_file = requests.get(nginx.url("/static/hello.txt"), timeout=30)
        assert (static_file.status_code, static_file.text) == (200, "static through nginx\n")
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: requests.get(nginx.url("/p/%d" % i), timeout=30).status_code, range(40)))
        assert codes == [200] * 40
        # Both workers took part and the access log went to the journal.
        assert wait_until(lambda: service.journal.text().count('"GET /p/') == 40, 10), service.journal.tail()
        assert service.journal.text().count("Booting worker") >= 2
        # The instance's control socket, in its RuntimeDirectory, as the unit's comment says.
        ctl = run(["/usr/bin/ferrocornctl", "-s", "/run/ferrocorn/%s/ctl" % instance, "--json", "show", "workers"])
        reply = json.loads(ctl.stdout)
        assert reply["status"] == "ok" and len(reply["data"]["workers"]) == 2, reply
        assert stat.S_IMODE(os.stat("/run/ferrocorn/%s" % instance).st_mode) == 0o700

        assert service.stop() == 0
        assert service.path.exists() and stat.S_ISSOCK(service.path.stat().st_mode), "the socket file is systemd's"
        assert "[alert]" not in nginx.error_log.text() and "[emerg]" not in nginx.error_log.text()
    finally:
        nginx.stop()
        service.close()
    assert not pids_with_cmdline("/etc/ferrocorn/%s.conf.py" % instance), "a process of the instance outlived it"


def test_purge_leaves_nothing_and_debian_nginx_works(package, scratch_root):
    files = package.installed_files
    assert files, "nothing was installed"
    # The module's default temp dir under Debian's prefix is made by any
    # start of nginx with the module and no ferrocorn_temp_path (a plain
    # `nginx -t` of /etc/nginx/nginx.conf does it): purge must take it too.
    nginx_user = pwd.getpwnam("www-data")
    DEFAULT_TEMP.mkdir(mode=0o700, exist_ok=True)
    os.chown(DEFAULT_TEMP, nginx_user.pw_uid, 0)

    started = time.monotonic()
    run(["apt-get", "purge", "-y", "ferrocorn"], env=APT_ENV)
    print("\napt-get purge: %.1fs" % (time.monotonic() - started))
    assert package_status("ferrocorn") == ""

    # A directory that was there before the install (/usr/bin, /usr/lib/nginx/modules, ...) stays;
    # nothing else of the package does.
    left = [path for path in files if os.path.lexists(path) and path not in package.dirs_before]
    assert not left, "left behind by apt-get purge: %s" % left
    for stray in (Path("/etc/ferrocorn"), ENABLED, DEFAULT_TEMP, Path("/usr/share/doc/ferrocorn")):
        assert not os.path.lexists(stray), "%s is left" % stray
    assert run(["getent", "passwd", "ferrocorn"], check=False).returncode == 2, "the ferrocorn user is left"
    assert run(["getent", "group", "ferrocorn"], check=False).returncode == 2, "the ferrocorn group is left"

    # Debian's nginx: still installed, modules-enabled has no dangling link, it serves.
    assert package_status("nginx") == "ii "
    html = scratch_root / "html"
    html.mkdir(mode=0o755)
    (html / "index.html").write_text("plain nginx\n")
    os.chmod(html / "index.html", 0o644)
    port = free_port()
    site = "server {\n    listen 127.0.0.1:%d;\n    root %s;\n}\n" % (port, html)
    write_nginx_conf(scratch_root, site, ferrocorn_temp=False)
    checked = run(nginx_args(scratch_root, "-t"), check=False)
    assert checked.returncode == 0, checked.stderr
    if netns_available():
        checked = run(["unshare", "--net", SYSTEM_NGINX, "-t"], check=False)
        assert checked.returncode == 0, "Debian's own nginx.conf after the purge:\n" + checked.stderr
    nginx = DebianNginx(scratch_root, port).start()
    try:
        got = requests.get(nginx.url("/index.html"), timeout=30)
        assert (got.status_code, got.text) == (200, "plain nginx\n")
    finally:
        nginx.stop()
