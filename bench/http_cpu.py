"""CPU per HTTP request of each process of `eventpipe up`, and of the load generator, at a fixed rate.

Whether a request rate fits the machine is a CPU budget: at 25,000 events/s in 10-event requests
(2,500 requests a second) the server, the worker with its runners and the generator share 2 cores.
Throughput figures swing with whatever else runs; CPU seconds per request much less. For each
request size this starts a fresh `eventpipe up`, sends a second of load and lets it drain, then
sends `--rate` events/s open loop for `--seconds` (as `http_load.py` does), waits until every batch
is done, and divides each process's CPU time (from /proc, children counted with the worker) by the
requests answered. To compare two versions, run it under each, alternating.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from http_load import Acks, Bodies, eventpipe_server, open_loop, run, wait_drained

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, path: str = "") -> float:
    """User and system CPU seconds of a process so far (0 once it is gone), or of its thread's `path`."""
    try:
        stat = Path(path or f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def loop_thread_cpu_s(pid: int) -> float:
    """CPU seconds of a process's main thread so far: the server's event loop."""
    return cpu_s(pid, f"/proc/{pid}/task/{pid}/stat")


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def measure(size: int, rate: float, seconds: float) -> dict[str, float]:
    """ms of CPU per request: the server (and its event loop's thread), the worker and its runners, the
    generator; and the request count."""
    bodies = Bodies(size=size)
    with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
        server = eventpipe_server(Path(tmp))
        try:
            run(open_loop(server.port, bodies, 1_000, 1.0, Acks()))  # the runners started, warm
            wait_drained(server.port, 30)
            pid = server.process.pid
            workers = descendants(pid)
            loop_0 = loop_thread_cpu_s(pid)
            server_0, workers_0, generator_0 = cpu_s(pid), sum(map(cpu_s, workers)), time.process_time()
            acks = Acks()
            run(open_loop(server.port, bodies, rate, seconds, acks))
            generator_1 = time.process_time()
            wait_drained(server.port, 120)
            server_1, workers_1, loop_1 = cpu_s(pid), sum(map(cpu_s, workers)), loop_thread_cpu_s(pid)
        finally:
            server.stop()
    requests = max(1, len(acks.latencies_s))
    return {
        "requests": requests,
        "server": 1000 * (server_1 - server_0) / requests,
        "loop": 1000 * (loop_1 - loop_0) / requests,
        "worker": 1000 * (workers_1 - workers_0) / requests,
        "generator": 1000 * (generator_1 - generator_0) / requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="events a request")
    parser.add_argument("--rate", type=float, default=10_000, help="events/s offered")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"ms of CPU per request at {args.rate:,.0f} events/s offered, {args.seconds:g} s (load {load:.1f})")
    columns = ("server", 8), ("its loop", 9), ("worker", 8), ("generator", 10), ("cores at 25k/s", 16)
    print(f"{'events a request':>16}{'requests':>10}" + "".join(f"{name:>{width}}" for name, width in columns))
    for size in [int(size) for size in args.sizes.split(",")]:
        row = measure(size, args.rate, args.seconds)
        cores = 25_000 / size * (row["server"] + row["worker"] + row["generator"]) / 1000
        print(
            f"{size:>16}{row['requests']:>10,.0f}{row['server']:>8.3f}{row['loop']:>9.3f}{row['worker']:>8.3f}"
            f"{row['generator']:>10.3f}{cores:>16.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
