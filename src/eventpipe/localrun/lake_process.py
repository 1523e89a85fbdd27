"""The lake process of `eventpipe up`: retention and the lake writer, beside the worker.

Every `LAKE_EVERY_S` (`BUSY_EVERY_S` while the worker curates fast) it applies retention when due,
then writes the curated events not yet in the lake (lake/writer.py: a chunk at a time, then
compaction). The worker ran these in its own loop, where a round (seconds, once a busy hour's files
were merged) kept it from forming groups while the runners ran dry: here they take whichever core is
free and the worker's loop only hands out work.

Nothing new is needed for exactly-once: one writer at a time holds the lake's file lock (this
process, `eventpipe ingest`, `eventpipe erase`), and the writer lists a chunk's files and moves its
cursor in one transaction, so this process killed at any moment (`kill -9` included) leaves at most
unlisted files, which its next start deletes before writing those rows again. An erasure a crash
interrupted is the worker's to finish (it waits for its runners first); while one is pending, this
process writes nothing.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import EventpipeError
from eventpipe.erasure.journal import ErasureJournal
from eventpipe.lake.cli import retention_if_due
from eventpipe.lake.settings import LakeSettings
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.localrun.supervision import KeptAlive

if TYPE_CHECKING:
    from collections.abc import Callable
    from ctypes import c_longlong

    from eventpipe.lake.writer import LakeWriter
    from eventpipe.settings import Settings

log = logging.getLogger(__name__)
LAKE_EVERY_S = 5.0  # curated events are in the lake within about this (the contract says 60 s)
# While the worker curates more than BUSY_EVENTS_PER_S, a round waits (until BUSY_EVERY_S after the last
# one began, at most): the cores are the server's and the runners' then (at 25,000 events/s the rounds
# took 7% of the CPU the load used), and an event is still in the lake within about BUSY_EVERY_S and a
# round, under the contract's 60 s.
BUSY_EVENTS_PER_S = 5_000
BUSY_EVERY_S = 20.0
BUSY_LOOK_S = 1.0  # how often it looks again meanwhile: a backlog drained, the round begins
LAKE_BUDGET_S = 30.0  # a round's chunks stop after this; compaction follows
STOP_POLL_S = 0.1  # how soon a stop asked for between two rounds is seen
STOP_TIMEOUT_S = 10.0  # then it is killed: a round cut short is written again at the next start
PROCESS_NAME = "eventpipe-lake"
PR_SET_NAME = 15


class LakeShared:
    """Integers the server and the lake process both see, without locks (each has a single writer)."""

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        self.stop: c_longlong = context.RawValue("q", 0)  # written by the server
        self.events: c_longlong = context.RawValue("q", 0)  # the rest by the lake process
        self.heartbeat_ms: c_longlong = context.RawValue("q", 0)  # CLOCK_MONOTONIC, as the worker's

    def as_dict(self) -> dict[str, Any]:
        beat = self.heartbeat_ms.value
        return {
            "events_written": self.events.value,
            "last_seen_s": round(time.monotonic() - beat / 1000, 1) if beat else None,
        }


def needed() -> bool:
    """Whether `eventpipe up` runs a lake process: the lake is on, or retention is configured."""
    lake = LakeSettings.from_env()
    return lake.enabled or lake.retention_days is not None or lake.lake_retention_days is not None


def keep_the_lake(settings: Settings, shared: LakeShared, parent_pid: int) -> None:
    """The lake process's main loop, until the server asks it to stop or is gone."""
    logging.basicConfig(level=logging.INFO, format="eventpipe lake: %(levelname)s: %(message)s")
    logging.getLogger("eventpipe.core.enrich.chain").setLevel(logging.WARNING)  # the server said it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server decides
    terminated: list[int] = []  # SIGTERM to this process alone: it ends, and the server starts another
    signal.signal(signal.SIGTERM, lambda sig, _frame: terminated.append(sig))
    _name_process(PROCESS_NAME)

    def stopping() -> bool:
        return bool(shared.stop.value or terminated) or os.getppid() != parent_pid

    runtime = LocalRuntime(settings, defer_to=lambda: None)
    try:
        lake = _writer(runtime)
        journal = ErasureJournal(settings.data_dir / "erasures")
        while not stopping():
            shared.heartbeat_ms.value = int(time.monotonic() * 1000)
            began = looked_at = time.monotonic()
            curated = _curated_so_far(runtime)
            shared.events.value += _round(runtime, lake, journal, stopping)
            next_look = began + LAKE_EVERY_S
            while not stopping():  # the next round once LAKE_EVERY_S is over and the worker is not busy
                _sleep_until(next_look, shared, stopping)
                now, curated_now = time.monotonic(), _curated_so_far(runtime)
                if stopping() or not waits(curated_now - curated, now - looked_at, now - began):
                    break
                looked_at, curated = now, curated_now
                next_look = min(now + BUSY_LOOK_S, began + BUSY_EVERY_S)
    finally:
        runtime.close()


