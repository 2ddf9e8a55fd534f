"""The guides in docs/ run: every fenced block is marked with what to do with it, and this does it.

A block is preceded by an HTML comment (invisible on GitHub) naming its kind:

    <!-- doctest: nginx-check -->   nginx site (server/upstream blocks) or full nginx.conf: `nginx -t` with the module
    <!-- doctest: nginx-serve -->   the same, then started and kept up for the blocks after it
    <!-- doctest: start -->         a `ferrocorn ...` command: started, and every --bind must answer
    <!-- doctest: run -->           shell commands: run with bash -eu, must exit 0
    <!-- doctest: output -->        what the previous `run` block prints, exactly
    <!-- doctest: systemd -->       a unit: parsed; its ExecStart started as above, ExecReload run against it
    <!-- doctest: uwsgi-ini -->     a uWSGI config: parsed; each option must have a row in the page's mapping table
    <!-- doctest: unit-json -->     an NGINX Unit config: parsed; each application option must have a row too

Blocks run in page order in a scratch "machine": `/srv/app` holds a small
`myproject.wsgi:application` (and `static/`), `/srv/app/venv` is the test
venv, `/run/`, `/var/log/` and `/etc/` are scratch directories, `listen 80`
and `http://localhost/` use a free port, `127.0.0.1:8000` another, and
`ferrocorn`/`nginx` on PATH are the dist/ binaries. Anything else in a block
runs as written.
"""

import configparser
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from servers import DIST, FERROCORN_BIN, MODULE_SO, REPO, Nginx, ServerLog, free_port, kill_group, wait_until

DOCS_DIR = REPO / "docs"
GUIDES = sorted(DOCS_DIR.glob("*.md"))

