"""The lake on AWS under moto, end to end: ProcessBatch curates, the curated table's stream hands the
inserts to `write_lake`, which writes Parquet in the analytics bucket, each event once whatever runs
again; DuckDB reads it; the compaction merges an hour's objects keeping each event once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from eventpipe.adapters.aws.dynamodb_state import DynamoBatchStore
from eventpipe.adapters.aws.lake_compaction import JOURNAL_PREFIX, STREAM_MIN_AGE_S, S3LakeCompactor
from eventpipe.adapters.aws.lake_lease import LakeLease
from eventpipe.adapters.aws.s3_lake import LAKE_PREFIX
from eventpipe.core.rawbatch import raw_key
from eventpipe.lake.columns import LAKE_SCHEMA
from tests.aws.conftest import ANALYTICS_BUCKET, STATE_TABLE
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.conftest import make_event

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch)


def lake_keys(s3: Any) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=ANALYTICS_BUCKET, Prefix=LAKE_PREFIX)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def download(s3: Any, folder: Path) -> Path:
    """The analytics bucket's lake objects as files under `folder`, keys as paths."""
    for key in lake_keys(s3):
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=ANALYTICS_BUCKET, Key=key)["Body"].read())
    return folder / LAKE_PREFIX


def lake_rows(s3: Any, folder: Path, sql: str = "SELECT event_id FROM events ORDER BY ALL") -> list[tuple[Any, ...]]:
    root = download(s3, folder)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)")
    return con.execute(sql).fetchall()


def accept(pipeline: Pipeline, events: list[Any]) -> str:
    answer = pipeline.invoke("ingest", {"events": events})
    batch_id: str = answer["batch_id"]
    return batch_id


def test_curated_events_land_as_parquet_in_the_analytics_bucket(pipeline: Pipeline, s3: Any, tmp_path: Path) -> None:
    # GIVEN a batch of three valid events, one invalid and one repeated
    events = [make_event("page_view", user_id="u-1"), make_event("purchase"), make_event("signup")]
    invalid = make_event("add_to_cart", properties={"product_id": "p-1"})
    accept(pipeline, [*events, invalid, events[0]])
    # WHEN the workflow runs
    pipeline.drain()
    # THEN the curated events are in zstd Parquet under events/dt=YYYY-MM-DD/hour=HH/, with the lake's columns
    keys = lake_keys(s3)
    assert keys
    assert all(k.startswith(LAKE_PREFIX + "dt=") and "/s-" in k and k.endswith(".parquet") for k in keys)
    # AND ProcessBatch wrote none of them: write_lake did, from the stream's three inserts
    assert [w["events"] for w in pipeline.lake_writes] == [3]
    data = s3.get_object(Bucket=ANALYTICS_BUCKET, Key=keys[0])["Body"].read()
    local = tmp_path / "one.parquet"
    local.write_bytes(data)
    meta = pq.ParquetFile(local).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(local).remove_metadata() == LAKE_SCHEMA
    # AND DuckDB reads them with the partition columns; the raw bucket holds no lake object
    rows = lake_rows(s3, tmp_path / "lake", "SELECT event_id, event_type, user_id, dt, hour FROM events ORDER BY 1")
    assert sorted(r[0] for r in rows) == sorted(e["event_id"] for e in events)
    assert {r[2] for r in rows if r[1] == "page_view"} == {"u-1"}
    partitions = {(key.split("/")[1].removeprefix("dt="), int(key.split("/")[2].removeprefix("hour="))) for key in keys}
    assert {(str(r[3]), int(r[4])) for r in rows} == partitions


