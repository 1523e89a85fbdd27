"""The lake's lease: the erasure and the compaction never rewrite the AWS lake at the same time.

Both rewrite lake objects: a merge reads an hour's objects, writes their rows into one new object and
deletes them; the erasure rewrites the objects holding a user. A merge that read an object before the
erasure rewrote it would write the user's rows back into its merged object. So each takes this lease
first: one item of the state table (`pk = lease`, `sk = lake`), put only where none is held or the one
held has expired (a conditional PutItem), deleted by its holder when done.

A lease expires `LEASE_S` after it was taken: past the Lambda timeout of both functions (900 s), so a
holder killed midway (timeout, out of memory) leaves a lease that no running invocation still holds.

The erasure is run by an operator and should not fail because a compaction happens to run: when a
compaction holds the lease it marks it `wanted` and polls (`ERASURE_WAIT_S` at most); the compaction
checks the lease before each merge and stops, releasing it, once an erasure wants it. When another
erasure holds it (one running, or one killed by its timeout, whose lease lasts until it expires) the
erasure fails at once, saying until when. A compaction that finds the lease held skips its run: the
next scheduled run merges what this one left.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.dynamodb_calls import DEFAULT_BACKOFF, attempt, conditional
from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from eventpipe.adapters.aws.retry import Backoff
    from eventpipe.core.ports import Clock

LEASE_KEY: dict[str, Any] = {"pk": {"S": "lease"}, "sk": {"S": "lake"}}
LEASE_S = 900 + 60  # both functions' Timeout in the templates (a test checks), and a margin for clocks
ERASURE_WAIT_S = 300  # how long the erasure waits for a compaction to finish its current merge
POLL_S = 5


class LakeLease:
    """One holder's view of the lease: `take`, `wanted_elsewhere` while holding it, `release`."""

    def __init__(
        self, table: str, client: DynamoDBClient, clock: Clock, *, holder: str, backoff: Backoff = DEFAULT_BACKOFF
    ) -> None:
        self._table = table
        self._client = client
        self._clock = clock
        self._backoff = backoff
        self._kind = holder
        self.holder = ""

    def take(self) -> bool:
        """Take the lease if no one holds it (or its holder's lease expired); False if someone does."""
        self.holder = f"{self._kind}#{secrets.token_hex(6)}"  # this take, not every one of its kind
        now_ms = self._clock.now_ms()
        item = {
            **LEASE_KEY,
            "holder": {"S": self.holder},
            "expires_ms": {"N": str(now_ms + LEASE_S * 1000)},
            TTL_ATTRIBUTE: {"N": str(now_ms // 1000 + LEASE_S + 86_400)},  # a leftover goes by TTL
        }
        return conditional(
            self._backoff,
            f"cannot take the lake's lease in {self._table}",
            lambda: self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR expires_ms < :now",
                ExpressionAttributeValues={":now": {"N": str(now_ms)}},
            ),
        )

    def want(self) -> None:
        """Tell the holder (a compaction) that an erasure waits: it stops after its current merge."""
        conditional(
            self._backoff,
            f"cannot ask for the lake's lease in {self._table}",
            lambda: self._client.update_item(
                TableName=self._table,
                Key=LEASE_KEY,
                UpdateExpression="SET wanted = :yes",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            ),
        )

    def still_mine(self) -> bool:
        """True while this holder has the lease and no erasure waits for it (a strongly consistent read)."""
        item = self._item()
        if item is None or item.get("holder", {}).get("S") != self.holder:
            return False
        return not item.get("wanted", {}).get("BOOL", False)

    def held_by(self) -> tuple[str, int] | None:
        """Who holds the lease (`erasure`, `compaction`) and until when (ms); None when no one does."""
        item = self._item()
        if item is None:
            return None
        return item["holder"]["S"].split("#", 1)[0], int(item["expires_ms"]["N"])

    def _item(self) -> dict[str, Any] | None:
        """The lease item as it is now (a strongly consistent read), None when no one holds it."""
        answer = attempt(
            self._backoff,
            f"cannot read the lake's lease in {self._table}",
            lambda: self._client.get_item(TableName=self._table, Key=LEASE_KEY, ConsistentRead=True),
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def release(self) -> None:
        """Give the lease back (if still this holder's: an expired one may be another's by now)."""
        conditional(
            self._backoff,
            f"cannot release the lake's lease in {self._table}",
            lambda: self._client.delete_item(
                TableName=self._table,
                Key=LEASE_KEY,
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": self.holder}},
            ),
        )