MARKED_BLOCK = re.compile(r"<!-- doctest: ([a-z-]+) -->\n```([\w-]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
ANY_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
KINDS = {"nginx-check", "nginx-serve", "start", "run", "output", "systemd", "uwsgi-ini", "unit-json"}

SAMPLE_APP = """\
def application(environ, start_response):
    body = ("Hello from myproject: %s%s\\n" % (environ.get("SCRIPT_NAME", ""), environ["PATH_INFO"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

UWSGI_PARAMS = """\
uwsgi_param QUERY_STRING $query_string;
uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type;
uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri;
uwsgi_param PATH_INFO $document_uri;
uwsgi_param DOCUMENT_ROOT $document_root;
uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REMOTE_ADDR $remote_addr;
uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port;
uwsgi_param SERVER_NAME $server_name;
"""

NGINX_WRAPPER = """\
{load_module}
daemon off;
master_process on;
worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;

events {{
    worker_connections 256;
}}

http {{
    include {dist}/conf/mime.types;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    scgi_temp_path {prefix}/scgi_temp;

{site}
}}
"""


def marked_blocks(text):
    """(kind, language, body) of every marked fenced block, in page order."""
    return [(m.group(1), m.group(2), m.group(3)) for m in MARKED_BLOCK.finditer(text)]


class Machine:
    """The scratch machine a guide's blocks run on, and the processes they started."""

    def __init__(self, root, guide):
        self.root = root
        self.guide = guide
        self.http_port = free_port()
        self.tcp_port = free_port()
        for sub in (
            "srv/app/myproject",
            "srv/app/static",
            "run/ferrocorn",
            "run/uwsgi",
            "log/ferrocorn",
            "log/nginx",
            "etc",
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                os.chmod(path, 0o755)  # nginx's `nobody` reaches sockets and static files
        (root / "srv/app/myproject/__init__.py").write_text("")
        (root / "srv/app/myproject/wsgi.py").write_text(SAMPLE_APP)
        (root / "srv/app/static/style.css").write_text("body { color: #333; }\n")
        self.replacements = {
            "/usr/lib/nginx/modules/ngx_http_ferrocorn_module.so": str(MODULE_SO),
            "/path/to/dist/": "%s/" % DIST,
            "/usr/bin/ferrocorn": str(FERROCORN_BIN),
            "/srv/app/venv": sys.prefix,
            "/srv/": "%s/srv/" % root,
            "/run/": "%s/run/" % root,
            "/var/log/": "%s/log/" % root,
            "/etc/": "%s/etc/" % root,
            "listen 80;": "listen 127.0.0.1:%d;" % self.http_port,
            "http://localhost/": "http://127.0.0.1:%d/" % self.http_port,
            "127.0.0.1:8000": "127.0.0.1:%d" % self.tcp_port,
        }
        self.env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        self.env["PATH"] = "%s/bin:%s/sbin:%s" % (DIST, DIST, os.environ.get("PATH", "/usr/bin:/bin"))
        self.nginx = None
        self.started = []  # (process, binds, log)
        self.last_output = None

    def localize(self, text):
        """The block as it runs here: documented paths and ports swapped in one pass."""
        pattern = re.compile("|".join(re.escape(key) for key in sorted(self.replacements, key=len, reverse=True)))
        return pattern.sub(lambda m: self.replacements[m.group(0)], text)

    # --- nginx ---

    def nginx_conf(self, block):
        site = self.localize(block)
        if re.search(r"^\s*http\s*\{", site, re.MULTILINE):
            raise AssertionError("give nginx blocks as site files (server/upstream blocks), not a whole nginx.conf")
        load = "" if "load_module" in site else "load_module %s;" % MODULE_SO
        return site, load

    def nginx_check(self, block, name="nginx-check"):
        site, load = self.nginx_conf(block)
        server = Nginx(self.root, name, self.http_port, "")
        (server.prefix / "uwsgi_params").write_text(UWSGI_PARAMS)
        server.conf.write_text(
            NGINX_WRAPPER.format(load_module=load, prefix=server.prefix, dist=DIST, site=site.replace("\n", "\n    "))
        )
        code, output = server.check_config()
        assert code == 0 and "test is successful" in output, "nginx -t failed on this block:\n%s\n%s" % (
            block,
            output,
        )
        return server

    def nginx_serve(self, block):
        self.stop_nginx()
        server = self.nginx_check(block, name="nginx-serve")
        self.nginx = server.start().wait_ready()

    def stop_nginx(self):
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None

    # --- ferrocorn ---

    def start(self, command):
        command = self.localize(command)
        binds = bind_addresses(command)
        assert binds, "a start block must --bind somewhere: %s" % command
        for process, other_binds, _ in list(self.started):
            if set(binds) & set(other_binds):
                self.stop_process(process)
        log = ServerLog(self.root / ("start-%d.log" % len(self.started)), "started by %s" % self.guide)
        with open(log.path, "ab") as out:
            process = subprocess.Popen(
                ["bash", "-c", "exec env " + command],  # env: the pid is ferrocorn's, even after VAR=value
                env=self.env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((process, binds, log))
        answering = wait_until(lambda: process.poll() is not None or all(map(answers, binds)), 30)
        assert process.poll() is None and answering, "did not come up (exit %s): %s\n%s" % (
            process.poll(),
            command,
            log.tail() + self.logs_of(command),
        )
        return process

    def logs_of(self, command):
        match = re.search(r"--error-logfile[ =](\S+)", command)
        return "\n" + ServerLog(match.group(1), "error log").tail() if match else ""

    def stop_process(self, process):
        kill_group(process)
        self.started = [entry for entry in self.started if entry[0] is not process]

    # --- shell ---

    def run(self, script):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.localize(script)],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            timeout=60,
        )
        self.last_output = result.stdout.decode(errors="replace")
        assert result.returncode == 0, "block failed (exit %d):\n%s\nstdout:\n%s\nstderr:\n%s" % (
            result.returncode,
            script,
            self.last_output,
            result.stderr.decode(errors="replace"),
        )

    def close(self):
        self.stop_nginx()
        for process, _, _ in list(self.started):
            self.stop_process(process)


def bind_addresses(command):
    """Every --bind/-b value of a ferrocorn command line."""
    words = shlex.split(command.replace("\\\n", " "))
    binds = []
    for i, word in enumerate(words):
        if word in ("--bind", "-b") and i + 1 < len(words):
            binds.append(words[i + 1])
        elif word.startswith("--bind="):
            binds.append(word.split("=", 1)[1])
    return binds


def answers(bind):
    if bind.startswith("unix:"):
        family, address = socket.AF_UNIX, bind[5:]
    else:
        host, _, port = bind.rpartition(":")
        family, address = socket.AF_INET, (host, int(port))
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.connect(address)
            return True
        except OSError:
            return False


def unit_section(block):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read_string(block)
    return parser


def table_rows(text):
    """First cells of the page's table rows, e.g. '`processes = N`'."""
    return [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("|")]


def assert_mapped(text, options):
    """Every option must be named (in backquotes) in the first cell of a row of the page's mapping table."""
    firsts = table_rows(text)
    missing = [o for o in options if not any(re.search(r"`%s[`\s=]" % re.escape(o), cell) for cell in firsts)]
    assert not missing, "options without a row in the mapping table: %s" % missing


def unit_option_names(config):
    """listeners/routes/action keys and every application option (dotted for nested objects)."""
    names = set()
    for app in config["applications"].values():
        for key, value in app.items():
            if isinstance(value, dict) and key != "environment":
                names.update("%s.%s" % (key, sub) for sub in value)
            else:
                names.add(key)
    for route in config["routes"]:
        names.update("match.%s" % key for key in route.get("match", {}))
        names.update("action.%s" % key for key in route["action"])
    names.add("listeners")
    return sorted(names)


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_every_fenced_block_is_marked(guide):
    text = guide.read_text()
    fences = len(ANY_FENCE.findall(text))
    marked = marked_blocks(text)
    assert fences == len(marked), "%s: %d fenced blocks, %d with a `<!-- doctest: KIND -->` line right above" % (
        guide.name,
        fences,
        len(marked),
    )
    unknown = sorted({kind for kind, _, _ in marked} - KINDS)
    assert not unknown, "unknown doctest kinds %s (known: %s)" % (unknown, sorted(KINDS))


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_guide_blocks_run(guide, workdir):
    text = guide.read_text()
    blocks = marked_blocks(text)
    if not blocks:
        pytest.skip("no blocks")
    root = Path(tempfile.mkdtemp(prefix="doc-%s-" % guide.stem[:12], dir=workdir))
    machine = Machine(root, guide.name)
    try:
        for kind, language, body in blocks:
            if kind == "nginx-check":
                machine.nginx_check(body)
            elif kind == "nginx-serve":
                machine.nginx_serve(body)
            elif kind == "start":
                machine.start(body)
            elif kind == "run":
                machine.run(body)
            elif kind == "output":
                assert machine.last_output is not None, "an output block needs a run block before it"
                assert machine.last_output.rstrip("\n") == machine.localize(body).rstrip("\n")
            elif kind == "systemd":
                unit = unit_section(body)
                service = unit["Service"]
                master = machine.start(service["ExecStart"])
                if "ExecReload" in service:
                    reload_line = service["ExecReload"].replace("$MAINPID", str(master.pid))
                    machine.run(reload_line)
                    assert wait_until(lambda: master.poll() is None and all(map(answers, machine.started[-1][1])), 10)
            elif kind == "uwsgi-ini":
                parser = configparser.ConfigParser(interpolation=None)
                parser.read_string(body)
                assert_mapped(text, list(parser["uwsgi"]))
            elif kind == "unit-json":
                assert_mapped(text, unit_option_names(json.loads(body)))
    finally:
        machine.close()


def test_harness_stops_what_a_guide_started(workdir):
    """The harness itself: a started ferrocorn is gone (socket removed) once its Machine closes."""
    root = Path(tempfile.mkdtemp(prefix="doc-harness-", dir=workdir))
    machine = Machine(root, "harness")
    process = machine.start("ferrocorn --bind unix:/run/ferrocorn/h.sock --chdir /srv/app myproject.wsgi:application")
    machine.close()
    assert process.poll() == 0
    assert not (root / "run/ferrocorn/h.sock").exists()
