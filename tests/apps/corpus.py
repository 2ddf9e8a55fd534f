"""An app for tests/test_request_corpus.py: records what each request looked like.

Every request appends one JSON line to the file named by
environ["CORPUS_SEEN"] (a `ferrocorn_param`): the client's port as nginx saw
it (environ["CORPUS_CLIENT"], another param, so a test can tell its
connections apart), method, protocol, RAW_URI, PATH_INFO, QUERY_STRING,
every HTTP_* key with CONTENT_TYPE/CONTENT_LENGTH, and the body (latin-1).
"""

import json
import os


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    record = {
        "client": environ.get("CORPUS_CLIENT"),
        "method": environ["REQUEST_METHOD"],
        "protocol": environ.get("SERVER_PROTOCOL"),
        "raw_uri": environ.get("RAW_URI"),
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING", ""),
        "headers": {
            k: v
            for k, v in environ.items()
            if isinstance(v, str) and (k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH"))
        },
        "body": body.decode("latin-1"),
    }
    fd = os.open(environ["CORPUS_SEEN"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)
    out = b"recorded\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
