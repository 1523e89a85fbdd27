"""The background worker of `eventpipe up`: a process of its own (the second core) that runs the
workflow of every pending batch, oldest first, and reads file drops. The lake and retention are the
lake process's (lake_process.py): this loop only hands out work.

The batch table is the queue: ingest records a batch as pending before it answers, and the worker
takes pending batches until none is left, so batches a crash left behind are finished on start
like any other. The server wakes it after its request log's writes (at most every 10 ms) and after
a replay; it also looks every half second.
Each batch commits its own writes, so the server never waits on the write lock for more than one
batch's writes.
Request batches (HTTP) are micro-batched first: once the oldest has waited the batching window
(`EVENTPIPE_BATCH_WINDOW_MS`) or they hold `EVENTPIPE_GROUP_MAX_EVENTS`, they are merged into one group batch, one
workflow execution (core/grouping.py).
Stopping between two batches loses nothing: an unfinished batch stays pending, and every step
may run twice.

Server and worker share no lock: a worker killed at any moment (even `kill -9`) must not leave one
held. The server wakes the worker with a datagram on a socket pair (a send that would block means
a wake-up is already waiting), and the stop flag and counters are lock-free shared integers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import EventpipeError
from eventpipe.core.grouping import is_due, take
from eventpipe.core.queued import GROUPABLE_SOURCE
from eventpipe.erasure.journal import ErasureJournal
from eventpipe.lake.cli import finish_erasures
from eventpipe.localrun.collector import tune_for_batches
from eventpipe.localrun.logged_requests import LoggedRequests
from eventpipe.localrun.runners import InlineRunner, PooledRunners, Run, batch_runners
from eventpipe.localrun.runtime import REQUEST_LOG_FOLDER, LocalRuntime
from eventpipe.localrun.supervision import KeptAlive
from eventpipe.localrun.watcher import DropWatcher

if TYPE_CHECKING:
    from collections.abc import Sequence
    from ctypes import c_longlong

    from eventpipe.settings import Settings

log = logging.getLogger(__name__)
POLL_S = 0.5
TAKE = 64  # pending batches read at a time
STOP_TIMEOUT_S = 30.0
ERASURES_EVERY_S = 5.0  # how soon an `eventpipe erase` killed while this worker runs is finished


class Shared:
    """Integers both processes see, without locks (each has a single writer)."""

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        self.stop: c_longlong = context.RawValue("q", 0)  # written by the server
        self.batches: c_longlong = context.RawValue("q", 0)  # the rest by the worker
        self.executions: c_longlong = context.RawValue("q", 0)  # workflow executions: groups count once
        self.events: c_longlong = context.RawValue("q", 0)
        self.files: c_longlong = context.RawValue("q", 0)
        self.heartbeat_ms: c_longlong = context.RawValue("q", 0)  # CLOCK_MONOTONIC: one clock for both
        self.log_seq: c_longlong = context.RawValue("q", 0)  # the oldest request of the log not in a group

    def as_dict(self) -> dict[str, Any]:
        beat = self.heartbeat_ms.value
        return {
            "batches_processed": self.batches.value,
            "executions": self.executions.value,
            "events_processed": self.events.value,
            "files_read": self.files.value,
            "last_seen_s": round(time.monotonic() - beat / 1000, 1) if beat else None,
        }


def work(settings: Settings, wake: socket.socket, shared: Shared, parent_pid: int) -> None:
    """The worker process's main loop, until the server asks it to stop or is gone."""
    logging.basicConfig(level=logging.INFO, format="eventpipe worker: %(levelname)s: %(message)s")
    # The server process has said at start which enrichers are off (geo without a database); a
    # worker (started again after a crash too) builds the same chain and need not say it again.
    logging.getLogger("eventpipe.core.enrich.chain").setLevel(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server decides
    terminated: list[int] = []  # SIGTERM to the worker alone: it ends, and the server starts another
    signal.signal(signal.SIGTERM, lambda sig, _frame: terminated.append(sig))
    runtime = LocalRuntime(settings, defer_to=lambda: None)  # file drops' batches join the queue
    _remove_unrecorded_groups(runtime)  # the worker alone forms groups: none is being written now
    watcher = DropWatcher(runtime)
    finish_erasures(runtime)  # an erasure a crash interrupted, before any batch runs
    erasures = ErasureJournal(settings.data_dir / "erasures")
    logged = LoggedRequests(
        runtime,
        settings.data_dir / REQUEST_LOG_FOLDER,
        max_events=settings.group_max_events,
        window_ms=settings.batch_window_ms,
    )
    runners = batch_runners(settings, runtime)
    tune_for_batches()
    next_scan = next_erasures = 0.0

    def stopping() -> bool:
        return bool(shared.stop.value or terminated) or os.getppid() != parent_pid

    try:
        while not stopping():
            shared.heartbeat_ms.value = int(time.monotonic() * 1000)
            _drain(wake)
            ran = _counted(shared, runners.collect())
            wait_s = POLL_S
            pending = runtime.batches.pending(max(TAKE, settings.group_max_events))
            running = runners.running
            for record in pending:  # file and replay batches, and groups a crash (or a runner's) left
                if record.source == GROUPABLE_SOURCE or record.batch_id in running:
                    continue
                if stopping() or not runners.free():
                    break
                runners.submit(Run(record.batch_id, record.raw_key, 1, record.received))
                ran = True
            # A group is formed while a runner can take it (each holds the batch it runs and the next).
            can_group = runners.free() and not stopping()
            due_in_ms = logged.due_in_ms(runtime.clock.now_ms()) if can_group else None
            if due_in_ms == 0:  # the server's requests, from the request log
                runs, taken = logged.group()
                shared.log_seq.value = logged.next_seq
                for batch_id, raw_key in runs:  # one group, or none (its requests were grouped before a crash)
                    runners.submit(Run(batch_id, raw_key, len(taken), sum(raw.received for raw in taken)))
                ran = True
            elif due_in_ms is not None:
                wait_s = min(wait_s, due_in_ms / 1000)
            requests = take(pending, max_events=settings.group_max_events)  # requests recorded one by one
            now_ms = runtime.clock.now_ms()
            if requests and runners.free() and not stopping():
                if is_due(
                    requests, max_events=settings.group_max_events, window_ms=settings.batch_window_ms, now_ms=now_ms
                ):
                    for batch_id, raw_key in runtime.group_requests(requests):
                        # a group runs every request in it; a request that runs alone, itself
                        members = [r for r in requests if r.batch_id == batch_id] or requests
                        runners.submit(Run(batch_id, raw_key, len(members), sum(r.received for r in members)))
                    ran = True
                else:  # wait for more requests, until the oldest one's window closes
                    wait_s = min(wait_s, (requests[0].received_at_ms + settings.batch_window_ms - now_ms) / 1000)
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + POLL_S
                shared.files.value += len(_scan(watcher))
            if time.monotonic() >= next_erasures:
                next_erasures = time.monotonic() + ERASURES_EVERY_S
                _finish_erasures(erasures, runtime, runners)
            if not ran:
                multiprocessing.connection.wait([wake, *runners.waitables], max(wait_s, 0.01))
    finally:
        runners.close()
        logged.close()
        runtime.close()


def _counted(shared: Shared, runs: Sequence[Run]) -> bool:
    """Count the batches the runners finished; whether there were any."""
    for run in runs:
        shared.executions.value += 1
        shared.batches.value += run.requests
        shared.events.value += run.events
    return bool(runs)


def _drain(wake: socket.socket) -> None:
    """Take every wake-up sent so far: the pending query that follows sees their batches."""
    with contextlib.suppress(BlockingIOError):
        while wake.recv(64):
            pass


def _finish_erasures(erasures: ErasureJournal, runtime: LocalRuntime, runners: InlineRunner | PooledRunners) -> None:
    """An `eventpipe erase` killed while this worker runs, finished once no batch runs (the lake
    process writes nothing while it is pending)."""
    if not erasures.has_pending():
        return
    runners.wait_all()
    try:
        finish_erasures(runtime)
    except EventpipeError as exc:  # the entry stays: the next round tries again
        log.error("an interrupted erasure not finished: %s", exc)


def _remove_unrecorded_groups(runtime: LocalRuntime) -> None:
    try:
        runtime.remove_unrecorded_groups()
    except EventpipeError as exc:  # only space is lost: the next start tries again
        log.error("group raw batches a crash left not deleted: %s", exc)


def _scan(watcher: DropWatcher) -> list[Any]:
    try:
        return watcher.scan()
    except EventpipeError as exc:  # a full disk, a broken database: try again at the next scan
        log.error("file drops not read: %s", exc)
        return []


class WorkerSupervisor:
    """Starts the worker process, starts it again if it dies, and stops it when asked."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self._send, self._receive = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._send.setblocking(False)
        self._receive.setblocking(False)
        self.shared = Shared(context)
        self._process = KeptAlive(
            "eventpipe-worker",
            work,
            (settings, self._receive, self.shared, os.getpid()),
            self.shared.stop,
            stop_timeout_s=STOP_TIMEOUT_S,
            wake=self.wake,
        )

    def start(self) -> None:
        self._process.start()

    def wake(self) -> None:
        """Tell the worker a batch is waiting; never blocks."""
        with contextlib.suppress(BlockingIOError):  # the worker has wake-ups waiting already
            self._send.send(b"!")

    def ask_to_stop(self) -> None:
        """Let the worker finish its current batch and exit (`join` waits for it)."""
        self._process.ask_to_stop()

    def join(self) -> None:
        """A worker that does not exit in time is killed, which loses nothing either (its batch stays pending)."""
        self._process.join()
        self._send.close()
        self._receive.close()

    def stop(self) -> None:
        self.ask_to_stop()
        self.join()

    def as_dict(self) -> dict[str, Any]:
        return {"alive": self._process.alive, "restarts": self._process.restarts, **self.shared.as_dict()}
