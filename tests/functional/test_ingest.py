"""End to end through the local runtime: ingest files, then read curated, quarantine and insights."""

from __future__ import annotations

import gzip
from collections import Counter
from typing import TYPE_CHECKING

import orjson
import pytest

from eventpipe.core.errors import StorageError
from eventpipe.core.insights import build_insights
from eventpipe.core.readers import iter_lines
from eventpipe.core.segments import ALL_PEOPLE, InsightsView
from eventpipe.core.timeutil import minute_of
from eventpipe.generate import EventGenerator
from eventpipe.handlers.wiring import build_workflow
from tests.conftest import NOW_MS, FixedClock, make_event, ndjson

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.core.ingest import IngestSummary
    from eventpipe.localrun.runtime import LocalRuntime
    from eventpipe.settings import Settings


def ingest_bytes(runtime: LocalRuntime, data: bytes, batch_prefix: str = "t") -> IngestSummary:
    from io import BytesIO

    from eventpipe.core.ingest import IngestSummary

    limits = runtime.settings.limits
    lines = iter_lines(
        BytesIO(data),
        max_event_bytes=limits.max_event_bytes,
        max_total_bytes=limits.max_file_bytes,
        max_document_bytes=limits.max_body_bytes,
    )
    summary = IngestSummary()
    for record in runtime.ingestor.ingest(lines, source="test", batch_id_for=lambda n: f"{batch_prefix}-{n}"):
        summary.add(record)
    return summary


def insights(runtime: LocalRuntime, view: InsightsView = ALL_PEOPLE) -> dict[str, object]:
    rows = runtime.insights.read(minute_of(NOW_MS) - 3600, minute_of(NOW_MS) + 60, view=view)
    return build_insights(rows, since_ms=NOW_MS - 3_600_000, until_ms=NOW_MS, currency="EUR", view=view)


def test_every_line_ends_curated_rejected_or_duplicate_and_insights_match(runtime: LocalRuntime) -> None:
    # GIVEN 2,000 generated lines, 10% invalid, 5% duplicates
    lines = list(EventGenerator(seed=3, now_ms=NOW_MS).lines(2000, invalid_ratio=0.1, duplicate_ratio=0.05))
    # WHEN ingested
    summary = ingest_bytes(runtime, b"\n".join(lines))
    # THEN the three outcomes add up to the lines read
    rejected = sum(summary.rejected.values())
    assert summary.received == 2000
    assert summary.curated + rejected + summary.duplicates == 2000
    assert summary.duplicates > 0
    assert rejected > 0
    assert set(summary.rejected) >= {
        "malformed_json",
        "schema_violation",
        "unknown_event_type",
        "envelope_invalid",
    }
    # AND the stores agree with the summary
    assert runtime.curated.count() == summary.curated
    assert runtime.quarantine.count() == rejected
    # AND insights per type, bots counted in, equal the curated counts per type
    document = insights(runtime, InsightsView(include_bots=True))
    totals = document["totals"]
    assert isinstance(totals, dict)
    assert totals["by_type"] == runtime.curated.count_by_type()
    assert totals["events"] == summary.curated
    # AND without bots (the default), the generated crawlers' events are counted apart
    people = insights(runtime)["totals"]
    assert isinstance(people, dict)
    assert people["bots"] == totals["bots"] > 0
    assert people["events"] + people["bots"] == summary.curated
    assert totals["duplicates"] == summary.duplicates
    assert totals["rejected"] == dict(summary.rejected)


def test_the_same_input_ingested_twice_changes_nothing(runtime: LocalRuntime) -> None:
    data = b"\n".join(EventGenerator(seed=4, now_ms=NOW_MS).lines(300, invalid_ratio=0.1, duplicate_ratio=0.05))
    first = ingest_bytes(runtime, data)
    before = (runtime.curated.count(), runtime.quarantine.count(), insights(runtime))
    # WHEN the same input (same batch ids) comes again
    second = ingest_bytes(runtime, data)
    # THEN the summaries and every store are as they were
    assert second.as_dict() == first.as_dict()
    assert (runtime.curated.count(), runtime.quarantine.count(), insights(runtime)) == before


def test_the_same_events_in_a_new_input_are_counted_as_duplicates_once(runtime: LocalRuntime) -> None:
    data = ndjson(make_event(), make_event("signup"))
    ingest_bytes(runtime, data, batch_prefix="a")
    summary = ingest_bytes(runtime, data, batch_prefix="b")
    assert (summary.curated, summary.duplicates) == (0, 2)
    assert runtime.curated.count() == 2


