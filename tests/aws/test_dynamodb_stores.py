"""The DynamoDB stores: curated events and batch records (the quarantine: test_dynamodb_quarantine.py).

What the ports promise is checked for every backend in tests/contract; here, what is DynamoDB's own
on moto's DynamoDB (item shapes, TTL, the sharded unfinished index, Scan pages), and throttling,
`UnprocessedItems` and service errors, which moto does not produce, on botocore's Stubber.
"""

from __future__ import annotations

import uuid
import zlib
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from botocore.exceptions import ClientError

from eventpipe.adapters.aws.dynamodb_curated import DynamoCuratedStore, decompress_payload
from eventpipe.adapters.aws.dynamodb_state import (
    UNFINISHED_SHARDS,
    DynamoBatchStore,
    _record_item,
    open_shard,
)
from eventpipe.adapters.aws.retry import NO_WAIT, Backoff
from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE
from eventpipe.core.errors import StorageError
from eventpipe.core.model import BatchRecord, BatchStatus
from tests.aws.conftest import CURATED_TABLE, STATE_TABLE, Sleeps
from tests.aws.scans import curated_count
from tests.conftest import make_event

if TYPE_CHECKING:
    from botocore.stub import Stubber

M_MS = 1_795_845_600_000  # 2026-11-28T06:00:00Z
THROTTLED = "ProvisionedThroughputExceededException"


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


# --- DynamoCuratedStore on moto -------------------------------------------------------------------


NOW_S = 1_780_000_000


@pytest.fixture
def curated(dynamodb: Any) -> DynamoCuratedStore:
    return DynamoCuratedStore(CURATED_TABLE, dynamodb, backoff=NO_WAIT, ttl_days=7, now_s=lambda: NOW_S)


def stored(dynamodb: Any, event_id: str) -> dict[str, str] | None:
    """The stored curated item as plain strings (the payload decompressed), without its TTL; or None."""
    item = dynamodb.get_item(TableName=CURATED_TABLE, Key={"event_id": {"S": event_id}}).get("Item")
    if item is None:
        return None
    assert item.pop(TTL_ATTRIBUTE) == {"N": str(NOW_S + 7 * 86_400)}
    payload = decompress_payload(item.pop("payload")["B"]).decode()
    return {**{name: value["S"] for name, value in item.items()}, "payload": payload}


