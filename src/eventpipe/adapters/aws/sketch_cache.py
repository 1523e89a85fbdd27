"""A per-container cache of insights sketch items, each valid while its minute's counter version is unchanged.

Why: the dashboard polls `GET /insights` every 3 s, and a 1-hour read needs the minute items of 180
minutes (the window and the funnel's two-hour lookback), up to ~27 KB each. Almost all of those
minutes are closed: their sketches have not changed since the last poll. The counter item of a minute
(well under 1 KB) is a copy of the minute item's counters and version `v`, which every fold that changes
the minute adds 1 to; the fold writes the minute item first and the copy after, so a minute item read
(strongly consistent) after the counter item showed `v` holds every fold that `v` counts, and stays right
while `v` stays the same. A poll then reads the small counter items and only the minute items whose `v`
moved.

The cache is bounded in bytes (least recently used minutes leave first), so a container's memory stays
bounded whatever windows are read.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from eventpipe.core.segments import DEFAULT_SEGMENT

if TYPE_CHECKING:
    from collections.abc import Iterable

# A 24-hour window at 1,000 events/s needs about 1,560 sketch items of up to ~27 KB (42 MB): it fits,
# in a 1,024 MB function.
DEFAULT_MAX_BYTES = 64 * 2**20
_ENTRY_OVERHEAD = 200  # the key, the dict and the bytes objects' headers, roughly

Key = tuple[int, str]  # (minute epoch seconds, segment)
Sketches = dict[str, bytes]  # item attribute ("users", "s0", ...) -> serialized sketch; empty: no sketch item


class SketchCache:
    """Sketch items by (minute, segment), each stored with the counter version it was read under.

    >>> cache = SketchCache(max_bytes=10_000)
    >>> cache.put((60, ""), 3, {"users": b"..."})
    >>> cache.get((60, ""), 3)
    {'users': b'...'}
    >>> cache.get((60, ""), 4) is None  # a batch changed the minute since: read it again
    True
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, tuple[int, Sketches, int]] = OrderedDict()  # version, sketches, size
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def holds_any(self, minutes: Iterable[int]) -> bool:
        """Whether any of these minutes (default segment) is cached: if none, a read is cheaper without the cache's
        validation (the minute items themselves, not the counter items and then the minute items)."""
        return any((minute, DEFAULT_SEGMENT) in self._entries for minute in minutes)

    def get(self, key: Key, version: int) -> Sketches | None:
        """The sketches cached for `key` if they were read under `version`, else None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Key, version: int, sketches: Sketches) -> None:
        """Remember `sketches` as read under `version`, evicting the least recently used beyond the bound."""
        self._drop(key)
        size = _ENTRY_OVERHEAD + sum(len(name) + len(blob) for name, blob in sketches.items())
        if size > self.max_bytes:
            return  # larger than the whole cache: not worth evicting everything for
        self._entries[key] = (version, sketches, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]
