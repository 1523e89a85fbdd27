"""Objects the request stream (Firehose) delivers under `requests/`: their requests become group
batches, one workflow execution each (micro-batching on AWS, core/grouping.py).

An object is read line by line, a slice of requests at a time, so that its size bounds nothing but
the time it takes. A line that is not a request is counted and skipped: retrying cannot mend it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from eventpipe.core.grouping import group_and_start, read_requests

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventpipe.core.model import BatchRecord, Limits
    from eventpipe.core.ports import BatchStore, RawBucket, RequestIndex, WorkflowStarter

log = logging.getLogger(__name__)
REQUESTS_PREFIX = "requests/"
SLICE_LINES = 5_000  # requests decoded and grouped at once: about 10 groups of 1-event requests


@dataclass
class GroupedObject:
    requests: int = 0
    new_requests: int = 0  # not grouped before (by an earlier delivery of the same requests)
    not_requests: int = 0
    groups: list[BatchRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "new_requests": self.new_requests,
            "not_requests": self.not_requests,
            "groups": len(self.groups),
            "received": sum(g.received for g in self.groups),
        }


def group_requests_object(
    stream: IO[bytes],
    *,
    bucket: RawBucket,
    batches: BatchStore,
    index: RequestIndex,
    starter: WorkflowStarter,
    limits: Limits,
) -> GroupedObject:
    """Group the requests of one delivered object and start their executions."""
    outcome = GroupedObject()
    for lines in _slices(stream, max_line_bytes=_max_line_bytes(limits.max_body_bytes)):
        requests, bad = read_requests(lines, max_bytes=2 * limits.max_body_bytes)
        outcome.requests += len(requests)
        outcome.not_requests += bad
        groups, new = group_and_start(
            requests,
            bucket=bucket,
            batches=batches,
            index=index,
            starter=starter,
            max_events=limits.max_batch_events,
        )
        outcome.groups += groups
        outcome.new_requests += new
    if outcome.not_requests:
        log.error("%d lines of a requests object are not requests; skipped", outcome.not_requests)
    return outcome


def _max_line_bytes(max_body_bytes: int) -> int:
    """A request's line: its raw batch (at most twice a body, with its header) gzipped, then base64."""
    return 4 * (2 * max_body_bytes) // 3 + 1024


def _slices(stream: IO[bytes], *, max_line_bytes: int) -> Iterator[list[bytes]]:
    lines: list[bytes] = []
    while line := stream.readline(max_line_bytes + 1):
        if len(line) > max_line_bytes and not line.endswith(b"\n"):  # not ours: skip to the line's end
            while (rest := stream.readline(max_line_bytes)) and not rest.endswith(b"\n"):
                pass
            line = b"!"  # counted as not a request
        lines.append(line)
        if len(lines) == SLICE_LINES:
            yield lines
            lines = []
    if lines:
        yield lines