def waits(curated: int, over_s: float, since_round_s: float) -> bool:
    """Whether the next round waits, `curated` events having been curated in the last `over_s`
    seconds: the worker is busy, and the last round began under BUSY_EVERY_S ago."""
    return since_round_s < BUSY_EVERY_S and curated > BUSY_EVENTS_PER_S * over_s


def _sleep_until(deadline: float, shared: LakeShared, stopping: Callable[[], bool]) -> None:
    while not stopping() and time.monotonic() < deadline:
        shared.heartbeat_ms.value = int(time.monotonic() * 1000)
        time.sleep(min(STOP_POLL_S, max(0.0, deadline - time.monotonic())))


def _curated_so_far(runtime: LocalRuntime) -> int:
    """The curated store's largest rowid: rows are added in its order, so its growth is the events curated."""
    try:
        with runtime.db.reading() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM curated").fetchone()[0])
    except EventpipeError:  # the round will say what is wrong; here it only means "not busy"
        return 0


def _writer(runtime: LocalRuntime) -> LakeWriter | None:
    if not LakeSettings.from_env().enabled:
        return None
    from eventpipe.lake.writer import lake_writer  # loads pyarrow

    return lake_writer(runtime)


def _round(
    runtime: LocalRuntime, lake: LakeWriter | None, journal: ErasureJournal, stopping: Callable[[], bool]
) -> int:
    """Retention when due, then the lake; how many events it wrote. Nothing while an erasure is
    pending: `eventpipe erase` runs it, or the worker finishes it once no batch runs."""
    if journal.has_pending():
        return 0
    try:
        retention_if_due(runtime)
        return lake.sync(budget_s=LAKE_BUDGET_S, stop=stopping) if lake is not None else 0
    except EventpipeError as exc:  # the events stay in the curated store: the next round writes them
        log.error("lake or retention not done: %s", exc)
        return 0


def _name_process(name: str) -> None:
    """Name the process as `ps` and /proc/<pid>/comm show it (Linux): it tells it from the worker."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class LakeSupervisor:
    """Starts the lake process, starts it again if it dies, and stops it when asked."""

    def __init__(self, settings: Settings) -> None:
        self.shared = LakeShared(multiprocessing.get_context("spawn"))
        self._process = KeptAlive(
            PROCESS_NAME,
            keep_the_lake,
            (settings, self.shared, os.getpid()),
            self.shared.stop,
            stop_timeout_s=STOP_TIMEOUT_S,
        )

    def start(self) -> None:
        self._process.start()

    def ask_to_stop(self) -> None:
        self._process.ask_to_stop()

    def join(self) -> None:
        self._process.join()

    def as_dict(self) -> dict[str, Any]:
        return {"alive": self._process.alive, "restarts": self._process.restarts, **self.shared.as_dict()}
