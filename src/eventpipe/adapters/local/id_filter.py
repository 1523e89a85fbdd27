"""A Bloom filter of 16-byte event ids in 32 groups (numpy), saved to a file beside the database.

It answers "certainly not stored" for most new ids without reading the index, and otherwise which
of its `GROUPS` groups may hold the id, so that only the runs of those groups are looked up. It
never forgets an id it was given (no false negatives). Its size is chosen by the store
(dedup_runs.py: 16 to 24 bits per id, at most EVENTPIPE_DEDUP_FILTER_MIB) and kept in its file; a
fuller filter only sends more ids to the index: an id not stored passes it about 0.2% of the time
at 24 bits per id, 2% at 16, 6% at 13 (bench/id_filter.py measures it).

The layout is bit-sliced: a 32-bit word per position, one bit of it per group (each bit plane a
Bloom filter of its own, as many bits per id as one filter of all ids), so one lookup reads
`HASHES` words whatever the number of groups; more groups send fewer runs to the index per id
found, and more ids not stored (one group's false positives each). Not blocked (an id's words in
one cache line, the usual cure for a Bloom filter's cache misses): a 64-byte block holds 16 bits of
each group, and a third to a half of the ids not stored would pass; in one 4 KiB page it is no
faster (docs/benchmark.md, "Fifth round"). Imported only when a store first looks in its closed
runs: numpy stays out of processes that do not (Lambda).

The file holds the bits and the names (tokens) of the runs they cover; it is written whole to a
temporary file, fsynced and renamed, so a crash leaves the old file or the new one, never a mix; a
file that does not check out (size, checksum) is ignored and the filter built again.

Once saved or loaded, the bits are that file mapped copy-on-write, not a copy in the process's
memory: its pages are the OS's page cache (as the database's own pages are), clean, shared by the
processes of one data directory and dropped under memory pressure (read again when probed), so the
process's private memory does not grow with the store (docs/benchmark.md). Bits changed since (a run
added, a group cleared) are private pages until the next save maps the new file. The file is only
ever replaced (renamed over), never rewritten in place: truncating it under a running process would
fault its next probe (SIGBUS).
"""

from __future__ import annotations

import mmap
import os
import zlib
from typing import TYPE_CHECKING

import numpy as np
import orjson

from eventpipe.adapters.local.dedup_runs import FILTER_GROUPS as GROUPS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import BinaryIO

HASHES = 7  # fewer than the best for 16 to 24 bits per id (11 to 16): each is a random read of the filter
_MAGIC = b"eventpipe-id-filter 2\n"  # 2: one 64-bit hash an id, positions by multiply-shift
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STEPS = np.arange(HASHES, dtype=np.uint32)[:, None]  # probes along the first axis: rows reduce fast
_ODD = np.uint32(1)
_SHIFTS = {bits: np.uint64(bits) for bits in (27, 30, 31)}
_SLOT_SHIFT = np.int64(32)
_PAGE = 4096  # the bits start at a multiple of it in the file (its header padded): mapped, not read


def _hash(keys: Iterable[bytes]) -> np.ndarray:
    """One 64-bit hash per 16-byte key: SplitMix64's finaliser on its two halves, in place (ids need
    not be random: UUIDv1 and v7 are mostly a clock)."""
    words = np.frombuffer(b"".join(keys), dtype="<u8")
    x = words[1::2] * _GOLDEN
    x ^= words[0::2]
    x ^= x >> _SHIFTS[30]
    x *= _MIX_1
    x ^= x >> _SHIFTS[27]
    x *= _MIX_2
    x ^= x >> _SHIFTS[31]
    return x


