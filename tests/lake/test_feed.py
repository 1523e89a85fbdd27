"""The lake's feed: the rows the batch step builds from the events it holds are those the writer
decodes from their segments, and the segment stays the truth whenever the two could differ."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pytest

from eventpipe.core.steps import dumps_keeping_texts
from eventpipe.generate import EventGenerator
from eventpipe.lake import writer as writer_module
from eventpipe.lake.columns import LakeRows, row_of_dict, table_of_rows
from eventpipe.lake.feed import LakeFeed
from eventpipe.lake.query import run_query
from eventpipe.lake.writer import LakeWriter, segment_key
from tests.conftest import NOW_MS, make_event
from tests.lake.conftest import ingest

if TYPE_CHECKING:
    from eventpipe.localrun.runtime import LocalRuntime


def _fed_writer(runtime: LocalRuntime, feed: LakeFeed) -> LakeWriter:
    runtime.steps.curated_feed = feed
    return LakeWriter(runtime.db, runtime.segments, runtime.settings.data_dir / "lake", runtime.clock, feed)


def _stored_lines(runtime: LocalRuntime) -> dict[str, str]:
    with runtime.db.reading() as conn:
        rows = conn.execute("SELECT batch_id, group_concat(idx) FROM curated GROUP BY batch_id").fetchall()
    return {str(batch_id): str(lines) for batch_id, lines in rows}


def _odd_events() -> list[dict[str, Any]]:
    """Events whose lake columns take each branch: no enrichment parts, a bot, revenue, text that is
    not ASCII, null and nested properties, an app, an anonymous visitor."""
    return [
        make_event("purchase", app_id="app-1"),
        make_event("page_view", user_id="ü-ser", properties={"path": "/p/é", "title": "Schuhe \u00fc \U0001f600"}),
        {k: v for k, v in make_event("signup", context={}, anonymous_id="a-1").items() if k != "user_id"},
        make_event(
            "page_view",
            context={"user_agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
            properties={"path": "/", "title": "t", "nested": {"a": [1, 2.5, None, {"b": "c"}]}},
        ),
        make_event("add_to_cart", session_id="s-9"),
        make_event("page_view", occurred_at="2026-11-28T04:10:00.000+02:00"),
    ]


def test_the_fed_rows_are_the_rows_decoded_from_the_segments(runtime: LocalRuntime) -> None:
    # GIVEN generated events (invalid ones and duplicates among them) and odd ones, curated with a feed
    feed = LakeFeed()
    runtime.steps.curated_feed = feed
    lines = EventGenerator(seed=3, now_ms=NOW_MS).lines(400, invalid_ratio=0.1, duplicate_ratio=0.1)
    ingest(runtime, *lines, *_odd_events())
    # WHEN each batch's rows are taken from the feed and decoded from its segment
    stored = _stored_lines(runtime)
    assert len(stored) > 5
    assert len(feed) == sum(len(lines.split(",")) for lines in stored.values())
    for batch_id, lines in stored.items():
        segment = runtime.segments.get(segment_key(batch_id))
        fed = feed.take(batch_id, lines, len(segment))
        decoded = LakeRows()
        decoded.add_segment(segment, sorted(map(int, lines.split(","))), batch_id)
        # THEN they are the same rows, column for column (the decoded ones grouped by hour)
        assert fed is not None
        assert fed.sort_by("event_id").equals(pa.concat_tables(decoded.tables().values()).sort_by("event_id"))
    assert len(feed) == 0  # each batch taken whole is forgotten


@pytest.mark.parametrize(
    "event",
    [
        make_event("purchase") | {"enrichment": {"revenue": {"amount": 5}}},
        make_event() | {"enrichment": {}},
        make_event() | {"properties": {"deep": [[[{"x": "\u00e9"}]]]}, "enrichment": {"bot": True}},
        {k: v for k, v in make_event().items() if k != "properties"} | {"enrichment": {}},
    ],
)
def test_the_payload_is_the_same_when_its_texts_are_kept(event: dict[str, Any]) -> None:
    payload, properties_text, enrichment_text = dumps_keeping_texts(event)
    assert payload == orjson.dumps(event)
    decoded = orjson.loads(payload)
    assert properties_text == orjson.dumps(decoded.get("properties"))
    assert enrichment_text == orjson.dumps(decoded["enrichment"])
    assert isinstance(event["enrichment"], dict)  # the objects are given back to the event


@pytest.mark.parametrize(("depth", "refused"), [(252, False), (253, True)])
def test_properties_too_deep_for_the_payload_are_refused_as_without_the_feed(depth: int, refused: bool) -> None:
    deep: Any = "x"
    for _ in range(depth):  # 253: with the event around it, one level past orjson's limit
        deep = [deep]
    event = make_event() | {"properties": {"d": deep}, "enrichment": {}}
    if refused:
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps(event)
        with pytest.raises(orjson.JSONEncodeError):
            dumps_keeping_texts(event)
    else:
        assert dumps_keeping_texts(event)[0] == orjson.dumps(event)


def _fed(event: dict[str, Any]) -> tuple[LakeFeed, bytes]:
    """A feed given one event as a batch of one; the event's payload."""
    payload, properties_text, enrichment_text = dumps_keeping_texts(event)
    feed = LakeFeed()
    feed.add("b-1", [feed.row(event, properties_text, enrichment_text)], [payload], [True])
    return feed, payload


