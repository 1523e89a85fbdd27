"""A ceiling on the test process's memory: a test that runs away fails the run, named, before the
kernel's OOM killer takes the machine (and CI's other processes) down with it.

The full suite's own peak is under 1 GB, far under the default ceiling. A thread reads the resident
size every 0.1 s; past the ceiling it records the running test and every thread's stack, then
interrupts the main thread (pytest stops the run and prints them). A test stuck in one C call that
allocates cannot be interrupted: past half as much again the process exits at once, after writing
the same to the terminal.

EVENTPIPE_TEST_RSS_LIMIT_MB sets the ceiling (0: no guard).
"""

from __future__ import annotations

import _thread
import faulthandler
import os
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

DEFAULT_LIMIT_MB = 8192  # CI machines have 24 GiB; a normal run peaks under 1 GB
POLL_S = 0.1
HARD_EXIT_CODE = 70
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


def limit_bytes() -> int:
    return int(os.environ.get("EVENTPIPE_TEST_RSS_LIMIT_MB", DEFAULT_LIMIT_MB)) * 1024 * 1024


class MemoryGuard:
    def __init__(self, config: pytest.Config, limit: int) -> None:
        self.config = config
        self.limit = limit
        self.running = "(between tests)"
        self.tripped: str | None = None  # what to print: the test and the stacks when it went over

    def start(self) -> None:
        threading.Thread(target=self._watch, name="memory-guard", daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(POLL_S)
            rss = resident_bytes()
            if rss > self.limit and self.tripped is None:
                self.tripped = self._describe(rss)
                _thread.interrupt_main()  # pytest ends the run as on Ctrl-C, and the summary shows the rest
            elif rss > self.limit * 3 // 2:
                self._exit_now()

    def _describe(self, rss: int) -> str:
        stacks = [
            f"--- thread {ident}\n{''.join(traceback.format_stack(frame))}"
            for ident, frame in sys._current_frames().items()
            if ident != threading.get_ident()
        ]
        return (
            f"the test process held {rss // 2**20} MiB, over the {self.limit // 2**20} MiB ceiling "
            f"(EVENTPIPE_TEST_RSS_LIMIT_MB), during {self.running}\n" + "".join(stacks)
        )

    def _exit_now(self) -> None:
        # During a test pytest captures file descriptors 1 and 2: what follows would go to its temporary
        # files and be lost at the exit (a run that ended with code 70 and no word of which test).
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)
        writer = self.config.get_terminal_writer()
        writer.line(f"\nmemory guard: {self.tripped}\nno interrupt took: exiting", red=True)
        writer.flush()
        faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)  # the stacks as they are now
        os._exit(HARD_EXIT_CODE)


_guard: MemoryGuard | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _guard
    limit = limit_bytes()
    if limit > 0 and _guard is None and os.path.exists("/proc/self/statm"):
        _guard = MemoryGuard(config, limit)
        _guard.start()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _guard is not None:
        _guard.running = nodeid


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _guard is not None and _guard.tripped is not None:
        terminalreporter.section("memory guard", red=True)
        terminalreporter.line(_guard.tripped)