def test_a_retried_step_a_redelivery_and_a_replay_add_no_event_twice(
    pipeline: Pipeline, s3: Any, dynamodb: Any, tmp_path: Path
) -> None:
    # GIVEN a batch processed once
    events = [make_event() for _ in range(5)]
    batch_id = accept(pipeline, events)
    pipeline.drain()
    # WHEN its ProcessBatch runs again, its done record forgotten (a retry after a timeout that had written)
    dynamodb.update_item(
        TableName=STATE_TABLE,
        Key={"pk": {"S": f"batch#{batch_id}"}, "sk": {"S": "batch"}},
        UpdateExpression="SET #s = :p",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "pending"}},
    )
    again = pipeline.invoke("process_batch", {"batch_id": batch_id, "raw_key": raw_key(batch_id)})
    assert again["curated"] == 5
    # AND the same events arrive again in another request (a client's retry), and the first once more
    accept(pipeline, events)
    accept(pipeline, [*events[:2], make_event()])
    pipeline.drain()
    # THEN the stream inserted each event once (the retried step rewrote its items: MODIFY records, filtered)
    assert sum(w["records"] for w in pipeline.lake_writes) == 6
    # AND the lake holds each event once: 5 + the one new event
    rows = lake_rows(s3, tmp_path)
    assert len(rows) == 6
    assert len({r[0] for r in rows}) == 6


def test_with_the_lake_off_nothing_is_written(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_LAKE="off")
    accept(pipeline, [make_event()])
    pipeline.drain()
    assert lake_keys(s3) == []


class LaterClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


def real_now_ms() -> int:
    """S3 dates its objects by the real clock (moto too): the compaction's clock must follow it."""
    return int(time.time() * 1000)


def compactor(s3: Any, dynamodb: Any, *, later_s: int = STREAM_MIN_AGE_S + 60) -> S3LakeCompactor:
    """A compaction run `later_s` after now: by default past the age when write_lake's objects just written
    can no longer be written again (their stream records have left the stream)."""
    clock = LaterClock(real_now_ms() + later_s * 1000)
    lease = LakeLease(STATE_TABLE, dynamodb, clock, holder="compaction")
    return S3LakeCompactor(ANALYTICS_BUCKET, s3, DynamoBatchStore(STATE_TABLE, dynamodb), clock, lease)


def test_compaction_merges_a_closed_hour_into_one_object_each_event_once(
    pipeline: Pipeline, s3: Any, dynamodb: Any, tmp_path: Path
) -> None:
    # GIVEN ten batches of events in the same hour, done, each written by its own stream batch
    ids = []
    for _ in range(10):
        events = [make_event() for _ in range(3)]
        ids += [e["event_id"] for e in events]
        accept(pipeline, events)
        pipeline.drain()
    assert len(lake_keys(s3)) >= 10
    # WHEN compaction runs (the events' hour ended days ago)
    result = compactor(s3, dynamodb).compact()
    # THEN each hour holds one compacted object, and every event is in it once
    keys = lake_keys(s3)
    assert all("/c-" in key for key in keys)
    assert len(keys) == len({key.rsplit("/", 1)[0] for key in keys})
    assert result.events == 30
    assert result.merged_objects >= 10
    assert sorted(r[0] for r in lake_rows(s3, tmp_path)) == sorted(ids)
    # AND a second run has nothing to do
    assert compactor(s3, dynamodb).compact().written_objects == 0


