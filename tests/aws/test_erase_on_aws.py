"""The `erase` function under moto: a user's events leave the lake, the curated table, the quarantine and
the raw bucket (old object versions included); others stay; the log holds counts, never the id."""

from __future__ import annotations

import base64
import gzip
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.aws.dynamodb_quarantine import DynamoQuarantine
from eventpipe.adapters.aws.s3 import read_form
from eventpipe.core.enrich.pseudonymise import pseudonym
from eventpipe.core.errors import InputError
from eventpipe.lake.parquet import from_parquet
from tests.aws.conftest import ANALYTICS_BUCKET, BUCKET, CURATED_TABLE, STATE_TABLE
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.aws.test_edge_on_aws import post
from tests.aws.test_microbatching_on_aws import create_request_stream, deliver, records
from tests.conftest import make_event, ndjson

if TYPE_CHECKING:
    from collections.abc import Iterator

VICTIM = "victim-aws-41"
KEY = "k" * 32


@pytest.fixture
def versioned(s3: Any) -> Any:
    for bucket in (BUCKET, ANALYTICS_BUCKET):  # as deployed: both buckets keep versions
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3


def every_version(s3: Any, bucket: str) -> Iterator[tuple[str, bytes]]:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
            yield version["Key"], read_form(version["Key"], body)  # raw batches are stored gzip-compressed


def lake_user_ids(s3: Any) -> list[str | None]:
    """The user_id of every row of every version of every lake object."""
    return [
        user
        for key, body in every_version(s3, ANALYTICS_BUCKET)
        if key.endswith(".parquet")
        for user in from_parquet(body).column("user_id").to_pylist()
    ]


def seed(pipeline: Pipeline, s3: Any) -> list[str]:
    """The victim's events (curated, rejected, anonymous) among others; the others' event ids."""
    others = [make_event(user_id=f"other-{i}") for i in range(6)]
    rejected = make_event("purchase", user_id=VICTIM, properties={"order_id": "o-9"})  # no revenue
    pipeline.invoke("ingest", {"events": [*others[:3], make_event(user_id=VICTIM), rejected]})
    pipeline.invoke("ingest", {"events": [make_event(user_id=VICTIM), *others[3:]]})
    pipeline.drain()
    # a dropped file not read yet, holding the victim's event and another's
    s3.put_object(Bucket=BUCKET, Key="incoming/later.ndjson", Body=ndjson(make_event(user_id=VICTIM), others[0]))
    return [e["event_id"] for e in others]


def curated_users(dynamodb: Any) -> dict[str, str]:
    from eventpipe.adapters.aws.dynamodb_curated import decompress_payload

    pages = dynamodb.get_paginator("scan").paginate(TableName=CURATED_TABLE)
    items = [item for page in pages for item in page["Items"]]
    return {item["event_id"]["S"]: orjson.loads(decompress_payload(item["payload"]["B"]))["user_id"] for item in items}


