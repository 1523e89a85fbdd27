"""Run `eventpipe up` as a real process on a free port of 127.0.0.1, for the tests of the local runtime."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

EVENTPIPE = Path(sys.executable).parent / "eventpipe"
URL_LINE = re.compile(rb"(http://127\.0\.0\.1:\d+)/")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    output: list[bytes]  # every line it printed so far (read all along, so its pipe never fills)
    reader: threading.Thread  # reads `output`, and closes the pipe at its end

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait for the process to exit; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL the server and its worker (the whole process group), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)


def start_server(data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> Server:
    """Start `eventpipe up --port 0` and wait until it prints its URL."""
    process = subprocess.Popen(
        [str(EVENTPIPE), "up", "--port", "0", "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: kill() reaches the worker too
    )
    output: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(process, output), daemon=True)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if match := URL_LINE.search(b"".join(output)):
            return Server(match[1].decode(), process, data_dir, output, reader)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_TIMEOUT_S)
    reader.join(STOP_TIMEOUT_S)
    raise AssertionError(f"eventpipe up did not start: {b''.join(output).decode(errors='replace')}")


def _drain(process: subprocess.Popen[bytes], output: list[bytes]) -> None:
    assert process.stdout is not None
    with process.stdout:  # closed at its end: an open pipe left to the garbage collector is a ResourceWarning
        for line in process.stdout:
            output.append(line)


def close_output(server: Server, timeout: float = STOP_TIMEOUT_S) -> None:
    """Wait until everything a server that has exited printed is read (and its pipe closed)."""
    assert server.process.poll() is not None, "stop or kill the server first"
    server.reader.join(timeout)
