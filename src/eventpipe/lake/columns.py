"""A curated event as one lake row: the columns analysts filter on, the rest as JSON text.

The lake's schema is fixed here, once: the writer, the compaction, the erasure and the empty view
of `eventpipe query` all use `LAKE_SCHEMA`, so every file of the lake has the same columns.
"""

from __future__ import annotations

import logging
from array import array
from datetime import UTC, datetime
from itertools import accumulate
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import pyarrow as pa

from eventpipe.lake import kernels

if TYPE_CHECKING:
    import mmap
    from collections.abc import Sequence

log = logging.getLogger(__name__)

_TIMESTAMP = pa.timestamp("ms", tz="UTC")
LAKE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.string()),
        ("occurred_at", _TIMESTAMP),
        ("received_at", _TIMESTAMP),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("session_id", pa.string()),
        ("app_id", pa.string()),
        ("browser", pa.string()),
        ("os", pa.string()),
        ("device_type", pa.string()),
        ("bot", pa.bool_()),
        ("country", pa.string()),
        ("utm_source", pa.string()),
        ("utm_medium", pa.string()),
        ("utm_campaign", pa.string()),
        ("referrer_host", pa.string()),
        ("referrer_medium", pa.string()),
        ("revenue", pa.float64()),
        ("properties", pa.string()),
        ("enrichment", pa.string()),
        ("batch_id", pa.string()),  # lineage: the batch that curated the event
    ]
)
COLUMN_NAMES = tuple(LAKE_SCHEMA.names)


HOUR_MS = 3_600_000
SLICE_ROWS = 4096  # events turned into Arrow columns at a time (LakeRows.tables)
WAITING_ROWS = 4 * SLICE_ROWS  # events of several hours that wait for Arrow at most
# A segment of this many events (a file batch's) goes to Arrow at once, each of its hours with a
# quarter of that or more together with the events of that hour already waiting: their objects, just
# decoded, are still in the caches. Waiting for a slice's worth (two or three file batches) and
# reading them then cost about 8% more of the writer's CPU (lake.md). A few late events of another
# hour, and request batches, wait as before.
HOT_ROWS = 1024
# Segments given as maps whose events may still wait for Arrow, at most: a waiting event's texts are
# views of its segment's map, which holds a file descriptor while it lives.
MAPS_WAITING = 64