def test_a_typical_curated_event_is_stored_in_one_write_unit(curated: DynamoCuratedStore, dynamodb: Any) -> None:
    # GIVEN an enriched event of about 1 KB, as the pipeline stores it
    event = make_event("purchase", user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15")
    event["enrichment"] = {"fingerprint": "f" * 64, "campaign": {"source": "newsletter", "medium": "email"}}
    event["context"] = {
        "page": {"url": "https://shop.example.com/p/1?utm_source=newsletter", "referrer": "https://www.example.org/"},
        "locale": "de-DE",
        "screen": {"width": 1512, "height": 982},
    }
    event["enrichment"]["event_time_ms"] = 1_780_000_000_123
    event["enrichment"]["user_agent"] = {"browser": "Safari", "os": "macOS", "device": "desktop", "bot": False}
    event["enrichment"]["referrer"] = {"host": "www.example.org", "medium": "referral"}
    event["enrichment"]["revenue"] = {"amount": 59.9, "currency": "EUR"}
    event["received_at"] = "2026-11-28T06:00:00.456Z"
    event["sent_at"] = "2026-11-28T06:00:00.321Z"
    event["anonymous_id"] = str(uuid.uuid4())
    payload = orjson.dumps(event)
    assert len(payload) > 1024
    # WHEN it is stored
    curated.put_new("b1", [(event["event_id"], "purchase", payload)])
    # THEN its item (names and values, as DynamoDB sizes it) is under 1 KB, and the payload reads back
    item = dynamodb.get_item(TableName=CURATED_TABLE, Key={"event_id": {"S": event["event_id"]}})["Item"]
    size = sum(len(name) + len(next(iter(value.values()))) for name, value in item.items())
    assert size <= 1024
    assert (stored(dynamodb, event["event_id"]) or {})["payload"] == payload.decode()


def test_the_ttl_must_be_a_day_or_more(dynamodb: Any) -> None:
    with pytest.raises(ValueError, match="ttl_days"):
        DynamoCuratedStore(CURATED_TABLE, dynamodb, ttl_days=0)


def test_put_new_stores_new_events_and_flags_duplicates_of_other_batches(
    curated: DynamoCuratedStore, dynamodb: Any
) -> None:
    # GIVEN batch b1 with two events
    assert curated.put_new("b1", [(uid(1), "page_view", b'{"n":1}'), (uid(2), "purchase", b'{"n":"\xc3\xa9"}')]) == [
        True,
        True,
    ]
    # WHEN batch b2 repeats one of them and adds a new one
    flags = curated.put_new("b2", [(uid(2), "purchase", b'{"n":"again"}'), (uid(3), "signup", b"{}")])
    # THEN only the new one is new, and the stored copy of the repeat is the first, its payload as text
    assert flags == [False, True]
    assert curated_count(dynamodb) == 3
    assert stored(dynamodb, uid(2)) == {
        "event_id": uid(2),
        "batch_id": "b1",
        "event_type": "purchase",
        "payload": '{"n":"é"}',
    }
    assert stored(dynamodb, uid(3)) == {"event_id": uid(3), "batch_id": "b2", "event_type": "signup", "payload": "{}"}


def test_upper_and_lower_case_ids_are_the_same_event(curated: DynamoCuratedStore, dynamodb: Any) -> None:
    # GIVEN an event id in upper case
    event_id = "7F0C3A4E-1F7E-4B8E-9A55-2E0F6F9D1C11"
    assert curated.put_new("b1", [(event_id, "page_view", b"upper")]) == [True]
    # WHEN the lower-case id comes in another batch, or both cases in one batch
    assert curated.put_new("b2", [(event_id.lower(), "page_view", b"lower")]) == [False]
    mixed = uid(0xABCDEF)
    assert curated.put_new("b3", [(mixed.upper(), "signup", b"a"), (mixed, "signup", b"b")]) == [True, False]
    # THEN each is one event, stored under its lower-case id
    assert curated_count(dynamodb) == 2
    assert (stored(dynamodb, event_id.lower()) or {})["payload"] == "upper"
    assert (stored(dynamodb, mixed) or {})["payload"] == "a"


# --- DynamoBatchStore on moto ---------------------------------------------------------------------


@pytest.fixture
def batches(dynamodb: Any) -> DynamoBatchStore:
    return DynamoBatchStore(STATE_TABLE, dynamodb, backoff=NO_WAIT)


def pending(batch_id: str, received_at_ms: int = M_MS, received: int = 10) -> BatchRecord:
    return BatchRecord(batch_id, f"raw/{batch_id}.ndjson", "test", received_at_ms, received)


def raw_record(dynamodb: Any, batch_id: str) -> dict[str, Any]:
    key = {"pk": {"S": f"batch#{batch_id}"}, "sk": {"S": "batch"}}
    item: dict[str, Any] = dynamodb.get_item(TableName=STATE_TABLE, Key=key).get("Item", {})
    return item


def test_mark_done_records_the_counts_and_leaves_the_unfinished_index(batches: DynamoBatchStore, dynamodb: Any) -> None:
    # GIVEN a pending batch, which carries the `open` key of the sparse index
    batches.create(pending("b1"))
    assert raw_record(dynamodb, "b1")["open"] == {"S": open_shard("b1")}
    # WHEN it is marked done
    batches.mark_done("b1", 6, 1, {"schema_violation": 2, "malformed_json": 1})
    # THEN it has its counts, no `open` attribute, and is not unfinished
    record = batches.get("b1")
    assert record is not None
    assert record.status is BatchStatus.DONE
    assert (record.curated, record.duplicates, record.rejected) == (6, 1, 3)
    assert record.rejected_by_code == {"schema_violation": 2, "malformed_json": 1}
    assert record.error is None
    assert "open" not in raw_record(dynamodb, "b1")
    assert batches.unfinished() == []


def test_the_unfinished_index_is_sharded_by_batch_id_and_listed_oldest_first_across_shards(
    batches: DynamoBatchStore, dynamodb: Any
) -> None:
    # GIVEN 200 pending batches, received in an order unrelated to their ids
    ids = [f"batch-{n:03d}" for n in range(200)]
    for n, batch_id in enumerate(ids):
        batches.create(pending(batch_id, M_MS + (n * 7919) % 200))
    # THEN their index keys spread over every shard, each batch's key stable and one of unfinished#0..15
    keys = {raw_record(dynamodb, batch_id)["open"]["S"] for batch_id in ids}
    assert keys == {f"unfinished#{shard}" for shard in range(UNFINISHED_SHARDS)}
    assert all(open_shard(batch_id) == open_shard(batch_id) for batch_id in ids)
    # AND one listing merges the shards, oldest first, each batch once
    listed = batches.unfinished()
    assert sorted(r.batch_id for r in listed) == ids
    assert [r.received_at_ms for r in listed] == sorted(r.received_at_ms for r in listed)
    # AND a done batch leaves its shard
    batches.mark_done(ids[0], 1, 0, {})
    assert ids[0] not in {r.batch_id for r in batches.unfinished()}


def test_records_written_before_the_sharding_are_still_listed(batches: DynamoBatchStore, dynamodb: Any) -> None:
    # GIVEN a pending record with the single key value the unsharded index used
    item = _record_item(pending("old", M_MS - 1))
    item["open"] = {"S": "1"}
    dynamodb.put_item(TableName=STATE_TABLE, Item=item)
    batches.create(pending("new", M_MS))
    # THEN it is listed with the new ones, and leaves the index when done
    assert [r.batch_id for r in batches.unfinished()] == ["old", "new"]
    batches.mark_done("old", 0, 0, {})
    assert [r.batch_id for r in batches.unfinished()] == ["new"]


# --- Stubber: throttling, UnprocessedItems and service errors --------------------------------------


def put_params(event_id: str, batch_id: str = "b1") -> dict[str, Any]:
    return {
        "TableName": CURATED_TABLE,
        "Item": {
            "event_id": {"S": event_id},
            "batch_id": {"S": batch_id},
            "event_type": {"S": "page_view"},
            "payload": {"B": zlib.compress(b"{}", 6)},
            TTL_ATTRIBUTE: {"N": str(NOW_S + 7 * 86_400)},
        },
        "ConditionExpression": "attribute_not_exists(event_id) OR batch_id = :b",
        "ExpressionAttributeValues": {":b": {"S": batch_id}},
    }


def test_a_throttled_put_is_retried_with_backoff(
    stubbed: tuple[Any, Stubber], backoff: Backoff, sleeps: Sleeps
) -> None:
    # GIVEN a put throttled twice then accepted, and a put whose condition fails (another batch's event)
    client, stubber = stubbed
    stubber.add_client_error("put_item", THROTTLED, expected_params=put_params(uid(1)))
    stubber.add_client_error("put_item", THROTTLED, expected_params=put_params(uid(1)))
    stubber.add_response("put_item", {}, expected_params=put_params(uid(1)))
    stubber.add_client_error("put_item", "ConditionalCheckFailedException", expected_params=put_params(uid(2)))
    store = DynamoCuratedStore(CURATED_TABLE, client, backoff=backoff, max_workers=1, now_s=lambda: NOW_S)
    # WHEN both are put
    flags = store.put_new("b1", [(uid(1), "page_view", b"{}"), (uid(2), "page_view", b"{}")])
    # THEN the first is new after two waits, the second a duplicate without a wait
    assert flags == [True, False]
    assert sleeps == [0.05, 0.1]


def test_a_put_throttled_past_the_backoff_is_a_storage_error(
    stubbed: tuple[Any, Stubber], backoff: Backoff, sleeps: Sleeps
) -> None:
    # GIVEN a put throttled on every one of the backoff's 3 tries
    client, stubber = stubbed
    for _ in range(3):
        stubber.add_client_error("put_item", THROTTLED)
    store = DynamoCuratedStore(CURATED_TABLE, client, backoff=backoff, max_workers=1)
    # WHEN / THEN put_new fails after exactly 3 tries (the fixture checks that none is left unused)
    with pytest.raises(StorageError, match="still throttled after 3 tries") as info:
        store.put_new("b1", [(uid(1), "page_view", b"{}")])
    assert isinstance(info.value.__cause__, ClientError)
    assert len(sleeps) == 2


def test_another_service_error_is_a_storage_error_at_once(
    stubbed: tuple[Any, Stubber], backoff: Backoff, sleeps: Sleeps
) -> None:
    # GIVEN a table that does not exist
    client, stubber = stubbed
    stubber.add_client_error("put_item", "ResourceNotFoundException", "Requested resource not found")
    store = DynamoCuratedStore(CURATED_TABLE, client, backoff=backoff, max_workers=1)
    # WHEN / THEN the first error fails the call, without a retry
    with pytest.raises(StorageError, match="ResourceNotFoundException") as info:
        store.put_new("b1", [(uid(1), "page_view", b"{}"), (uid(2), "page_view", b"{}")])
    assert isinstance(info.value.__cause__, ClientError)
    assert sleeps == []


def test_batch_store_calls_retry_throttling_and_translate_other_errors(
    stubbed: tuple[Any, Stubber], backoff: Backoff, sleeps: Sleeps
) -> None:
    client, stubber = stubbed
    batches = DynamoBatchStore(STATE_TABLE, client, backoff=backoff)
    # GIVEN a read throttled once, then answered
    stubber.add_client_error("get_item", THROTTLED)
    stubber.add_response("get_item", {})
    # THEN it is retried after one wait
    assert batches.get("b1") is None
    assert sleeps == [0.05]
    # GIVEN a write the service refuses for another reason
    stubber.add_client_error("update_item", "ValidationException", "bad expression")
    # THEN it is a StorageError at once
    with pytest.raises(StorageError, match=r"cannot mark batch b1 done.*ValidationException"):
        batches.mark_done("b1", 1, 0, {})
    assert sleeps == [0.05]
