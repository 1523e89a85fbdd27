"""Erasure tombstones: what the lake's stream writer checks so that an erased user's events stay out.

The lake on AWS is written from the curated table's stream (lake_stream.py). An event of a user whose
erasure is running can still be on its way there: its batch read the raw object before the erasure
rewrote it and curated the event after the erasure deleted the curated items, or its stream record
waits in a batching window, or a failed stream batch is delivered again after the erasure rewrote the
object it had written. So the `erase` function first records a tombstone, then waits until every
`write_lake` invocation that may have started before it has ended (`WRITER_TIMEOUT_S`), then erases.
`write_lake` reads the live tombstones at each invocation (one strongly consistent Query) and drops an
event whose `user_id` or `anonymous_id` a tombstone names and which was received before that erasure
started: events received after it are new data and stay, as with `eventpipe erase`.

A tombstone is one item of the state table, `pk = erasure`, `sk = <started ms>#<random>`: a random
salt and the SHA-256 of the salt and each stored form of the ids (in clear, and the pseudonym where
pseudonymisation is configured), never an id. It is needed while a stream record of the user can
still arrive: the stream keeps records 24 hours, so a tombstone lives `TOMBSTONE_TTL_S` (2 days, the
state table's TTL deletes it within a few days after; the writer ignores it from then on).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.dynamodb_calls import DEFAULT_BACKOFF, attempt
from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_dynamodb.client import DynamoDBClient

    from eventpipe.adapters.aws.retry import Backoff
    from eventpipe.erasure.target import ErasureTarget

TOMBSTONE_PK = "erasure"
TOMBSTONE_TTL_S = 2 * 86_400
WRITER_TIMEOUT_S = 60  # write_lake's Timeout in the templates (a test checks): no invocation outlives it


@dataclass(frozen=True, slots=True)
class Tombstone:
    """One erasure as the lake writer sees it: the hashed ids and when the erasure started."""

    started_ms: int
    salt: bytes
    hashes: frozenset[str]

    def names(self, value: str) -> bool:
        return _digest(self.salt, value) in self.hashes


def _digest(salt: bytes, value: str) -> str:
    return hashlib.sha256(salt + value.encode()).hexdigest()


class ErasureTombstones:
    """The tombstones in the state table: written by `erase`, read by `write_lake`."""

    def __init__(self, table: str, client: DynamoDBClient, *, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self._table = table
        self._client = client
        self._backoff = backoff

    def record(self, target: ErasureTarget, started_ms: int) -> None:
        """Record the erasure of `target`, started at `started_ms` (before it touches any store)."""
        salt = secrets.token_bytes(16)
        hashes = sorted({_digest(salt, value) for values in target.ids.values() for value in values})
        item: dict[str, Any] = {
            "pk": {"S": TOMBSTONE_PK},
            "sk": {"S": f"{started_ms:013d}#{secrets.token_hex(4)}"},
            "started_ms": {"N": str(started_ms)},
            "salt": {"B": salt},
            "hashes": {"SS": hashes},
            TTL_ATTRIBUTE: {"N": str(started_ms // 1000 + TOMBSTONE_TTL_S)},
        }
        attempt(
            self._backoff,
            f"cannot record an erasure in {self._table}",
            lambda: self._client.put_item(TableName=self._table, Item=item),
        )

    def live(self, now_ms: int) -> list[Tombstone]:
        """The tombstones of the erasures started in the last `TOMBSTONE_TTL_S` (strongly consistent)."""
        since = f"{max(0, now_ms - TOMBSTONE_TTL_S * 1000):013d}"
        found: list[Tombstone] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk >= :since",
            "ExpressionAttributeValues": {":pk": {"S": TOMBSTONE_PK}, ":since": {"S": since}},
            "ConsistentRead": True,
        }
        while True:
            page = attempt(
                self._backoff,
                f"cannot read the erasures of {self._table}",
                lambda request=request: self._client.query(**request),  # type: ignore[misc]
            )
            found += [_tombstone(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def _tombstone(item: dict[str, Any]) -> Tombstone:
    return Tombstone(int(item["started_ms"]["N"]), bytes(item["salt"]["B"]), frozenset(item["hashes"]["SS"]))


def erased_since(tombstones: Iterable[Tombstone], value: str | None) -> int | None:
    """The latest start of an erasure that names `value`, or None when none does."""
    if value is None:
        return None
    starts = [t.started_ms for t in tombstones if t.names(value)]
    return max(starts) if starts else None
