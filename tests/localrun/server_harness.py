"""Run `eventpipe up` as a real process on a free port of 127.0.0.1, for the tests of the local runtime."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

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
    threading.Thread(target=_drain, args=(process, output), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if match := URL_LINE.search(b"".join(output)):
            return Server(match[1].decode(), process, data_dir, output)
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"eventpipe up did not start: {b''.join(output).decode(errors='replace')}")


def _drain(process: subprocess.Popen[bytes], output: list[bytes]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


@contextmanager
def running_server(data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    server = start_server(data_dir, *args, env=env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.kill()


def close_output(server: Server, timeout: float = STOP_TIMEOUT_S) -> None:
    """Close the output pipe of a server that has exited, once `_drain` has read it to its end.

    `_drain` leaves the pipe open: closed by the garbage collector it is a ResourceWarning, an error
    in this suite.
    """
    assert server.process.poll() is not None, "stop or kill the server first"
    for thread in threading.enumerate():
        if getattr(thread, "_args", ())[:1] == (server.process,):  # the drain thread of this server
            thread.join(timeout)
    if server.process.stdout is not None:
        server.process.stdout.close()
