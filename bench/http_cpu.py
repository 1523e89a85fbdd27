"""CPU per HTTP request of each process of `eventpipe up`, and of the load generator, at a fixed rate.

Whether a request rate fits the machine is a CPU budget: at 25,000 events/s in 10-event requests
(2,500 requests a second) the server, the worker with its runners and the generator share 2 cores.
Throughput figures swing with whatever else runs; CPU seconds per request much less. For each
request size this starts a fresh `eventpipe up`, sends a second of load and lets it drain, then
sends `--rate` events/s open loop for `--seconds` (as `http_load.py` does), waits until every batch
is done, and divides each process's CPU time (from /proc) by the requests answered: the server (and
its event loop's thread), the worker, its runners, the lake process and the generator; and by the
events, µs per event of each. To compare two versions, run it under each, alternating.
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


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    return [found for child in children(pid) for found in (child, *descendants(child))]


def roles(server_pid: int) -> dict[str, list[int]]:
    """`eventpipe up`'s processes by role: the worker is the server's child with children (its runners),
    the lake process its other child; multiprocessing's resource tracker is left out (it idles)."""
    found: dict[str, list[int]] = {"worker": [], "runners": [], "lake": []}
    for child in children(server_pid):
        try:
            if b"resource_tracker" in Path(f"/proc/{child}/cmdline").read_bytes():
                continue
        except OSError:
            continue
        runners = descendants(child)
        found["worker" if runners else "lake"].append(child)
        found["runners"] += runners
    return found


def measure(size: int, rate: float, seconds: float) -> dict[str, float]:
    """ms of CPU per request: the server (and its event loop's thread), the worker, its runners, the lake
    process, the generator; and the request count."""
    bodies = Bodies(size=size)
    with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
        server = eventpipe_server(Path(tmp))
        try:
            run(open_loop(server.port, bodies, 1_000, 1.0, Acks()))  # the runners started, warm
            wait_drained(server.port, 30)
            pid = server.process.pid
            processes = {"server": [pid], **roles(pid)}

            def cpu() -> dict[str, float]:
                return {
                    "loop": loop_thread_cpu_s(pid),
                    "generator": time.process_time(),
                    **{role: sum(map(cpu_s, pids)) for role, pids in processes.items()},
                }

            before = cpu()
            acks = Acks()
            run(open_loop(server.port, bodies, rate, seconds, acks))
            generator_s = time.process_time() - before["generator"]
            wait_drained(server.port, 120)
            after = cpu()
        finally:
            server.stop()
    requests = max(1, len(acks.latencies_s))
    used = {role: after[role] - before[role] for role in before} | {"generator": generator_s}
    return {"requests": requests} | {role: 1000 * seconds_used / requests for role, seconds_used in used.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="events a request")
    parser.add_argument("--rate", type=float, default=10_000, help="events/s offered")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"ms of CPU per request at {args.rate:,.0f} events/s offered, {args.seconds:g} s (load {load:.1f})")
    roles_shown = ("server", "loop", "worker", "runners", "lake", "generator")
    names = {"loop": "its loop"}
    print(
        f"{'events a request':>16}{'requests':>10}"
        + "".join(f"{names.get(role, role):>10}" for role in roles_shown)
        + f"{'all':>8}{'cores at 25k/s':>16}"
    )
    per_event = []
    for size in [int(size) for size in args.sizes.split(",")]:
        row = measure(size, args.rate, args.seconds)
        total = sum(row[role] for role in roles_shown if role != "loop")
        print(
            f"{size:>16}{row['requests']:>10,.0f}"
            + "".join(f"{row[role]:>10.3f}" for role in roles_shown)
            + f"{total:>8.3f}{25_000 / size * total / 1000:>16.2f}"
        )
        per_event.append((size, {role: 1000 * row[role] / size for role in roles_shown} | {"all": 1000 * total / size}))
    print("\nthe same, µs of CPU per event")
    for size, row in per_event:
        print(f"{size:>16}{'':>10}" + "".join(f"{row[role]:>10.1f}" for role in roles_shown) + f"{row['all']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
