"""RawBatch (the raw object's format) and Ingestor (cut, store durably, start), with in-memory ports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.memory import MemoryBatchStore, MemoryBucket
from eventpipe.core.errors import StorageError
from eventpipe.core.ingest import Ingestor, IngestSummary
from eventpipe.core.model import BatchRecord, BatchStatus, Limits
from eventpipe.core.rawbatch import FORMAT_VERSION, RawBatch, raw_key
from eventpipe.core.readers import Line
from tests.conftest import NOW_MS, FixedClock, make_event
from tests.unit.test_http_api import post

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.localrun.runtime import LocalRuntime


# --- in-memory ports (core/ports.py): eventpipe.adapters.memory, and a starter ---------------------


class RecordingStarter:
    """Records each start; with `on_start`, runs it synchronously (as the local CLI does)."""

    def __init__(self, on_start: Callable[[str, str], None] | None = None) -> None:
        self.started: list[tuple[str, str]] = []
        self._on_start = on_start

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        self.started.append((batch_id, raw_key))
        if self._on_start is not None:
            self._on_start(batch_id, raw_key)


class Setup:
    def __init__(self, max_batch_events: int = 3, on_start: Callable[[str, str], None] | None = None) -> None:
        self.bucket = MemoryBucket()
        self.batches = MemoryBatchStore()
        self.starter = RecordingStarter(on_start)
        self.clock = FixedClock()
        self.ingestor = Ingestor(
            bucket=self.bucket,
            batches=self.batches,
            starter=self.starter,
            clock=self.clock,
            limits=Limits(max_event_bytes=100, max_batch_events=max_batch_events),
        )

    def ingest(self, lines: list[Line], prefix: str = "f") -> list[BatchRecord]:
        return list(self.ingestor.ingest(lines, source="file:test", batch_id_for=lambda n: f"{prefix}-{n}"))

    def raw(self, batch_id: str) -> RawBatch:
        return RawBatch.decode(self.bucket.get(raw_key(batch_id)))


def lines(count: int, start: int = 1) -> list[Line]:
    return [
        Line(n, orjson.dumps({"event_id": f"e{n}", "event_type": "page_view"})) for n in range(start, start + count)
    ]


# --- RawBatch -------------------------------------------------------------------------------------


def refused_entry(index: int) -> dict[str, Any]:
    return {
        "index": index,
        "raw": '{"big": "xxé',
        "reasons": [{"code": "too_large", "path": "$", "message": "event larger than 100 bytes"}],
    }


@pytest.mark.parametrize(
    "batch",
    [
        RawBatch("b1", "http", NOW_MS, [b'{"a":1}', b'{"b":"\xc3\xa9"}', b"not json"], [0, 1, 3], [refused_entry(2)]),
        RawBatch("b2", "file:x.ndjson", NOW_MS, [], [], []),
        RawBatch("b3", "http", NOW_MS, [], [], [refused_entry(0), refused_entry(1)]),
        RawBatch("b4", "http", NOW_MS, [b'{"a":1}', b""], [1, 2], []),
    ],
    ids=["events-and-refused", "empty", "refused-only", "empty-last-line"],
)
def test_encode_then_decode_gives_the_same_batch(batch: RawBatch) -> None:
    # WHEN a batch is encoded and decoded
    decoded = RawBatch.decode(batch.encode())
    # THEN every field survives, and so does the count of received events
    assert decoded == batch
    assert decoded.received == len(batch.events) + len(batch.refused)


def test_the_encoding_is_a_header_line_then_one_line_per_event() -> None:
    batch = RawBatch("b1", "http", NOW_MS, [b'{"a":1}', b'{"b":2}'], [0, 1], [refused_entry(2)])
    header, *body = batch.encode().split(b"\n")
    assert orjson.loads(header) == {
        "v": FORMAT_VERSION,
        "batch_id": "b1",
        "source": "http",
        "received_at_ms": NOW_MS,
        "positions": [0, 1],
        "refused": [refused_entry(2)],
        "origins": [],
    }
    assert body == [b'{"a":1}', b'{"b":2}', b""]


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_decode_refuses_an_unknown_format_version(version: object) -> None:
    header = {"v": version, "batch_id": "b", "source": "s", "received_at_ms": 0, "positions": [], "refused": []}
    with pytest.raises(ValueError, match="raw batch format"):
        RawBatch.decode(orjson.dumps(header) + b"\n")


def test_decode_refuses_a_header_without_a_version() -> None:
    header = {"batch_id": "b", "source": "s", "received_at_ms": 0, "positions": [], "refused": []}
    with pytest.raises(ValueError, match="raw batch format None"):
        RawBatch.decode(orjson.dumps(header) + b"\n")


# --- Ingestor -------------------------------------------------------------------------------------


def test_lines_are_cut_into_batches_of_max_batch_events() -> None:
    # GIVEN 7 lines and at most 3 events per batch
    setup = Setup(max_batch_events=3)
    # WHEN they are ingested
    records = setup.ingest(lines(7))
    # THEN there are 3 batches of 3, 3 and 1, each written durably and started once with its raw key
    assert [(r.batch_id, r.received, r.status) for r in records] == [
        ("f-0", 3, BatchStatus.PENDING),
        ("f-1", 3, BatchStatus.PENDING),
        ("f-2", 1, BatchStatus.PENDING),
    ]
    assert setup.bucket.writes == [(raw_key(f"f-{n}"), True) for n in range(3)]
    assert setup.starter.started == [(f"f-{n}", f"raw/f-{n}.ndjson") for n in range(3)]
    # AND each raw object holds its lines, their positions and the batch's metadata
    raw = setup.raw("f-1")
    assert raw.events == [line.data for line in lines(3, start=4)]
    assert raw.positions == [4, 5, 6]
    assert (raw.batch_id, raw.source, raw.received_at_ms, raw.refused) == ("f-1", "file:test", NOW_MS, [])
    assert setup.batches.get("f-2") == BatchRecord("f-2", "raw/f-2.ndjson", "file:test", NOW_MS, 1)


@pytest.mark.parametrize(("count", "expected"), [(0, []), (1, [1]), (6, [3, 3]), (9, [3, 3, 3])])
def test_no_empty_batch_at_the_end(count: int, expected: list[int]) -> None:
    setup = Setup(max_batch_events=3)
    assert [r.received for r in setup.ingest(lines(count))] == expected
    assert len(setup.bucket.objects) == len(expected)


def test_batches_are_stored_and_started_one_at_a_time() -> None:
    # GIVEN a large input, read lazily
    setup = Setup(max_batch_events=2)
    records = setup.ingestor.ingest(iter(lines(10)), source="s", batch_id_for=lambda n: f"f-{n}")
    # WHEN only the first record is taken
    first = next(records)
    # THEN only the first batch was written and started
    assert first.batch_id == "f-0"
    assert list(setup.bucket.objects) == ["raw/f-0.ndjson"]
    assert setup.starter.started == [("f-0", "raw/f-0.ndjson")]


def test_a_done_batch_id_is_skipped_without_a_raw_write_or_a_start() -> None:
    # GIVEN batch f-1 is done already (an earlier ingest of the same file)
    setup = Setup(max_batch_events=2)
    setup.batches.create(BatchRecord("f-1", "raw/f-1.ndjson", "file:test", NOW_MS - 5, 2))
    setup.batches.mark_done("f-1", 1, 1, {})
    # WHEN the file is ingested again
    records = setup.ingest(lines(6))
    # THEN f-1 is answered from its record, and neither written nor started again
    assert [(r.batch_id, r.status) for r in records] == [
        ("f-0", BatchStatus.PENDING),
        ("f-1", BatchStatus.DONE),
        ("f-2", BatchStatus.PENDING),
    ]
    assert (records[1].curated, records[1].duplicates, records[1].received_at_ms) == (1, 1, NOW_MS - 5)
    assert [key for key, _ in setup.bucket.writes] == ["raw/f-0.ndjson", "raw/f-2.ndjson"]
    assert [batch_id for batch_id, _ in setup.starter.started] == ["f-0", "f-2"]


@pytest.mark.parametrize("failed", [False, True])
def test_an_unfinished_batch_is_restarted_without_rewriting_its_raw_object(failed: bool) -> None:
    # GIVEN batch f-0 stored and recorded by a run that crashed (pending) or failed, before it was done
    setup = Setup(max_batch_events=2)
    original = RawBatch("f-0", "file:test", NOW_MS - 1000, [b'{"first":"run"}'], [1], []).encode()
    setup.bucket.objects["raw/f-0.ndjson"] = original
    setup.batches.create(BatchRecord("f-0", "raw/f-0.ndjson", "file:test", NOW_MS - 1000, 1))
    if failed:
        setup.batches.mark_failed("f-0", "StorageError: disk full")
    # WHEN the same input is ingested again
    records = setup.ingest(lines(2))
    # THEN the workflow is started again on the stored raw object, which is left as it was
    assert setup.starter.started == [("f-0", "raw/f-0.ndjson")]
    assert setup.bucket.writes == []
    assert setup.bucket.objects["raw/f-0.ndjson"] == original
    assert [(r.batch_id, r.received_at_ms) for r in records] == [("f-0", NOW_MS - 1000)]


def test_too_large_lines_go_to_the_header_as_refused() -> None:
    # GIVEN a chunk whose second line was over the size limit (the reader kept only its start)
    setup = Setup(max_batch_events=5)
    chunk = [
        Line(1, b'{"a":1}'),
        Line(2, None, prefix=b'{"big":"xxxxxxxx'),
        Line(3, b'{"c":3}'),
        Line(7, None, prefix=b'{"bad utf8":"\xff'),
    ]
    # WHEN it is ingested
    records = setup.ingest(chunk)
    # THEN the refused lines are in the header with reason too_large, and only the others are events
    raw = setup.raw("f-0")
    assert raw.events == [b'{"a":1}', b'{"c":3}']
    assert raw.positions == [1, 3]
    assert [(r["index"], r["raw"]) for r in raw.refused] == [(2, '{"big":"xxxxxxxx'), (7, '{"bad utf8":"\\xff')]
    for entry in raw.refused:
        assert [(x["code"], x["path"]) for x in entry["reasons"]] == [("too_large", "$")]
        assert "100 bytes" in entry["reasons"][0]["message"]
    # AND they are counted as received
    assert records[0].received == 4
    assert raw.received == 4


def test_a_line_refused_for_its_problem_says_so_not_its_size() -> None:
    # GIVEN a chunk with an event the reader refused as nested too deeply, and one over the size limit
    setup = Setup(max_batch_events=5)
    chunk = [
        Line(0, b'{"a":1}'),
        Line(1, None, problem="event nested deeper than 254 levels"),
        Line(2, None, prefix=b'{"big":"xxxxxxxx'),
    ]
    # WHEN it is ingested
    setup.ingest(chunk)
    # THEN both are refused as too_large, each with its own message; the deep one keeps no text
    raw = setup.raw("f-0")
    assert [(r["index"], r["raw"], r["reasons"]) for r in raw.refused] == [
        (1, "", [{"code": "too_large", "path": "$", "message": "event nested deeper than 254 levels"}]),
        (
            2,
            '{"big":"xxxxxxxx',
            [{"code": "too_large", "path": "$", "message": "event larger than 100 bytes; only its start is kept"}],
        ),
    ]
    assert raw.events == [b'{"a":1}']


def test_a_request_with_one_event_nested_too_deeply_is_accepted_and_that_event_refused(
    runtime: LocalRuntime,
) -> None:
    # GIVEN a JSON array of two valid events and one nested 300 deep (orjson writes 254 levels at most)
    deep = orjson.dumps(make_event())[:-1] + b', "deep": ' + b"[" * 300 + b"]" * 300 + b"}"
    body = b"[" + orjson.dumps(make_event()) + b"," + deep + b"," + orjson.dumps(make_event()) + b"]"
    # WHEN it is posted (handlers/http_api.post_events -> core/requests.request_lines -> readers)
    status, document = post(runtime, body, "application/json")
    # THEN 202: the deep one alone is refused at ingest, as too_large with a message that says why
    assert (status, document["received"], document["rejected"]) == (202, 3, 1)
    ((index, reason),) = [(e["index"], e["reasons"][0]) for e in document["errors"]]
    assert (index, reason["code"]) == (1, "too_large")
    assert "nested deeper than 254 levels" in reason["message"]
    # AND the other two are curated, the deep one quarantined once, at stage ingest
    record = runtime.batches.get(document["batch_id"])
    assert record is not None
    assert (record.curated, record.rejected, record.rejected_by_code) == (2, 1, {"too_large": 1})
    (rejection,) = runtime.quarantine.for_batch(document["batch_id"])
    assert (rejection.index, rejection.stage, rejection.raw) == (1, "ingest", "")


def test_with_a_synchronous_starter_the_yielded_records_are_final() -> None:
    # GIVEN a starter that runs the workflow to the end before returning (the local CLI)
    setup = Setup(max_batch_events=2)

    def finish(batch_id: str, key: str) -> None:
        received = RawBatch.decode(setup.bucket.get(key)).received
        setup.batches.mark_done(batch_id, received - 1, 1, {})

    setup.starter = RecordingStarter(finish)
    setup.ingestor = Ingestor(
        bucket=setup.bucket,
        batches=setup.batches,
        starter=setup.starter,
        clock=setup.clock,
        limits=Limits(max_batch_events=2),
    )
    # WHEN 3 lines are ingested and summed up
    summary = IngestSummary()
    for record in setup.ingest(lines(3)):
        summary.add(record)
    # THEN the summary holds the final counts
    assert summary.as_dict() == {"received": 3, "curated": 1, "duplicates": 2, "rejected": {}}
    assert (summary.batches, summary.unfinished) == (2, [])


def test_submit_stores_an_already_cut_batch_and_starts_it() -> None:
    setup = Setup()
    batch = RawBatch("http-1", "http", NOW_MS, [b'{"a":1}'], [0], [refused_entry(1)])
    record = setup.ingestor.submit(batch)
    assert record == BatchRecord("http-1", "raw/http-1.ndjson", "http", NOW_MS, 2)
    assert setup.raw("http-1") == batch
    assert setup.starter.started == [("http-1", "raw/http-1.ndjson")]


def test_a_failed_raw_write_starts_nothing_and_records_nothing() -> None:
    # GIVEN a bucket that cannot be written
    setup = Setup()

    def failing_put(key: str, data: bytes, *, durable: bool = True) -> None:
        raise StorageError("disk full")

    setup.bucket.put = failing_put  # type: ignore[method-assign]
    # WHEN ingesting
    with pytest.raises(StorageError, match="disk full"):
        setup.ingest(lines(2))
    # THEN no batch is recorded or started: the acknowledgement never happened
    assert setup.batches.records == {}
    assert setup.starter.started == []
