"""The processes that run `eventpipe up`'s workflows: the second core's share of the work.

One process is one core. With `EVENTPIPE_WORKER_PROCESSES` above 1, the worker hands each batch to
one of that many runner processes (over a pipe each) and goes on reading the request log, forming
the next group and reading file drops meanwhile. A runner holds up to `QUEUED_PER_RUNNER` batches:
the one it runs and the next, already in its pipe, which it starts as soon as the first is done
without waiting for the worker's loop (the worker may be writing a group's raw batch, or waiting for
SQLite's write lock, when a runner finishes). Each batch is run by one runner at a time: the worker
hands a batch over once, and again only after its runner has ended (a runner that dies is joined
before its batches, still pending, are handed to another).
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
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eventpipe.localrun.collector import tune_for_batches
from eventpipe.localrun.runtime import LocalRuntime

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from eventpipe.settings import Settings

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
QUEUED_PER_RUNNER = 2  # the batch a runner runs, and the next one waiting in its pipe


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
        self.waitables: list[Any] = []  # nothing runs in the background

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


class Runner:
    """One runner process and the batch it runs, if any; the worker talks to it over a pipe."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(settings, theirs, os.getpid()), name="eventpipe-runner", daemon=True
        )
        self.process.start()
        theirs.close()
        self.runs: list[Run] = []  # handed over and not answered yet, in the order it runs them

    def stop(self) -> None:
        """Ask it to end once its batches are done, and wait for that."""
        with contextlib.suppress(OSError):
            self.connection.send(None)
        self.process.join()
        self.connection.close()


class PooledRunners:
    """Runs batches in up to `processes` runner processes, each holding up to `QUEUED_PER_RUNNER`.

    A runner that dies (its pipe closes) is joined, so it runs nothing any more, before its batches,
    still pending, can be handed over again; the other runners go on.
    """

    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        # Started now, not at the first batch: a runner takes a second or more to import and build its
        # runtime, which the first requests' freshness would otherwise pay.
        self._runners: list[Runner] = [Runner(settings) for _ in range(processes)]
        self._done: list[Run] = []  # answered while waiting for every runner (wait_all), not counted yet

    @property
    def waitables(self) -> list[Any]:
        """What to wait on beside the worker's wake-ups: a busy runner's answer, or its end."""
        return [runner.connection for runner in self._runners if runner.runs]

    @property
    def running(self) -> set[str]:
        return {run.batch_id for runner in self._runners for run in runner.runs}

    def free(self) -> bool:
        return any(len(runner.runs) < QUEUED_PER_RUNNER for runner in self._runners)

    def submit(self, run: Run) -> None:
        """Hand `run` to the runner with the fewest batches (an idle one first)."""
        index = min(range(len(self._runners)), key=lambda i: len(self._runners[i].runs))
        runner = self._runners[index]
        try:
            runner.connection.send((run.batch_id, run.raw_key))
        except OSError:  # it died: its batches stay pending, its replacement takes this one
            self._discard(runner)
            runner = self._runners[index] = Runner(self._settings)
            runner.connection.send((run.batch_id, run.raw_key))
        runner.runs.append(run)

    def collect(self) -> list[Run]:
        """The batches whose runner has finished them. A batch whose runner died stays pending, and is
        handed over again later; any other error is raised (the worker ends, and is started again)."""
        done, self._done = self._done, []
        for index, runner in enumerate(self._runners):
            while runner.runs and runner.connection.poll():
                if not self._answer(index, runner, done):
                    break
        return done

    def _answer(self, index: int, runner: Runner, done: list[Run]) -> bool:
        """Read one answer of `runner` into `done`; False when it died (replaced, its batches pending)."""
        try:
            error = runner.connection.recv()
        except (EOFError, OSError):
            log.error("a runner process died; its batches stay pending and run again")
            self._discard(runner)
            self._runners[index] = Runner(self._settings)
            return False
        if error is not None:  # the worker ends (close() stops the rest), and is started again
            self._discard(runner)
            raise RuntimeError(f"a runner failed: {error}")
        done.append(runner.runs.pop(0))
        return True

    def wait_all(self) -> None:
        """Return once no batch runs (their ends are counted at the next `collect`)."""
        for index, runner in enumerate(self._runners):
            while runner.runs and self._answer(index, runner, self._done):
                pass

    def _discard(self, runner: Runner) -> None:
        runner.process.kill()  # dead already, or failed: it runs nothing more
        runner.process.join()
        runner.connection.close()
        runner.runs = []

    def close(self) -> None:
        """Let the runners finish their batches, then end them."""
        for runner in self._runners:
            runner.stop()
        self._runners = []


def batch_runners(settings: Settings, runtime: LocalRuntime) -> InlineRunner | PooledRunners:
    """The runners `EVENTPIPE_WORKER_PROCESSES` asks for; one process where a runner cannot be tied
    to the worker's life (no parent-death signal off Linux)."""
    if settings.worker_processes <= 1 or not sys.platform.startswith("linux"):
        return InlineRunner(runtime)
    return PooledRunners(settings, settings.worker_processes)


def _serve(settings: Settings, connection: Connection, worker_pid: int) -> None:
    """A runner process: die with the worker, ignore Ctrl-C (the server decides), build a runtime,
    then run each batch the worker sends, answering None (done) or the error, until it sends None."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != worker_pid:
        return  # the worker is gone already (or cannot be followed): run nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="eventpipe runner: %(levelname)s: %(message)s")
    logging.getLogger("eventpipe.core.enrich.chain").setLevel(logging.WARNING)
    runtime = LocalRuntime(settings, defer_to=lambda: None)
    tune_for_batches()
    try:
        while (message := connection.recv()) is not None:
            batch_id, raw_key = message
            try:
                runtime.run_group([(batch_id, raw_key)])
            except Exception as exc:  # told to the worker, which ends and is started again
                connection.send(f"{type(exc).__name__}: {exc}")
                continue
            connection.send(None)
    except (EOFError, OSError):
        pass  # the worker is gone
    finally:
        runtime.close()
