"""`write_lake` on stream records under moto: inserts only, a retried batch rewrites the same objects
(whatever its size), one object per hour, unreadable records kept and counted, erased users left out."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson
import pytest

from eventpipe.adapters.aws.dynamodb_curated import compress_payload
from eventpipe.adapters.aws.erasure_tombstones import ErasureTombstones
from eventpipe.adapters.aws.lake_stream import LakeStreamWriter
from eventpipe.adapters.aws.s3 import S3RawBucket
from eventpipe.adapters.aws.s3_lake import LAKE_PREFIX, UNREADABLE_PREFIX
from eventpipe.core.errors import InputError, StorageError
from eventpipe.erasure.target import ErasureTarget
from eventpipe.handlers.lake import handle_write_lake
from eventpipe.lake.parquet import from_parquet
from tests.aws.conftest import ANALYTICS_BUCKET, CURATED_TABLE, STATE_TABLE

NOW_MS = 1_796_000_000_000  # 2026-11-28T...
HOUR_5 = "2026-11-28T05:59:30.000Z"
HOUR_6 = "2026-11-28T06:00:10.000Z"


class Clock:
    def now_ms(self) -> int:
        return NOW_MS


def curated(number: int, occurred_at: str = HOUR_5, *, user: str = "u-1", received_ms: int = NOW_MS) -> bytes:
    """A curated event's JSON as ProcessBatch stores it (the fields the lake reads)."""
    from eventpipe.core.timeutil import to_iso

    return orjson.dumps(
        {
            "event_id": f"00000000-0000-4000-8000-{number:012d}",
            "event_type": "page_view",
            "schema_version": "1-0-0",
            "occurred_at": occurred_at,
            "received_at": to_iso(received_ms),
            "user_id": user,
            "properties": {"path": "/p/1"},
            "enrichment": {"user_agent": {"browser": "Firefox"}},
        }
    )


def record(number: int, payload: bytes | None = None, *, name: str = "INSERT", batch: str = "h1") -> dict[str, Any]:
    """A stream record as Lambda hands it to the function (binary values in base64)."""
    payload = payload if payload is not None else curated(number)
    event_id = f"00000000-0000-4000-8000-{number:012d}"
    return {
        "eventID": f"{number:032x}",
        "eventName": name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"event_id": {"S": event_id}},
            "NewImage": {
                "event_id": {"S": event_id},
                "batch_id": {"S": batch},
                "event_type": {"S": "page_view"},
                "payload": {"B": base64.b64encode(compress_payload(payload)).decode()},
                "expires_at": {"N": "1796600000"},
            },
            "SequenceNumber": f"{100 + number:021d}",
            "StreamViewType": "NEW_IMAGE",
        },
    }


@pytest.fixture
def writer(dynamodb: Any, s3: Any) -> LakeStreamWriter:
    tombstones = ErasureTombstones(STATE_TABLE, dynamodb)
    return LakeStreamWriter(S3RawBucket(ANALYTICS_BUCKET, s3), tombstones, CURATED_TABLE, dynamodb, Clock())


def objects(s3: Any, prefix: str = LAKE_PREFIX) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=ANALYTICS_BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=ANALYTICS_BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def lake_ids(s3: Any) -> list[str]:
    return sorted(i for data in objects(s3).values() for i in from_parquet(data).column("event_id").to_pylist())


def ids(*numbers: int) -> list[str]:
    return sorted(f"00000000-0000-4000-8000-{n:012d}" for n in numbers)


def test_inserts_are_written_modify_and_remove_are_not(writer: LakeStreamWriter, s3: Any) -> None:
    # GIVEN an insert, a MODIFY (a retried ProcessBatch rewrote its item) and a REMOVE (TTL, erasure)
    records = [record(1), record(2, name="MODIFY"), record(3, name="REMOVE")]
    # WHEN write_lake gets them (the filter should have dropped the last two)
    answer = writer.write(records)
    # THEN only the insert is in the lake
    assert lake_ids(s3) == ids(1)
    assert answer == {"records": 3, "events": 1, "objects": 1, "unreadable": 0, "erased": 0, "ignored": 2}


