"""A stand-in ferrocorn worker that answers canned bytes, to test the module.

It speaks just enough of protocol/proto/ferrocorn.proto (v1) to read one
request (frames up to request_end) and to build response frames by hand,
so tests can send nginx valid answers, garbage, error frames and frames of
another protocol version.
"""

import os
import socket
import struct
import threading

# Field numbers of `Frame.kind` (protocol/proto/ferrocorn.proto).
REQUEST_END = 3
RESPONSE_HEAD = 4
RESPONSE_BODY = 5
RESPONSE_END = 6
ERROR = 7

ERROR_INTERNAL = 3
ERROR_VERSION_MISMATCH = 1


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, data):
    return varint((number << 3) | 2) + varint(len(data)) + data


def frame(kind, payload):
    """One length-prefixed Frame whose oneof member `kind` holds payload."""
    body = field_bytes(kind, payload)
    return struct.pack(">I", len(body)) + body


def response_head(status, reason=b"OK", headers=(), version=1):
    msg = field_varint(1, version) + field_varint(2, status) + field_bytes(3, reason)
    for name, value in headers:
        msg += field_bytes(4, field_bytes(1, name) + field_bytes(2, value))
    return frame(RESPONSE_HEAD, msg)


def response_body(data):
    return frame(RESPONSE_BODY, data)


def response_end(close=False):
    """`response_end`; `close` sets its flag: the worker closes after it."""
    return frame(RESPONSE_END, field_varint(1, 1) if close else b"")


def error_frame(kind, message):
    return frame(ERROR, field_varint(1, kind) + field_bytes(2, message.encode()))


def read_request(conn):
    """Read frames until request_end (or EOF / garbage); returns frame count."""
    buf = b""
    frames = 0
    while True:
        while len(buf) >= 4:
            (length,) = struct.unpack(">I", buf[:4])
            if len(buf) < 4 + length:
                break
            payload, buf = buf[4 : 4 + length], buf[4 + length :]
            frames += 1
            if payload[:1] == bytes([(REQUEST_END << 3) | 2]):
                return frames
        chunk = conn.recv(65536)
        if not chunk:
            return frames
        buf += chunk


class FakeUpstream:
    """Listens on a unix socket; answers every request with `reply` bytes.

    By default it closes each connection after one answer; with
    `keep_open` it waits for more requests on the same connection, as a
    worker does between kept-alive requests, and never closes first.
    `connections` counts the connections nginx opened.
    """

    def __init__(self, path):
        self.path = str(path)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.reply = b""
        self.keep_open = False
        self.requests_seen = 0
        self.connections = 0
        self._open = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o666)  # nginx workers run as nobody
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            if self.keep_open:
                self._open.append(conn)
                threading.Thread(target=self._serve_kept, args=(conn,), daemon=True).start()
                continue
            with conn:
                conn.settimeout(10)
                try:
                    read_request(conn)
                    self.requests_seen += 1
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def _serve_kept(self, conn):
        try:
            while read_request(conn):
                self.requests_seen += 1
                conn.sendall(self.reply)
        except OSError:
            pass

    def close_open(self):
        """Closes the connections kept open, as a worker closes idle ones."""
        for conn in self._open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._open = []

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.listener.close()
        self.close_open()
        if os.path.exists(self.path):
            os.unlink(self.path)