def test_erase_removes_the_user_from_every_store_and_version(
    dynamodb: Any, versioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = versioned
    pipeline = load_pipeline(monkeypatch)
    others = seed(pipeline, s3)
    assert VICTIM in lake_user_ids(s3)
    assert VICTIM in curated_users(dynamodb).values()
    assert [r for r in DynamoQuarantine(STATE_TABLE, dynamodb).iter_all() if VICTIM in r.raw]
    logged: list[tuple[str, dict[str, Any]]] = []  # what the function logs, through its report
    monkeypatch.setattr(pipeline.module.REPORT, "info", lambda message, **extra: logged.append((message, extra)))
    # WHEN the erase function runs for the user
    answer = pipeline.invoke("erase", {"user_id": VICTIM})
    # THEN it counts the user's 2 curated events and 1 quarantine record, and the files it rewrote
    assert answer["events_erased"] == 3
    assert answer["files_rewritten"] >= 4  # two lake objects, two raw batches, the dropped file
    # AND no store holds the user any more, in any object version
    assert VICTIM not in lake_user_ids(s3)
    assert VICTIM not in curated_users(dynamodb).values()
    quarantine = DynamoQuarantine(STATE_TABLE, dynamodb)  # records hold the text compressed: read them back
    assert not [r for r in quarantine.iter_all() if VICTIM in r.raw]
    assert [key for key, body in every_version(s3, BUCKET) if VICTIM.encode() in body] == []
    # AND every other event stays: in the lake, the curated table and the dropped file
    assert sorted(curated_users(dynamodb)) == sorted(e.lower() for e in others)
    assert sorted(u for u in lake_user_ids(s3) if u) == sorted(f"other-{i}" for i in range(6))
    dropped = s3.get_object(Bucket=BUCKET, Key="incoming/later.ndjson")["Body"].read()
    assert [orjson.loads(line)["user_id"] for line in dropped.splitlines()] == ["other-0"]
    # AND the log holds the counts, never the id
    assert [message for message, _ in logged] == ["erasure finished"]
    assert logged[0][1]["events_erased"] == 3
    assert VICTIM not in orjson.dumps(logged).decode()
    # AND running it again finds nothing left
    assert pipeline.invoke("erase", {"user_id": VICTIM})["events_erased"] == 0


def test_with_pseudonymisation_the_stored_hmac_is_matched(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_PSEUDONYMISE_FIELDS="user_id", EVENTPIPE_PSEUDONYM_KEY=KEY)
    seed(pipeline, s3)
    hmac = pseudonym(KEY.encode(), VICTIM)
    assert hmac in lake_user_ids(s3)
    answer = pipeline.invoke("erase", {"user_id": VICTIM})  # the original id, in clear
    assert answer["events_erased"] == 3
    assert hmac not in lake_user_ids(s3)
    assert hmac not in curated_users(dynamodb).values()


def test_erasing_one_user_of_a_batch_item_keeps_the_others_records(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one batch whose rejected events (no revenue) belong to the victim and two other users:
    # one quarantine item holds the three records
    pipeline = load_pipeline(monkeypatch)
    users = ["other-a", VICTIM, "other-b", VICTIM]
    rejected = [make_event("purchase", user_id=user, properties={"order_id": f"o-{n}"}) for n, user in enumerate(users)]
    pipeline.invoke("ingest", {"events": [make_event(user_id="other-c"), *rejected]})
    pipeline.drain()
    quarantine = DynamoQuarantine(STATE_TABLE, dynamodb)
    assert len(list(quarantine.iter_all())) == 4
    # WHEN the victim is erased
    answer = pipeline.invoke("erase", {"user_id": VICTIM})
    # THEN the victim's two records left the item, and the others' two stay in it, in the one item
    assert answer["events_erased"] == 2
    left = list(quarantine.iter_all())
    assert [orjson.loads(r.raw)["user_id"] for r in left] == ["other-a", "other-b"]
    pages = dynamodb.get_paginator("scan").paginate(TableName=STATE_TABLE)
    chunks = [i for page in pages for i in page["Items"] if i["sk"]["S"].startswith("rej#")]
    assert [(i["sk"]["S"], i["v"]["N"]) for i in chunks] == [("rej#+00000000", "2")]  # rewritten once


@pytest.mark.parametrize(
    "request_",
    [{}, {"user_id": ""}, {"user_id": 7}, {"anonymous_id": ["a"] * 101}, {"user_id": "x" * 257}, {"user_id": "\ud800"}],
)
def test_a_malformed_request_is_refused_and_changes_nothing(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, request_: dict[str, Any]
) -> None:
    pipeline = load_pipeline(monkeypatch)
    with pytest.raises(InputError):
        pipeline.invoke("erase", request_)


def test_an_event_on_its_way_to_the_lake_during_the_erasure_does_not_come_back(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventpipe.adapters.aws.erasure_tombstones import WRITER_TIMEOUT_S

    pipeline = load_pipeline(monkeypatch)
    seed(pipeline, s3)
    # GIVEN an event of the victim curated, its stream record still waiting in write_lake's batching window
    late = make_event(user_id=VICTIM)
    pipeline.invoke("ingest", {"events": [late, make_event(user_id="other-late")]})
    pipeline.drain(lake=False)
    delivered = pipeline.curated_stream.take() if pipeline.curated_stream else []
    assert len(delivered) == 2
    # WHEN the erasure runs (it finds the victim's event in the curated table only once the lake holds it)
    answer = pipeline.invoke("erase", {"user_id": VICTIM})
    # THEN it recorded its tombstone and waited out write_lake's invocations before reading the lake
    assert pipeline.slept == [WRITER_TIMEOUT_S + 1]
    assert answer["events_erased"] == 3
    # WHEN the record reaches write_lake after the erasure, and once more (a retried stream batch)
    first = pipeline.invoke("write_lake", {"Records": delivered})
    again = pipeline.invoke("write_lake", {"Records": delivered})
    # THEN the victim's event is left out of the lake, its curated item deleted; the other's event stays
    assert first["erased"] == again["erased"] == 1
    assert VICTIM not in lake_user_ids(s3)
    assert "other-late" in lake_user_ids(s3)
    assert VICTIM not in curated_users(dynamodb).values()
    # AND an event the victim sends after the erasure is new data: it is curated and lands in the lake
    pipeline.invoke("ingest", {"events": [make_event(user_id=VICTIM)]})
    pipeline.drain()
    assert lake_user_ids(s3).count(VICTIM) == 1


def raw_objects_holding(s3: Any, text: str) -> list[str]:
    """The raw bucket's current objects whose text holds `text`."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    bodies = {key: read_form(key, s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) for key in keys}
    return [key for key, body in bodies.items() if text.encode() in body]


def test_a_replay_that_rejects_the_event_again_has_its_own_raw_batch_rewritten(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_pipeline(monkeypatch)
    # GIVEN the victim's rejected event (no revenue) replayed and rejected again: the replay's raw batch
    # holds its text, and the quarantine record keeps the first batch's id
    rejected = make_event("purchase", user_id=VICTIM, properties={"order_id": "o-9"})
    pipeline.invoke("ingest", {"events": [rejected, make_event(user_id="other-r")]})
    pipeline.drain()
    assert pipeline.invoke("replay", {"rejected": True})["batches"] == 1
    pipeline.drain()
    assert any(key.startswith("raw/replay-") for key in raw_objects_holding(s3, VICTIM))
    # WHEN the victim is erased
    assert pipeline.invoke("erase", {"user_id": VICTIM})["events_erased"] == 1
    # THEN no raw object holds the id: the first batch's nor the replay's
    assert raw_objects_holding(s3, VICTIM) == []


def test_a_duplicate_the_pipeline_dropped_leaves_no_copy_in_its_raw_batch(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_pipeline(monkeypatch)
    # GIVEN the victim's event sent twice (a client's retry): the second batch's copy is a duplicate, so the
    # lake names only the first batch, yet the second raw batch holds the line too
    event = make_event(user_id=VICTIM)
    pipeline.invoke("ingest", {"events": [event]})
    pipeline.invoke("ingest", {"events": [event, make_event(user_id="other-d")]})
    pipeline.drain()
    assert len([key for key in raw_objects_holding(s3, VICTIM) if key.startswith("raw/")]) == 2
    # WHEN the victim is erased THEN neither raw batch holds the id
    assert pipeline.invoke("erase", {"user_id": VICTIM})["events_erased"] == 1
    assert raw_objects_holding(s3, VICTIM) == []


def test_stream_records_kept_as_unreadable_lose_the_user_s_records_too(
    dynamodb: Any, versioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import zlib

    from eventpipe.adapters.aws.s3_lake import UNREADABLE_PREFIX

    s3 = versioned
    pipeline = load_pipeline(monkeypatch)
    seed(pipeline, s3)

    def record(payload: bytes, *, compress: bool = True) -> dict[str, Any]:
        data = zlib.compress(payload) if compress else payload
        return {"eventName": "INSERT", "dynamodb": {"NewImage": {"payload": {"B": base64.b64encode(data).decode()}}}}

    # GIVEN write_lake kept three records it could not make rows of: the victim's event (no event id, say),
    # another user's, and one whose text holds the victim's id but cannot be decoded
    victims = record(orjson.dumps({"user_id": VICTIM, "event_type": "page_view"}))
    others = record(orjson.dumps({"user_id": "other-x", "event_type": "page_view"}))
    broken = {"eventName": "INSERT", "dynamodb": {"NewImage": {"user_id": {"S": VICTIM}}}}  # no payload
    key = f"{UNREADABLE_PREFIX}00000000000000000000001-x.json"
    s3.put_object(Bucket=ANALYTICS_BUCKET, Key=key, Body=orjson.dumps([victims, others, broken]))
    # WHEN the user is erased
    pipeline.invoke("erase", {"user_id": VICTIM})
    # THEN the object keeps the other user's record only, and no version of it holds the victim's
    kept = orjson.loads(s3.get_object(Bucket=ANALYTICS_BUCKET, Key=key)["Body"].read())
    assert kept == [others]
    versions = [body for k, body in every_version(s3, ANALYTICS_BUCKET) if k == key]
    assert len(versions) == 1
    assert VICTIM.encode() not in versions[0]


def stored_text(key: str, body: bytes) -> bytes:
    """What a stored object says: a `requests/` object's lines are each a request gzipped then base64."""
    if not key.startswith("requests/"):
        return read_form(key, body)
    lines = []
    for line in body.splitlines():
        try:
            lines.append(gzip.decompress(base64.b64decode(line)))
        except (OSError, ValueError):  # not a request: its text as it is
            lines.append(line)
    return b"\n".join(lines)


def versions_holding(s3: Any, bucket: str, text: str) -> list[tuple[str, bool]]:
    """(key, is it the current version) of every version of `bucket` whose text holds `text`; Parquet read."""
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            key = version["Key"]
            body = s3.get_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["Body"].read()
            if key.endswith(".parquet"):
                holds = text in from_parquet(body).column("user_id").to_pylist()
            else:
                holds = text.encode() in stored_text(key, body)
            if holds:
                found.append((key, bool(version["IsLatest"])))
    return found


def test_old_versions_of_objects_deleted_by_the_pipeline_are_erased_too(
    dynamodb: Any, versioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = versioned
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_REQUEST_STREAM=create_request_stream())
    # GIVEN micro-batched requests of the victim and another user: the stream's objects under requests/ are
    # deleted once grouped, so only their old versions hold the text
    pipeline.invoke("ingest", post([make_event(user_id=VICTIM), make_event(user_id="other-m")]))
    pipeline.invoke("ingest", post([make_event(user_id="other-n")]))
    # (and a line that is not a request, holding the id: it is searched as text)
    s3.put_object(Bucket=BUCKET, Key="requests/2099/bad", Body=b'{"user_id": "%s", "cut\n' % VICTIM.encode())
    deliver(pipeline, s3, ["requests/2099/bad", *records(s3)], "one")
    pipeline.drain()
    # AND a lake object holding the victim deleted (as the compaction deletes the objects it merged)
    lake_key = next(key for key, _ in versions_holding(s3, ANALYTICS_BUCKET, VICTIM))
    s3.copy_object(
        Bucket=ANALYTICS_BUCKET, Key=f"{lake_key}.merged-input.parquet", CopySource=f"{ANALYTICS_BUCKET}/{lake_key}"
    )
    s3.delete_object(Bucket=ANALYTICS_BUCKET, Key=f"{lake_key}.merged-input.parquet")
    old_raw = [key for key, latest in versions_holding(s3, BUCKET, VICTIM) if not latest]
    assert any(key.startswith("requests/") for key in old_raw)
    # WHEN the victim is erased
    assert pipeline.invoke("erase", {"user_id": VICTIM})["events_erased"] == 1
    # THEN no version of any object in either bucket holds the id
    assert versions_holding(s3, BUCKET, VICTIM) == []
    assert versions_holding(s3, ANALYTICS_BUCKET, VICTIM) == []
    # AND the others' old versions stay (they hold no line of the victim)
    assert versions_holding(s3, BUCKET, "other-n")


def test_an_unknown_user_is_said_so_and_nothing_is_changed(
    dynamodb: Any, versioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = versioned
    pipeline = load_pipeline(monkeypatch)
    seed(pipeline, s3)

    def stores() -> Any:
        buckets = {}
        for bucket in (BUCKET, ANALYTICS_BUCKET):
            pages = list(s3.get_paginator("list_object_versions").paginate(Bucket=bucket))
            versions = [(v["Key"], v["VersionId"], v["ETag"]) for page in pages for v in page.get("Versions", [])]
            markers = [(m["Key"], m["VersionId"]) for page in pages for m in page.get("DeleteMarkers", [])]
            buckets[bucket] = (sorted(versions), sorted(markers))
        tables = {}
        for table in (CURATED_TABLE, STATE_TABLE):
            items = [i for page in dynamodb.get_paginator("scan").paginate(TableName=table) for i in page["Items"]]
            kept = [i for i in items if i.get("pk", {}).get("S") != "erasure"]
            tables[table] = sorted(orjson.dumps(i, default=repr) for i in kept)
        return buckets, tables

    before = stores()
    # WHEN an id nothing holds is erased
    answer = pipeline.invoke("erase", {"user_id": "nobody-at-all"})
    # THEN the answer says so, and no object, version, curated item or quarantine record changed (the only
    # write is the erasure's tombstone: salted hashes, no id, gone in two days)
    assert (answer["events_erased"], answer["files_rewritten"], answer["old_versions_deleted"]) == (0, 0, 0)
    assert answer["note"] == "no event of that user is stored: nothing was changed"
    assert stores() == before