def test_curated_events_are_enriched_and_never_keep_the_raw_ip(runtime: LocalRuntime) -> None:
    event = make_event(
        "purchase",
        properties={
            "order_id": "o-9",
            "revenue": 108.0,
            "currency": "USD",
            "items": [{"product_id": "p-1", "quantity": 1, "price": 108.0}],
        },
    )
    ingest_bytes(runtime, ndjson(event))
    payload = runtime.curated.get(event["event_id"])
    assert payload is not None
    stored = orjson.loads(payload)
    assert b"203.0.113.57" not in payload
    assert stored["received_at"] == "2026-11-28T06:00:00.000Z"
    enrichment = stored["enrichment"]
    assert enrichment["ip"] == "203.0.113.0"
    assert enrichment["campaign"] == {"source": "news", "medium": "email", "name": "bf"}
    assert enrichment["referrer"] == {"host": "google.com", "medium": "search"}
    assert enrichment["user_agent"]["browser"] == "Firefox"
    assert enrichment["revenue"]["currency"] == "EUR"
    assert 0 < enrichment["revenue"]["amount"] < 108.0
    assert len(enrichment["fingerprint"]) == 32


def test_bad_lines_are_quarantined_with_line_numbers_and_the_rest_processed(runtime: LocalRuntime) -> None:
    # GIVEN a file with a malformed line, invalid UTF-8 and an oversize line between good ones
    big = orjson.dumps(make_event(properties={"path": "/" + "x" * 70_000}))
    data = ndjson(make_event(), b'{"event_id": "broken', b"\xff\xfe\xfd", big, make_event())
    # WHEN ingested
    summary = ingest_bytes(runtime, data)
    # THEN the good ones are curated and each bad one is kept with its code and line number
    assert summary.curated == 2
    assert dict(summary.rejected) == {"malformed_json": 2, "too_large": 1}
    records = {r.index: r for r in runtime.quarantine.iter_all()}
    assert sorted(records) == [2, 3, 4]
    assert records[2].reasons[0].code == "malformed_json"
    assert records[2].raw == '{"event_id": "broken'
    assert records[3].raw == "\\xff\\xfe\\xfd"
    assert records[4].reasons[0].code == "too_large"
    assert records[4].stage == "ingest"
    assert len(records[4].raw) == 1024


def test_an_enricher_failure_rejects_one_event_not_the_batch(runtime: LocalRuntime) -> None:
    bad = make_event("purchase")
    bad["properties"]["currency"] = "XXX"
    summary = ingest_bytes(runtime, ndjson(make_event(), bad))
    assert summary.curated == 1
    [record] = runtime.quarantine.for_batch("t-0")
    assert record.stage == "enrich"
    assert record.reasons[0].code == "enrichment_failed"
    assert record.reasons[0].path == "$.properties.currency"


def test_insights_count_funnel_users_and_revenue(runtime: LocalRuntime) -> None:
    # GIVEN one session that buys, one that only looks, and a second user
    events = [
        make_event("page_view", session_id="s-1", user_id="u-1"),
        make_event("add_to_cart", session_id="s-1", user_id="u-1"),
        make_event("purchase", session_id="s-1", user_id="u-1"),
        make_event("page_view", session_id="s-2", user_id="u-2"),
        make_event("add_to_cart", session_id="s-3", user_id="u-2"),  # no page view in s-3
    ]
    ingest_bytes(runtime, ndjson(*events))
    document = insights(runtime)
    totals = document["totals"]
    assert isinstance(totals, dict)
    assert document["funnel"] == {"page_view": 2, "add_to_cart": 1, "purchase": 1}
    assert totals["unique_users"] == 2
    assert totals["revenue"] == 59.9
    minutes = document["minutes"]
    assert isinstance(minutes, list)
    assert [m["minute"] for m in minutes] == ["2026-11-28T05:59:00Z"]
    lag = document["lag_ms"]
    # sent 500 ms after it occurred, received 30 s after: the client clock was 29.5 s behind
    assert lag == {"p50": pytest.approx(500, rel=0.025), "p95": pytest.approx(500, rel=0.025)}


def test_gzip_files_are_ingested(runtime: LocalRuntime) -> None:
    summary = ingest_bytes(runtime, gzip.compress(ndjson(make_event(), make_event())))
    assert summary.curated == 2


