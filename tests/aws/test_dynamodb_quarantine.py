"""DynamoQuarantine: a batch's rejections in one item per 100 indexes, changed under a version condition.

What the port promises is checked for every backend in tests/contract; here, what is DynamoDB's own:
the items written (and their write units), a retry writing nothing, records too large to share an
item, items written before the chunks, two writers of one item (replay and erasure), unreadable or
oversized items, and throttling on botocore's Stubber.
"""

from __future__ import annotations

import base64
import os
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.aws import quarantine_items
from eventpipe.adapters.aws.dynamodb_quarantine import DynamoQuarantine
from eventpipe.adapters.aws.quarantine_items import CorruptQuarantineItemError, chunk_item, own_item
from eventpipe.adapters.aws.retry import NO_WAIT
from eventpipe.core.errors import StorageError
from eventpipe.core.model import Reason, Rejection
from tests.aws.conftest import STATE_TABLE, Sleeps
from tests.conftest import make_event

if TYPE_CHECKING:
    from collections.abc import Callable

    from botocore.stub import Stubber

    from eventpipe.adapters.aws.retry import Backoff

REASONS = (Reason("schema_violation", "$.properties.path", "'path' is a required property"),)
THROTTLED = "ProvisionedThroughputExceededException"


def rejection(batch_id: str, index: int, *, raw: str | None = None, reasons: tuple[Reason, ...] = REASONS) -> Rejection:
    """A rejected event of about 700 bytes of JSON (a generated page view), unless `raw` is given."""
    text = raw if raw is not None else orjson.dumps(make_event("page_view", user_id=f"u-{index}")).decode()
    return Rejection(batch_id, index, "validate", reasons, text, None)


def large(batch_id: str, index: int) -> Rejection:
    """A rejection whose text does not compress below `OWN_ITEM_BYTES`: it keeps an item of its own."""
    return rejection(batch_id, index, raw=base64.b64encode(os.urandom(6000)).decode())