def test_a_batch_spanning_two_hours_writes_one_object_per_hour_named_after_its_first_record(
    writer: LakeStreamWriter, s3: Any
) -> None:
    records = [record(1, curated(1, HOUR_5)), record(2, curated(2, HOUR_6)), record(3, curated(3, HOUR_5))]
    assert writer.write(records)["objects"] == 2
    keys = sorted(objects(s3))
    assert keys == [
        f"{LAKE_PREFIX}dt=2026-11-28/hour=05/s-{101:021d}-{1:032x}.parquet",
        f"{LAKE_PREFIX}dt=2026-11-28/hour=06/s-{102:021d}-{2:032x}.parquet",
    ]
    assert lake_ids(s3) == ids(1, 2, 3)


def test_a_retried_batch_overwrites_the_same_objects(writer: LakeStreamWriter, s3: Any) -> None:
    # GIVEN a stream batch written (or half written before a failure)
    records = [record(n, curated(n, HOUR_5 if n % 2 else HOUR_6)) for n in range(1, 9)]
    writer.write(records)
    first = sorted(objects(s3))
    # WHEN Lambda delivers the same records again (a retry from the same position)
    writer.write(records)
    # THEN the same keys were written again: every event once
    assert sorted(objects(s3)) == first
    assert lake_ids(s3) == ids(*range(1, 9))


class FailingBucket:
    """The analytics bucket failing at the `fail_at`-th put (an S3 error), then working again."""

    def __init__(self, bucket: S3RawBucket, fail_at: int) -> None:
        self.bucket, self.fail_at, self.puts = bucket, fail_at, 0

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self.puts += 1
        if self.puts == self.fail_at:
            raise StorageError(f"cannot write {key}: SlowDown")
        self.bucket.put(key, data)


@pytest.mark.parametrize("retry_split", [[10], [3, 7], [4, 6], [1, 3, 6], [7, 3]])
def test_a_failed_batch_retried_in_any_size_leaves_every_event_once(
    dynamodb: Any, s3: Any, retry_split: list[int]
) -> None:
    # GIVEN ten records over two hours, whose first delivery wrote one hour's object (05, whose first record
    # is the 4th) and failed on the other
    records = [record(n, curated(n, HOUR_5 if n in (4, 5, 8) else HOUR_6)) for n in range(1, 11)]
    bucket = FailingBucket(S3RawBucket(ANALYTICS_BUCKET, s3), fail_at=2)
    tombstones = ErasureTombstones(STATE_TABLE, dynamodb)
    writer = LakeStreamWriter(bucket, tombstones, CURATED_TABLE, dynamodb, Clock())
    with pytest.raises(StorageError):
        writer.write(records)
    assert lake_ids(s3)  # one object was written before the failure
    # WHEN the stream delivers them again from the same position, in batches of these sizes, in order
    start = 0
    for size in retry_split:
        writer.write(records[start : start + size])
        start += size
    # THEN the lake holds each of the ten events exactly once
    assert lake_ids(s3) == ids(*range(1, 11))


def test_unreadable_records_are_kept_and_counted_not_lost_and_do_not_block(writer: LakeStreamWriter, s3: Any) -> None:
    bad_base64 = record(2)
    bad_base64["dynamodb"]["NewImage"]["payload"]["B"] = "not base64!"
    not_zlib = record(3)
    not_zlib["dynamodb"]["NewImage"]["payload"]["B"] = base64.b64encode(b"plain").decode()
    not_an_event = record(4, b"[1, 2, 3]")
    bomb = record(5)  # 2 MiB of spaces: over MAX_EVENT_BYTES once decompressed
    bomb["dynamodb"]["NewImage"]["payload"]["B"] = base64.b64encode(zlib.compress(b" " * 2**21)).decode()
    no_image = record(6)
    del no_image["dynamodb"]["NewImage"]
    records: list[Any] = [record(1), bad_base64, not_zlib, not_an_event, bomb, no_image, "garbage", record(7)]
    # WHEN write_lake gets them
    answer = writer.write(records)
    # THEN the good events are in the lake, and the six others kept as they came, in one object
    assert lake_ids(s3) == ids(1, 7)
    assert answer["unreadable"] == 6
    kept = objects(s3, UNREADABLE_PREFIX)
    assert list(kept) == [f"{UNREADABLE_PREFIX}{102:021d}-{2:032x}.json"]
    assert orjson.loads(next(iter(kept.values()))) == records[1:7]
    # AND delivered again, the same object is written again: nothing added
    writer.write(records)
    assert list(objects(s3, UNREADABLE_PREFIX)) == list(kept)
    assert lake_ids(s3) == ids(1, 7)