def test_a_batch_whose_step_keeps_failing_is_marked_failed_then_replayed(runtime: LocalRuntime) -> None:
    # GIVEN a curated store that fails every write
    calls = Counter[str]()
    original = runtime.curated.put_new

    def failing(batch_id: str, events: object, *, staged: bool = False) -> list[bool]:
        calls["put_new"] += 1
        raise RuntimeError("disk on fire")

    runtime.curated.put_new = failing  # type: ignore[method-assign]
    summary = ingest_bytes(runtime, ndjson(make_event()))
    # THEN the batch is failed (not done), nothing is counted, and the error is kept
    assert calls["put_new"] > 0  # the store's own failure, not a call it could not take
    assert summary.unfinished == ["t-0"]
    record = runtime.batches.get("t-0")
    assert record is not None
    assert record.status == "failed"
    assert record.error is not None
    assert "disk on fire" in record.error
    assert insights(runtime)["totals"]["events"] == 0  # type: ignore[index]
    # WHEN the store recovers and the failed batches are run again
    runtime.curated.put_new = original  # type: ignore[method-assign]
    [again] = runtime.finish_unfinished(include_failed=True)
    # THEN the batch is done and counted once
    assert again.status == "done"
    assert again.curated == 1
    assert insights(runtime)["totals"]["events"] == 1  # type: ignore[index]


def test_replay_of_rejected_events_after_a_schema_is_added(runtime: LocalRuntime, tmp_path: Path) -> None:
    from dataclasses import replace

    from eventpipe.core.replay import replay_rejected
    from eventpipe.localrun.runtime import LocalRuntime

    # GIVEN events of a type nobody registered yet
    search = make_event("page_view", properties={"query": "shoes"})
    search["event_type"] = "search"
    ingest_bytes(runtime, ndjson(search, b"{broken"))
    assert runtime.quarantine.count() == 2
    # WHEN the schema is added and the quarantine replayed
    schema_dir = tmp_path / "schemas" / "search"
    schema_dir.mkdir(parents=True)
    (schema_dir / "1-0-0.json").write_text('{"type": "object", "required": ["query"]}')
    runtime.close()
    updated = LocalRuntime(replace(runtime.settings, schema_dir=tmp_path / "schemas"), clock=runtime.clock)
    summary = replay_rejected(updated.quarantine, updated.batches, updated.ingestor, batch_size=50, clock=updated.clock)
    # THEN the event is curated, the broken line stays quarantined once, under its original batch and line
    assert (summary.curated, dict(summary.rejected)) == (1, {"malformed_json": 1})
    assert updated.curated.get(search["event_id"]) is not None
    assert [(r.batch_id, r.index, r.raw) for r in updated.quarantine.iter_all()] == [("t-0", 2, "{broken")]
    # AND insights count the curated event, and the refusals only once, at the original batch
    totals = insights(updated)["totals"]
    assert (totals["events"], totals["rejected"]) == (1, {"malformed_json": 1, "unknown_event_type": 1})  # type: ignore[index]
    # WHEN replayed again
    again = replay_rejected(updated.quarantine, updated.batches, updated.ingestor, batch_size=50, clock=updated.clock)
    # THEN nothing changes
    assert (again.curated, dict(again.rejected)) == (0, {"malformed_json": 1})
    assert updated.quarantine.count() == 1
    assert insights(updated)["totals"] == totals
    updated.close()


def test_a_replay_interrupted_by_a_failure_and_run_again_keeps_every_record_once(runtime: LocalRuntime) -> None:
    from eventpipe.core.replay import replay_rejected

    # GIVEN two quarantined events, and a quarantine that cannot release records for now
    unknown = make_event()
    unknown["event_type"] = "search"
    ingest_bytes(runtime, ndjson(b"{broken", unknown))
    original_remove = runtime.quarantine.remove

    def failing_remove(keys: object) -> None:
        raise StorageError("database is locked")

    runtime.quarantine.remove = failing_remove  # type: ignore[method-assign]
    runtime.workflow = build_workflow(runtime, sleep=lambda _: None)
    first = replay_rejected(runtime.quarantine, runtime.batches, runtime.ingestor, batch_size=50, clock=runtime.clock)
    assert first.unfinished  # the replay batch failed after its retries
    # WHEN the quarantine recovers and the replay runs again
    runtime.quarantine.remove = original_remove  # type: ignore[method-assign]
    replay_rejected(runtime.quarantine, runtime.batches, runtime.ingestor, batch_size=50, clock=runtime.clock)
    # THEN each record is there once, under its original key, and no refusal is counted twice
    assert sorted((r.batch_id, r.index) for r in runtime.quarantine.iter_all()) == [("t-0", 1), ("t-0", 2)]
    assert insights(runtime)["totals"]["rejected"] == {"malformed_json": 1, "unknown_event_type": 1}  # type: ignore[index]


