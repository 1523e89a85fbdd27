"""The AWS lake's scheduled work: compaction of the hours' small Parquet objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.adapters.aws.lake_compaction import CompactionAnswer, S3LakeCompactor


class LakeServices(Protocol):
    """What the lake's functions need from the AWS runtime."""

    @property
    def lake_compactor(self) -> S3LakeCompactor: ...


def handle_compact_lake(event: Mapping[str, Any], services: LakeServices) -> CompactionAnswer:
    """A schedule's `{}`: finish interrupted merges, then merge closed or crowded hours; the counts."""
    return services.lake_compactor.compact().as_dict()
