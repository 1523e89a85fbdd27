"""`eventpipe up --demo`: a steady stream of generated events sent over HTTP, so the dashboard
shows life. About 5% of the events are invalid and 3% are duplicates, as real traffic has.

Once apps exist, `POST /events` needs a write key: the stream then sends as an app of its own,
"demo", whose key it keeps in `<data dir>/demo-write-key` (made on first need, never before: the
demo must not be what switches keys on).
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from eventpipe.core.apps import new_app
from eventpipe.generate import EventGenerator

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from eventpipe.core.apps import AppDirectory
    from eventpipe.core.ports import AppStore

log = logging.getLogger(__name__)
EVENTS_PER_SECOND = 200
TICK_S = 0.5


class DemoStream:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str | None = None,
        rate: int = EVENTS_PER_SECOND,
        write_key: Callable[[], str | None] | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._headers = {"content-type": "application/x-ndjson"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._write_key = write_key
        self.rate = rate
        self._per_tick = max(1, round(rate * TICK_S))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eventpipe-demo", daemon=True)
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _run(self) -> None:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=10)
        while not self._stopped.wait(TICK_S):
            generator = EventGenerator(seed=time.time_ns(), now_ms=int(time.time() * 1000), span_minutes=1)
            lines = generator.lines(self._per_tick, invalid_ratio=0.05, duplicate_ratio=0.03)
            try:
                connection.request("POST", "/events", body=b"\n".join(lines), headers=self._headers)
                response = connection.getresponse()
                response.read()
                if response.status == 202:
                    self.sent += self._per_tick
                elif response.status == 401 and self._write_key is not None:
                    self._use_key(self._write_key())  # apps were created while the demo runs
                else:
                    log.warning("demo batch answered %d", response.status)
            except OSError as exc:  # the server is stopping, or busy: try again at the next tick
                log.debug("demo batch not sent: %s", exc)
                connection.close()
        connection.close()

    def _use_key(self, key: str | None) -> None:
        if key:
            self._headers["x-api-key"] = key
        else:
            self._headers.pop("x-api-key", None)


def demo_write_key(data_dir: Path, store: AppStore, directory: AppDirectory, now_ms: Callable[[], int]) -> str | None:
    """The demo app's write key when keys are needed (made, and kept in the data directory, on first need)."""
    if not directory.keys_required():
        return None
    path = data_dir / "demo-write-key"
    if path.exists():
        key = path.read_text().strip()
        if directory.authenticate(key) is not None:
            return key
    app, key = new_app("demo (eventpipe up --demo)", now_ms=now_ms())
    store.create(app)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    log.info("demo stream sends as app %s (its key is in %s)", app.app_id, path)
    return key
