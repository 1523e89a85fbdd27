"""Curated events as lake rows: built a slice of events at a time, split by hour, bad ones left out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.lake import columns
from eventpipe.lake.columns import LAKE_SCHEMA, LakeRows

if TYPE_CHECKING:
    import pytest


def _curated(number: int, occurred_at: str, **fields: Any) -> bytes:
    """A curated event's JSON text as the curated store keeps it (enrichment included)."""
    event = {
        "event_id": f"00000000-0000-4000-8000-{number:012d}",
        "event_type": "purchase" if number % 2 else "page_view",
        "schema_version": "1-0-0",
        "occurred_at": occurred_at,
        "received_at": "2026-11-28T06:00:01.000Z",
        "user_id": f"u-{number}",
        "properties": {"n": number, "text": "é\u2028"},
        "enrichment": {
            "user_agent": {"browser": "Firefox", "os": "Linux", "device_type": "desktop", "is_bot": number == 3},
            "revenue": {"amount": 1.5 * number, "currency": "EUR"} if number % 2 else None,
            "geo": {"country": "DE"},
        },
        **fields,
    }
    return orjson.dumps(event)


def test_rows_built_a_slice_at_a_time_keep_their_order_hours_and_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 10 events over two hours, interleaved, turned into Arrow 3 at a time
    monkeypatch.setattr(columns, "SLICE_ROWS", 3)
    rows = LakeRows()
    payloads = [_curated(n, "2026-11-28T05:59:59.999Z" if n % 3 else "2026-11-28T06:00:00+00:00") for n in range(10)]
    for payload in payloads:
        rows.add(payload, "b-1")
    # WHEN the tables are asked for
    tables = rows.tables()
    # THEN each hour holds its events, in the order added, with their columns and JSON texts
    assert list(tables) == ["dt=2026-11-28/hour=05", "dt=2026-11-28/hour=06"]
    assert len(rows) == 10
    early, late = (tables[p].to_pylist() for p in tables)
    assert [r["user_id"] for r in early] == [f"u-{n}" for n in range(10) if n % 3]
    assert [r["user_id"] for r in late] == [f"u-{n}" for n in range(10) if not n % 3]
    assert all(t.schema == LAKE_SCHEMA for t in tables.values())
    three = late[1]
    assert three["occurred_at"].isoformat() == "2026-11-28T06:00:00+00:00"
    assert (three["event_type"], three["browser"], three["bot"], three["country"], three["revenue"]) == (
        "purchase",
        "Firefox",
        True,
        "DE",
        4.5,
    )
    assert orjson.loads(three["properties"]) == {"n": 3, "text": "é\u2028"}
    assert orjson.loads(three["enrichment"])["geo"] == {"country": "DE"}
    assert early[1]["revenue"] is None  # u-2: no revenue part, null (not 0)
    assert early[-1]["occurred_at"].isoformat() == "2026-11-28T05:59:59.999000+00:00"


def test_what_is_not_a_curated_event_is_left_out_and_said(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a slice holding text that is not an event, and an event time past Arrow's nanoseconds
    rows = LakeRows()
    rows.add(_curated(1, "2026-11-28T05:00:00Z"), "b-1")
    rows.add(b"{not json", "b-2")
    rows.add(_curated(2, "2300-01-01T00:30:00Z"), "b-3")  # after 2262: Python reads it instead
    rows.add(_curated(3, "not a time"), "b-4")
    # WHEN the tables are asked for
    with caplog.at_level(logging.ERROR, logger="eventpipe.lake.columns"):
        tables = rows.tables()
    # THEN the two readable events are there, and the others are logged, not raised
    assert {p: t.column("user_id").to_pylist() for p, t in tables.items()} == {
        "dt=2026-11-28/hour=05": ["u-1"],
        "dt=2300-01-01/hour=00": ["u-2"],
    }
    assert len(rows) == 2
    assert rows.skipped == 2
    assert "b-2" in caplog.text
    assert "not a time" in caplog.text


def test_no_events_make_no_tables() -> None:
    assert LakeRows().tables() == {}
