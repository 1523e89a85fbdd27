"""Micro-batching (core/grouping.py): many request batches become one group batch and one execution,
while each request keeps its own answer at `GET /batches/{id}` and its own app, address and user agent."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.core.apps import new_app
from eventpipe.core.batch_ids import group_batch_id
from eventpipe.core.errors import StorageError
from eventpipe.core.grouping import GROUP_SOURCE, is_due, merge, take
from eventpipe.core.model import BatchRecord, BatchStatus
from eventpipe.core.rawbatch import RawBatch
from eventpipe.core.request_facts import RequestFacts
from eventpipe.handlers.http_api import handle_http
from eventpipe.localrun.runtime import LocalRuntime
from tests.conftest import NOW_MS, make_event, ndjson
from tests.unit.test_http_api import v2

if TYPE_CHECKING:
    from eventpipe.settings import Settings
    from tests.conftest import FixedClock


def raw(batch_id: str, events: list[bytes], *, positions: list[int] | None = None, **fields: Any) -> RawBatch:
    return RawBatch(
        batch_id=batch_id,
        source="http",
        received_at_ms=fields.pop("received_at_ms", NOW_MS),
        events=events,
        positions=positions if positions is not None else list(range(len(events))),
        **fields,
    )


def test_a_group_holds_its_members_one_after_the_other() -> None:
    # GIVEN three requests: two JSON bodies (indexes from 0) and an NDJSON one (lines from 1, one refused)
    a = raw("ha", [b'{"a":1}', b'{"a":2}'], received_at_ms=NOW_MS + 5, request=RequestFacts(app_id="app_1"))
    b = raw("hb", [b'{"b":1}'], received_at_ms=NOW_MS)
    refused = {"index": 1, "raw": "x", "reasons": [{"code": "malformed_json", "path": "$", "message": "m"}]}
    c = raw("hc", [b'{"c":1}'], positions=[2], refused=[refused], request=RequestFacts(app_id="app_2", ip="10.0.0.1"))
    # WHEN they are merged
    group, firsts = merge([a, b, c])
    # THEN each member's indexes follow the last one's, refusals included
    assert firsts == [("ha", 0), ("hb", 2), ("hc", 3)]
    assert group.events == [b'{"a":1}', b'{"a":2}', b'{"b":1}', b'{"c":1}']
    assert group.positions == [0, 1, 2, 5]
    assert [r["index"] for r in group.refused] == [4]
    assert group.received == 5
    # AND the group is a batch of its own, received when its oldest request was, never grouped again
    assert group.batch_id == group_batch_id(["ha", "hb", "hc"]) == merge([a, b, c])[0].batch_id
    assert group.source == GROUP_SOURCE
    assert group.received_at_ms == NOW_MS
    # AND every event keeps its own request's facts, through the stored form too
    expected = [RequestFacts(app_id="app_1")] * 2 + [RequestFacts()] + [RequestFacts(app_id="app_2", ip="10.0.0.1")]
    assert group.facts_by_event() == expected
    assert RawBatch.decode(group.encode()).facts_by_event() == expected


def test_a_group_of_requests_without_facts_stores_none() -> None:
    group, _ = merge([raw("ha", [b"{}"]), raw("hb", [b"{}"])])
    assert group.requests == []
    assert b"requests" not in group.encode().split(b"\n")[0]


def record(batch_id: str, received: int, *, at_ms: int = NOW_MS, source: str = "http") -> BatchRecord:
    return BatchRecord(batch_id, f"raw/{batch_id}.ndjson", source, at_ms, received)


def test_requests_are_taken_oldest_first_up_to_one_batch_and_files_are_left_alone() -> None:
    pending = [record("f", 500, source="file"), record("a", 200), record("b", 250), record("c", 100), record("d", 1)]
    assert [r.batch_id for r in take(pending, max_events=500)] == ["a", "b"]
    assert [r.batch_id for r in take([record("big", 900)], max_events=500)] == ["big"]  # a large one alone
    assert take([record("f", 10, source="file")], max_events=500) == []


def test_a_group_runs_when_full_or_when_its_oldest_request_has_waited_the_window() -> None:
    young = [record("a", 10, at_ms=NOW_MS - 400)]
    assert not is_due(young, max_events=500, window_ms=1000, now_ms=NOW_MS)
    assert is_due(young, max_events=500, window_ms=400, now_ms=NOW_MS)
    assert is_due([record("a", 500, at_ms=NOW_MS)], max_events=500, window_ms=1000, now_ms=NOW_MS)
    assert is_due(young, max_events=500, window_ms=0, now_ms=NOW_MS)
    assert not is_due([], max_events=500, window_ms=0, now_ms=NOW_MS)


@pytest.fixture
def deferred(settings: Settings, clock: FixedClock) -> LocalRuntime:
    """A runtime whose ingest leaves batches pending, as `eventpipe up`'s server does for its worker."""
    return LocalRuntime(settings, clock=clock, defer_to=lambda: None)