def test_compaction_leaves_open_hours_young_objects_and_unfinished_batches(
    pipeline: Pipeline, s3: Any, dynamodb: Any
) -> None:
    from eventpipe.core.timeutil import to_iso

    # objects of the current hour (not closed yet), few: left
    for _ in range(3):
        accept(pipeline, [make_event(occurred_at=to_iso(real_now_ms()))])
        pipeline.drain()
    assert compactor(s3, dynamodb, later_s=20 * 60).compact().written_objects == 0
    # objects of a closed hour written a minute, or 23 hours, ago (a stream batch failing since could still
    # be delivered again and write them again, beside a merged copy): left
    for _ in range(3):
        accept(pipeline, [make_event()])
        pipeline.drain()
    assert compactor(s3, dynamodb, later_s=60).compact().written_objects == 0
    assert compactor(s3, dynamodb, later_s=23 * 3600).compact().written_objects == 0
    before = [key for key in lake_keys(s3) if "2026-11-28" in key]
    # an object ProcessBatch wrote before write_lake existed, of a batch still pending (it may run again): left
    pending = accept(pipeline, [make_event()])
    pipeline.invoke("process_batch", {"batch_id": pending, "raw_key": raw_key(pending)})
    legacy = f"{LAKE_PREFIX}dt=2026-11-28/hour=06/b-{pending}.parquet"
    s3.copy_object(Bucket=ANALYTICS_BUCKET, Key=legacy, CopySource={"Bucket": ANALYTICS_BUCKET, "Key": before[0]})
    compactor(s3, dynamodb).compact()
    assert legacy in lake_keys(s3)
    assert not set(before) & set(lake_keys(s3))


def test_a_compaction_killed_midway_is_finished_by_the_next_run(
    pipeline: Pipeline, s3: Any, dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(4):
        accept(pipeline, [make_event(), make_event()])
        pipeline.drain()
    # GIVEN a run killed after writing the merged object, before deleting its inputs
    run = compactor(s3, dynamodb)

    def killed(keys: list[str]) -> None:
        if not any(k.startswith(JOURNAL_PREFIX) for k in keys):
            raise KeyboardInterrupt

    monkeypatch.setattr(run, "_delete", killed)
    with pytest.raises(KeyboardInterrupt):
        run.compact()
    assert any("/c-" in key for key in lake_keys(s3))
    # WHEN the next run starts
    monkeypatch.undo()
    result = compactor(s3, dynamodb).compact()
    # THEN it finished that merge: every event once, no journal left
    assert result.journals_finished == 1
    rows = lake_rows(s3, tmp_path)
    assert len(rows) == 8 == len(set(rows))
    listed = s3.list_objects_v2(Bucket=ANALYTICS_BUCKET, Prefix=JOURNAL_PREFIX)
    assert listed.get("KeyCount", 0) == 0


def test_a_journal_without_its_merged_object_is_dropped(pipeline: Pipeline, s3: Any, dynamodb: Any) -> None:
    accept(pipeline, [make_event()])
    pipeline.drain()
    inputs = lake_keys(s3)
    journal = {"output": f"{LAKE_PREFIX}dt=2020-01-01/hour=00/c-gone.parquet", "inputs": inputs}
    s3.put_object(Bucket=ANALYTICS_BUCKET, Key=f"{JOURNAL_PREFIX}x.json", Body=orjson.dumps(journal))
    assert compactor(s3, dynamodb).finish_journals() == 1
    assert lake_keys(s3) == inputs  # the inputs were never merged: they stay


def test_compaction_keeps_each_event_once_when_two_objects_hold_it(
    pipeline: Pipeline, s3: Any, dynamodb: Any, tmp_path: Path
) -> None:
    # GIVEN an hour whose events are also in an object ProcessBatch wrote before write_lake existed (a stack
    # upgraded while it ran: the deploy's minutes are in a b- and an s- object)
    batch_id = accept(pipeline, [make_event(), make_event(), make_event()])
    pipeline.drain()
    accept(pipeline, [make_event()])
    pipeline.drain()
    first = lake_keys(s3)[0]
    copy = f"{first.rsplit('/', 1)[0]}/b-{batch_id}.parquet"
    s3.copy_object(Bucket=ANALYTICS_BUCKET, Key=copy, CopySource={"Bucket": ANALYTICS_BUCKET, "Key": first})
    assert len(lake_rows(s3, tmp_path / "before")) > len(set(lake_rows(s3, tmp_path / "before2")))
    # WHEN the hour is compacted
    result = compactor(s3, dynamodb).compact()
    # THEN the merged object holds each event once
    rows = lake_rows(s3, tmp_path / "after")
    assert len(rows) == len(set(rows)) == 4
    assert result.events == 4
