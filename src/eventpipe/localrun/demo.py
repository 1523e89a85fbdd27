"""`eventpipe up --demo`: a steady stream of generated events sent over HTTP, so the dashboard
shows life. About 5% of the events are invalid and 3% are duplicates, as real traffic has."""

from __future__ import annotations

import http.client
import logging
import threading
import time

from eventpipe.core.generate import EventGenerator

log = logging.getLogger(__name__)
EVENTS_PER_SECOND = 200
TICK_S = 0.5


class DemoStream:
    def __init__(self, host: str, port: int, *, token: str | None = None, rate: int = EVENTS_PER_SECOND) -> None:
        self._host, self._port = host, port
        self._headers = {"content-type": "application/x-ndjson"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
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
                else:
                    log.warning("demo batch answered %d", response.status)
            except OSError as exc:  # the server is stopping, or busy: try again at the next tick
                log.debug("demo batch not sent: %s", exc)
                connection.close()
        connection.close()