def items(dynamodb: Any) -> dict[str, dict[str, Any]]:
    """The quarantine's items by `pk / sk`."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=STATE_TABLE)
    found = [item for page in pages for item in page["Items"] if item["sk"]["S"].startswith("rej#")]
    return {f"{item['pk']['S']} / {item['sk']['S']}": item for item in found}


def write_units(item: dict[str, Any]) -> int:
    """DynamoDB's write units for an item: a unit per started KB of names and values."""
    size = sum(len(name) + len(value.get("S", "")) + len(value.get("B", b"")) + 4 for name, value in item.items())
    return -(-size // 1024)


class Calls:
    """The moto client, counting calls by operation; `before[operation]` runs before the next such call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: dict[str, int] = {}
        self.before: dict[str, list[Callable[[], object]]] = {}

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)

        def counted(**kwargs: Any) -> Any:
            self.counts[name] = self.counts.get(name, 0) + 1
            if self.before.get(name):
                self.before[name].pop(0)()
            return call(**kwargs)

        return counted


@pytest.fixture
def quarantine(dynamodb: Any) -> DynamoQuarantine:
    return DynamoQuarantine(STATE_TABLE, dynamodb, backoff=NO_WAIT)


# --- one item per batch ---------------------------------------------------------------------------


def test_ten_rejections_of_a_batch_are_one_item_of_a_few_write_units(dynamodb: Any) -> None:
    # GIVEN ten rejected events of a 100-event batch, as ProcessBatch adds them
    client = Calls(dynamodb)
    quarantine = DynamoQuarantine(STATE_TABLE, client, backoff=NO_WAIT)
    records = [rejection("b1", index) for index in range(3, 100, 10)]
    # WHEN they are added
    quarantine.add(records)
    # THEN one PutItem wrote one item, of at most 3 write units instead of 10, and nothing was read
    assert client.counts == {"put_item": 1}
    (item,) = items(dynamodb).values()
    assert (item["sk"]["S"], item["v"]) == ("rej#+00000000", {"N": "1"})
    assert write_units(item) <= 3
    # AND the records read back as added, in index order
    assert quarantine.for_batch("b1") == records


def test_indexes_fill_one_item_per_hundred(quarantine: DynamoQuarantine, dynamodb: Any) -> None:
    quarantine.add([rejection("b1", n, raw="{}") for n in (0, 99, 100, 250, 1_000_000)])
    assert sorted(items(dynamodb)) == [
        "batch#b1 / rej#+00000000",
        "batch#b1 / rej#+00000001",
        "batch#b1 / rej#+00000002",
        "batch#b1 / rej#+00010000",
    ]
    assert [r.index for r in quarantine.for_batch("b1")] == [0, 99, 100, 250, 1_000_000]


def test_a_retried_add_writes_nothing_and_a_new_reason_raises_the_version(dynamodb: Any) -> None:
    client = Calls(dynamodb)
    quarantine = DynamoQuarantine(STATE_TABLE, client, backoff=NO_WAIT)
    records = [rejection("b1", n) for n in (1, 5)]
    quarantine.add(records)
    stored = items(dynamodb)
    # WHEN the same step runs again (a retried or redelivered ProcessBatch)
    client.counts.clear()
    quarantine.add(records)
    # THEN its create fails its condition, the item is read, and nothing is written: the same item stays
    assert client.counts == {"put_item": 1, "get_item": 1}
    assert items(dynamodb) == stored
    # WHEN one record gets new reasons (a replay rejecting it again) THEN the item is rewritten at version 2
    other = (Reason("enrichment_failed", "$", "geo: no database"),)
    quarantine.add([rejection("b1", 5, raw=records[1].raw, reasons=other)])
    assert items(dynamodb)["batch#b1 / rej#+00000000"]["v"] == {"N": "2"}
    assert [r.reasons for r in quarantine.for_batch("b1")] == [REASONS, other]


def test_removing_every_record_of_an_item_deletes_it(quarantine: DynamoQuarantine, dynamodb: Any) -> None:
    quarantine.add([rejection("b1", n, raw="{}") for n in (1, 2, 150)])
    quarantine.remove([("b1", 1), ("b1", 2)])
    assert sorted(items(dynamodb)) == ["batch#b1 / rej#+00000001"]
    assert [r.index for r in quarantine.for_batch("b1")] == [150]


# --- records of their own, and items written before the chunks ------------------------------------


def test_a_record_too_large_to_share_keeps_an_item_of_its_own(quarantine: DynamoQuarantine, dynamodb: Any) -> None:
    # GIVEN a batch with two small rejections and a large one between them
    small, big = [rejection("b1", 1), rejection("b1", 9)], large("b1", 4)
    quarantine.add([*small, big])
    # THEN the large one is an item of its own, beside the batch's chunk, and all read back in index order
    assert sorted(items(dynamodb)) == ["batch#b1 / rej#+00000000", "batch#b1 / rej#0000000004"]
    assert quarantine.for_batch("b1") == [small[0], big, small[1]]
    assert sorted((r.batch_id, r.index) for r in quarantine.iter_all()) == [("b1", 1), ("b1", 4), ("b1", 9)]
    # WHEN a small record grows too large (new, longer text) THEN it leaves the chunk for an item of its own
    grown = large("b1", 9)
    quarantine.add([grown])
    assert quarantine.for_batch("b1") == [small[0], big, grown]
    assert "batch#b1 / rej#0000000009" in items(dynamodb)
    # WHEN the records are removed THEN no item is left
    quarantine.remove([("b1", 1), ("b1", 4), ("b1", 9)])
    assert items(dynamodb) == {}


def test_a_copy_left_by_an_interrupted_move_is_never_read_twice_and_removed_with_the_record(
    quarantine: DynamoQuarantine, dynamodb: Any
) -> None:
    # GIVEN index 4 both in its chunk and in an item of its own (a move between shapes cut short)
    quarantine.add([rejection("b1", 4), rejection("b1", 7)])
    stale = large("b1", 4)
    dynamodb.put_item(TableName=STATE_TABLE, Item=own_item(stale))
    # THEN the chunk's copy is the record, once, for both reads
    assert [r.raw != stale.raw for r in quarantine.for_batch("b1")] == [True, True]
    assert sorted(r.index for r in quarantine.iter_all()) == [4, 7]
    # AND removing the record removes both copies
    quarantine.remove([("b1", 4)])
    assert [r.index for r in quarantine.for_batch("b1")] == [7]
    assert sorted(items(dynamodb)) == ["batch#b1 / rej#+00000000"]


def test_items_written_before_the_chunks_are_read_updated_and_removed(
    quarantine: DynamoQuarantine, dynamodb: Any
) -> None:
    # GIVEN a batch quarantined by an earlier version: one item per record, compressed or plain
    old = rejection("old", 3)
    dynamodb.put_item(TableName=STATE_TABLE, Item=own_item(old))
    plain = [{"code": "schema_violation", "path": "$.properties", "message": "bad"}]
    dynamodb.put_item(
        TableName=STATE_TABLE,
        Item={
            "pk": {"S": "batch#old"},
            "sk": {"S": "rej#0000000008"},
            "batch_id": {"S": "old"},
            "index": {"N": "8"},
            "stage": {"S": "validate"},
            "reasons": {"S": orjson.dumps(plain).decode()},
            "raw": {"S": '{"event_id": "e"}'},
        },
    )
    # THEN both read as before, beside a record added now
    quarantine.add([rejection("old", 5, raw="new")])
    assert [(r.index, r.reasons[0].code) for r in quarantine.for_batch("old")] == [
        (3, "schema_violation"),
        (5, "schema_violation"),
        (8, "schema_violation"),
    ]
    assert len(list(quarantine.iter_all())) == 3
    # WHEN one is updated (a replay rejects it again) THEN the chunk's new copy is read
    other = (Reason("enrichment_failed", "$", "geo: no database"),)
    quarantine.add([rejection("old", 3, raw=old.raw, reasons=other)])
    assert quarantine.for_batch("old")[0].reasons == other
    # WHEN the old records are removed (a replay curated them, or an erasure) THEN both copies go
    quarantine.remove([("old", 3), ("old", 8)])
    assert [r.index for r in quarantine.for_batch("old")] == [5]
    assert sorted(items(dynamodb)) == ["batch#old / rej#+00000000"]


# --- two writers of one item ----------------------------------------------------------------------


def test_an_erasure_between_a_replays_read_and_write_is_kept(dynamodb: Any) -> None:
    # GIVEN a batch item holding the records of three users
    client = Calls(dynamodb)
    replay = DynamoQuarantine(STATE_TABLE, client, backoff=NO_WAIT)
    erasure = DynamoQuarantine(STATE_TABLE, dynamodb, backoff=NO_WAIT)
    records = [rejection("b1", n) for n in (3, 5, 7)]
    erasure.add(records)
    # AND an erasure of the user of index 3 that runs after the replay has read the item, before it writes
    client.before["put_item"] = [lambda: None, lambda: erasure.remove([("b1", 3)])]
    # WHEN the replay rejects index 5 again with new reasons (its create fails, it reads, then writes)
    other = (Reason("enrichment_failed", "$", "geo: no database"),)
    replay.add([rejection("b1", 5, raw=records[1].raw, reasons=other)])
    # THEN its first write failed its version condition, and it wrote again over what the erasure left:
    # index 3 is not brought back, and the new reasons are kept
    assert client.counts["put_item"] == 3
    assert [(r.index, r.reasons) for r in erasure.for_batch("b1")] == [(5, other), (7, REASONS)]
    assert items(dynamodb)["batch#b1 / rej#+00000000"]["v"] == {"N": "3"}  # created, erased from, replayed


def test_a_replay_between_an_erasures_read_and_write_is_kept(dynamodb: Any) -> None:
    # GIVEN a batch item with four records
    client = Calls(dynamodb)
    erasure = DynamoQuarantine(STATE_TABLE, client, backoff=NO_WAIT)
    replay = DynamoQuarantine(STATE_TABLE, dynamodb, backoff=NO_WAIT)
    replay.add([rejection("b1", n) for n in (1, 2, 3, 4)])
    # AND a replay releasing index 2 (curated now) that runs after the erasure read the item
    client.before["put_item"] = [lambda: replay.remove([("b1", 2)])]
    # WHEN the erasure removes index 4
    erasure.remove([("b1", 4)])
    # THEN both changes hold: 2 and 4 gone, the others kept
    assert [r.index for r in replay.for_batch("b1")] == [1, 3]
    # AND when a replay releases index 1 between the erasure's read and its write (of index 1 alone),
    # the erasure's write fails, and on the item read again it removes the last record: the item goes
    client.before["put_item"] = [lambda: replay.remove([("b1", 1)])]
    erasure.remove([("b1", 3)])
    assert items(dynamodb) == {}
    assert client.counts["delete_item"] == 1


def test_an_item_that_keeps_changing_is_a_storage_error(dynamodb: Any) -> None:
    client = Calls(dynamodb)
    quarantine = DynamoQuarantine(STATE_TABLE, client, backoff=NO_WAIT)
    other = DynamoQuarantine(STATE_TABLE, dynamodb, backoff=NO_WAIT)
    other.add([rejection("b1", 1, raw="{}")])
    flips = [(lambda n=n: other.add([rejection("b1", 2, raw=str(n))])) for n in range(40)]
    client.before["put_item"] = [lambda: None, *flips]  # every write of `quarantine` finds a new version
    with pytest.raises(StorageError, match=r"batch#b1 / rej#\+00000000 kept changing"):
        quarantine.add([rejection("b1", 3, raw="{}")])
    assert [r.index for r in other.for_batch("b1")] == [1, 2]


# --- unreadable and oversized items ---------------------------------------------------------------


def test_an_unreadable_item_is_a_clear_error_and_no_write_replaces_it(
    quarantine: DynamoQuarantine, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN batch b1's first chunk corrupted, a record of b1 elsewhere, and another batch
    quarantine.add([rejection("b1", 250), rejection("b2", 0)])
    broken = chunk_item("b1", 0, [rejection("b1", 1)], 1)
    broken["records"] = {"B": b"not zlib"}
    dynamodb.put_item(TableName=STATE_TABLE, Item=broken)
    # THEN reading the batch names the item
    with pytest.raises(CorruptQuarantineItemError, match=r"batch#b1 / rej#\+00000000.*not zlib data"):
        quarantine.for_batch("b1")
    with pytest.raises(CorruptQuarantineItemError):
        list(quarantine.iter_all())
    # AND adding to or removing from that chunk fails and leaves it as it was
    with pytest.raises(CorruptQuarantineItemError):
        quarantine.add([rejection("b1", 2)])
    with pytest.raises(CorruptQuarantineItemError):
        quarantine.remove([("b1", 1)])
    assert items(dynamodb)["batch#b1 / rej#+00000000"]["records"] == {"B": b"not zlib"}
    # AND the other records are read and changed as usual
    assert [r.index for r in quarantine.for_batch("b2")] == [0]
    quarantine.remove([("b1", 250)])
    assert "batch#b1 / rej#+00000002" not in items(dynamodb)
    # GIVEN an item that inflates past the limit, or cut short, or not a list of records
    monkeypatch.setattr(quarantine_items, "MAX_INFLATED_BYTES", 1000)
    for data, message in [
        (zlib.compress(b" " * 2000), "expands past 1000 bytes"),
        (zlib.compress(b"[]")[:-3], "truncated"),
        (zlib.compress(b'{"index": 1}'), "TypeError|KeyError|AttributeError"),
    ]:
        broken["records"] = {"B": data}
        dynamodb.put_item(TableName=STATE_TABLE, Item=broken)
        with pytest.raises(CorruptQuarantineItemError, match=message):
            quarantine.for_batch("b1")


def test_records_over_the_item_limit_are_refused_and_the_stored_ones_kept(
    quarantine: DynamoQuarantine, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stored record, and records that (with no size kept apart) would overflow one item
    quarantine.add([rejection("b1", 0)])
    monkeypatch.setattr(quarantine_items, "OWN_ITEM_BYTES", 10**9)
    monkeypatch.setattr(quarantine_items, "MAX_RECORDS_BYTES", 50_000)
    # WHEN they are added THEN it is a clear error, and the item is the one stored before
    with pytest.raises(StorageError, match=r"batch#b1 / rej#\+00000000 take \d+ bytes compressed, over 50000"):
        quarantine.add([large("b1", n) for n in range(1, 20)])
    assert [r.index for r in quarantine.for_batch("b1")] == [0]


# --- Stubber: throttling and unprocessed writes ---------------------------------------------------


def test_a_throttled_write_is_retried_and_a_scan_stops_at_the_limit(
    stubbed: tuple[Any, Stubber], backoff: Backoff, sleeps: Sleeps
) -> None:
    client, stubber = stubbed
    quarantine = DynamoQuarantine(STATE_TABLE, client, backoff=backoff)
    # GIVEN a chunk's create throttled once, then taken
    record = rejection("b1", 0, raw="{}")
    put = {
        "TableName": STATE_TABLE,
        "Item": chunk_item("b1", 0, [record], 1),
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    stubber.add_client_error("put_item", THROTTLED, expected_params=put)
    stubber.add_response("put_item", {}, expected_params=put)
    quarantine.add([record])
    assert sleeps == [0.05]
    # GIVEN a first Scan page holding two records and saying more pages follow
    page = [chunk_item("b1", 0, [rejection("b1", n, raw="{}") for n in range(2)], 1)]
    stubber.add_response("scan", {"Items": page, "LastEvaluatedKey": {"pk": {"S": "batch#b1"}, "sk": {"S": "x"}}})
    # WHEN two records are asked for THEN they come from one Scan (an unqueued second call would fail)
    assert [r.index for r in quarantine.iter_all(limit=2)] == [0, 1]


def test_records_of_their_own_left_unprocessed_are_written_again(
    stubbed: tuple[Any, Stubber], backoff: Backoff, sleeps: Sleeps
) -> None:
    client, stubber = stubbed
    quarantine = DynamoQuarantine(STATE_TABLE, client, backoff=backoff)
    # GIVEN two large records, one left unprocessed by the first BatchWriteItem
    first, second = large("b1", 0), large("b1", 1)
    puts = [{"PutRequest": {"Item": own_item(r)}} for r in (first, second)]
    stubber.add_response("batch_write_item", {"UnprocessedItems": {STATE_TABLE: [puts[1]]}})
    stubber.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {STATE_TABLE: [puts[1]]}})
    stubber.add_response("get_item", {})  # their chunk, read to take them out of it: there is none
    # WHEN they are added THEN the left-over put is sent again, after one wait
    quarantine.add([first, second])
    assert len(sleeps) == 1


def test_a_replay_never_brings_back_a_record_erased_between_its_read_and_its_write(dynamodb: Any) -> None:
    # GIVEN a batch item with three records, and a fourth record kept in an item of its own
    client = Calls(dynamodb)
    replay = DynamoQuarantine(STATE_TABLE, client, backoff=NO_WAIT)
    erasure = DynamoQuarantine(STATE_TABLE, dynamodb, backoff=NO_WAIT)
    records = [rejection("b1", n) for n in (3, 5, 7)]
    erasure.add([*records, large("b1", 9)])
    # AND an erasure of indexes 5 and 9 that runs after the replay read the batch's items, before it writes
    client.before["put_item"] = [lambda: erasure.remove([("b1", 5), ("b1", 9)])]
    # WHEN the replay rejects indexes 3, 5 and 9 again with new reasons
    other = (Reason("enrichment_failed", "$", "geo: no database"),)
    replay.update([replace(r, reasons=other) for r in (records[0], records[1], large("b1", 9))])
    # THEN index 3 has its new reasons, 7 is unchanged, and the erased 5 and 9 stay gone
    assert [(r.index, r.reasons) for r in erasure.for_batch("b1")] == [(3, other), (7, REASONS)]
    assert sorted(items(dynamodb)) == ["batch#b1 / rej#+00000000"]


def test_a_record_kept_apart_is_updated_in_place_with_its_text(quarantine: DynamoQuarantine, dynamodb: Any) -> None:
    big = large("b1", 4)
    quarantine.add([big, rejection("b1", 5)])
    other = (Reason("enrichment_failed", "$", "geo: no database"),)
    quarantine.update([replace(big, reasons=other, raw="replayed text")])
    assert quarantine.for_batch("b1")[0] == replace(big, reasons=other)
    assert sorted(items(dynamodb)) == ["batch#b1 / rej#+00000000", "batch#b1 / rej#0000000004"]


# --- retention ----------------------------------------------------------------------------------------


def test_with_a_ttl_every_item_written_expires_that_many_days_after_its_write(dynamodb: Any) -> None:
    # GIVEN a quarantine whose items live 30 days (the stack's RawRetentionDays), at a fixed clock
    now = [1_796_000_000.0]
    quarantine = DynamoQuarantine(STATE_TABLE, dynamodb, backoff=NO_WAIT, ttl_days=30, now_s=lambda: now[0])
    # WHEN a chunk and a record of its own are added
    quarantine.add([rejection("b1", 1), rejection("b1", 2), large("b1", 3)])
    # THEN both carry the state table's TTL attribute, 30 days on
    expiry = {name: item["expires_at"]["N"] for name, item in items(dynamodb).items()}
    assert expiry == {"batch#b1 / rej#+00000000": "1798592000", "batch#b1 / rej#0000000003": "1798592000"}
    # AND a rewrite (a replay's update, an erasure's removal) moves it to 30 days after that write
    now[0] += 86_400
    quarantine.update([replace(rejection("b1", 1), stage="replay"), replace(large("b1", 3), stage="replay")])
    quarantine.remove([("b1", 2)])
    expiry = {name: item["expires_at"]["N"] for name, item in items(dynamodb).items()}
    assert expiry == {"batch#b1 / rej#+00000000": "1798678400", "batch#b1 / rej#0000000003": "1798678400"}


def test_without_a_ttl_items_are_kept(quarantine: DynamoQuarantine, dynamodb: Any) -> None:
    quarantine.add([rejection("b1", 1), large("b1", 3)])
    assert all("expires_at" not in item for item in items(dynamodb).values())
    with pytest.raises(ValueError, match="at least 1"):
        DynamoQuarantine(STATE_TABLE, dynamodb, ttl_days=0)


def test_the_stack_sets_the_quarantine_ttl_to_the_raw_retention() -> None:
    from eventpipe.settings import AwsResources

    names = {
        "EVENTPIPE_BUCKET": "b",
        "EVENTPIPE_CURATED_TABLE": "c",
        "EVENTPIPE_STATE_TABLE": "s",
        "EVENTPIPE_INSIGHTS_TABLE": "i",
    }
    assert AwsResources.from_env(names).quarantine_ttl_days == 30  # RawRetentionDays' default
    assert AwsResources.from_env({**names, "EVENTPIPE_QUARANTINE_TTL_DAYS": "90"}).quarantine_ttl_days == 90
