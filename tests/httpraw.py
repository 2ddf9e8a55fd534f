"""Raw HTTP over a socket, for checks where exact bytes on the wire matter."""

import socket
import subprocess


def raw_exchange(port, request, timeout=30):
    """Send request bytes to 127.0.0.1:port, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


class RawResponse:
    """A response split into status line, header list (in order) and body bytes."""

    def __init__(self, data):
        head, sep, self.body = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("no end of headers in response: %r" % data[:500])
        lines = head.split(b"\r\n")
        self.status_line = lines[0].decode("latin-1")
        self.status = int(self.status_line.split()[1])
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))

    def header_values(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name):
        values = self.header_values(name)
        return values[0] if values else None


def get_request(path, method="GET", version="HTTP/1.1", extra=b""):
    """A request with Connection: close; path as str (latin-1) or raw bytes."""
    if isinstance(path, str):
        path = path.encode("latin-1")
    start = method.encode() + b" " + path + b" " + version.encode() + b"\r\n"
    return start + b"Host: localhost\r\nConnection: close\r\n" + extra + b"\r\n"


def decode_chunked(body):
    """Decode a chunked body; raises if it is not well framed or unterminated."""
    out = bytearray()
    rest = body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            raise AssertionError("chunked body cut inside a chunk size line")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            if not rest.startswith(b"\r\n"):
                raise AssertionError("chunked body: no CRLF after the last chunk: %r" % rest[:50])
            return bytes(out)
        if len(rest) < size + 2 or rest[size : size + 2] != b"\r\n":
            raise AssertionError("chunked body cut inside a chunk")
        out += rest[:size]
        rest = rest[size + 2 :]


def gated_exchange(port, path, first, gate_file, timeout=30):
    """GET `path` (a gated app endpoint), read until `first` arrives, only
    then create `gate_file` (which lets the app finish), and read to the
    end. Returns the raw response bytes: proof that `first` reached the
    client while the app was still running."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(get_request(path))
        received = b""
        while first not in received:
            data = s.recv(65536)
            assert data, "connection closed before the first chunk: %r" % received
            received += data
        gate_file.write_bytes(b"")  # only now may the app finish
        while True:
            data = s.recv(65536)
            if not data:
                break
            received += data
    return received


def curl(*args, timeout=60):
    """Run curl -sS with args; returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)