class IdFilter:
    """`GROUPS` Bloom filters over 16-byte keys, `HASHES` probes each (double hashing), sharing positions."""

    def __init__(self, mib: int, slots: np.ndarray | None = None) -> None:
        if mib < 1:
            raise ValueError(f"the id filter needs at least 1 MiB, not {mib}")
        self._slots = np.zeros(mib << 18, dtype=np.uint32) if slots is None else slots  # 4 bytes a slot
        self._size = np.int64(mib << 18)
        self.mib = mib

    @property
    def mapped(self) -> bool:
        """Whether the bits are a saved file's pages (the page cache's), not a copy in private memory."""
        base = self._slots.base  # np.frombuffer's: a memoryview of the mapping
        return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)

    def _bit_positions(self, keys: Iterable[bytes]) -> np.ndarray:
        """Shape (HASHES, ids), slot numbers: double hashing on the two 32-bit halves of one 64-bit
        hash of each id (the i-th value: i times the low half made odd, plus the high half, modulo
        2**32), each value mapped onto the slots by a multiply and a shift (no division: a third as
        costly). In 32-bit arrays, whose sums wrap as that modulo does: the positions the 64-bit
        arithmetic before gave (saved filters stay valid) with two array operations fewer of seven,
        each of which costs microseconds of its own, called once a batch."""
        halves = _hash(keys).astype("<u8", copy=False).view("<u4")  # each hash's low half, then its high half
        positions = _STEPS * (halves[0::2] | _ODD)
        positions += halves[1::2]
        slots = np.multiply(positions, self._size, dtype=np.int64)
        slots >>= _SLOT_SHIFT
        return slots

    def add(self, keys: list[bytes], group: int) -> None:
        if not keys:
            return
        positions = self._bit_positions(keys).ravel()
        np.bitwise_or.at(self._slots, positions, np.uint32(1 << group))

    def maybe_stored(self, keys: list[bytes]) -> list[tuple[int, int]]:
        """`(position, mask)` of the keys some group may hold, the mask's bits naming those groups (a key
        not listed is certainly in none: most new ids, with no Python loop over them)."""
        if not keys:
            return []
        masks = np.bitwise_and.reduce(self._slots.take(self._bit_positions(keys)), axis=0)  # take: no index iterator
        positions = np.flatnonzero(masks)
        return list(zip(positions.tolist(), masks[positions].tolist(), strict=True))

    def clear(self, group: int) -> None:
        """Forget every key of `group` (to add again the ones still stored)."""
        self._slots &= np.uint32(0xFFFFFFFF ^ (1 << group))

    def fill_ratio(self, group: int) -> float:
        """The share of `group`'s bits set: its false positives are about this to the power `HASHES`."""
        bit, step = np.uint32(1 << group), 1 << 18  # a MiB at a time: no second copy of the filter
        chunks = (self._slots[at : at + step] for at in range(0, self._slots.size, step))
        set_bits = sum(int(np.count_nonzero(chunk & bit)) for chunk in chunks)
        return set_bits / self._slots.size

    def save(self, path: Path, covers: dict[str, tuple[int, int]]) -> None:
        """Write the bits and `covers` (run token -> its ids when added, its group) atomically and durably."""
        header = orjson.dumps({"mib": self.mib, "hashes": HASHES, "groups": GROUPS, "covers": covers})
        header += b" " * (-(len(_MAGIC) + 4 + len(header)) % _PAGE)  # JSON allows trailing spaces:
        start = len(_MAGIC) + 4 + len(header)  # the bits start on a page
        body = self._slots.data
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process writing it
        with open(temporary, "w+b") as file:
            file.write(_MAGIC + len(header).to_bytes(4, "big") + header)
            file.write(body)
            file.write(zlib.crc32(body, zlib.crc32(header)).to_bytes(4, "big"))
            file.flush()
            os.fsync(file.fileno())
            slots = _mapped(file, start, self._slots.size)
        os.replace(temporary, path)
        if slots is not None:  # the same bits, now the file's pages (the private copy goes)
            self._slots = slots

    @classmethod
    def load(cls, path: Path, max_mib: int) -> tuple[IdFilter, dict[str, tuple[int, int]]] | None:
        """The filter saved at `path` and what it covers; None when absent, damaged, of another layout
        or larger than `max_mib` (its size is in its header: the store sizes it to its ids)."""
        try:
            with open(path, "rb") as file:
                if file.read(len(_MAGIC)) != _MAGIC:
                    return None
                header = file.read(int.from_bytes(file.read(4), "big"))
                fields = orjson.loads(header)
                mib = fields["mib"]
                if not (isinstance(mib, int) and 1 <= mib <= max_mib):
                    return None
                start = len(_MAGIC) + 4 + len(header)
                if os.fstat(file.fileno()).st_size != start + (mib << 20) + 4:
                    return None
                # A file saved before its bits started on a page is read into memory (until the next save).
                slots = _mapped(file, start, mib << 18) if start % _PAGE == 0 else None
                loaded = cls(mib, slots)
                if slots is None and file.readinto(loaded._slots.data) != loaded._slots.nbytes:
                    return None
                file.seek(start + (mib << 20))
                checksum = file.read(5)
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if checksum != zlib.crc32(loaded._slots.data, zlib.crc32(header)).to_bytes(4, "big"):
            return None
        try:
            covers = {str(token): (int(ids), int(group)) for token, (ids, group) in fields["covers"].items()}
            if (fields["hashes"], fields["groups"]) != (HASHES, GROUPS):
                return None
        except (KeyError, TypeError, AttributeError, ValueError):
            return None
        return loaded, covers


def _mapped(file: BinaryIO, start: int, slots: int) -> np.ndarray | None:
    """The `slots` of an open filter file from byte `start`, mapped copy-on-write (the bits changed
    stay this process's); None when it cannot be mapped (the caller keeps or reads a copy)."""
    try:
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None
    return np.frombuffer(mapping, dtype=np.uint32, count=slots, offset=start)  # unmapped with its last array
