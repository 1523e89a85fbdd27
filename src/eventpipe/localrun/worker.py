"""The background worker of `eventpipe up`: a process of its own (the second core) that runs the
workflow of every pending batch, oldest first, and reads file drops.

The batch table is the queue: ingest records a batch as pending before it answers, and the worker
takes pending batches until none is left, so batches a crash left behind are finished on start
like any other. The server wakes it after each request; it also looks every half second.
Stopping between two batches loses nothing: an unfinished batch stays pending, and every step
may run twice.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import EventpipeError
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.localrun.watcher import DropWatcher

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Event

    from eventpipe.settings import Settings

log = logging.getLogger(__name__)
POLL_S = 0.5
TAKE = 64  # pending batches read at a time
STOP_TIMEOUT_S = 30.0


class WorkerCounters:
    """Counts the worker shares with the server (for `GET /health`)."""

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        self.batches: Synchronized[int] = context.Value("q", 0)
        self.events: Synchronized[int] = context.Value("q", 0)
        self.files: Synchronized[int] = context.Value("q", 0)

    def as_dict(self) -> dict[str, int]:
        return {
            "batches_processed": self.batches.value,
            "events_processed": self.events.value,
            "files_read": self.files.value,
        }


def work(settings: Settings, wake: Event, stop: Event, counters: WorkerCounters, parent_pid: int) -> None:
    """The worker process's main loop, until `stop` is set or the server process is gone."""
    logging.basicConfig(level=logging.WARNING, format="eventpipe worker: %(levelname)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server decides
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime = LocalRuntime(settings, defer_to=lambda: None)  # file drops' batches join the queue
    watcher = DropWatcher(runtime)
    runtime.sweep_staged()
    next_scan = 0.0
    try:
        while not stop.is_set() and os.getppid() == parent_pid:
            wake.clear()
            pending = runtime.batches.pending(TAKE)
            for record in pending:
                if stop.is_set():
                    break
                runtime.run(record.batch_id, record.raw_key)
                counters.batches.value += 1  # the worker is the only writer
                counters.events.value += record.received
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + POLL_S
                counters.files.value += len(_scan(watcher))
            if not pending:
                wake.wait(POLL_S)
    finally:
        runtime.close()


def _scan(watcher: DropWatcher) -> list[Any]:
    try:
        return watcher.scan()
    except EventpipeError as exc:  # a full disk, a broken database: try again at the next scan
        log.error("file drops not read: %s", exc)
        return []


class WorkerSupervisor:
    """Starts the worker process, starts it again if it dies, and stops it when asked."""

    def __init__(self, settings: Settings) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._settings = settings
        self.wake = self._context.Event()
        self._stop = self._context.Event()
        self.counters = WorkerCounters(self._context)
        self._process: SpawnProcess | None = None
        self._restarts = 0
        self._watch = threading.Thread(target=self._keep_alive, name="eventpipe-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watch.start()

    def _spawn(self) -> None:
        self._process = self._context.Process(
            target=work,
            args=(self._settings, self.wake, self._stop, self.counters, os.getpid()),
            name="eventpipe-worker",
        )
        self._process.start()

    def _keep_alive(self) -> None:
        while not self._stop.wait(1.0):
            if self._process is not None and not self._process.is_alive():
                self._restarts += 1
                log.error("the worker exited (code %s); starting it again", self._process.exitcode)
                self._spawn()

    def stop(self) -> None:
        """Let the worker finish its current batch and exit; a worker that does not is terminated,
        which loses nothing either (its batch stays pending)."""
        self._stop.set()
        self.wake.set()
        if self._process is not None:
            self._process.join(STOP_TIMEOUT_S)
            if self._process.is_alive():
                log.warning("the worker did not stop within %.0f s; terminating it", STOP_TIMEOUT_S)
                self._process.kill()
                self._process.join()

    def as_dict(self) -> dict[str, Any]:
        alive = self._process is not None and self._process.is_alive()
        return {"alive": alive, "restarts": self._restarts, **self.counters.as_dict()}
