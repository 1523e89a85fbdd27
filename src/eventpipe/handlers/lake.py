"""The AWS lake's functions: `write_lake` (the curated table's stream) and `compact_lake` (a schedule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from eventpipe.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.adapters.aws.lake_compaction import CompactionAnswer, S3LakeCompactor
    from eventpipe.adapters.aws.lake_stream import LakeStreamWriter, LakeWriteAnswer

MAX_RECORDS = 10_000  # the event source mapping's BatchSize can be at most this


class LakeServices(Protocol):
    """What the lake's functions need from the AWS runtime."""

    @property
    def lake_compactor(self) -> S3LakeCompactor: ...

    @property
    def lake_writer(self) -> LakeStreamWriter | None:
        """None when the lake is off (`EVENTPIPE_LAKE=off`)."""


def handle_compact_lake(event: Mapping[str, Any], services: LakeServices) -> CompactionAnswer:
    """A schedule's `{}`: finish interrupted merges, then merge closed or crowded hours; the counts."""
    return services.lake_compactor.compact().as_dict()


def handle_write_lake(event: Mapping[str, Any], services: LakeServices) -> LakeWriteAnswer:
    """A DynamoDB stream event (`{"Records": [...]}`): its curated events into the lake; the counts.

    An error (S3 or DynamoDB unavailable) is raised: Lambda delivers the same records again."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise InputError(f"write_lake takes a DynamoDB stream event: Records, a list of at most {MAX_RECORDS}")
    writer = services.lake_writer
    if writer is None:
        return {"records": len(records), "events": 0, "objects": 0, "unreadable": 0, "erased": 0, "ignored": 0}
    return writer.write(records)
