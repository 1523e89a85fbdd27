"""Shared fixtures: a local runtime in a temporary data directory, and generated events."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.core.enrich.timestamps import format_ms
from eventpipe.core.model import Limits
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.settings import Settings
from tests.aws.conftest import aws, dynamodb, s3  # noqa: F401  (the AWS fixtures, for tests/test_lambda_pipeline.py)
from tests.memory_guard import pytest_configure, pytest_runtest_logstart, pytest_terminal_summary  # noqa: F401

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NOW_MS = 1_795_845_600_000  # 2026-11-28T06:00:00Z


class FixedClock:
    def __init__(self, now_ms: int = NOW_MS) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Small batches, so that a test's few dozen events make several: requests of at most 50 events, and a
    # file's lines cut into batches of 50 (the local runtime cuts them at the group size).
    return replace(
        Settings.from_env({}), data_dir=tmp_path / "data", limits=Limits(max_batch_events=50), group_max_events=50
    )


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(settings, clock=clock)
    yield rt
    rt.close()


def fixed_now_ms() -> int:
    return NOW_MS


# The "now" of make_event: NOW_MS, or the real clock for tests of a server that runs on it (tests/localrun),
# so that their events fall in the last hour by their own time, without a days-long clock-skew correction.
event_now_ms = fixed_now_ms


def make_event(event_type: str = "page_view", **overrides: Any) -> dict[str, Any]:
    """A valid event of `event_type`, 30 s before now (NOW_MS, see `event_now_ms`), with `overrides` merged
    in at the top level."""
    now_ms = event_now_ms()
    properties = {
        "page_view": {"path": "/p/1", "title": "Shoes"},
        "add_to_cart": {"product_id": "p-1", "quantity": 1, "price": 59.9, "currency": "EUR"},
        "purchase": {
            "order_id": "o-1",
            "revenue": 59.9,
            "currency": "EUR",
            "items": [{"product_id": "p-1", "quantity": 1, "price": 59.9}],
        },
        "signup": {"method": "email"},
    }[event_type]
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": "1-0-0",
        "occurred_at": format_ms(now_ms - 30_000),  # 2026-11-28T05:59:30.000Z at NOW_MS
        "sent_at": format_ms(now_ms - 29_500),
        "user_id": "u-1",
        "session_id": "s-1",
        "context": {
            "ip": "203.0.113.57",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "page_url": "https://shop.example/p/1?utm_source=news&utm_medium=email&utm_campaign=bf",
            "referrer": "https://www.google.com/",
        },
        "properties": properties,
    }
    event.update(overrides)
    return event


def ndjson(*events: Any) -> bytes:
    return b"".join((e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n" for e in events)
