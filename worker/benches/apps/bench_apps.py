"""Apps for `cargo bench -p ferrocorn` (worker/benches/hot_path.rs)."""


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
    return [b"Hello, World!\n"]


def headers(environ, start_response):
    """Reads the request's headers, as a real app's middleware does."""
    seen = sum(len(v) for k, v in environ.items() if k.startswith("HTTP_"))
    body = b"%d\n" % seen
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
