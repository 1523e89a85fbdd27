"""The Cosmos DB adapters through the whole workflow, on an in-memory stand-in of the SDK's container
(tests/azure/cosmos_standin.py: no Cosmos DB emulator runs here), checked against the local SQLite
stores fed the same events: the same batch records, rejections and insights document.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import datasketches
import orjson
import pytest
from eventpipe_azure.containers import CONTAINERS, CURATED, INSIGHTS, STATE
from eventpipe_azure.cosmos_curated import CosmosCuratedStore
from eventpipe_azure.cosmos_insights import CosmosInsightsStore
from eventpipe_azure.cosmos_state import (
    BATCH_MAX_BYTES,
    BATCH_MAX_OPERATIONS,
    CosmosBatchStore,
    CosmosQuarantine,
    batch_chunks,
)
from eventpipe_azure.queue import BatchMessage
from eventpipe_azure.runtime import AzureRuntime

from eventpipe.adapters.aws.retry import NO_WAIT
from eventpipe.adapters.local import FolderBucket
from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.errors import StorageError
from eventpipe.core.facts import fact_of
from eventpipe.core.insights import insights_document
from eventpipe.core.model import BatchStatus, Limits
from eventpipe.core.readers import Line
from eventpipe.core.segments import view_of
from eventpipe.core.timeutil import parse_iso_ms
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.settings import Settings
from tests.azure.cosmos_standin import ContainerStandIn
from tests.conftest import NOW_MS, FixedClock, make_event

if TYPE_CHECKING:
    from pathlib import Path

FORBIDDEN_IN_IDS = re.compile(r"[/\\?#]")
SINCE = "2026-11-27T23:00:00Z"
UNTIL = "2026-11-28T06:00:00Z"


class RunNow:
    """A workflow starter that runs the batch at once, as `run_batch` would on its queue message."""

    runtime: AzureRuntime

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        self.runtime.run_batch(BatchMessage(batch_id, raw_key, retry))


def cosmos_runtime(tmp_path: Path, settings: Settings) -> tuple[AzureRuntime, dict[str, ContainerStandIn]]:
    containers = {spec.name: ContainerStandIn(spec.partition_key) for spec in CONTAINERS}
    starter = RunNow()
    runtime = AzureRuntime(
        settings,
        bucket=FolderBucket(tmp_path / "cosmos-bucket"),
        curated=CosmosCuratedStore(containers[CURATED.name]),
        batches=CosmosBatchStore(containers[STATE.name]),
        quarantine=CosmosQuarantine(containers[STATE.name]),
        insights=CosmosInsightsStore(containers[INSIGHTS.name], backoff=NO_WAIT),
        starter=starter,
        clock=FixedClock(),
    )
    starter.runtime = runtime
    return runtime, containers


def batches_of_events() -> list[list[bytes]]:
    """Three batches: events over two UTC days and several minutes, duplicates within and across
    batches, a schema violation, an unknown type and a line that is not JSON."""
    repeated = make_event("purchase", occurred_at="2026-11-28T05:10:00Z", session_id="s-2")
    first = [
        make_event("page_view", occurred_at="2026-11-27T23:59:30Z", session_id="s-1"),
        make_event("add_to_cart", occurred_at="2026-11-28T00:00:30Z", session_id="s-1"),
        make_event("purchase", occurred_at="2026-11-28T00:01:10Z", session_id="s-1", user_id="u-2"),
        repeated,
        repeated,
        make_event("page_view", properties={"title": "no path"}),
    ]
    second = [
        repeated,
        make_event("signup"),
        {**make_event("signup"), "event_type": "no_such_type"},
        make_event("page_view", user_id="u-3"),
    ]
    third = [
        make_event("page_view", occurred_at=f"2026-11-28T0{h}:{m:02d}:00Z") for h in range(3) for m in range(0, 60, 5)
    ]
    return [
        [orjson.dumps(e) for e in first],
        [*[orjson.dumps(e) for e in second], b"{oops"],
        [orjson.dumps(e) for e in third],
    ]


def ingest_all(runtime: Any, batches: list[list[bytes]]) -> list[str]:
    ids = []
    for number, events in enumerate(batches):
        lines = [Line(position, data) for position, data in enumerate(events)]
        for record in runtime.ingestor.ingest(lines, source="test", batch_id_for=lambda n, b=number: f"s-test-{b}-{n}"):
            ids.append(record.batch_id)
    return ids


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(Settings.from_env({}), data_dir=tmp_path / "local", limits=Limits(max_batch_events=50))


def test_same_results_as_the_local_stores(tmp_path: Path, settings: Settings) -> None:
    # GIVEN the same batches ingested by the local runtime and by the Cosmos DB adapters
    local = LocalRuntime(settings, clock=FixedClock())
    runtime, containers = cosmos_runtime(tmp_path, settings)
    batches = batches_of_events()
    try:
        ids = ingest_all(local, batches)
        assert ingest_all(runtime, batches) == ids
        # THEN every batch record and its rejections are the same
        for batch_id in ids:
            expected, actual = local.batches.get(batch_id), runtime.batches.get(batch_id)
            assert actual == expected
            assert actual is not None
            assert actual.status is BatchStatus.DONE
            assert runtime.quarantine.for_batch(batch_id) == local.quarantine.for_batch(batch_id)
        stored = Counter(item["event_type"] for item in containers[CURATED.name].items.values())
        assert local.curated.count() == 42
        assert stored == local.curated.count_by_type()
        # AND the insights document is the same, minute by minute, over both days
        window = {"since_ms": parse_iso_ms(SINCE), "until_ms": parse_iso_ms(UNTIL), "currency": "EUR"}
        expected_doc = insights_document(local.insights, **window)
        assert insights_document(runtime.insights, **window) == expected_doc
        assert expected_doc["totals"]["duplicates"] == 2
        assert expected_doc["funnel"] == {"page_view": 1, "add_to_cart": 1, "purchase": 1}
    finally:
        local.close()
    # AND every id and partition key is one Cosmos DB accepts
    for container in containers.values():
        for partition, item_id in container.items:
            assert not FORBIDDEN_IN_IDS.search(item_id), item_id
            assert partition
            assert len(item_id) <= 255


BOT_AGENT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def test_apps_and_bots_are_segments_as_in_the_local_stores(tmp_path: Path, settings: Settings) -> None:
    # GIVEN events of two apps and of no app, from people and from a crawler, over two minutes
    def event(app: str | None, *, bot: bool = False, **fields: Any) -> bytes:
        made = make_event("page_view", occurred_at="2026-11-28T05:10:00Z", **fields)
        if app is not None:
            made["app_id"] = app
        if bot:
            made["context"] = {"user_agent": BOT_AGENT}
        return orjson.dumps(made)

    batch = [
        event("shop", session_id="s-1"),
        event("shop", session_id="s-2", user_id="u-9"),
        event("shop/eu#1", session_id="s-3"),  # characters Cosmos DB ids may not hold
        event("shop", bot=True),
        event(None, bot=True),
        event(None, session_id="s-4"),
    ]
    local = LocalRuntime(settings, clock=FixedClock())
    runtime, containers = cosmos_runtime(tmp_path, settings)
    try:
        ingest_all(local, [batch])
        ingest_all(runtime, [batch])
        window = {"since_ms": parse_iso_ms(SINCE), "until_ms": parse_iso_ms(UNTIL), "currency": "EUR"}
        # THEN every view reads the same document as the local stores': all apps, one app, bots counted in
        for app_id, bots in [(None, None), ("shop", None), ("shop/eu#1", None), (None, "true"), ("shop", "true")]:
            view = view_of(app_id, bots)
            expected = insights_document(local.insights, **window, view=view)
            assert insights_document(runtime.insights, **window, view=view) == expected, (app_id, bots)
        shop = insights_document(runtime.insights, **window, view=view_of("shop", None))
        assert (shop["totals"]["events"], shop["totals"]["bots"], shop["totals"]["unique_users"]) == (2, 1, 2)
        everyone = insights_document(runtime.insights, **window, view=view_of(None, "true"))
        assert (everyone["totals"]["events"], everyone["totals"]["bots"]) == (6, 2)
    finally:
        local.close()
    # AND the segments' ids are ones Cosmos DB accepts
    for partition, item_id in containers[INSIGHTS.name].items:
        assert not FORBIDDEN_IN_IDS.search(item_id), (partition, item_id)


def test_a_batch_applied_again_counts_once(tmp_path: Path, settings: Settings) -> None:
    runtime, _containers = cosmos_runtime(tmp_path, settings)
    (batch_id,) = ingest_all(runtime, batches_of_events()[:1])
    window = {"since_ms": parse_iso_ms(SINCE), "until_ms": parse_iso_ms(UNTIL), "currency": "EUR"}
    before = insights_document(runtime.insights, **window)
    # WHEN the whole workflow runs again for the same batch (a repeated queue message, a retry)
    record = runtime.batches.get(batch_id)
    assert record is not None
    runtime.workflow.run({"batch_id": batch_id, "raw_key": record.raw_key})
    # THEN nothing is counted twice
    assert insights_document(runtime.insights, **window) == before
    assert runtime.batches.get(batch_id) == record


def test_a_conflicting_writer_makes_the_chunk_retry(tmp_path: Path, settings: Settings) -> None:
    # GIVEN an aggregate over 150 minutes of one day: three hours (60 + 60 + 30 minutes) of one partition
    container = ContainerStandIn(INSIGHTS.partition_key)
    store = CosmosInsightsStore(container, backoff=NO_WAIT)
    facts = [fact_of(make_event(occurred_at=f"2026-11-28T0{m // 60}:{m % 60:02d}:00Z")) for m in range(150)]
    aggregate = aggregate_batch(facts, received_at_ms=NOW_MS, now_ms=NOW_MS, rejected={}, duplicates=0)
    # WHEN the first chunk's transactional batch meets a concurrent change (412 on an ETag)
    failures = iter([412])
    container.fail_batch = lambda ops: next(failures, None) if ops[0][0] == "create" else None
    assert store.apply("s-one", aggregate) is True
    # THEN it was read again and sent again; each batch held its marker first, its hour's dirty mark and minutes
    minute_batches = [ops for ops in container.batches if ops[0][1][0]["id"].startswith("applied-")]
    assert [len(ops) for ops in minute_batches] == [62, 62, 62, 32]
    assert [hour for hour, _ in store.dirty_hours()] == [
        parse_iso_ms(f"2026-11-28T0{hour}:00:00Z") // 1000 for hour in range(3)
    ]
    rows = store.read(parse_iso_ms("2026-11-28T00:00:00Z") // 1000, parse_iso_ms("2026-11-28T03:00:00Z") // 1000)
    assert sum(sum(row.events.values()) for row in rows.minutes) == 150
    # AND applying it again changes nothing
    assert store.apply("s-one", aggregate) is False
    assert store.read(rows.minutes[0].minute, rows.minutes[-1].minute + 60).minutes == rows.minutes


def test_a_writer_that_keeps_failing_is_storage_error() -> None:
    # GIVEN a container that refuses every transactional batch as malformed (400), or as throttled (429)
    aggregate = aggregate_batch(
        [fact_of(make_event())], received_at_ms=NOW_MS, now_ms=NOW_MS, rejected={}, duplicates=0
    )
    for status, message in ((400, "cannot apply applied-s-x-0: 400"), (429, "kept conflicting for 8 tries")):
        container = ContainerStandIn(INSIGHTS.partition_key)
        container.fail_batch = lambda ops, status=status: status
        with pytest.raises(StorageError, match=message):
            CosmosInsightsStore(container, backoff=NO_WAIT).apply("s-x", aggregate)
    # AND a chunk whose writers keep conflicting gives up after the backoff's tries
    container = ContainerStandIn(INSIGHTS.partition_key)
    container.fail_batch = lambda ops: 412 if ops[0][0] == "create" else None
    with pytest.raises(StorageError, match="kept conflicting for 8 tries"):
        CosmosInsightsStore(container, backoff=NO_WAIT).apply("s-x", aggregate)


def test_transactional_batches_stay_within_the_limits() -> None:
    items = [{"id": str(n), "raw": "x" * 40_000} for n in range(120)]
    chunks = list(batch_chunks(items))
    assert [item for chunk in chunks for item in chunk] == items
    assert all(len(chunk) <= BATCH_MAX_OPERATIONS for chunk in chunks)
    assert all(len(orjson.dumps(chunk)) <= BATCH_MAX_BYTES + 2 * len(chunk) for chunk in chunks)
    assert len(chunks) > 3  # the size, not the count, cut them


def test_batches_of_one_minute_add_up_in_one_minute_item() -> None:
    # GIVEN two batches with events of the same minute
    first, second = "s-a", "s-b"
    container = ContainerStandIn(INSIGHTS.partition_key)
    store = CosmosInsightsStore(container, backoff=NO_WAIT)
    for batch_id, users in ((first, ("u-1", "u-2")), (second, ("u-2", "u-3", "u-4"))):
        facts = [fact_of(make_event(user_id=user)) for user in users]
        store.apply(batch_id, aggregate_batch(facts, received_at_ms=NOW_MS, now_ms=NOW_MS, rejected={}, duplicates=1))
    # THEN one item per minute holds both: the events' minute and the batches' (for the duplicates),
    # counters added and user sketches united
    minute_items = [item for item in container.items.values() if item["kind"] == "minute"]
    assert len(minute_items) == 2
    events_row, batch_row = store.read(NOW_MS // 1000 - 3600, NOW_MS // 1000 + 60).minutes
    assert events_row.events == {"page_view": 5}
    assert batch_row.duplicates == 2
    assert events_row.users is not None
    sketch = datasketches.hll_sketch.deserialize(events_row.users)
    assert round(sketch.get_estimate()) == 4