@pytest.mark.parametrize(
    ("enrichment", "why"),
    [
        ({"user_agent": {"browser": 7}}, "a number where the lake has text"),
        ({"user_agent": "Firefox"}, "a text where the lake reads an object"),
        ({"bot": "yes"}, "a text where the lake has a boolean"),
        ({"revenue": {"amount": True}}, "a boolean where the lake has a number"),
    ],
)
def test_values_the_decoding_refuses_are_not_fed(enrichment: dict[str, Any], why: str) -> None:
    feed, payload = _fed(make_event() | {"received_at": "2026-11-28T06:00:00.000Z", "enrichment": enrichment})
    assert feed.take("b-1", "0", len(payload)) is None, why
    decoded = LakeRows()
    decoded.add_segment(payload, [0], "b-1")
    assert len(decoded.tables()) == 0
    assert decoded.skipped == 1  # the decoding leaves it out, and says so


def test_a_revenue_that_is_not_finite_is_null_as_in_its_payload() -> None:
    event = make_event("purchase") | {"received_at": "2026-11-28T06:00:00.000Z", "enrichment": {"revenue": {}}}
    event["enrichment"]["revenue"]["amount"] = math.inf
    payload, properties_text, enrichment_text = dumps_keeping_texts(event)
    table = table_of_rows([row_of_dict(event, properties_text, enrichment_text)], "b-1")
    assert table.column("revenue").to_pylist() == [None]
    assert orjson.loads(payload)["enrichment"]["revenue"]["amount"] is None


def test_a_segment_changed_after_feeding_is_decoded_again(runtime: LocalRuntime) -> None:
    # GIVEN a batch fed to the lake, whose segment is then rewritten with other content (a retry
    # elsewhere, a hand edit): the segment, not the feed, is what the lake holds
    feed = LakeFeed()
    lake = _fed_writer(runtime, feed)
    ingest(runtime, make_event(user_id="u-old"))
    (batch_id,) = _stored_lines(runtime)
    key = segment_key(batch_id)
    runtime.segments.put(key, runtime.segments.get(key).replace(b'"u-old"', b'"u-newer"'))
    # WHEN the lake catches up
    assert lake.sync() == 1
    # THEN the event is there as its segment holds it
    assert run_query(runtime.settings.data_dir, "SELECT user_id FROM events").rows == [("u-newer",)]


def test_a_batch_split_between_chunks_is_fed_in_parts(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 7)
    feed = LakeFeed()
    lake = _fed_writer(runtime, feed)
    events = [make_event(user_id=f"u-{n}") for n in range(30)]
    ingest(runtime, *events, events[3])  # a duplicate: a line of the segment with no row
    taken = []
    monkeypatch.setattr(feed, "take", lambda *args: taken.append(LakeFeed.take(feed, *args)) or taken[-1])
    assert lake.sync() == 30
    assert taken
    assert all(table is not None for table in taken)
    users = run_query(runtime.settings.data_dir, "SELECT user_id FROM events ORDER BY user_id").rows
    assert users == sorted((f"u-{n}",) for n in range(30))
    assert len(feed) == 0  # caught up: forgotten


def test_a_full_feed_leaves_the_rest_to_the_decoding(runtime: LocalRuntime) -> None:
    feed = LakeFeed(max_rows=60)
    lake = _fed_writer(runtime, feed)
    ingest(runtime, *[make_event(user_id=f"u-{n}") for n in range(120)])  # batches of 50
    assert len(feed) == 50  # the second batch would pass 60
    assert lake.sync() == 120
    assert run_query(runtime.settings.data_dir, "SELECT count(DISTINCT event_id) FROM events").rows == [(120,)]
