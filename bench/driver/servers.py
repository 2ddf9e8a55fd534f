"""Who is measured: each Server is one row of results.md, a configuration behind
the same nginx build (1 worker) serving bench/apps/hello.py.

Commands and nginx snippets are format strings, so the page can print exactly
what ran. Placeholders: {sock} the row's unix socket, {workers}, {apps}
(bench/apps), {venv} (.venv-bench), {dist}, {nginx}, {row_dir}, {root} (the checkout).
"""

from __future__ import annotations

from dataclasses import dataclass

# nginx's stock conf/uwsgi_params, which every uwsgi_pass location includes.
UWSGI_PARAMS = """\
uwsgi_param  QUERY_STRING       $query_string;
uwsgi_param  REQUEST_METHOD     $request_method;
uwsgi_param  CONTENT_TYPE       $content_type;
uwsgi_param  CONTENT_LENGTH     $content_length;
uwsgi_param  REQUEST_URI        $request_uri;
uwsgi_param  PATH_INFO          $document_uri;
uwsgi_param  DOCUMENT_ROOT      $document_root;
uwsgi_param  SERVER_PROTOCOL    $server_protocol;
uwsgi_param  REQUEST_SCHEME     $scheme;
uwsgi_param  HTTPS              $https if_not_empty;
uwsgi_param  REMOTE_ADDR        $remote_addr;
uwsgi_param  REMOTE_PORT        $remote_port;
uwsgi_param  SERVER_PORT        $server_port;
uwsgi_param  SERVER_NAME        $server_name;
"""

# An HTTP upstream over the row's unix socket with idle connections kept open.
HTTP_UPSTREAM = "upstream app {{ server unix:{sock}; keepalive 32; }}"

# proxy_pass the way Gunicorn's deployment docs put it, plus upstream keep-alive.
PROXY_LOCATION = """\
proxy_pass http://app;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $http_host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_redirect off;"""

UWSGI_LOCATION = """\
include {row_dir}/uwsgi_params;
uwsgi_pass unix:{sock};"""

FERROCORN_CMD = ("{dist}/bin/ferrocorn", "-b", "unix:{sock}", "-w", "{workers}",
                 "--chdir", "{apps}", "--virtualenv", "{venv}", "hello:application")
FERROCORN_FILES = ("{dist}/bin/ferrocorn", "{dist}/modules/ngx_http_ferrocorn_module.so")
FERROCORN_KA_UPSTREAM = "upstream ferrocorn {{ server unix:{sock}; keepalive 32; }}"


def pip_installed(name: str, title: str, venv: str, python: str):
    """Ferrocorn installed with pip into `venv` (scripts/bench.sh does it), on that
    venv's own Python: the same row as ferrocorn-ka but for where Python comes from."""
    return Server(name, title, "app",
                  f"as Ferrocorn keepalive; `pip install` into a venv of {python}",
                  command=(f"{venv}/bin/ferrocorn", "-b", "unix:{sock}", "-w", "{workers}",
                           "--chdir", "{apps}", "hello:application"),
                  location="ferrocorn_pass ferrocorn;", upstream=FERROCORN_KA_UPSTREAM,
                  requires=(f"{venv}/bin/ferrocorn", "{dist}/modules/ngx_http_ferrocorn_module.so"),
                  loads_module=True)


@dataclass(frozen=True)
class Server:
    # Short key used in tables, the chart and --only.
    name: str
    # What the page calls it.
    title: str
    # "nginx": the front nginx answers itself; "ceiling": a second nginx answers
    # behind proxy_pass; "app": an application server runs hello.py.
    kind: str
    # How nginx reaches it, for the page.
    transport: str
    # The server's command line (empty for the nginx-only row).
    command: tuple = ()
    # Lines inside the front nginx's `location / { }` ("" for the nginx-only row).
    location: str = ""
    # An `upstream` block in the front nginx's http{} ("" for none).
    upstream: str = ""
    # Files that must exist for the row to run; a missing one skips the row, said on the page.
    requires: tuple = ()
    # Whether the front nginx loads ngx_http_ferrocorn_module.
    loads_module: bool = False


