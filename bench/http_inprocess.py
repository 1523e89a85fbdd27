"""CPU per `POST /events` request of `eventpipe up`'s server, in one process, without sockets.

The server's own code path for each request: uvicorn's httptools protocol (the guarded subclass
`eventpipe up` runs), the ASGI app, the ingest handler and the real request log (written and
fsynced in a temporary folder), on uvloop. `--connections` connections each send a request, and the
next once the answer's last byte is written; the bytes go through in-memory transports, so the
kernel's socket work and the load generator are left out: what is left is the Python side, which the
full server (`bench/http_cpu.py`) measures together with them. Prints the CPU of the loop's thread
and of the log's thread (from /proc) per request; `--profile FILE` writes a cProfile of the loop's
thread instead of timing it.

    python bench/http_inprocess.py --requests 20000 --size 10 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvloop
from http_load import Bodies
from uvicorn.server import ServerState

from eventpipe.localrun.app import LocalApp
from eventpipe.localrun.protocol import GuardedHttpToolsProtocol
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.localrun.server import uvicorn_config
from eventpipe.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(native_id: int | None) -> float:
    """User and system CPU seconds of one of this process's threads (from /proc)."""
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class MemoryTransport(asyncio.Transport):
    """A connection's transport, in memory: an answer is complete at its body's last byte."""

    def __init__(self, answered: Callable[[MemoryTransport], None]) -> None:
        super().__init__()
        self._answered = answered
        self._closing = False
        self._expected: int | None = None
        self._got = 0
        self.statuses: dict[bytes, int] = {}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if self._expected is None:  # uvicorn writes the head alone, then the body
            head, _, rest = data.partition(b"\r\n\r\n")
            status = head[9:12]
            self.statuses[status] = self.statuses.get(status, 0) + 1
            length = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            self._expected, data = int(length.split(b":")[1]), rest
        self._got += len(data)
        if self._got >= self._expected:
            self._expected, self._got = None, 0
            self._answered(self)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def request_bytes(body: bytes) -> bytes:
    """The load generator's request (bench/http_load.py)."""
    return (
        b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-ndjson\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )


async def drive(app: LocalApp, bodies: Bodies, requests: int, connections: int) -> dict[bytes, int]:
    config = uvicorn_config(app)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    payloads = [request_bytes(bodies.next()) for _ in range(min(requests, 4096))]
    protocols = {}
    done = loop.create_future()
    counts = {"sent": 0, "answered": 0}

    def send(transport: MemoryTransport) -> None:
        if counts["sent"] < requests:
            protocols[transport].data_received(payloads[counts["sent"] % len(payloads)])
            counts["sent"] += 1

    def answered(transport: MemoryTransport) -> None:
        counts["answered"] += 1
        if counts["answered"] == requests:
            done.set_result(None)
        else:  # the next request, as a client's would arrive: in a later pass of the loop
            loop.call_soon(send, transport)

    for _ in range(connections):
        transport = MemoryTransport(answered)
        protocol = GuardedHttpToolsProtocol(config, state, {}, loop)
        protocol.connection_made(transport)
        protocols[transport] = protocol
    for transport in protocols:
        send(transport)
    await done
    statuses: dict[bytes, int] = {}
    for transport, protocol in protocols.items():
        protocol.connection_lost(None)
        for status, count in transport.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return statuses


def uvloop_run(coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def run_once(size: int, requests: int, connections: int, profile: str | None) -> tuple[float, float]:
    """µs of CPU per request: the loop's thread, the log's thread."""
    bodies = Bodies(size=size)
    with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
        settings = replace(Settings.from_env({}), data_dir=Path(tmp) / "data")
        runtime = LocalRuntime(settings, defer_to=lambda: None, request_log=True)
        try:
            assert runtime.log_acks is not None
            assert runtime.request_log is not None
            log = runtime.request_log
            writer = log._writer.native_id  # the log's thread
            runtime.log_acks.grouped_before = lambda: log.next_seq  # nothing waits: no 429
            with ThreadPoolExecutor(2) as pool:
                app = LocalApp(runtime, executor=pool)
                uvloop_run(drive(app, bodies, 500, connections))  # warm
                profiler = cProfile.Profile() if profile else None
                log_0, loop_0 = thread_cpu_s(writer), time.thread_time()
                if profiler:
                    profiler.enable()
                statuses = uvloop_run(drive(app, bodies, requests, connections))
                if profiler:
                    profiler.disable()
                loop_1, log_1 = time.thread_time(), thread_cpu_s(writer)
        finally:
            runtime.close()
    if set(statuses) != {b"202"}:
        raise SystemExit(f"answers other than 202: {statuses}")
    if profiler and profile:
        profiler.dump_stats(profile)
    return 1e6 * (loop_1 - loop_0) / requests, 1e6 * (log_1 - log_0) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10, help="events a request")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the loop's thread here (one run)")
    args = parser.parse_args()
    if args.profile:
        run_once(args.size, args.requests, args.connections, args.profile)
        return 0
    print(f"µs of CPU per {args.size}-event request, {args.requests:,} requests (load {os.getloadavg()[0]:.1f})")
    totals = []
    for _ in range(args.runs):
        loop_us, log_us = run_once(args.size, args.requests, args.connections, None)
        totals.append(loop_us + log_us)
        print(f"loop thread {loop_us:6.1f}  log thread {log_us:5.1f}  both {loop_us + log_us:6.1f}", flush=True)
    print(f"median of both {statistics.median(totals):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