def post(runtime: LocalRuntime, body: bytes, key: str | None = None) -> dict[str, Any]:
    headers = {"content-type": "application/x-ndjson", "user-agent": "Mozilla/5.0 test"}
    if key:
        headers["x-api-key"] = key
    response = handle_http(v2("POST", "/events", body=body.decode(), headers=headers), runtime)
    assert response["statusCode"] == 202, response
    return dict(orjson.loads(response["body"]))


def batch(runtime: LocalRuntime, batch_id: str) -> dict[str, Any]:
    response = handle_http(v2("GET", f"/batches/{batch_id}", headers={}), runtime)
    assert response["statusCode"] == 200, response
    return dict(orjson.loads(response["body"]))


def test_grouped_requests_are_one_execution_and_each_keeps_its_own_outcome(deferred: LocalRuntime) -> None:
    # GIVEN two apps, and three small requests: A with two valid events and an invalid one, B with a
    # retry of A's first event and a new one, C under the other app with one event and a shapeless one
    app_1, key_1 = new_app("shop", now_ms=NOW_MS)
    app_2, key_2 = new_app("blog", now_ms=NOW_MS)
    deferred.apps.store.create(app_1)
    deferred.apps.store.create(app_2)
    first, second = make_event(), make_event("signup")
    invalid = make_event("add_to_cart", properties={"quantity": 0})
    a = post(deferred, ndjson(first, invalid, second), key_1)
    b = post(deferred, ndjson(first, make_event(app_id="app_forged")), key_1)
    c = post(deferred, ndjson(make_event(), {"event_type": "page_view"}), key_2)
    pending = deferred.batches.pending(100)
    assert [r.batch_id for r in pending] == [a["batch_id"], b["batch_id"], c["batch_id"]]
    assert batch(deferred, a["batch_id"])["status"] == "pending"
    # WHEN the worker's round runs them as one group
    ((group_id, group_key),) = deferred.group_requests(take(pending, max_events=500))
    deferred.run_group([(group_id, group_key)])
    # THEN one batch ran, and it is done with every event accounted for
    done = deferred.batches.get(group_id)
    assert done is not None
    assert (done.status, done.received, done.curated, done.duplicates, done.rejected) == ("done", 7, 4, 1, 2)
    assert deferred.batches.pending(100) == []
    assert deferred.batches.unfinished() == []
    # AND each request answers for its own events, at its own indexes, with its group named
    a_doc = batch(deferred, a["batch_id"])
    (rejection,) = a_doc.pop("rejections")
    assert a_doc == {
        "batch_id": a["batch_id"],
        "status": "done",
        "received": 3,
        "curated": 2,
        "duplicates": 0,
        "rejected": 1,
        "group": {"batch_id": group_id, "first_index": 0},
    }
    assert rejection["event_id"] == invalid["event_id"]
    assert rejection["reasons"][0]["code"] == "schema_violation"
    b_doc = batch(deferred, b["batch_id"])
    assert (b_doc["curated"], b_doc["duplicates"], b_doc["rejected"]) == (1, 1, 0)
    c_doc = batch(deferred, c["batch_id"])
    assert (c_doc["curated"], c_doc["duplicates"], c_doc["rejected"]) == (1, 0, 1)
    # the shapeless event is refused at the index its 202 gave it
    assert c_doc["rejections"][0]["index"] == c["errors"][0]["index"]
    assert rejection["index"] == 1  # the invalid event is A's second (indexes count from 0 in every body form)
    # AND every curated event carries its own request's app, never a forged one
    apps = {}
    for event_id in [first["event_id"], second["event_id"]]:
        apps[event_id] = orjson.loads(deferred.curated.get(event_id) or b"{}")["app_id"]
    assert set(apps.values()) == {app_1.app_id}
    stored = [orjson.loads(deferred.curated.get(e) or b"null") for e in (first["event_id"], second["event_id"])]
    assert all(e["enrichment"]["user_agent"] for e in stored)
    assert deferred.curated.count() == 4


