"""Translate the Azure SDKs' exceptions into eventpipe's own at the adapter boundary."""

from __future__ import annotations

from azure.core.exceptions import AzureError, HttpResponseError

from eventpipe.core.errors import StorageError

# Every exception the Azure SDKs (azure-core based) raise for a failed call, as a tuple for `except`.
AZURE_ERRORS = (AzureError,)
# Status codes that mean "slow down and try again": throttled (429), busy or unavailable.
RETRYABLE_STATUS = frozenset({408, 429, 449, 500, 503})


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed call, or None when the call never got an answer (timeout, DNS)."""
    return exc.status_code if isinstance(exc, HttpResponseError) else None


def storage_error(exc: BaseException, action: str) -> StorageError:
    """`StorageError` naming what failed and the service's status and code; raise it `from exc`."""
    code = getattr(exc, "error_code", None) or type(exc).__name__
    status = status_of(exc)
    return StorageError(f"{action}: {status or 'no answer'} {code}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    # Azure SDK messages carry the whole response (headers, XML) on the lines after the first.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
