"""Stored bytes rewritten without the events an erasure matches; each returns None when none matched.

Each function keeps the format of what it rewrites: a raw batch keeps its header in step with its
lines, a curated segment keeps its line numbers (the index points at them), a dropped file keeps
its compression and its form (NDJSON, a JSON array, `{"events": [...]}`).
"""

from __future__ import annotations

import gzip
import zlib
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import StorageError
from eventpipe.core.rawbatch import RawBatch
from eventpipe.core.request_facts import RequestFacts

if TYPE_CHECKING:
    from eventpipe.erasure.target import ErasureTarget

_GZIP_MAGIC = b"\x1f\x8b"


def raw_batch(data: bytes, target: ErasureTarget) -> bytes | None:
    """A raw batch without the matching lines (and their positions), nor matching refused events."""
    if not target.may_mention(data):
        return None
    batch = RawBatch.decode(data)
    keep = [i for i, line in enumerate(batch.events) if not target.matches_line(line)]
    refused = [r for r in batch.refused if not target.matches_line(str(r.get("raw", "")))]
    if len(keep) == len(batch.events) and len(refused) == len(batch.refused):
        return None
    # A group's header points at its events by index (where each request's and member's events start):
    # an index moves back by the number of events removed before it.
    kept_before = [0] * (len(batch.events) + 1)
    kept = set(keep)
    for i in range(len(batch.events)):
        kept_before[i + 1] = kept_before[i] + (i in kept)
    # The address and user agent of a request that carried one of the user's events are the user's
    # too: they go (the app stays), even where the request also carried someone else's events.
    ends = [start for start, _ in batch.requests[1:]] + [len(batch.events)] if batch.requests else []
    batch.requests = [
        (
            kept_before[min(start, len(batch.events))],
            _scrubbed(facts) if _lost_events(kept_before, start, end) else facts,
        )
        for (start, facts), end in zip(batch.requests, ends, strict=True)
    ]
    if not batch.requests:  # one request: its facts are the whole batch's
        batch.request = _scrubbed(batch.request)
    batch.members = [(member, kept_before[min(first, len(batch.events))]) for member, first in batch.members]
    batch.events = [batch.events[i] for i in keep]
    if batch.positions:
        batch.positions = [batch.positions[i] for i in keep]
    if batch.origins:
        batch.origins = [batch.origins[i] for i in keep]
    batch.refused = refused
    return batch.encode()


def _lost_events(kept_before: list[int], start: int, end: int) -> bool:
    """True when some of the events from `start` to `end` (a request's) were removed."""
    last = len(kept_before) - 1
    start, end = min(start, last), min(end, last)
    return kept_before[end] - kept_before[start] < end - start


def _scrubbed(facts: RequestFacts) -> RequestFacts:
    """A request's facts without what identifies its client (address, user agent)."""
    return RequestFacts(app_id=facts.app_id)


def staged(data: bytes, target: ErasureTarget) -> bytes | None:
    """A staged object (a header of facts, then one payload line per fact) without the matching events."""
    if not target.may_mention(data):
        return None
    header_line, _, body = data.partition(b"\n")
    header = orjson.loads(header_line)
    payloads = body.split(b"\n") if header.get("facts") else []
    keep = [i for i, line in enumerate(payloads) if not target.matches_line(line)]
    if len(keep) == len(payloads):
        return None
    header["facts"] = [header["facts"][i] for i in keep]
    return b"\n".join([orjson.dumps(header), *(payloads[i] for i in keep)])


def blank_lines(data: bytes, target: ErasureTarget) -> tuple[bytes, list[bytes]] | None:
    """A curated segment with each matching line emptied (line numbers kept), and those lines."""
    if not target.may_mention(data):
        return None
    lines = data.split(b"\n")
    matched = [i for i, line in enumerate(lines) if line and target.matches_line(line)]
    if not matched:
        return None
    erased = [lines[i] for i in matched]
    for i in matched:
        lines[i] = b""
    return b"\n".join(lines), erased


def dropped_file(data: bytes, target: ErasureTarget, *, max_bytes: int) -> bytes | None:
    """A file as dropped (or refused) without the matching events, compressed again if it was gzip."""
    compressed = data.startswith(_GZIP_MAGIC)
    try:
        content = _gunzip(data, max_bytes) if compressed else data
    except StorageError:  # a broken or oversized gzip (refused for that, say): it cannot be read as events
        return b"" if target.may_hold(data) else None
    if not target.may_mention(content):
        return None
    document = _json_document(content)
    rewritten = _ndjson(content, target) if document is None else _document(document, target)
    if rewritten is None:
        return None
    return gzip.compress(rewritten, mtime=0) if compressed else rewritten


def _json_document(content: bytes) -> Any:
    """The file as one JSON document (an array, an object), or None for NDJSON and malformed text."""
    if content.lstrip()[:1] not in (b"[", b"{"):
        return None
    try:
        document: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, (list, dict)) else None


def _document(document: list[Any] | dict[str, Any], target: ErasureTarget) -> bytes | None:
    if isinstance(document, list):
        kept = [e for e in document if not target.matches_event(e)]
        return orjson.dumps(kept) if len(kept) < len(document) else None
    events = document.get("events")
    if isinstance(events, list):
        kept = [e for e in events if not target.matches_event(e)]
        return orjson.dumps({**document, "events": kept}) if len(kept) < len(events) else None
    return b"" if target.matches_event(document) else None


def _ndjson(content: bytes, target: ErasureTarget) -> bytes | None:
    lines = content.split(b"\n")
    kept = [line for line in lines if not target.matches_line(line.rstrip(b"\r"))]
    return b"\n".join(kept) if len(kept) < len(lines) else None


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    stream = zlib.decompressobj(wbits=47)  # gzip or zlib, concatenated members are rare in drops
    try:
        content = stream.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise StorageError(f"cannot read a gzip file to erase from it: {exc}") from exc
    if len(content) > max_bytes:
        raise StorageError(f"a gzip file expands past {max_bytes} bytes; erase from it by hand")
    return content
