"""`eventpipe up` runs on the real clock: the events these tests make are stamped at the real now."""

from __future__ import annotations

import time

import pytest

import tests.conftest


@pytest.fixture(autouse=True)
def events_at_the_real_now(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server receives them now: stamped days ago, they would fall outside the last hour its insights show.
    monkeypatch.setattr(tests.conftest, "event_now_ms", lambda: time.time_ns() // 1_000_000)
