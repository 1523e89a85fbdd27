"""The ports: the small interfaces the use-cases need, implemented by the local and the AWS adapters.

Each is as narrow as the use-cases allow, so that an adapter is a few short methods and tests can
pass an in-memory one. Adapters translate their vendor's exceptions into `StorageError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventpipe.core.aggregate import BatchAggregate
    from eventpipe.core.insight_rows import InsightsRows
    from eventpipe.core.model import App, BatchRecord, Rejection
    from eventpipe.core.queued import IndexedRequest
    from eventpipe.core.segments import InsightsView


class RawBucket(Protocol):
    """Object storage: the raw bucket (`incoming/`, `raw/`, `staged/`, `rejected/`), or the analytics bucket."""

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store `data`; when `durable`, the object survives a crash once this returns."""

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> Iterator[str]: ...


class CuratedStore(Protocol):
    def put_new(self, batch_id: str, events: Sequence[tuple[str, str, bytes]], *, staged: bool = False) -> list[bool]:
        """Store `(event_id, event_type, payload)` rows unless the id is stored already; True where new.

        Retry-safe: an event stored earlier by the same `batch_id` counts as new again, so a
        retried step reports the same answer and aggregation still sees every new event once.
        `staged`: the caller has just called `stage(batch_id, events)` with these rows, so what it
        wrote is not written again; without it, `put_new` writes everything itself.
        """

    def stage(self, batch_id: str, events: Sequence[tuple[str, str, bytes]]) -> None:
        """Write what `put_new(batch_id, events)` will need and can be written before it (the same
        rows, next): called outside the batch's write transaction, so that the transaction waits for
        no file write. A store with nothing to write first does nothing."""

    def owners(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The batch that stored each of these event ids, by id in lower case; ids not stored are absent."""


class Quarantine(Protocol):
    def add(self, rejections: Sequence[Rejection]) -> None:
        """Store rejections, one record per `(batch_id, index)`: adding it again replaces its reasons."""

    def update(self, rejections: Sequence[Rejection]) -> None:
        """Replace the records of these `(batch_id, index)` that are still stored, and add none: a replay
        rejecting its events again must not bring back a record released or erased meanwhile."""

    def for_batch(self, batch_id: str) -> list[Rejection]: ...

    def iter_all(self, limit: int | None = None) -> Iterator[Rejection]:
        """Oldest first."""

    def remove(self, keys: Sequence[tuple[str, int]]) -> None:
        """Delete the `(batch_id, index)` records, once a replay has taken them over."""


class BatchStore(Protocol):
    def create(self, record: BatchRecord) -> bool:
        """Record a pending batch; False (and no change) when the id exists already."""

    def get(self, batch_id: str) -> BatchRecord | None: ...

    def mark_done(self, batch_id: str, curated: int, duplicates: int, rejected: dict[str, int]) -> None: ...

    def mark_failed(self, batch_id: str, error: str) -> None: ...

    def unfinished(self) -> list[BatchRecord]:
        """Pending and failed batches, oldest first: what recovery and replay drive to the end."""


class RequestIndex(Protocol):
    """Which group holds each queued request (AWS micro-batching, core/grouping.py): a few items per
    group and time bucket, none per request."""

    def add(self, requests: Sequence[IndexedRequest]) -> None:
        """List requests in their group (all of one group); writing the same again changes nothing."""

    def groups_of(self, batch_ids: Sequence[str]) -> dict[str, IndexedRequest]:
        """The queued requests among these ids that some group lists already, by id."""

    def find(self, batch_id: str) -> IndexedRequest | None:
        """The group of one queued request id; None while no group lists it."""


class RequestQueue(Protocol):
    """A durable stream of requests (a Firehose delivery stream): once `send` returns, the request
    cannot be lost, and it reaches the raw bucket as a line of a delivered object."""

    max_message_bytes: int

    def send(self, body: bytes) -> None: ...


class InsightsStore(Protocol):
    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        """Add a batch's aggregate atomically, once: False when the batch was applied already."""

    def read(
        self, since_minute: int, until_minute: int, *, funnel: bool = True, view: InsightsView = ...
    ) -> InsightsRows:
        """The stored per-minute rows with `since_minute <= minute < until_minute` (epoch seconds).

        The funnel is counted from the minutes' session sketches (core/funnel.py), which also means
        reading those of the two hours before the window; with `funnel=False` they are not read and
        the funnel counts are zeros. Rows come per minute and segment (core/segments.py), every
        segment of the window; the funnel counts only the segments `view` counts (default: every
        app, no bots).
        """

    def dirty_hours(self) -> list[tuple[int, int]]:
        """`(hour start, version)` of every hour changed since the export last cleared it, oldest first.

        `apply` marks the hours it changes in the same transaction as the aggregate, so no change
        can escape the export.
        """

    def clear_dirty(self, hour: int, version: int) -> bool:
        """Forget that `hour` is dirty, only if it is still at `version` (else an apply changed it since)."""


class WorkflowStarter(Protocol):
    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        """Start (or, for a known batch id, harmlessly restart) the workflow for one raw batch.

        `retry` asks for a new execution of a batch whose earlier one failed.
        """


class AppStore(Protocol):
    """Apps and the hashes of their write keys (see `core/apps.py`; `App` is in `core/model.py`)."""

    def create(self, app: App) -> None: ...

    def by_key_hash(self, key_hash: str) -> App | None:
        """The app with this key hash, revoked or not."""

    def list_all(self) -> list[App]:
        """Every app, oldest first."""

    def revoke(self, app_id: str, now_ms: int) -> bool:
        """Revoke the app's key for good; False when no such app (revoking twice keeps the first time)."""

    def any_app(self) -> bool: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...