SERVERS = (
    Server("nginx", "nginx alone", "nginx",
           "none: the front nginx answers (`return 200`, a static file)"),
    Server("ceiling", "upstream ceiling", "ceiling",
           "`proxy_pass`, HTTP/1.1 keep-alive, unix socket, to a 2-worker nginx answering from memory",
           command=("{nginx}", "-p", "{row_dir}/backend/", "-e", "{row_dir}/logs/backend-error.log",
                    "-c", "{row_dir}/backend.conf"),
           location=PROXY_LOCATION, upstream=HTTP_UPSTREAM),
    Server("ferrocorn", "Ferrocorn", "app", "`ferrocorn_pass unix:PATH` as the README writes it (no upstream block: kept alive by `ferrocorn_keepalive`, default 32), unix socket",
           command=FERROCORN_CMD, location="ferrocorn_pass unix:{sock};",
           requires=FERROCORN_FILES, loads_module=True),
    Server("ferrocorn-ka", "Ferrocorn keepalive", "app",
           "`ferrocorn_pass` to an upstream with `keepalive 32`, unix socket",
           command=FERROCORN_CMD, location="ferrocorn_pass ferrocorn;",
           upstream=FERROCORN_KA_UPSTREAM, requires=FERROCORN_FILES, loads_module=True),
    # The same binary's Python (Debian's 3.11) as a pip install, then pyenv's 3.11 and
    # 3.13 built alike (shared libpython, no PGO), so only the version differs.
    pip_installed("ferrocorn-pip", "Ferrocorn pip, Debian 3.11", "{venv}", "Debian's CPython 3.11"),
    pip_installed("ferrocorn-pip-cp311", "Ferrocorn pip, pyenv 3.11", "{root}/.venv-bench-cp311",
                  "pyenv's CPython 3.11"),
    pip_installed("ferrocorn-pip-cp313", "Ferrocorn pip, pyenv 3.13", "{root}/.venv-bench-cp313",
                  "pyenv's CPython 3.13"),
    Server("uwsgi", "uWSGI", "app", "`uwsgi_pass` (uwsgi binary protocol), unix socket",
           command=("{venv}/bin/uwsgi", "--master", "--processes", "{workers}", "--socket", "{sock}",
                    "--chmod-socket=666", "--chdir", "{apps}", "--module", "hello:application",
                    "--need-app", "--die-on-term", "--disable-logging"),
           location=UWSGI_LOCATION),
    Server("gunicorn-uwsgi", "Gunicorn --protocol uwsgi", "app",
           "`uwsgi_pass` to Gunicorn's uwsgi protocol (sync workers), unix socket",
           command=("{venv}/bin/gunicorn", "-w", "{workers}", "-k", "sync", "--protocol", "uwsgi",
                    "-b", "unix:{sock}", "--chdir", "{apps}", "hello:application"),
           location=UWSGI_LOCATION),
    Server("gunicorn-sync", "Gunicorn sync", "app",
           "`proxy_pass`, unix socket (sync workers close after each response)",
           command=("{venv}/bin/gunicorn", "-w", "{workers}", "-k", "sync",
                    "-b", "unix:{sock}", "--chdir", "{apps}", "hello:application"),
           location=PROXY_LOCATION, upstream=HTTP_UPSTREAM),
    Server("gunicorn-gthread", "Gunicorn gthread", "app",
           "`proxy_pass`, HTTP/1.1 keep-alive, unix socket",
           command=("{venv}/bin/gunicorn", "-w", "{workers}", "-k", "gthread", "--threads", "4",
                    "-b", "unix:{sock}", "--chdir", "{apps}", "hello:application"),
           location=PROXY_LOCATION, upstream=HTTP_UPSTREAM),
    Server("granian", "Granian", "app", "`proxy_pass`, HTTP/1.1 keep-alive, unix socket",
           command=("{venv}/bin/granian", "--interface", "wsgi", "--http", "1", "--workers", "{workers}",
                    "--uds", "{sock}", "--uds-permissions", "0666", "--working-dir", "{apps}",
                    "--log-level", "warning", "hello:application"),
           location=PROXY_LOCATION, upstream=HTTP_UPSTREAM),
)

BY_NAME = {s.name: s for s in SERVERS}