def test_an_s3_failure_fails_the_invocation_so_lambda_delivers_it_again(dynamodb: Any, s3: Any) -> None:
    bucket = FailingBucket(S3RawBucket(ANALYTICS_BUCKET, s3), fail_at=1)
    writer = LakeStreamWriter(bucket, ErasureTombstones(STATE_TABLE, dynamodb), CURATED_TABLE, dynamodb, Clock())
    with pytest.raises(StorageError):
        writer.write([record(1)])
    writer.write([record(1)])
    assert lake_ids(s3) == ids(1)


def test_events_of_an_erased_user_received_before_the_erasure_are_left_out_and_their_items_deleted(
    writer: LakeStreamWriter, dynamodb: Any, s3: Any
) -> None:
    # GIVEN the victim's curated items in the table, and an erasure of the victim started now
    before = curated(1, user="victim", received_ms=NOW_MS - 5_000)
    after = curated(2, user="victim", received_ms=NOW_MS + 5_000)  # sent after the erasure started
    other = curated(3, user="other", received_ms=NOW_MS - 5_000)
    for number, payload in ((1, before), (2, after), (3, other)):
        item = record(number, payload)["dynamodb"]["NewImage"]
        item["payload"] = {"B": compress_payload(payload)}
        dynamodb.put_item(TableName=CURATED_TABLE, Item=item)
    ErasureTombstones(STATE_TABLE, dynamodb).record(ErasureTarget.of(["victim"], [], None), NOW_MS)
    # WHEN their inserts reach write_lake after the erasure passed the lake
    answer = writer.write([record(1, before), record(2, after), record(3, other)])
    # THEN the victim's event received before the erasure is not in the lake, nor in the curated table
    assert answer["erased"] == 1
    assert lake_ids(s3) == ids(2, 3)
    stored = dynamodb.scan(TableName=CURATED_TABLE)["Items"]
    assert sorted(i["event_id"]["S"] for i in stored) == ids(2, 3)
    # AND the tombstone holds no id in clear
    tombstones = dynamodb.scan(TableName=STATE_TABLE)["Items"]
    assert len(tombstones) == 1
    assert b"victim" not in orjson.dumps(tombstones, default=str)


def test_a_tombstone_past_its_life_is_ignored(dynamodb: Any, s3: Any) -> None:
    tombstones = ErasureTombstones(STATE_TABLE, dynamodb)
    tombstones.record(ErasureTarget.of(["victim"], [], None), NOW_MS - 3 * 86_400_000)
    assert tombstones.live(NOW_MS) == []
    assert len(tombstones.live(NOW_MS - 3 * 86_400_000)) == 1


class Services:
    def __init__(self, writer: LakeStreamWriter | None) -> None:
        self.lake_writer = writer

    @property
    def lake_compactor(self) -> Any:
        raise AssertionError("not used")


@pytest.mark.parametrize("event", [{}, {"Records": "x"}, {"Records": [{}] * 10_001}, []])
def test_write_lake_refuses_what_is_not_a_stream_event(writer: LakeStreamWriter, event: Any) -> None:
    with pytest.raises(InputError):
        handle_write_lake(event, Services(writer))


def test_with_the_lake_off_records_are_acknowledged_and_nothing_is_written(s3: Any) -> None:
    answer = handle_write_lake({"Records": [record(1)]}, Services(None))
    assert answer["records"] == 1
    assert answer["events"] == 0
    assert objects(s3) == {}
