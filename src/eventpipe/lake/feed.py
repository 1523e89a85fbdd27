"""The lake's rows of the batches this process curated, built by the batch step, which holds each
event's fields already: the lake writer takes them instead of decoding the batches' segments again.

A cache, never the source of truth. The writer still follows the curated store by rowid (writer.py)
and asks for a batch's rows by their lines in its segment; it takes them from here only when the
segment on disk has the size the step wrote (an erasure empties lines, so a rewritten segment is
shorter) and every line asked for was built here, and decodes the segment otherwise. So a batch
curated by another process, a retry, a restart, an erasure or retention leaves the lake exactly as
decoding would, at the decoding's cost.

It holds at most `MAX_ROWS` rows (about 0.7 KB each in Arrow): past that, batches are left to the
decoding, so a large `eventpipe ingest` does not hold its whole lake in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from eventpipe.lake import kernels
from eventpipe.lake.columns import row_of_dict, table_of_rows

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)
MAX_ROWS = 200_000  # the writer's chunk (writer.CHUNK_ROWS): one chunk's rows at most


@dataclass(frozen=True, slots=True)
class FedBatch:
    lines: str  # the segment lines of the batch's stored events, as the writer reads them ("0,1,3")
    table: pa.Table  # their rows, in that order
    segment_bytes: int  # the size of the segment the step wrote


class LakeFeed:
    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._batches: dict[str, FedBatch] = {}
        self._rows = 0
        self._max_rows = max_rows

    def row(self, event: dict[str, Any], properties_text: bytes, enrichment_text: bytes) -> tuple[Any, ...] | None:
        """The lake's row of a curated event, built as the step holds it; None if it cannot be."""
        try:
            return row_of_dict(event, properties_text, enrichment_text)
        except (TypeError, AttributeError, KeyError) as exc:
            log.debug("a curated event left to the lake writer's decoding: %s", exc)
            return None

    def add(
        self,
        batch_id: str,
        rows: Sequence[tuple[Any, ...] | None],
        payloads: Sequence[bytes],
        stored: Sequence[bool],
    ) -> None:
        """A batch's curated events as `row` built them, a line of its segment each (`payloads`), and
        which of them the curated store stored."""
        lines = [line for line, is_stored in enumerate(stored) if is_stored]
        if not lines or self._rows + len(lines) > self._max_rows:
            return
        taken = [row for line in lines if (row := rows[line]) is not None]
        if len(taken) < len(lines):  # an event `row` could not read
            return
        try:
            table = table_of_rows(taken, batch_id)
        except (ValueError, pa.ArrowException) as exc:
            log.debug("batch %s left to the lake writer's decoding: %s", batch_id, exc)
            return
        segment_bytes = sum(map(len, payloads)) + len(payloads) - 1  # the lines, joined by newlines
        self._batches[batch_id] = FedBatch(",".join(map(str, lines)), table, segment_bytes)
        self._rows += len(lines)

    def take(self, batch_id: str, lines: str, segment_bytes: int | None) -> pa.Table | None:
        """The rows of `lines` (comma-separated, as the writer reads them) of a batch whose segment
        has `segment_bytes` now; None where they were not all built here from that segment."""
        fed = self._batches.get(batch_id)
        if fed is None or segment_bytes != fed.segment_bytes:
            return None
        if lines == fed.lines:  # the whole batch, the common case: it is not asked for again
            del self._batches[batch_id]
            self._rows -= fed.table.num_rows
            return fed.table
        row_of = {int(line): row for row, line in enumerate(fed.lines.split(","))}
        rows = [row_of.get(int(line)) for line in lines.split(",")]
        if None in rows:
            return None
        return kernels.take(fed.table, pa.array(rows, pa.int64()))

    def clear(self) -> None:
        """Forget every batch (the writer has caught up: their rows are in the lake)."""
        self._batches.clear()
        self._rows = 0

    def __len__(self) -> int:
        return self._rows
