"""Slow clients: N connections that each send POST /echo headers announcing a
10,000-byte body, then trickle it 10 bytes every 0.5 s (it would take 500 s to
finish). nginx buffers request bodies, so none of them should reach a worker;
wrk measures hello throughput meanwhile.

Run in its own process (`python -m driver.slow_clients --port P`): prints
`ready OPEN FAILED` once every connection is open and has sent its headers, and
`done OPEN DROPPED` after SIGTERM (or --max-seconds)."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import select
import signal
import subprocess
import sys
from dataclasses import dataclass

BODY_BYTES = 10_000
CHUNK = b"x" * 10
INTERVAL = 0.5
# Connects in flight at once, so the ramp-up does not overflow the listen backlog.
CONNECT_CONCURRENCY = 64


@dataclass
class Stats:
    open: int = 0
    failed: int = 0
    dropped: int = 0


class SlowClients:
    """The handle the driver holds: start(), then stop() returns (open, dropped)."""

    def __init__(self, python: str, port: int, connections: int, bench_dir, log_path):
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [python, "-m", "driver.slow_clients", "--port", str(port),
             "--connections", str(connections)],
            cwd=bench_dir, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> tuple[int, int]:
        """Blocks until every connection is open (or failed); returns (open, failed)."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"slow clients not ready: {line!r}")
        _, opened, failed = line.split()
        return int(opened), int(failed)

    def stop(self) -> tuple[int, int]:
        """Ends the clients; returns (still open at the end, dropped by the server)."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate()
        self._log.close()
        for line in out.decode().splitlines():
            if line.startswith("done "):
                _, opened, dropped = line.split()
                return int(opened), int(dropped)
        return 0, 0


async def _client(port: int, head: bytes, stats: Stats, gate: asyncio.Semaphore,
                  connected: asyncio.Event, total: int, stop: asyncio.Event) -> None:
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head)
            await writer.drain()
        except OSError:
            stats.failed += 1
            if stats.open + stats.failed == total:
                connected.set()
            return
    stats.open += 1
    if stats.open + stats.failed == total:
        connected.set()
    try:
        await asyncio.sleep(random.random() * INTERVAL)
        sent = 0
        while sent < BODY_BYTES and not stop.is_set():
            writer.write(CHUNK)
            await writer.drain()
            sent += len(CHUNK)
            try:
                await asyncio.wait_for(stop.wait(), INTERVAL)
            except asyncio.TimeoutError:
                pass
    except OSError:
        stats.dropped += 1
        stats.open -= 1
    finally:
        writer.close()


async def _main(port: int, connections: int, max_seconds: float) -> None:
    stats = Stats()
    stop = asyncio.Event()
    connected = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    head = (f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {BODY_BYTES}\r\n\r\n").encode()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = [asyncio.create_task(_client(port, head, stats, gate, connected, connections, stop))
             for _ in range(connections)]
    await connected.wait()
    print(f"ready {stats.open} {stats.failed}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except asyncio.TimeoutError:
        stop.set()
    # Count what is open before the clients close their sockets.
    print(f"done {stats.open} {stats.dropped}", flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="stop by itself after this long even without SIGTERM")
    args = parser.parse_args()
    asyncio.run(_main(args.port, args.connections, args.max_seconds))
    sys.exit(0)


if __name__ == "__main__":
    main()
