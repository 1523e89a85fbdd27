"""DynamoDB calls with throttling retried: one call, a conditional write, the pages of a Query or Scan,
and BatchWriteItem.

botocore retries a throttled call a few times by itself; what outlasts that, and BatchWriteItem's
`UnprocessedItems`, is retried with `retry.retried`. Any other vendor error, or throttling that
outlasts the backoff, becomes `StorageError`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, is_throttling, storage_error
from eventpipe.adapters.aws.retry import Backoff, TryAgain, retried

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        QueryOutputTypeDef,
        ScanOutputTypeDef,
        UniversalAttributeValueTypeDef,
        WriteRequestUnionTypeDef,
    )

    Item = Mapping[str, UniversalAttributeValueTypeDef]  # an item or a key, in attribute-value form

_T = TypeVar("_T")
BATCH_WRITE_MAX = 25  # DynamoDB's limit per BatchWriteItem call
CONDITION_FAILED = "ConditionalCheckFailedException"
DEFAULT_BACKOFF = Backoff()


class DynamoTable:
    """One DynamoDB table of a store: its name, the client (made when not given) and the backoff for retries."""

    def __init__(
        self, table_name: str, client: DynamoDBClient | None = None, *, backoff: Backoff = DEFAULT_BACKOFF
    ) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client if client is not None else make_client("dynamodb")
        self._backoff = backoff


def attempt(backoff: Backoff, action: str, call: Callable[[], _T]) -> _T:
    """`call()` with throttling retried; a failed condition comes out as its ClientError, else `StorageError`."""
    return retried(backoff, action, lambda: throttled(action, call))


def throttled(action: str, call: Callable[[], _T]) -> _T:
    """One try of `call()`: throttling raised as `TryAgain`, a failed condition as its ClientError, any
    other vendor error as `StorageError`."""
    try:
        return call()
    except AWS_ERRORS as exc:
        if error_code(exc) == CONDITION_FAILED:
            raise
        if not is_throttling(exc):
            raise storage_error(exc, action) from exc
        raise TryAgain("still throttled") from exc


def conditional(backoff: Backoff, action: str, call: Callable[[], object]) -> bool:
    """Run a conditional write: False when its condition failed (and nothing changed)."""
    try:
        attempt(backoff, action, call)
    except ClientError:  # `attempt` lets only a failed condition through
        return False
    return True


def paged_items(
    backoff: Backoff, action: str, call: Callable[[dict[str, Any]], QueryOutputTypeDef | ScanOutputTypeDef]
) -> Iterator[dict[str, AttributeValueTypeDef]]:
    """The items of every page of a Query or Scan; `call(paging)` passes `paging` on as keyword arguments."""
    paging: dict[str, Any] = {}
    while True:
        page = attempt(backoff, action, partial(call, paging))
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        paging = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def batch_put(client: DynamoDBClient, table: str, items: Sequence[Item], backoff: Backoff) -> None:
    """Put every item (attribute-value form); only for puts whose repetition is harmless."""
    batch_write(client, table, [{"PutRequest": {"Item": item}} for item in items], backoff, f"cannot write to {table}")


def batch_delete(client: DynamoDBClient, table: str, keys: Sequence[Item], backoff: Backoff) -> None:
    batch_write(
        client, table, [{"DeleteRequest": {"Key": key}} for key in keys], backoff, f"cannot delete from {table}"
    )


def batch_write(
    client: DynamoDBClient, table: str, requests: Sequence[WriteRequestUnionTypeDef], backoff: Backoff, action: str
) -> None:
    """BatchWriteItem in calls of 25, `UnprocessedItems` and throttling retried; a retry repeats whole requests."""
    for start in range(0, len(requests), BATCH_WRITE_MAX):
        pending: list[WriteRequestUnionTypeDef] = list(requests[start : start + BATCH_WRITE_MAX])

        def one_try() -> None:
            nonlocal pending
            answer = throttled(action, lambda: client.batch_write_item(RequestItems={table: pending}))
            pending = list(answer.get("UnprocessedItems", {}).get(table, []))
            if pending:
                raise TryAgain(f"{len(pending)} items still unprocessed")

        retried(backoff, action, one_try)