def test_a_second_replay_after_a_schema_is_added_curates_what_the_first_rejected_again(
    runtime: LocalRuntime, tmp_path: Path, clock: FixedClock
) -> None:
    from dataclasses import replace

    from eventpipe.core.replay import replay_rejected
    from eventpipe.localrun.runtime import LocalRuntime

    # GIVEN an event of an unknown type, replayed once while the type is still unknown
    event = make_event(properties={"query": "boots"})
    event["event_type"] = "checkout"
    ingest_bytes(runtime, ndjson(event))
    first = replay_rejected(runtime.quarantine, runtime.batches, runtime.ingestor, batch_size=50, clock=clock)
    assert dict(first.rejected) == {"unknown_event_type": 1}
    # WHEN the schema is added and the quarantine replayed again, later
    schema = tmp_path / "schemas" / "checkout" / "1-0-0.json"
    schema.parent.mkdir(parents=True)
    schema.write_text('{"type": "object"}')
    runtime.close()
    clock.now += 60_000
    updated = LocalRuntime(replace(runtime.settings, schema_dir=tmp_path / "schemas"), clock=clock)
    second = replay_rejected(updated.quarantine, updated.batches, updated.ingestor, batch_size=50, clock=clock)
    # THEN it is curated and its record released
    assert (second.curated, dict(second.rejected)) == (1, {})
    assert updated.quarantine.count() == 0
    updated.close()


def test_records_of_a_batch_that_is_not_done_are_not_replayed(runtime: LocalRuntime) -> None:
    from eventpipe.core.replay import replay_rejected

    # GIVEN a batch that quarantined an event, then failed in MarkDone
    original = runtime.batches.mark_done

    def failing(*args: object) -> None:
        raise RuntimeError("disk on fire")

    runtime.batches.mark_done = failing  # type: ignore[method-assign]
    ingest_bytes(runtime, ndjson(make_event(), b"{broken"))
    runtime.batches.mark_done = original  # type: ignore[method-assign]
    assert runtime.quarantine.count() == 1
    # WHEN the quarantine is replayed before the batch is run again
    summary = replay_rejected(runtime.quarantine, runtime.batches, runtime.ingestor, batch_size=50, clock=runtime.clock)
    # THEN the failed batch's record is left for the batch itself
    assert summary.received == 0
    [again] = runtime.finish_unfinished(include_failed=True)
    assert (again.curated, again.duplicates, again.rejected) == (1, 0, 1)
    assert insights(runtime)["totals"]["events"] == 1  # type: ignore[index]


def test_an_event_with_a_sent_at_decades_off_stays_at_its_own_time_in_the_insights(runtime: LocalRuntime) -> None:
    # GIVEN an event whose device says it was sent in 1971 (a correction would move it to 2082), and one a
    # minute off (corrected)
    far = make_event(sent_at="1971-01-01T00:00:00.000Z")
    near = make_event(sent_at="2026-11-28T05:59:00.000Z")
    # WHEN ingested
    summary = ingest_bytes(runtime, ndjson(far, near))
    # THEN both are curated and counted in the last hour: the far one at its occurred_at, flagged
    assert (summary.curated, sum(summary.rejected.values())) == (2, 0)
    assert insights(runtime)["totals"]["events"] == 2  # type: ignore[index]
    far_stored = orjson.loads(runtime.curated.get(far["event_id"]) or b"{}")["enrichment"]
    near_stored = orjson.loads(runtime.curated.get(near["event_id"]) or b"{}")["enrichment"]
    assert far_stored["corrected_at"] == far["occurred_at"]
    assert far_stored["clock_skew_ignored_ms"] > 0
    assert (near_stored["clock_skew_ms"], "clock_skew_ignored_ms" in near_stored) == (60_000, False)


def test_a_file_is_cut_into_batches_of_the_group_size_and_a_request_keeps_its_limit(
    settings: Settings, clock: FixedClock
) -> None:
    from dataclasses import replace

    from eventpipe.core.model import Limits
    from eventpipe.core.requests import TooManyEventsError, request_lines
    from eventpipe.localrun.runtime import LocalRuntime

    # GIVEN a runtime whose requests hold at most 10 events and whose groups hold 40
    runtime = LocalRuntime(replace(settings, limits=Limits(max_batch_events=10), group_max_events=40), clock=clock)
    try:
        # WHEN 100 lines are ingested as a file
        summary = ingest_bytes(runtime, b"\n".join(EventGenerator(seed=5, now_ms=NOW_MS).lines(100)))
        # THEN they make three batches (40, 40, 20), every event accounted for once
        assert summary.batches == 3
        assert summary.curated + summary.duplicates + sum(summary.rejected.values()) == 100
        # AND a request is still held to its own limit
        with pytest.raises(TooManyEventsError):
            request_lines(ndjson(*[make_event() for _ in range(11)]), content_type=None, content_encoding=None,
                          limits=runtime.settings.limits)  # fmt: skip
    finally:
        runtime.close()
