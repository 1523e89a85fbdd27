"""A fixed-size Bloom filter of 16-byte event ids in 32 groups (numpy), saved to a file beside the database.

It answers "certainly not stored" for most new ids without reading the index, and otherwise which
of its `GROUPS` groups may hold the id, so that only the runs of those groups are looked up. It
never forgets an id it was given (no false negatives). Its size is fixed (16 MiB by default,
EVENTPIPE_DEDUP_FILTER_MIB: about 1.6 MiB per million ids of the deduplication window), so
memory does not grow with the store; a fuller filter only sends more ids to the index: an id not
stored passes it about 7% of the time at 10 million ids (each group about 0.2%).

The layout is bit-sliced: a 32-bit word per position, one bit of it per group (each bit plane a
Bloom filter of its own, as many bits per id as one filter of all ids), so one lookup reads
`HASHES` words whatever the number of groups; more groups send fewer runs to the index per id
found, and more ids not stored (one group's false positives each). Imported only
when a store first looks in its closed runs: numpy stays out of processes that do not (Lambda).

The file holds the bits and the names (tokens) of the runs they cover; it is written whole to a
temporary file, fsynced and renamed, so a crash leaves the old file or the new one, never a mix; a
file that does not check out (size, checksum) is ignored and the filter built again.
"""

from __future__ import annotations

import os
import zlib
from typing import TYPE_CHECKING

import numpy as np
import orjson

from eventpipe.adapters.local.dedup_runs import FILTER_GROUPS as GROUPS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

HASHES = 7  # near the best for 10 to 13 bits per id
_MAGIC = b"eventpipe-id-filter 2\n"  # 2: one 64-bit hash an id, positions by multiply-shift
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LOW_32 = np.uint64(0xFFFFFFFF)
_STEPS = np.arange(HASHES, dtype=np.uint64)[None, :]


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: ids need not be random (UUIDv1 and v7 are mostly a clock)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


class IdFilter:
    """`GROUPS` Bloom filters over 16-byte keys, `HASHES` probes each (double hashing), sharing positions."""

    def __init__(self, mib: int) -> None:
        if mib < 1:
            raise ValueError(f"the id filter needs at least 1 MiB, not {mib}")
        self._slots = np.zeros(mib << 18, dtype=np.uint32)  # 4 bytes a slot
        self._size = np.uint64(mib << 18)
        self.mib = mib

    def _bit_positions(self, keys: Iterable[bytes]) -> np.ndarray:
        """Shape (ids, HASHES): double hashing on the two halves of one 64-bit hash of each id, each
        32-bit value mapped onto the slots by a multiply and a shift (no division: a third as costly)."""
        words = np.frombuffer(b"".join(keys), dtype="<u8").reshape(-1, 2)
        hashed = _mix(words[:, 0] ^ (words[:, 1] * _GOLDEN))
        first, second = (hashed >> np.uint64(32))[:, None], (hashed | np.uint64(1))[:, None]
        return (((first + _STEPS * second) & _LOW_32) * self._size) >> np.uint64(32)

    def add(self, keys: list[bytes], group: int) -> None:
        if not keys:
            return
        positions = self._bit_positions(keys).ravel()
        np.bitwise_or.at(self._slots, positions, np.uint32(1 << group))

    def groups_of(self, keys: list[bytes]) -> list[int]:
        """For each key, a bit mask of the groups that may hold it (0: certainly none)."""
        if not keys:
            return []
        masks: list[int] = np.bitwise_and.reduce(self._slots[self._bit_positions(keys)], axis=1).tolist()
        return masks

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
        body = self._slots.data
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process writing it
        with open(temporary, "wb") as file:
            file.write(_MAGIC + len(header).to_bytes(4, "big") + header)
            file.write(body)
            file.write(zlib.crc32(body, zlib.crc32(header)).to_bytes(4, "big"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path, mib: int) -> tuple[IdFilter, dict[str, tuple[int, int]]] | None:
        """The filter saved at `path` and what it covers; None when absent, of another size or damaged."""
        loaded = cls(mib)
        try:
            with open(path, "rb") as file:
                if file.read(len(_MAGIC)) != _MAGIC:
                    return None
                header = file.read(int.from_bytes(file.read(4), "big"))
                if file.readinto(loaded._slots.data) != loaded._slots.nbytes:
                    return None
                checksum = file.read(5)
        except OSError:
            return None
        if checksum != zlib.crc32(loaded._slots.data, zlib.crc32(header)).to_bytes(4, "big"):
            return None
        try:
            fields = orjson.loads(header)
            covers = {str(token): (int(ids), int(group)) for token, (ids, group) in fields["covers"].items()}
            if (fields["mib"], fields["hashes"], fields["groups"]) != (mib, HASHES, GROUPS):
                return None
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            return None
        return loaded, covers
