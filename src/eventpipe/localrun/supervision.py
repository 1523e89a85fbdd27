"""Keeps one of `eventpipe up`'s background processes (the worker, the lake process) running: starts
it, starts it again whenever it exits (the server alone decides when to stop), and stops it when
asked. Each runs in a `spawn` process of its own, so a crash of it never takes the server down.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from ctypes import c_longlong
    from multiprocessing.context import SpawnProcess

log = logging.getLogger(__name__)
RESTART_MAX_WAIT_S = 60.0
QUICK_EXIT_S = 30.0


class KeptAlive:
    """One supervised process: `target(*args)` in a `spawn` process named `name`. It stops once
    `stop_flag` is set (by `stop()`, which then calls `wake()` so that it sees it at once)."""

    def __init__(
        self,
        name: str,
        target: Callable[..., None],
        args: tuple[Any, ...],
        stop_flag: c_longlong,
        *,
        stop_timeout_s: float,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._target = target
        self._args = args
        self._stop_flag = stop_flag
        self._stop_timeout_s = stop_timeout_s
        self._wake = wake
        self._stopped = threading.Event()
        self._process: SpawnProcess | None = None
        self._started = 0.0
        self._watch = threading.Thread(target=self._keep_alive, name=f"{name}-supervisor", daemon=True)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        self._spawn()
        self._watch.start()

    def _spawn(self) -> None:
        self._process = self._context.Process(target=self._target, args=self._args, name=self.name)
        self._process.start()
        self._started = time.monotonic()

    def _keep_alive(self) -> None:
        """Start a process that exited again; after an exit soon after its start, wait twice as long
        as the last time, up to a minute: a crash loop stays cheap."""
        backoff_s = 0.5
        while not self._stopped.wait(1.0):
            if self._process is None or self._process.is_alive():
                continue
            self.restarts += 1
            quick = time.monotonic() - self._started < QUICK_EXIT_S
            backoff_s = min(backoff_s * 2, RESTART_MAX_WAIT_S) if quick else 1.0
            code = self._process.exitcode
            log.error("the %s process exited (code %s); starting it again in %.0f s", self.name, code, backoff_s)
            if self._stopped.wait(backoff_s):
                return
            self._spawn()

    def ask_to_stop(self) -> None:
        """No restart from now on, and the process told to end (it finishes what it does first)."""
        self._stopped.set()
        if self._watch.is_alive():
            self._watch.join()
        self._stop_flag.value = 1
        self._wake()

    def join(self) -> None:
        """Wait for the process to end; one that does not within its timeout is killed, which loses
        nothing either (what it was doing is done again by its next start)."""
        if self._process is None:
            return
        self._process.join(self._stop_timeout_s)
        if self._process.is_alive():
            log.warning("the %s process did not stop within %.0f s; killing it", self.name, self._stop_timeout_s)
            self._process.kill()
            self._process.join()