def partition_of(occurred_at_ms: int) -> str:
    """`dt=2026-11-28/hour=06`: the Hive partition of an event time (UTC)."""
    moment = datetime.fromtimestamp(occurred_at_ms // HOUR_MS * 3600, UTC)
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


def hour_closed(partition: str, now_ms: int) -> bool:
    """True once the partition's hour ended more than an hour ago (late events are rare by then):
    when compaction merges an hour's files whatever their number."""
    day, hour = partition.removeprefix("dt=").split("/hour=")
    start = datetime.fromisoformat(f"{day}T{hour}:00:00+00:00")
    return now_ms >= int(start.timestamp() * 1000) + 2 * HOUR_MS


class _Agent(msgspec.Struct, gc=False):
    browser: str | None = None
    os: str | None = None
    device_type: str | None = None
    is_bot: bool | None = None


class _Campaign(msgspec.Struct, gc=False):
    source: str | None = None
    medium: str | None = None
    name: str | None = None


class _Referrer(msgspec.Struct, gc=False):
    host: str | None = None
    medium: str | None = None


class _Revenue(msgspec.Struct, gc=False):
    amount: float | None = None


class _Geo(msgspec.Struct, gc=False):
    country: str | None = None


class _Enrichment(msgspec.Struct, gc=False):
    """The enrichment fields the lake has columns for; the rest stays in the JSON text."""

    user_agent: _Agent | None = None
    campaign: _Campaign | None = None
    referrer: _Referrer | None = None
    revenue: _Revenue | None = None
    geo: _Geo | None = None
    bot: bool | None = None


class _Event(msgspec.Struct, gc=False):
    """A curated event as the lake reads it: `properties` and `enrichment` kept as their JSON text.

    `gc=False` on these structs: they hold no cycles, and a chunk makes tens of thousands of them.
    """

    event_id: str
    event_type: str
    occurred_at: str
    schema_version: str | None = None
    received_at: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    app_id: str | None = None
    properties: msgspec.Raw = msgspec.Raw(b"null")
    enrichment: msgspec.Raw = msgspec.Raw(b"{}")


_EVENT = msgspec.json.Decoder(_Event)
_ENRICHMENT = msgspec.json.Decoder(_Enrichment | None)
_NO_ENRICHMENT = _Enrichment()
_NO_AGENT = _Agent()  # every field None: stands for a missing part of the enrichment
_NO_CAMPAIGN = _Campaign()
_NO_REFERRER = _Referrer()
_NO_REVENUE = _Revenue()
_NO_GEO = _Geo()


class LakeRows:
    """Curated events turned into the lake's rows, grouped by partition.

    This runs once per curated event, so it must cost a small part of the chain's per-event time.
    msgspec decodes the fields that have columns (`properties` and `enrichment` stay the JSON text
    they already are), a segment's events in one call (`add_segment`); then, a large segment's
    events at once (`HOT_ROWS`), else `SLICE_ROWS` events of several segments at a time, each column
    is one list handed to Arrow, and Arrow parses the timestamps. A slice's Python objects are
    dropped once it is in Arrow, so the next slice reuses their memory: building a whole
    50,000-event chunk at once touched some 200 MB of fresh pages, whose zeroing by the kernel cost
    as much as the decoding.

    Events wait for Arrow grouped by the hour their time is written in (`2026-11-28T05`, its first
    13 characters): a slice of one hour goes to its partition whole, where a slice of two had each
    hour's rows copied out of it (0.35 µs per event). Arrow's hour of each row decides: a time
    written with an offset (`+02:00`) is moved to its hour, as before.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[list[_Event], list[str]]] = {}  # written hour -> events, batch ids
        self._count = 0  # events waiting
        self._maps = 0  # segments given as maps since the waiting events last all went to Arrow
        self._hours: dict[int, list[pa.Table]] = {}  # hour start (ms) -> its slices, in Arrow
        self._rows = 0
        self.skipped = 0

    def add(self, payload: bytes, batch_id: str) -> None:
        """Add one curated event's JSON text (curated: its envelope was valid, its ids are text)."""
        try:
            event = _EVENT.decode(payload)
        except msgspec.DecodeError as exc:  # not one of ours (stored by hand, say): said, not stalling the lake
            log.error("a curated event of batch %s is not in the lake: %s", batch_id, exc)
            self.skipped += 1
            return
        self._wait(event.occurred_at[:13], [event], batch_id)

    def add_segment(self, segment: bytes | mmap.mmap, lines: Sequence[int], batch_id: str) -> None:
        """Add the events on `lines` (distinct line numbers, ascending) of a batch's curated segment
        (its bytes, or a read-only map of its file: `FolderBucket.mapped`).

        The segment's lines are decoded in one call (`decode_lines`), without a copy of it. That
        call skips empty lines, so an erased event's empty line would shift the events after it:
        a count of the segment's line breaks (numpy, 0.1 µs per event) tells whether any line was
        skipped. If one was (or a line is not an event), the lines are added one by one."""
        try:
            events = _EVENT.decode_lines(segment)
        except msgspec.DecodeError:
            events = None
        if events is None or len(events) != _line_count(segment):
            texts = bytes(segment).split(b"\n")
            for line in lines:
                if line < len(texts) and texts[line]:  # an erased event leaves an empty line
                    self.add(texts[line], batch_id)
            return
        if lines and lines[-1] >= len(events):  # lines past the segment's end (not one the chain wrote)
            lines = [line for line in lines if line < len(events)]
        # Every line (they are distinct and ascending): the common case. Else a lookup each, in C:
        # a comprehension with its bounds check cost 0.5 µs per event.
        taken = events if len(lines) == len(events) else list(map(events.__getitem__, lines))
        if not taken:
            return
        hot = len(taken) >= HOT_ROWS
        hours = [e.occurred_at[:13] for e in taken]
        if hours.count(hours[0]) == len(hours):  # a batch's events of one hour: the common case
            self._wait(hours[0], taken, batch_id, hot=hot)
        else:
            by_hour: dict[str, list[_Event]] = {}
            for hour, event in zip(hours, taken, strict=True):
                by_hour.setdefault(hour, []).append(event)
            for hour, group in by_hour.items():
                self._wait(hour, group, batch_id, hot=hot and len(group) >= HOT_ROWS // 4)
        if not isinstance(segment, bytes):  # its map lives while its events wait: a bounded number of maps
            self._maps += 1
            if self._maps >= MAPS_WAITING:
                self._flush()

    def _wait(self, hour: str, events: list[_Event], batch_id: str, *, hot: bool = False) -> None:
        waiting = self._waiting.get(hour)
        if waiting is None:
            self._waiting[hour] = waiting = ([], [])
        waiting[0].extend(events)
        waiting[1].extend([batch_id] * len(events))
        self._count += len(events)
        if hot:  # many events of a segment just decoded: to Arrow now (HOT_ROWS)
            self._slice_hour(hour)
        elif self._count >= WAITING_ROWS:  # events of many hours: at most this many wait
            self._flush()
        elif self._count >= SLICE_ROWS:
            self._slice_hours()

    def _slice_hours(self) -> None:
        """Once a slice's worth of events wait: each hour with a quarter of a slice or more into Arrow,
        not only one that reached `SLICE_ROWS` (a stream of two hours had its other hour's events wait
        for several segments more, and its rows cost 0.3 µs more per event than those of one hour);
        the hours of fewer wait for more (a slice has a fixed cost), up to `WAITING_ROWS` in all."""
        least = SLICE_ROWS // 4
        for hour in [hour for hour, (events, _) in self._waiting.items() if len(events) >= least]:
            self._slice_hour(hour)

    def _slice_hour(self, hour: str) -> None:
        """The events waiting of one written hour into Arrow."""
        events, batch_ids = self._waiting.pop(hour)
        self._count -= len(events)
        self._add_slice(events, batch_ids)

    def __len__(self) -> int:
        return self._rows + self._count

    def tables(self) -> dict[str, pa.Table]:
        """Each partition's rows, as an Arrow table of `LAKE_SCHEMA`, by partition: in the order added
        (but for times of one hour written with different offsets, grouped by how they are written)."""
        self._flush()
        return {partition_of(hour): pa.concat_tables(self._hours[hour]) for hour in sorted(self._hours)}

    def _flush(self) -> None:
        """The waiting events into Arrow, a slice for each hour they are written in."""
        waiting, self._waiting, self._count, self._maps = self._waiting, {}, 0, 0
        for hour in list(waiting):  # each slice's events dropped once it is in Arrow
            self._add_slice(*waiting.pop(hour))

    def _add_slice(self, events: list[_Event], batch_ids: list[str]) -> None:
        """Events into Arrow, split by the hour of their event time."""
        table = self._table(events, batch_ids)
        self._rows += table.num_rows
        if table.num_rows == 0:
            return
        # Each row's hour, from the timestamps' integers (ms since the epoch, UTC) by numpy, without a
        # copy: Arrow's floor of a timestamp with a time zone took 0.1 µs a row.
        column = table.column("occurred_at")
        times = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        hours = times.view(pa.int64()).to_numpy() // HOUR_MS
        if hours.min() == hours.max():  # the common case: a slice within one hour, no copy
            self._hours.setdefault(int(hours[0]) * HOUR_MS, []).append(table)
            return
        for hour in np.unique(hours).tolist():
            rows = kernels.rows_where(table, pa.array(hours == hour))
            self._hours.setdefault(hour * HOUR_MS, []).append(rows)

    def _table(self, events: list[_Event], batch_ids: list[str]) -> pa.Table:
        enrichment_texts = b"".join([e.enrichment for e in events])
        count = len(events)
        events, enrichments, batch_ids = self._enrichments(events, batch_ids, enrichment_texts)
        if len(events) < count:  # some left out: their texts are not the column's
            enrichment_texts = b"".join([e.enrichment for e in events])
        agents = [e.user_agent or _NO_AGENT for e in enrichments]
        campaigns = [e.campaign or _NO_CAMPAIGN for e in enrichments]
        referrers = [e.referrer or _NO_REFERRER for e in enrichments]
        occurred_at = _timestamps([e.occurred_at for e in events])
        received_at = _timestamps([e.received_at for e in events])
        keep = None
        if occurred_at.null_count:  # an event time Python cannot read either: said, not stalling the lake
            keep = kernels.is_valid(occurred_at)
            for event, valid in zip(events, keep.to_pylist(), strict=True):
                if not valid:
                    log.error("a curated event is not in the lake: bad occurred_at %r", event.occurred_at)
            self.skipped += occurred_at.null_count
        columns = {
            "event_id": [e.event_id for e in events],
            "event_type": [e.event_type for e in events],
            "schema_version": [e.schema_version for e in events],
            "occurred_at": occurred_at,
            "received_at": received_at,
            "user_id": [e.user_id for e in events],
            "anonymous_id": [e.anonymous_id for e in events],
            "session_id": [e.session_id for e in events],
            "app_id": [e.app_id for e in events],
            "browser": [a.browser for a in agents],
            "os": [a.os for a in agents],
            "device_type": [a.device_type for a in agents],
            "bot": [e.bot if e.bot is not None else a.is_bot for e, a in zip(enrichments, agents, strict=True)],
            "country": [(e.geo or _NO_GEO).country for e in enrichments],
            "utm_source": [c.source for c in campaigns],
            "utm_medium": [c.medium for c in campaigns],
            "utm_campaign": [c.name for c in campaigns],
            "referrer_host": [r.host for r in referrers],
            "referrer_medium": [r.medium for r in referrers],
            "revenue": [(e.revenue or _NO_REVENUE).amount for e in enrichments],
            "properties": _texts([e.properties for e in events]),
            "enrichment": _texts([e.enrichment for e in events], enrichment_texts),
            "batch_id": batch_ids,
        }
        table = pa.Table.from_arrays(
            [
                values if isinstance(values, pa.Array) else pa.array(values, type=field.type)
                for values, field in zip(columns.values(), LAKE_SCHEMA, strict=True)
            ],
            schema=LAKE_SCHEMA,
        )
        return table if keep is None else kernels.rows_where(table, keep)

    def _enrichments(
        self, events: list[_Event], batch_ids: list[str], texts: bytes
    ) -> tuple[list[_Event], list[_Enrichment], list[str]]:
        """The events with their decoded enrichments; those whose enrichment cannot be read left out.

        The enrichments of a slice are decoded in one call from `texts`, their JSON texts one after
        the other (the enrichment column's buffer: joined once for both): each is one whole JSON
        value, so a decode of the values in turn finds them all, unless two numbers ran together
        (`1` and `2` read as `12`; not an enrichment, and a decode of fewer values). One by one if
        that fails."""
        try:
            decoded = _ENRICHMENT.decode_lines(texts)
            if len(decoded) == len(events):
                return events, [e or _NO_ENRICHMENT for e in decoded], batch_ids
        except msgspec.DecodeError:
            pass
        decode = _ENRICHMENT.decode
        kept_events, enrichments, kept_ids = [], [], []
        for event, batch_id in zip(events, batch_ids, strict=True):
            try:
                enrichment = decode(event.enrichment) or _NO_ENRICHMENT
            except msgspec.DecodeError as exc:
                log.error("a curated event of batch %s is not in the lake: %s", batch_id, exc)
                self.skipped += 1
                continue
            kept_events.append(event)
            enrichments.append(enrichment)
            kept_ids.append(batch_id)
        return kept_events, enrichments, kept_ids


def _line_count(segment: bytes | mmap.mmap) -> int:
    """The lines of a segment (`b"\\n"`-separated): its line breaks, counted by numpy (bytes.count
    looks at a byte at a time, four times slower), a block at a time into one small buffer (a
    comparison of the whole segment at once faulted a fresh page in for every 4 KiB of it)."""
    data = np.frombuffer(segment, np.uint8)
    found = np.empty(min(len(data), _BLOCK_BYTES), np.bool_)
    breaks = 0
    for start in range(0, len(data), _BLOCK_BYTES):
        block = data[start : start + _BLOCK_BYTES]
        np.equal(block, _LINE_BREAK, out=found[: len(block)])
        breaks += int(np.count_nonzero(found[: len(block)]))
    return breaks + 1


_LINE_BREAK = ord("\n")
_BLOCK_BYTES = 1 << 16


def _texts(raws: list[msgspec.Raw], joined: bytes | None = None) -> pa.Array:
    """JSON texts as a string column, from one joined buffer (`joined`, if already made) and their
    lengths: half the time of a `bytes` copy of each handed to Arrow. msgspec does not check the
    UTF-8 of the text it skips: the full validation does (pa.ArrowInvalid), as Arrow's conversion of
    each text did."""
    data = b"".join(raws) if joined is None else joined
    offsets = array("i", accumulate(map(len, raws), initial=0))
    column = pa.StringArray.from_buffers(len(raws), pa.py_buffer(offsets), pa.py_buffer(data))
    column.validate(full=True)
    return column


def _timestamps(texts: list[str | None]) -> pa.Array:
    """RFC 3339 texts as UTC milliseconds, parsed by Arrow (a twentieth of Python's time); what Arrow
    cannot read (a year past 2262, say) goes through Python, and null if Python cannot either."""
    try:
        exact = kernels.cast(pa.array(texts, pa.string()), _NANOSECONDS)
        return kernels.cast(exact, _TIMESTAMP, safe=False)  # truncates to the millisecond, as `_ms` does
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_ms_or_none(text) for text in texts], _TIMESTAMP)


_NANOSECONDS = pa.timestamp("ns", tz="UTC")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _ms_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return _ms(text)
    except ValueError:
        return None
