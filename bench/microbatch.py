"""`make bench`: micro-batching. Single-event requests at a steady rate into `eventpipe up` on 127.0.0.1.

Prints how many workflow executions the requests became (the worker's `executions` counter in
`GET /health`, before and after) per 1,000 requests, and the freshness: for each request, the time
from its 202 to its batch being done (`GET /batches/{id}`; a grouped request is done when its group
is), which is when its event is in `GET /insights`. Target: at most 20 executions per 1,000
requests at 100 requests/s, freshness p95 under 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from http_load import DRAIN_TIMEOUT_S, eventpipe_server, get_json, percentile, poll_done, read_answer, wait_drained
from summary import record

CONNECTIONS = 8
TARGET_EXECUTIONS_PER_1000 = 20
TARGET_FRESHNESS_P95_S = 5.0


def one_event(n: int) -> bytes:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "occurred_at": now,
        "anonymous_id": f"a-{n % 97}",
        "session_id": f"s-{n % 97}",
        "properties": {"path": f"/p/{n % 13}", "title": "bench"},
    }
    return orjson.dumps(event)


async def run(port: int, requests: int, rate: float) -> tuple[list[float], int]:
    """Send `requests` single-event requests at `rate` a second; each one's seconds from 202 to done."""
    acked: list[tuple[float, str]] = []
    errors = 0
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def send(n: int) -> None:
        nonlocal errors
        reader, writer = await pool.get()
        body = one_event(n)
        writer.write(
            b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        status = int((await reader.readline()).split()[1])
        answer = await read_answer(reader, status_read=True)
        pool.put_nowait((reader, writer))
        if status != 202:
            errors += 1
            return
        acked.append((time.perf_counter(), orjson.loads(answer)["batch_id"]))

    async def load() -> None:
        started = time.perf_counter()
        tasks = []
        for n in range(requests):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(send(n)))
        await asyncio.gather(*tasks)

    load_task = asyncio.create_task(load())
    # Groups run oldest first, so poll_done's oldest-first polling holds for grouped requests too.
    done_after = await poll_done(port, acked, load_task, time.perf_counter() + requests / rate + DRAIN_TIMEOUT_S)
    await load_task
    while not pool.empty():
        pool.get_nowait()[1].close()
    return done_after, errors


def executions(port: int) -> int:
    return int(get_json(port, "/health")["worker"]["executions"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s, one event each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventpipe-microbatch-") as tmp:
        server = eventpipe_server(Path(tmp))
        try:
            before = executions(server.port)
            done_after, errors = asyncio.run(run(server.port, args.requests, args.rate))
            wait_drained(server.port)
            ran = executions(server.port) - before
        finally:
            server.stop()
    per_1000 = 1000 * ran / max(1, args.requests - errors)
    p50, p95 = percentile(done_after, 0.5), percentile(done_after, 0.95)
    record(
        "micro-batching, executions per 1,000 requests",
        per_1000,
        target=f"<= {TARGET_EXECUTIONS_PER_1000}",
        met=per_1000 <= TARGET_EXECUTIONS_PER_1000,
    )
    record(
        "micro-batching, freshness p95 (s)",
        p95,
        target=f"< {TARGET_FRESHNESS_P95_S:g} s",
        met=p95 < TARGET_FRESHNESS_P95_S,
    )
    print(f"micro-batching: {args.requests:,} single-event requests at {args.rate:g}/s ({errors} refused)")
    print(
        f"  workflow executions: {ran} ({per_1000:.1f} per 1,000 requests; target at most {TARGET_EXECUTIONS_PER_1000})"
    )
    print(
        f"  freshness 202 -> done: p50 {p50:.2f} s, p95 {p95:.2f} s ({len(done_after)} requests;"
        f" target p95 under {TARGET_FRESHNESS_P95_S:g} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