def test_a_member_that_is_not_pending_stops_the_group_and_nothing_is_recorded(deferred: LocalRuntime) -> None:
    a, b = post(deferred, ndjson(make_event())), post(deferred, ndjson(make_event()))
    deferred.batches.mark_done(b["batch_id"], 1, 0, {})
    group = BatchRecord("g-test", "raw/g-test.ndjson", GROUP_SOURCE, NOW_MS, 2)
    with pytest.raises(StorageError, match="not pending"):
        deferred.batches.group(group, [(a["batch_id"], 0), (b["batch_id"], 1)])
    assert deferred.batches.get("g-test") is None
    record_a = deferred.batches.get(a["batch_id"])
    assert record_a is not None
    assert record_a.status is BatchStatus.PENDING


def test_a_single_request_runs_as_it_is(deferred: LocalRuntime) -> None:
    a = post(deferred, ndjson(make_event()))
    runs = deferred.group_requests(deferred.batches.pending(10))
    assert [batch_id for batch_id, _ in runs] == [a["batch_id"]]
    deferred.run_group(runs)
    assert batch(deferred, a["batch_id"])["status"] == "done"
    assert "group" not in batch(deferred, a["batch_id"])


def test_an_unreadable_request_runs_alone_and_fails_with_its_reason(deferred: LocalRuntime) -> None:
    a, b = post(deferred, ndjson(make_event())), post(deferred, ndjson(make_event()))
    record_a = deferred.batches.get(a["batch_id"])
    assert record_a is not None
    deferred.bucket.put(record_a.raw_key, b"not a raw batch", durable=True)
    deferred.run_group(deferred.group_requests(deferred.batches.pending(10)))
    assert batch(deferred, a["batch_id"])["status"] == "failed"
    assert batch(deferred, b["batch_id"])["status"] == "pending"  # the next round takes it


def test_settings_read_the_batching_window() -> None:
    from eventpipe.core.errors import ConfigError
    from eventpipe.settings import Settings

    assert Settings.from_env({}).batch_window_ms == 600
    assert Settings.from_env({"EVENTPIPE_BATCH_WINDOW_MS": "0"}).batch_window_ms == 0
    for bad in ("-1", "1.5", "60001", "soon"):
        with pytest.raises(ConfigError, match="EVENTPIPE_BATCH_WINDOW_MS"):
            Settings.from_env({"EVENTPIPE_BATCH_WINDOW_MS": bad})


def test_settings_read_the_group_size() -> None:
    from eventpipe.core.errors import ConfigError
    from eventpipe.settings import Settings

    assert Settings.from_env({}).group_max_events == 2000
    assert Settings.from_env({"EVENTPIPE_GROUP_MAX_EVENTS": "500"}).group_max_events == 500
    for bad in ("0", "-1", "5001", "many"):
        with pytest.raises(ConfigError, match="EVENTPIPE_GROUP_MAX_EVENTS"):
            Settings.from_env({"EVENTPIPE_GROUP_MAX_EVENTS": bad})


def test_replace_keeps_records_comparable() -> None:
    assert replace(record("a", 1), group_id="g", first_index=3).first_index == 3


def test_a_groups_curated_segment_is_written_while_no_write_transaction_is_open(deferred: LocalRuntime) -> None:
    # GIVEN a group of two requests, and a spy on the curated segments that tries SQLite's write lock
    # from another connection (as another runner would) whenever a segment is written
    post(deferred, ndjson(make_event(), make_event("signup")))
    post(deferred, ndjson(make_event()))
    ((group_id, group_key),) = deferred.group_requests(take(deferred.batches.pending(100), max_events=500))
    other = sqlite3.connect(deferred.settings.data_dir / "eventpipe.db", timeout=0, isolation_level=None)
    written: list[str] = []
    put = deferred.segments.put

    def spy(key: str, data: bytes, *, durable: bool = True) -> None:
        other.execute("BEGIN IMMEDIATE")  # "database is locked" if the batch held the write lock here
        other.execute("ROLLBACK")
        written.append(key)
        put(key, data, durable=durable)

    deferred.segments.put = spy  # type: ignore[method-assign]
    # WHEN the group runs
    deferred.run_group([(group_id, group_key)])
    other.close()
    # THEN its segment was written (once) while no other writer would have had to wait for it
    assert written == [f"{group_id}.ndjson"]
    assert deferred.batches.get(group_id).status is BatchStatus.DONE
    assert deferred.curated.count() == 3
