"""`make bench`: HTTP ingest into `eventpipe up` from a bounded load generator on 127.0.0.1.

Three phases, burst and sustained on one server and freshness on another (2 cores: the server, its
worker and this generator share them):
- burst: as fast as 16 keep-alive connections get answers, for `--burst-s` seconds, 100 events a
  request; events/s acknowledged, p50/p99 acknowledgement latency, and how long processing takes
  to catch up;
- sustained: `--rate` events/s for `--sustain-s` seconds, open loop; the pending backlog sampled
  every second, and how fast it returns to zero after the load stops;
- freshness: 1,000 events/s, with each request size of the rate table, on a fresh server (not
  one still draining the sustained phase); the time from each request's 202 to its batch being
  done, which is when its events are in `GET /insights` (Aggregate runs before MarkDone);
- the rate table: open-loop load at 10,000 to 30,000 events/s with 100-event and with 10-event
  requests, `--table-s` seconds each on a fresh server: the backlog's largest sample (every half
  second, and when the load stops) and how long it takes to drain (given up after 8 s).

The baseline, measured in the same run with the same generator, is a bare uvicorn app that reads
the body and answers 202: the ceiling of HTTP on this machine, with no work behind it.

The generator shares the cores with the server it measures, so it is lean: uvloop, one protocol a
keep-alive connection, requests framed once and given their ids with one `%`, answers read for their
status, length and (freshness only) batch id (docs/benchmark.md, "The load generator made lean").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import uvloop
from summary import record

from eventpipe.generate import EventGenerator

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

EVENTS_PER_REQUEST = 100
CONNECTIONS = 16
MAX_REQUESTS = 200_000  # every loop is bounded in count as well as in time
DRAIN_TIMEOUT_S = 120.0
TABLE_DRAIN_TIMEOUT_S = 8.0  # a row whose backlog takes longer has not kept up: its server is stopped
DRAINED_TARGET_S = 2.0
# The open loop's shortest sleep: uvloop's timers count whole milliseconds, and a shorter sleep would
# return at once, a busy loop.
TICK_S = 0.001
ANSWER_TIMEOUT_S = 120.0  # the longest wait for the answers still awaited once a phase's load is sent

T = TypeVar("T")


ID_FORMAT = b"00000000-0000-4000-8000-%012x"  # what str(uuid.UUID(int=n, version=4)) gives for n < 16**12
REQUEST_HEAD = (
    b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-ndjson\r\ncontent-length: %d\r\n\r\n"
)


class Bodies:
    """`POST /events` requests of `size` generated events each; every event gets a fresh id (a count, in a
    UUID's canonical form), so none is a duplicate.

    The events cycle through 2,000 generated ones, so the requests cycle through a few hundred at most:
    each is framed once, whole, with a `%012x` where each id's count goes, and a request costs one `%`."""

    def __init__(self, seed: int = 7, size: int = EVENTS_PER_REQUEST) -> None:
        self.size = size
        generator = EventGenerator(seed=seed, now_ms=int(time.time() * 1000), span_minutes=5)
        events = []
        for line in generator.lines(2_000):
            head, _, tail = line.partition(orjson.loads(line)["event_id"].encode())
            events.append(head.replace(b"%", b"%%") + ID_FORMAT + tail.replace(b"%", b"%%"))
        self._requests = []
        for first in range(0, math.lcm(len(events), size), size):
            body = b"\n".join(events[(first + n) % len(events)] for n in range(size))
            length = len(body % tuple(range(size)))  # every id is 36 characters
            self._requests.append(REQUEST_HEAD % length + body)
        self._next = 0

    def next(self) -> bytes:
        """The next request, head and body."""
        first = self._next
        self._next += self.size
        return self._requests[first // self.size % len(self._requests)] % tuple(range(first, self._next))


@dataclass
class Acks:
    latencies_s: list[float] = field(default_factory=list)
    batch_ids: list[tuple[float, str]] = field(default_factory=list)  # (acknowledged at, batch id)
    errors: int = 0
    events: int = 0
    keep_batch_ids: bool = False  # each answer's body decoded for its batch id (freshness polls them)

    def answered(self, status: int, sent_at: float, answered_at: float, events: int, body: bytes) -> None:
        if status != 202:
            self.errors += 1
            return
        self.latencies_s.append(answered_at - sent_at)
        self.events += events
        if self.keep_batch_ids:
            self.batch_ids.append((answered_at, orjson.loads(body)["batch_id"]))

    def row(self, phase: str, elapsed_s: float, processed_s: float | None, base_rate: float | None) -> float:
        """Print this phase's line of the table; its events/s acknowledged."""
        acked = self.events / elapsed_s
        processed = f"{self.events / processed_s:>13,.0f}" if processed_s else f"{'':>13}"
        ratio = acked / base_rate if base_rate else 1.0
        p50, p99 = 1000 * percentile(self.latencies_s, 0.5), 1000 * percentile(self.latencies_s, 0.99)
        print(f"{phase:<34}{acked:>15,.0f}{processed}{p50:>8.1f}{p99:>8.1f}{ratio:>8.2f}")
        return acked


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile; NaN when there are no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a uvloop event loop, the server's own: a lean client takes less of the shared cores."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


class Connection(asyncio.Protocol):
    """A keep-alive connection that sends one request at a time and reads of each answer only its status,
    its length and its body; `on_answer` is called with the connection once an answer is in."""

    def __init__(self, acks: Acks, on_answer: Callable[[Connection], None], failed: asyncio.Future[None]) -> None:
        self.acks, self.on_answer, self.failed = acks, on_answer, failed
        self.transport: asyncio.Transport | None = None  # set by connect: uvloop calls connection_made later
        self.received = b""
        self.sent_at = 0.0
        self.events = 0
        self.closing = False

    def send(self, request: bytes, events: int) -> None:
        assert self.transport is not None
        self.events = events
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        received = self.received + data if self.received else data
        head_end = received.find(b"\r\n\r\n")
        if head_end < 0:
            self.received = received
            return
        head = received[:head_end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.fail(ConnectionError(f"an answer without content-length: {head[:200]!r}"))
            return
        line_end = head.find(b"\r\n", at + 2)
        body_end = head_end + 4 + int(head[at + 17 : line_end if line_end >= 0 else head_end])
        if len(received) < body_end:
            self.received = received
            return
        answered_at = time.perf_counter()
        self.received = received[body_end:]
        self.acks.answered(int(head[9:12]), self.sent_at, answered_at, self.events, received[head_end + 4 : body_end])
        self.on_answer(self)

    def fail(self, error: Exception) -> None:
        if not self.failed.done():
            self.failed.set_exception(error)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.fail(ConnectionError(f"the server closed a connection: {exc}"))

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


async def connect(
    port: int, acks: Acks, on_answer: Callable[[Connection], None]
) -> tuple[list[Connection], asyncio.Future[None]]:
    """`CONNECTIONS` connections, and a future that fails when one of them does."""
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[None] = loop.create_future()
    connections = []
    for _ in range(CONNECTIONS):
        transport, connection = await loop.create_connection(
            lambda: Connection(acks, on_answer, failed), "127.0.0.1", port
        )
        connection.transport = transport
        connections.append(connection)
    return connections, failed


async def finish(connections: list[Connection], done: asyncio.Future[None], failed: asyncio.Future[None]) -> None:
    """Wait for `done` (bounded), raise if a connection failed first, and close the connections."""
    try:
        finished, _ = await asyncio.wait([done, failed], timeout=ANSWER_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if failed in finished:
            failed.result()
        if not finished:
            raise TimeoutError(f"answers still awaited {ANSWER_TIMEOUT_S:g} s after the load")
    finally:
        for connection in connections:
            connection.close()


async def closed_loop(port: int, bodies: Bodies, seconds: float, acks: Acks) -> float:
    """Each connection sends its next request as soon as the last is answered; returns the elapsed time."""
    started = time.perf_counter()
    deadline = started + seconds
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stopped = 0

    def send_next(connection: Connection) -> None:
        nonlocal stopped
        if time.perf_counter() < deadline and len(acks.latencies_s) < MAX_REQUESTS:
            connection.send(bodies.next(), bodies.size)
            return
        stopped += 1
        if stopped == CONNECTIONS:
            done.set_result(None)

    connections, failed = await connect(port, acks, send_next)
    for connection in connections:
        send_next(connection)
    await finish(connections, done, failed)
    return time.perf_counter() - started


async def open_loop(
    port: int, bodies: Bodies, rate: float, seconds: float, acks: Acks, on_tick: Callable[[], None] | None = None
) -> float:
    """Requests at a fixed rate (events/s), whatever the answers take; returns the elapsed time.

    A request due waits for a free connection (FIFO); its latency runs from when it is sent. Each wake-up
    of the timer sends every request due by then, not one timer a request. `on_tick` is called about
    once a second of requests."""
    interval = bodies.size / rate
    total = min(int(seconds / interval), MAX_REQUESTS)
    tick_every = max(1, int(1 / interval))
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    free: collections.deque[Connection] = collections.deque()
    waiting = 0  # requests due, not yet sent
    issued = 0  # requests due so far

    def send_next(connection: Connection) -> None:
        nonlocal waiting
        if waiting:
            waiting -= 1
            connection.send(bodies.next(), bodies.size)
            return
        free.append(connection)
        if issued == total and len(free) == CONNECTIONS and not done.done():
            done.set_result(None)

    connections, failed = await connect(port, acks, send_next)
    free.extend(connections)
    started = time.perf_counter()
    while issued < total and not failed.done():
        await asyncio.sleep(max(TICK_S, started + issued * interval - time.perf_counter()) if issued else 0)
        due = min(total, int((time.perf_counter() - started) / interval) + 1)
        if on_tick is not None and (due - 1) // tick_every > (issued - 1) // tick_every:
            on_tick()
        waiting += due - issued
        issued = due
        while waiting and free:
            waiting -= 1
            free.popleft().send(bodies.next(), bodies.size)
    if len(free) == CONNECTIONS and not done.done():
        done.set_result(None)
    await finish(connections, done, failed)
    return time.perf_counter() - started


async def read_answer(reader: asyncio.StreamReader, *, status_read: bool = False) -> bytes:
    """The body of the next answer (its status line already read, or not)."""
    if not status_read:
        await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def get_json(port: int, path: str) -> dict:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        return orjson.loads(connection.getresponse().read())
    finally:
        connection.close()


def pending(port: int) -> int:
    return get_json(port, "/health")["batches"]["pending"]


def wait_drained(port: int, timeout_s: float = DRAIN_TIMEOUT_S) -> float:
    """Seconds until no batch is pending (bounded)."""
    started = time.perf_counter()
    while pending(port) and time.perf_counter() - started < timeout_s:
        time.sleep(0.1)
    return time.perf_counter() - started


class ServerProcess:
    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        self.port = int(line.split("127.0.0.1:")[1].split("/")[0])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def baseline_server() -> ServerProcess:
    """A bare uvicorn app (httptools, uvloop, one process) that reads the body and answers 202."""
    code = (
        "import socket, uvicorn\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http': return\n"
        "    more = True\n"
        "    while more:\n"
        "        message = await receive(); more = message.get('more_body', False)\n"
        "    headers = [(b'content-type', b'application/json'), (b'content-length', b'17')]\n"
        "    await send({'type': 'http.response.start', 'status': 202, 'headers': headers})\n"
        "    await send({'type': 'http.response.body', 'body': b'{\"batch_id\": \"b\"}'})\n"
        "sock = socket.socket(); sock.bind(('127.0.0.1', 0)); sock.listen(2048)\n"
        "print(f'http://127.0.0.1:{sock.getsockname()[1]}/', flush=True)\n"
        "uvicorn.Server(uvicorn.Config(app, http='httptools', loop='uvloop', log_level='warning',"
        " access_log=False, lifespan='off')).run(sockets=[sock])\n"
    )
    return ServerProcess([sys.executable, "-c", code], dict(os.environ))


def eventpipe_server(data_dir: Path) -> ServerProcess:
    command = [str(Path(sys.executable).parent / "eventpipe"), "up", "--port", "0", "--data-dir", str(data_dir)]
    return ServerProcess(command, dict(os.environ))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst-s", type=float, default=10.0)
    parser.add_argument("--sustain-s", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=25_000.0, help="sustained events/s (the target)")
    parser.add_argument("--fresh-s", type=float, default=20.0)
    parser.add_argument("--table-rates", default="10000,15000,20000,25000,30000", help="events/s of the rate table")
    parser.add_argument("--table-sizes", default="100,10", help="events a request, for the rate table")
    parser.add_argument("--table-s", type=float, default=8.0, help="seconds of load for each row of the table")
    parser.add_argument(
        "--drain-s",
        type=float,
        default=DRAIN_TIMEOUT_S,
        help="longest wait for a backlog to drain after a phase (past 2 s its target is missed anyway)",
    )
    args = parser.parse_args()
    bodies = Bodies()

    base = baseline_server()
    base_acks = Acks()
    try:
        base_elapsed = run(closed_loop(base.port, bodies, args.burst_s, base_acks))
    finally:
        base.stop()

    with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
        server = eventpipe_server(Path(tmp))
        try:
            print(f"HTTP ingest, {EVENTS_PER_REQUEST} events a request, {CONNECTIONS} connections, on 127.0.0.1")
            print(f"{'phase':<34}{'events/s acked':>15}{'processed/s':>13}{'p50 ms':>8}{'p99 ms':>8}{'x bare':>8}")
            base_rate = base_acks.row("baseline: bare uvicorn, 202 only", base_elapsed, None, None)
            burst(server.port, bodies, args.burst_s, base_rate, args.drain_s)
            sustained(server.port, bodies, args.rate, args.sustain_s, base_rate, args.drain_s)
        finally:
            server.stop()
    # Freshness on a server of its own: on the last one it would measure what is left of the sustained
    # phase's backlog, not the time a request takes at 1,000 events/s.
    for size in [int(size) for size in args.table_sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
            server = eventpipe_server(Path(tmp))
            try:
                freshness(server.port, Bodies(size=size), args.fresh_s, args.drain_s)
            finally:
                server.stop()
    rate_table(
        [int(rate) for rate in args.table_rates.split(",")],
        [int(size) for size in args.table_sizes.split(",")],
        args.table_s,
    )
    return 0


def rate_table(rates: list[int], sizes: list[int], seconds: float) -> None:
    """Open-loop load at each rate and request size, each row on a fresh server; is the backlog bounded?"""
    print(
        f"\nsustained rates, {seconds:g} s each on a fresh `eventpipe up` (target: 25,000 events/s kept up,"
        f" backlog drained within {DRAINED_TARGET_S:g} s)"
    )
    print(
        f"{'events a request':>16}{'rate':>8}{'acked/s':>9}{'p99 ms':>8}{'backlog max':>12}"
        f"{'events':>9}{'drain s':>9}  kept up"
    )
    for size in sizes:
        bodies = Bodies(size=size)
        for rate in rates:
            with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
                server = eventpipe_server(Path(tmp))
                try:
                    row = rate_row(server.port, bodies, rate, seconds)
                finally:
                    server.stop()
            acked, p99, backlog, drained, left = row
            kept_up = left == 0 and drained <= DRAINED_TARGET_S and acked >= 0.95 * rate
            if rate == 25_000:  # the target rate
                record(f"HTTP {size}-event requests at {rate:,}/s, acked/s", acked, target="kept up", met=kept_up)
            drain = f"{drained:>9.1f}" if left == 0 else f"{'>' + format(drained, '.0f'):>9}"
            print(
                f"{size:>16}{rate:>8,}{acked:>9,.0f}{p99:>8.0f}{backlog:>12,}{backlog * size:>9,}{drain}"
                f"  {'yes' if kept_up else 'no'}{f' ({left:,} batches left)' if left else ''}"
            )


def rate_row(port: int, bodies: Bodies, rate: float, seconds: float) -> tuple[float, float, int, float, int]:
    """acked events/s, p99 ms, the largest backlog sampled (batches), drain seconds, batches left undrained."""
    acks = Acks()
    backlog: list[int] = []
    last = [0.0]

    def sample() -> None:
        if time.perf_counter() - last[0] >= 0.5:
            last[0] = time.perf_counter()
            backlog.append(pending(port))

    elapsed = run(open_loop(port, bodies, rate, seconds, acks, on_tick=sample))
    backlog.append(pending(port))
    drained = wait_drained(port, TABLE_DRAIN_TIMEOUT_S)
    return acks.events / elapsed, 1000 * percentile(acks.latencies_s, 0.99), max(backlog), drained, pending(port)


def burst(port: int, bodies: Bodies, seconds: float, base_rate: float, drain_s: float) -> None:
    acks = Acks()
    elapsed = run(closed_loop(port, bodies, seconds, acks))
    drained = wait_drained(port, drain_s)
    acked = acks.row(f"burst {seconds:g} s", elapsed, elapsed + drained, base_rate)
    record("HTTP burst, acknowledged (events/s)", acked, baseline=base_rate, target=">= 40,000", met=acked >= 40_000)
    print(f"  {acks.events:,} events acknowledged, {acks.errors} refused; processing caught up {drained:.1f} s after")


def sustained(port: int, bodies: Bodies, rate: float, seconds: float, base_rate: float, drain_s: float) -> None:
    acks = Acks()
    backlog: list[int] = []
    last = [0.0]

    def sample() -> None:  # one /health read a second, from the generator's loop (a short blocking call)
        if time.perf_counter() - last[0] >= 1.0:
            last[0] = time.perf_counter()
            backlog.append(pending(port))

    elapsed = run(open_loop(port, bodies, rate, seconds, acks, on_tick=sample))
    drained = wait_drained(port, drain_s)
    left = pending(port)
    acked = acks.row(f"sustained {rate:,.0f}/s for {seconds:g} s", elapsed, elapsed + drained, base_rate)
    kept_up = left == 0 and drained <= DRAINED_TARGET_S and acked >= 0.95 * rate
    record(
        f"HTTP sustained {seconds:g} s (events/s acked)",
        acked,
        target=f">= {rate:,.0f}, drained <= {DRAINED_TARGET_S:g} s (took {drained:.1f} s)",
        met=kept_up,
    )
    ending = (
        f"back to zero {drained:.1f} s after the load stopped"
        if left == 0
        else f"{left:,} batches still pending {drained:.0f} s after the load stopped"
    )
    print(
        f"  backlog sampled each second: max {max(backlog, default=0)} batches, median "
        f"{statistics.median(backlog) if backlog else 0:g}; {ending}"
    )


async def poll_done(port: int, acked: list[tuple[float, str]], load: asyncio.Task[Any], deadline: float) -> list[float]:
    """Each acknowledged batch's seconds from its 202 to being seen done (`GET /batches/{id}` every 50 ms),
    until `load` is over and every batch in `acked` (appended to as they come) is done, or `deadline`."""
    done_after: list[float] = []
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seen = 0
    try:
        while (not load.done() or seen < len(acked)) and time.perf_counter() < deadline:
            # The worker takes batches oldest first: poll the oldest one not yet seen done.
            while seen < len(acked):
                at, batch_id = acked[seen]
                writer.write(b"GET /batches/%s HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n" % batch_id.encode())
                if orjson.loads(await read_answer(reader))["status"] != "done":
                    break
                done_after.append(time.perf_counter() - at)
                seen += 1
            await asyncio.sleep(0.05)
    finally:
        writer.close()
    return done_after


def freshness(port: int, bodies: Bodies, seconds: float, drain_s: float) -> None:
    """1,000 events/s; for each batch, the time from its 202 to being seen done (polled every 50 ms)."""
    # A second of load first, drained: what is measured is the steady state, not the processes' start.
    run(open_loop(port, bodies, 1_000, 1.0, Acks()))
    wait_drained(port, drain_s)
    acks = Acks(keep_batch_ids=True)
    done_after: list[float] = []

    async def load_and_poll() -> None:
        load = asyncio.create_task(open_loop(port, bodies, 1_000, seconds, acks))
        done_after.extend(await poll_done(port, acks.batch_ids, load, time.perf_counter() + seconds + drain_s))
        await load

    run(load_and_poll())
    p50, p95 = percentile(done_after, 0.5), percentile(done_after, 0.95)
    record(
        f"HTTP freshness at 1,000 events/s, {bodies.size}-event requests, p95 (s)", p95, target="< 1 s", met=p95 < 1.0
    )
    print(
        f"freshness at 1,000 events/s, {bodies.size}-event requests, {seconds:g} s on a fresh server:"
        f" 202 -> in /insights p50 {p50:.2f} s, p95 {p95:.2f} s ({len(done_after)} requests)"
    )


if __name__ == "__main__":
    sys.exit(main())
