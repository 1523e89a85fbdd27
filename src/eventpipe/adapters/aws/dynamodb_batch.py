"""BatchWriteItem with its `UnprocessedItems` retried, for idempotent puts (a retry rewrites the same item)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.errors import AWS_ERRORS, is_throttling, storage_error
from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventpipe.adapters.aws.retry import Backoff

BATCH_WRITE_MAX = 25  # DynamoDB's limit per BatchWriteItem call


def batch_put(client: Any, table: str, items: Sequence[dict[str, Any]], backoff: Backoff) -> None:
    """Put every item (low-level attribute-value form); raise `StorageError` if some still fail after `backoff`.

    Only for puts whose repetition is harmless: a failure after a partial write is retried whole.
    """
    for start in range(0, len(items), BATCH_WRITE_MAX):
        pending: list[dict[str, Any]] = [
            {"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_MAX]
        ]
        for _ in backoff.waits():
            try:
                answer = client.batch_write_item(RequestItems={table: pending})
            except AWS_ERRORS as exc:
                if not is_throttling(exc):
                    raise storage_error(exc, f"cannot write to {table}") from exc
                continue
            pending = answer.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
        else:
            raise StorageError(
                f"cannot write to {table}: {len(pending)} items still unprocessed after {backoff.attempts} tries"
            )
