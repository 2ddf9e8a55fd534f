"""The nginx configs of a row: the front nginx (1 worker, what wrk talks to) and,
for the ceiling row, the backend nginx that answers from memory.

Both nginx-only answers use the same bytes as bench/apps/hello.py: `return 200`
for the small bodies, a 1 MiB static file (in the page cache) for /bytes and the
streamed paths (sent with a Content-Length: the same bytes, not chunked), a
10 MiB one for /stream-10m, and
for POST /echo a `return 405` whose error_page serves that file as 200: nginx
reads and drops the 1 MiB body, then sends 1 MiB back, the same bytes each way
as the app's echo.
"""

from __future__ import annotations

from pathlib import Path

from . import workloads
from .servers import Server


def _nginx_string(data: bytes) -> str:
    """A single-quoted nginx config string holding data (ASCII, no `$`)."""
    text = data.decode("ascii")
    assert "$" not in text, text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def memory_locations(www: Path) -> str:
    """The locations that answer every workload path from memory."""
    by_path = {w.path: workloads.expected_body(w) for w in workloads.WORKLOADS}
    return f"""\
        location = /hello {{ return 200 {_nginx_string(by_path['/hello'])}; }}
        location = /headers {{ return 200 {_nginx_string(by_path['/headers'])}; }}
        location = /flask/json {{
            default_type application/json;
            return 200 {_nginx_string(by_path['/flask/json'])};
        }}
        location = /bytes {{ root {www}; }}
        location = /echo {{ error_page 405 =200 /bytes; return 405; }}
        location ~ ^/(stream-64k|stream-8k|stream-1k|write-64k)$ {{ alias {www}/bytes; }}
        location = /stream-10m {{ alias {www}/ten-mib; }}"""


def write_static_files(www: Path) -> None:
    """The files the static locations serve: 1 MiB (/bytes and the 1 MiB
    streamed paths) and 10 MiB (/stream-10m), the app's bytes."""
    www.mkdir(mode=0o755, exist_ok=True)
    for name, workload in (("bytes", "get-1m"), ("ten-mib", "stream-10m")):
        (www / name).write_bytes(workloads.expected_body(workloads.BY_NAME[workload]))
        (www / name).chmod(0o644)


_HTTP_COMMON = """\
    access_log off;
    default_type text/plain;
    sendfile on;
    client_max_body_size 2m;"""


def front_config(server: Server, fmt, row_dir: Path, port: int, dist: Path) -> str:
    """The front nginx: 1 worker, listens on 127.0.0.1:port, passes to the row's server.

    fmt expands the server's templates ({sock}, {row_dir}, ...)."""
    load = ""
    if server.loads_module:
        load = f"load_module {dist / 'modules' / 'ngx_http_ferrocorn_module.so'};\n"
    if server.kind == "nginx":
        locations = memory_locations(row_dir / "www")
    else:
        inner = "\n".join("            " + line for line in fmt(server.location).splitlines())
        locations = f"        location / {{\n{inner}\n        }}"
    upstream = ("    " + fmt(server.upstream)) if server.upstream else ""
    return f"""\
{load}daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {row_dir}/front.pid;
error_log {row_dir}/logs/front-error.log warn;
events {{ worker_connections 4096; }}
http {{
{_HTTP_COMMON}
{upstream}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{locations}
    }}
}}
"""


def backend_config(row_dir: Path, sock: Path, workers: int) -> str:
    """The ceiling's backend: nginx with the row's worker count answering from memory."""
    return f"""\
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 8192;
pid {row_dir}/backend.pid;
error_log {row_dir}/logs/backend-error.log warn;
events {{ worker_connections 4096; }}
http {{
{_HTTP_COMMON}
    keepalive_requests 1000000;
    server {{
        listen unix:{sock};
{memory_locations(row_dir / "www")}
    }}
}}
"""
