"""The processes that run `eventpipe up`'s workflows: the second core's share of the work.

One worker process at about 45 µs of CPU per event is one core, about 20,000 events/s. With
`EVENTPIPE_WORKER_PROCESSES` above 1, the worker hands each batch to one of that many runner
processes (a `ProcessPoolExecutor`) and goes on reading the request log, forming the next group,
reading file drops and writing the lake meanwhile. Each batch is run by one runner at a time: the
worker hands a batch over once, and again only after its runner has ended (a runner that dies
breaks the pool, which is shut down, its processes joined, before anything is handed over again).
A runner dies with the worker (Linux's parent-death signal), so a worker killed with `kill -9`
leaves no runner behind to run a batch beside the worker started in its place. The steps commit
their own writes, so runners share SQLite's write lock a transaction at a time.
With 1 process (or off Linux), the worker runs each batch itself, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventpipe.localrun.collector import tune_for_batches
from eventpipe.localrun.runtime import LocalRuntime

if TYPE_CHECKING:
    from eventpipe.settings import Settings

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Run:
    """A batch handed to a runner, with what it counts for in the worker's counters once done."""

    batch_id: str
    raw_key: str
    requests: int
    events: int


class InlineRunner:
    """Runs each batch in the worker process itself, at once (one process)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime
        self._done: list[Run] = []
        self.wakeup: socket.socket | None = None  # nothing runs in the background

    @property
    def running(self) -> set[str]:
        return set()

    def free(self) -> bool:
        return True

    def submit(self, run: Run) -> None:
        self._runtime.run_group([(run.batch_id, run.raw_key)])
        self._done.append(run)

    def collect(self) -> list[Run]:
        done, self._done = self._done, []
        return done

    def wait_all(self) -> None:
        pass

    def close(self) -> None:
        pass


class PooledRunners:
    """Runs batches in `processes` runner processes, at most one batch each at a time."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._in_flight: dict[str, tuple[Future[None], Run]] = {}
        # A runner's end wakes the worker's wait, as the server's wake-ups do.
        self.wakeup, self._notify = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.wakeup.setblocking(False)
        self._notify.setblocking(False)

    @property
    def running(self) -> set[str]:
        return set(self._in_flight)

    def free(self) -> bool:
        return len(self._in_flight) < self._processes

    def submit(self, run: Run) -> None:
        try:
            future = self._started().submit(_run, run.batch_id, run.raw_key)
        except BrokenExecutor:  # a runner died while idle: join them all, start afresh
            log.error("a runner process died while idle; starting the runners again")
            self._restart()
            future = self._started().submit(_run, run.batch_id, run.raw_key)
        self._in_flight[run.batch_id] = (future, run)
        future.add_done_callback(self._wake)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_runner,
                initargs=(self._settings, os.getpid()),
            )
        return self._pool

    def _wake(self, _future: Future[None]) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is waiting already; closed: stopping
            self._notify.send(b"!")

    def collect(self) -> list[Run]:
        """The batches whose runner has finished them. A batch whose runner died stays pending, and is
        handed over again later; any other error is raised (the worker ends, and is started again)."""
        with contextlib.suppress(BlockingIOError):
            while self.wakeup.recv(64):
                pass
        done, broken = [], False
        for batch_id, (future, run) in list(self._in_flight.items()):
            if not future.done():
                continue
            del self._in_flight[batch_id]
            error = future.exception()
            if isinstance(error, BrokenExecutor):
                broken = True
                continue
            if error is not None:
                raise error
            done.append(run)
        if broken:
            log.error("a runner process died; its batch stays pending and runs again")
            self._restart()
        return done

    def wait_all(self) -> None:
        """Return once no batch runs (their ends are counted at the next `collect`)."""
        wait([future for future, _ in self._in_flight.values()])

    def _restart(self) -> None:
        """Join every runner (the broken pool's and the batches still in it) before any batch is handed over again."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._in_flight.clear()

    def close(self) -> None:
        """Let the runners finish their batches, then end them."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._in_flight.clear()
        self.wakeup.close()
        self._notify.close()


def batch_runners(settings: Settings, runtime: LocalRuntime) -> InlineRunner | PooledRunners:
    """The runners `EVENTPIPE_WORKER_PROCESSES` asks for; one process where a runner cannot be tied
    to the worker's life (no parent-death signal off Linux)."""
    if settings.worker_processes <= 1 or not sys.platform.startswith("linux"):
        return InlineRunner(runtime)
    return PooledRunners(settings, settings.worker_processes)


_runtime: LocalRuntime | None = None


def _start_runner(settings: Settings, worker_pid: int) -> None:
    """A runner process's start: die with the worker, ignore Ctrl-C (the server decides), build a runtime."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != worker_pid:
        os._exit(1)  # the worker is gone already (or cannot be followed): run nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="eventpipe runner: %(levelname)s: %(message)s")
    logging.getLogger("eventpipe.core.enrich.chain").setLevel(logging.WARNING)
    global _runtime
    _runtime = LocalRuntime(settings, defer_to=lambda: None)
    tune_for_batches()


def _run(batch_id: str, raw_key: str) -> None:
    assert _runtime is not None
    _runtime.run_group([(batch_id, raw_key)])
