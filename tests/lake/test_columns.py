"""Curated events as lake rows: built a slice of events at a time, split by hour, bad ones left out."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pytest

from eventpipe.adapters.local.bucket import FolderBucket
from eventpipe.lake import columns
from eventpipe.lake.columns import LAKE_SCHEMA, LakeRows

if TYPE_CHECKING:
    from pathlib import Path


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


def _user_ids(rows: LakeRows) -> list[str]:
    return [u for table in rows.tables().values() for u in table.column("user_id").to_pylist()]


def test_a_segment_gives_the_events_on_the_lines_asked_in_their_order() -> None:
    # GIVEN a batch's segment of five events, of which lines 1, 3 and 4 are indexed
    segment = b"\n".join(_curated(n, "2026-11-28T05:00:00Z") for n in range(5))
    rows = LakeRows()
    # WHEN those lines are added, then every line of the same segment
    rows.add_segment(segment, [1, 3, 4], "b-1")
    rows.add_segment(segment, [0, 1, 2, 3, 4], "b-2")
    # THEN each event is there once per time it was asked for, with its batch
    assert _user_ids(rows) == ["u-1", "u-3", "u-4", "u-0", "u-1", "u-2", "u-3", "u-4"]
    batch_ids = next(iter(rows.tables().values())).column("batch_id").to_pylist()
    assert batch_ids == ["b-1"] * 3 + ["b-2"] * 5


def test_an_erased_line_or_a_bad_line_in_a_segment_leaves_the_others_at_their_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN segments where an erasure emptied a line, and where a line is not an event
    events = [_curated(n, "2026-11-28T05:00:00Z") for n in range(4)]
    erased = b"\n".join([events[0], b"", events[2], events[3]])
    damaged = b"\n".join([events[0], b"{not json", events[2], events[3]])
    rows = LakeRows()
    # WHEN the lines after them are added (and the bad one too)
    rows.add_segment(erased, [2, 3], "b-1")
    with caplog.at_level(logging.ERROR, logger="eventpipe.lake.columns"):
        rows.add_segment(damaged, [1, 2, 3], "b-2")
    # THEN the events are the ones on those lines (a decode of the lines that skipped the empty one
    # would have shifted them), and the bad line is said and skipped
    assert _user_ids(rows) == ["u-2", "u-3", "u-2", "u-3"]
    assert rows.skipped == 1
    assert "b-2" in caplog.text


def test_empty_lines_at_a_segments_ends_or_on_an_indexed_line_shift_no_event() -> None:
    # GIVEN segments with an erased first and last line, and one whose emptied line is still indexed
    # (an erasure cut short between its two steps): one decode of the lines skips the empty ones
    events = [_curated(n, "2026-11-28T05:00:00Z") for n in range(4)]
    at_ends = b"\n".join([b"", events[1], events[2], b""])
    emptied = b"\n".join([events[0], b"", events[2], events[3]])
    rows = LakeRows()
    # WHEN their indexed lines are added
    rows.add_segment(at_ends, [1, 2], "b-1")
    rows.add_segment(emptied, [0, 1, 2], "b-2")
    # THEN each event is the one on its line, and the emptied line gives none
    assert _user_ids(rows) == ["u-1", "u-2", "u-0", "u-2"]


def test_a_segment_mapped_from_its_file_gives_the_rows_of_its_bytes(tmp_path: Path) -> None:
    # GIVEN a segment in a folder bucket, as the lake writer maps it, and the same bytes
    segment = b"\n".join(_curated(n, f"2026-11-28T0{5 + n % 2}:00:00Z") for n in range(6))
    bucket = FolderBucket(tmp_path / "curated", prefixes=())
    bucket.put("b-1.ndjson", segment)
    mapped, copied = LakeRows(), LakeRows()
    # WHEN each is added
    mapped.add_segment(bucket.mapped("b-1.ndjson"), [0, 2, 3, 5], "b-1")
    copied.add_segment(segment, [0, 2, 3, 5], "b-1")
    # THEN the tables are the same, row for row
    tables = mapped.tables()
    assert list(tables) == ["dt=2026-11-28/hour=05", "dt=2026-11-28/hour=06"]
    assert all(tables[p].equals(t) for p, t in copied.tables().items())
    assert _user_ids(mapped) == ["u-0", "u-2", "u-3", "u-5"]


def test_segments_given_as_maps_are_let_go_a_bounded_number_at_a_time(tmp_path: Path) -> None:
    # GIVEN 3 x MAPS_WAITING segments of one event each, every one of another hour, so that none fills
    # a slice: each would wait, and hold its segment's map (and its file descriptor) while it waits
    bucket = FolderBucket(tmp_path / "curated", prefixes=())
    count = 3 * columns.MAPS_WAITING
    for n in range(count):
        bucket.put(f"b-{n}.ndjson", _curated(n, f"2026-11-{1 + n // 24:02d}T{n % 24:02d}:00:00Z"))
    rows = LakeRows()
    before = len(os.listdir("/dev/fd"))
    # WHEN they are added as maps, their files' descriptors counted after each
    held = []
    for n in range(count):
        rows.add_segment(bucket.mapped(f"b-{n}.ndjson"), [0], f"b-{n}")
        held.append(len(os.listdir("/dev/fd")) - before)
    # THEN at most MAPS_WAITING maps were alive at once, and every event is in its hour
    assert max(held) <= columns.MAPS_WAITING
    tables = rows.tables()
    assert len(tables) == count
    assert sorted(_user_ids(rows)) == sorted(f"u-{n}" for n in range(count))


def test_json_text_that_is_not_utf8_never_makes_a_string_column() -> None:
    # GIVEN an event whose properties hold bytes that are not UTF-8 (not one the chain writes)
    payload = _curated(1, "2026-11-28T05:00:00Z").replace(b'"n":1', b'"n":"\xff"')
    rows = LakeRows()
    rows.add(payload, "b-1")
    # WHEN it is turned into Arrow, THEN Arrow refuses it rather than writing a string column that is not text
    with pytest.raises(pa.ArrowInvalid):
        rows.tables()


def test_turning_events_into_rows_does_not_load_pyarrow_compute(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter (its import costs 40 ms of a 100,000-event ingest, kernels.py)
    script = (
        "import sys\n"
        "from eventpipe.lake.columns import LakeRows\n"
        "from eventpipe.lake.files import write_parquet\n"
        f"rows = LakeRows()\nrows.add_segment({_two_hours()!r}, [0, 1], 'b-1')\n"
        "for number, table in enumerate(rows.tables().values()):\n"
        f"    write_parquet(__import__('pathlib').Path({str(tmp_path)!r}) / f'{{number}}.parquet', table)\n"
        "print(len(rows), 'pyarrow.compute' in sys.modules)\n"
    )
    # WHEN it turns events of two hours into rows and writes them
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    # THEN pyarrow.compute was never imported
    assert done.stdout.split() == ["2", "False"]


def _two_hours() -> bytes:
    return b"\n".join([_curated(1, "2026-11-28T05:00:00Z"), _curated(2, "2026-11-28T06:00:00Z")])


def test_lines_past_the_end_of_a_segment_are_left_out() -> None:
    # GIVEN a segment of three events, asked for lines 1 and 5 (not a line the chain wrote)
    segment = b"\n".join(_curated(n, "2026-11-28T05:00:00Z") for n in range(3))
    rows = LakeRows()
    # WHEN they are added
    rows.add_segment(segment, [1, 5], "b-1")
    # THEN the event on line 1 is there, and nothing else
    assert _user_ids(rows) == ["u-1"]


def test_enrichments_that_are_not_objects_are_left_out_and_the_others_keep_their_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a slice where two enrichments are numbers, one after the other (read together, `1` and
    # `2` would make one value, `12`), between events whose enrichments are objects
    payloads = [
        _curated(0, "2026-11-28T05:00:00Z"),
        _curated(1, "2026-11-28T05:00:00Z", enrichment=1),
        _curated(2, "2026-11-28T05:00:00Z", enrichment=2),
        _curated(3, "2026-11-28T05:00:00Z"),
    ]
    rows = LakeRows()
    with caplog.at_level(logging.ERROR, logger="eventpipe.lake.columns"):
        rows.add_segment(b"\n".join(payloads), [0, 1, 2, 3], "b-1")
        # WHEN the tables are asked for
        table = rows.tables()["dt=2026-11-28/hour=05"]
    # THEN the two are said and left out, and the others' enrichment texts are their own
    assert table.column("user_id").to_pylist() == ["u-0", "u-3"]
    assert [orjson.loads(t) for t in table.column("enrichment").to_pylist()] == [
        orjson.loads(p)["enrichment"] for p in (payloads[0], payloads[3])
    ]
    assert table.column("bot").to_pylist() == [False, True]
    assert rows.skipped == 2
    assert caplog.text.count("b-1") == 2


def test_events_of_two_hours_in_one_segment_go_to_their_hours_whatever_the_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN segments whose events alternate between two hours, some times written with an offset
    # (so the hour they are written in is not their hour in UTC), turned into Arrow 4 at a time
    monkeypatch.setattr(columns, "SLICE_ROWS", 4)
    times = ["2026-11-28T05:10:00Z", "2026-11-28T06:20:00Z", "2026-11-28T08:30:00+02:00", "2026-11-28T05:59:00-01:00"]
    rows = LakeRows()
    for batch in range(3):
        segment = b"\n".join(_curated(batch * 4 + n, time) for n, time in enumerate(times))
        rows.add_segment(segment, [0, 1, 2, 3], f"b-{batch}")
    # WHEN the tables are asked for
    tables = rows.tables()
    # THEN each event is in the partition of its UTC hour, once, with its batch; those written in
    # UTC in the order added
    rows_of = {
        p: list(zip(t.column("user_id").to_pylist(), t.column("batch_id").to_pylist(), strict=True))
        for p, t in tables.items()
    }
    assert rows_of["dt=2026-11-28/hour=05"] == [("u-0", "b-0"), ("u-4", "b-1"), ("u-8", "b-2")]
    late = sorted(rows_of["dt=2026-11-28/hour=06"], key=lambda row: int(row[0][2:]))
    assert late == [(f"u-{b * 4 + n}", f"b-{b}") for b in range(3) for n in (1, 2, 3)]
    assert [u for u, _ in rows_of["dt=2026-11-28/hour=06"] if u in ("u-1", "u-5", "u-9")] == ["u-1", "u-5", "u-9"]


def test_events_of_many_hours_wait_for_arrow_in_bounded_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN events spread over six hours, each hour's too few for a slice of its own, and at most
    # five events waiting for Arrow
    monkeypatch.setattr(columns, "SLICE_ROWS", 100)
    monkeypatch.setattr(columns, "WAITING_ROWS", 5)
    built: list[int] = []
    add_slice = LakeRows._add_slice
    monkeypatch.setattr(LakeRows, "_add_slice", lambda self, e, b: (built.append(len(e)), add_slice(self, e, b)))
    rows = LakeRows()
    for n in range(12):
        rows.add(_curated(n, f"2026-11-28T0{n % 6}:00:00Z"), "b-1")
        assert n + 1 - sum(built) < 5  # added, less those in Arrow: waiting
    # WHEN the tables are asked for
    tables = rows.tables()
    # THEN every event is in its hour, and no more than five ever waited
    assert {p: t.column("user_id").to_pylist() for p, t in tables.items()} == {
        f"dt=2026-11-28/hour=0{h}": [f"u-{h}", f"u-{h + 6}"] for h in range(6)
    }
    assert sum(built) == 12
    assert len(rows) == 12


def test_once_a_slice_waits_every_hour_with_a_quarter_of_one_goes_to_arrow(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN slices of 8 events, and segments of 4 events: two of hour 05, one of hour 06 and one of
    # hour 07 (a quarter of a slice is 2)
    monkeypatch.setattr(columns, "SLICE_ROWS", 8)
    built: list[list[str]] = []
    add_slice = LakeRows._add_slice

    def record(self: LakeRows, events: list[Any], batch_ids: list[str]) -> None:
        built.append([e.user_id for e in events])
        add_slice(self, events, batch_ids)

    monkeypatch.setattr(LakeRows, "_add_slice", record)
    times = ["2026-11-28T05:10:00Z", "2026-11-28T05:20:00Z", "2026-11-28T06:30:00Z", "2026-11-28T07:40:00Z"]
    rows = LakeRows()
    for batch in range(2):
        segment = b"\n".join(_curated(batch * 4 + n, time) for n, time in enumerate(times))
        rows.add_segment(segment, [0, 1, 2, 3], f"b-{batch}")
    # WHEN 8 events wait (hour 05: 4 of them, 06: 2, 07: 2), then 4 more, then the tables are asked for
    assert built == [["u-0", "u-1", "u-4", "u-5"], ["u-2", "u-6"], ["u-3", "u-7"]]
    segment = b"\n".join(_curated(8 + n, time) for n, time in enumerate(["2026-11-28T05:00:00Z"] * 3 + [times[3]]))
    rows.add_segment(segment, [0, 1, 2, 3], "b-2")
    assert len(built) == 3  # 4 waiting: fewer than a slice
    tables = rows.tables()
    # THEN every hour went to Arrow as soon as a slice's worth waited, not only the hour that had
    # most, and each event is in its hour once
    assert {p: t.column("user_id").to_pylist() for p, t in tables.items()} == {
        "dt=2026-11-28/hour=05": ["u-0", "u-1", "u-4", "u-5", "u-8", "u-9", "u-10"],
        "dt=2026-11-28/hour=06": ["u-2", "u-6"],
        "dt=2026-11-28/hour=07": ["u-3", "u-7", "u-11"],
    }


def test_hours_with_less_than_a_quarter_of_a_slice_keep_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN slices of 8 events, and 8 events of which hour 05 has 6 and hours 06 and 07 one each
    monkeypatch.setattr(columns, "SLICE_ROWS", 8)
    built: list[int] = []
    add_slice = LakeRows._add_slice
    monkeypatch.setattr(LakeRows, "_add_slice", lambda self, e, b: (built.append(len(e)), add_slice(self, e, b)))
    rows = LakeRows()
    times = ["2026-11-28T05:00:00Z"] * 6 + ["2026-11-28T06:00:00Z", "2026-11-28T07:00:00Z"]
    rows.add_segment(b"\n".join(_curated(n, time) for n, time in enumerate(times)), list(range(8)), "b-1")
    # WHEN they are added THEN hour 05 went to Arrow, the two others wait
    assert built == [6]
    assert len(rows) == 8
    assert {p: t.num_rows for p, t in rows.tables().items()} == {
        "dt=2026-11-28/hour=05": 6,
        "dt=2026-11-28/hour=06": 1,
        "dt=2026-11-28/hour=07": 1,
    }
    assert built == [6, 1, 1]


def test_a_large_segment_goes_to_arrow_at_once_each_hour_after_its_waiting_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN slices of 16 events, "large" meaning 8 (so a quarter is 2), and a request batch of one
    # event of hour 05 that waits
    monkeypatch.setattr(columns, "SLICE_ROWS", 16)
    monkeypatch.setattr(columns, "HOT_ROWS", 8)
    built: list[list[str]] = []
    add_slice = LakeRows._add_slice
    monkeypatch.setattr(
        LakeRows, "_add_slice", lambda self, e, b: (built.append([x.user_id for x in e]), add_slice(self, e, b))
    )
    rows = LakeRows()
    rows.add_segment(_curated(0, "2026-11-28T05:00:00Z"), [0], "b-0")
    assert built == []
    # WHEN a segment of 8 events is added: 4 of hour 05, 3 of hour 06 and 1 late one of hour 04
    times = [f"2026-11-28T0{h}:10:00Z" for h in (5, 6, 5, 6, 5, 6, 5, 4)]
    rows.add_segment(b"\n".join(_curated(1 + n, t) for n, t in enumerate(times)), list(range(8)), "b-1")
    # THEN hours 05 (the waiting event first) and 06 went to Arrow at once; the late one waits
    assert built == [["u-0", "u-1", "u-3", "u-5", "u-7"], ["u-2", "u-4", "u-6"]]
    # AND a smaller segment, of 4 events, waits
    rows.add_segment(b"\n".join(_curated(9 + n, "2026-11-28T05:20:00Z") for n in range(4)), [0, 1, 2, 3], "b-2")
    assert len(built) == 2
    tables = rows.tables()
    assert tables["dt=2026-11-28/hour=05"].column("batch_id").to_pylist() == ["b-0"] + ["b-1"] * 4 + ["b-2"] * 4
    assert tables["dt=2026-11-28/hour=04"].column("user_id").to_pylist() == ["u-8"]
