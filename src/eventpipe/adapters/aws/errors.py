"""Translate botocore's exceptions into eventpipe's own at the adapter boundary."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from eventpipe.core.errors import StorageError

# Error codes that mean "slow down and try again", whatever the service.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "SlowDown",
        "TransactionConflictException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
# A botocore exception a caller may catch, as a tuple for `except`.
AWS_ERRORS = (ClientError, BotoCoreError)


def error_code(exc: BaseException) -> str:
    """The service's error code (`ConditionalCheckFailedException`, `NoSuchKey`), or the class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def is_throttling(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in THROTTLING_CODES


def cancellation_codes(exc: BaseException | None) -> list[str]:
    """The per-item codes of a cancelled transaction, in the order of its items (`None` where an item
    was fine); empty for any other error."""
    if not isinstance(exc, ClientError) or error_code(exc) != "TransactionCanceledException":
        return []
    return [str(reason.get("Code", "None")) for reason in exc.response.get("CancellationReasons", [])]


def storage_error(exc: BaseException, action: str) -> StorageError:
    """`StorageError` naming what failed and the service's code; raise it `from exc`."""
    return StorageError(f"{action}: {error_code(exc)}: {exc}")
