"""The dedup store's id filter alone: µs per id looked up and the share of ids not stored it passes.

    python bench/id_filter.py [--ids 1000000,10000000] [--bits-per-id 24] [--batches 200] [--repeat 3]

For each size, a filter of that many random ids (in the store's 32 groups, evenly) is built at
`--bits-per-id` (24: as the store builds it; 16: the fullest it lets it get) and saved as the store
saves it. Then, alternating the layouts, a fresh process maps the file (as a running store has it)
and looks up `--batches` batches of 500 ids not stored, writing 8 MiB between batches so that the
lookup finds the CPU caches as the rest of `put_new` leaves them (cold); only the lookup is timed
(process CPU). Layouts:

- `store`: `IdFilter` as the store uses it (bit-sliced: a 32-bit word per position, one bit a
  group; `HASHES` words anywhere in the filter per id).
- `page`: the same words, an id's all in one 4 KiB page (8 of them: one TLB entry per id, not 7).
- `line`: an id's words all in one 64-byte cache line (blocked Bloom filter; 7 of them).

A blocked layout is the usual fix for a Bloom filter's cache misses, but here each block holds
only the block's bits of each of the 32 groups (16 bits of a 64-byte line), so an id's positions
share a few bits with the ids of its block: the `pass` column says what that costs. The layouts
other than `store` live only here (docs/benchmark.md, "Fourth round")."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eventpipe.adapters.local.dedup_runs import DEFAULT_FILTER_MIB, FILTER_GROUPS, filter_mib
from eventpipe.adapters.local.id_filter import IdFilter, _hash

BATCH = 500
FLUSH_BYTES = 8 << 20  # more than a core's L2 here (4 MiB): the lookup starts cold, as in put_new
_ODD = np.uint32(1)


class _Blocked(IdFilter):
    """An id's `PROBES` positions in one block of `BLOCK_WORDS` slots: the block from the hash's high
    half (multiply-shift), the positions in it by double hashing on the low half with a step from the
    high half's low bits (its high bits chose the block: the same step for a block's ids would make
    their positions one pattern shifted, which passes far more ids)."""

    BLOCK_WORDS = 1024
    PROBES = 8

    def _bit_positions(self, keys: list[bytes]) -> np.ndarray:  # type: ignore[override]
        halves = _hash(keys).view("<u4")
        low, high = halves[0::2], halves[1::2]
        blocks = np.int64(self._slots.size // self.BLOCK_WORDS)
        base = np.multiply(high, blocks, dtype=np.int64)
        base >>= np.int64(32)
        base *= np.int64(self.BLOCK_WORDS)
        steps = np.arange(self.PROBES, dtype=np.uint32)[:, None]
        positions = steps * ((high << np.uint32(16)) | _ODD)
        positions += low
        positions >>= np.uint32(32 - (self.BLOCK_WORDS.bit_length() - 1))
        return positions + base


class _PageBlocked(_Blocked):
    BLOCK_WORDS, PROBES = 1024, 8  # 8, not 7: about the store's false positives at 24 bits per id


class _LineBlocked(_Blocked):
    BLOCK_WORDS, PROBES = 16, 7


LAYOUTS: dict[str, type[IdFilter]] = {"store": IdFilter, "page": _PageBlocked, "line": _LineBlocked}


def build(path: Path, ids: int, bits_per_id: int, layout: str) -> None:
    """A filter of `ids` random ids, each group an equal share, saved to `path`."""
    id_filter = LAYOUTS[layout](filter_mib(ids, bits_per_id, DEFAULT_FILTER_MIB))
    rng = np.random.default_rng(5)
    per_group = -(-ids // FILTER_GROUPS)
    for group, start in enumerate(range(0, ids, per_group)):
        count = min(per_group, ids - start)
        for at in range(0, count, 100_000):  # bounded memory
            keys = rng.bytes(16 * min(100_000, count - at))
            id_filter.add([keys[n : n + 16] for n in range(0, len(keys), 16)], group)
    id_filter.save(path, {})


def measure(path: Path, layout: str, batches: int) -> tuple[float, float]:
    """In the child: µs per id looked up, and the share of the ids (none stored) it passed."""
    loaded = LAYOUTS[layout].load(path, DEFAULT_FILTER_MIB)
    assert loaded is not None, f"{path} does not load"
    id_filter = loaded[0]
    flush = np.ones(FLUSH_BYTES // 4, dtype=np.uint32)
    batch_keys = [[os.urandom(16) for _ in range(BATCH)] for _ in range(batches)]
    id_filter.maybe_stored(batch_keys[0])  # the module's first call, as a running store has made
    cpu, passed = 0.0, 0
    for keys in batch_keys:
        flush += 1
        started = time.process_time()
        passed += len(id_filter.maybe_stored(keys))
        cpu += time.process_time() - started
    return cpu / (batches * BATCH) * 1e6, passed / (batches * BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", default="1000000,10000000", help="comma-separated ids in the filter")
    parser.add_argument("--bits-per-id", type=int, default=24, help="the filter's size per id (the store: 16 to 24)")
    parser.add_argument("--layouts", default="store,page,line", help="comma-separated, of " + ",".join(LAYOUTS))
    parser.add_argument("--batches", type=int, default=200, help="batches of 500 ids looked up per process")
    parser.add_argument("--repeat", type=int, default=3, help="processes per size and layout, alternating (median)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        micros, passed = measure(Path(args.child[0]), args.child[1], args.batches)
        print(f"{micros} {passed}")
        return
    sizes = [int(size) for size in args.ids.split(",")]
    layouts = args.layouts.split(",")
    print(f"\nid filter: {args.batches} batches of {BATCH} ids not stored, {args.bits_per_id} bits per id,")
    print(f"a fresh process each, {FLUSH_BYTES >> 20} MiB written between batches, median of {args.repeat}")
    print(f"{'ids':>12}{'layout':>8}{'MiB':>6}{'µs per id':>11}{'x store':>9}{'pass':>9}")
    with tempfile.TemporaryDirectory(prefix="eventpipe-id-filter-") as tmp:
        for ids in sizes:
            paths = {layout: Path(tmp) / f"{ids}-{layout}" for layout in layouts}
            for layout, path in paths.items():
                build(path, ids, args.bits_per_id, layout)
            measured: dict[str, list[tuple[float, float]]] = {layout: [] for layout in layouts}
            for repeat in range(args.repeat):
                shift = repeat % len(layouts)  # each layout in each place of the sequence in turn
                for layout in layouts[shift:] + layouts[:shift]:
                    command = [sys.executable, __file__, "--batches", str(args.batches), "--child"]
                    done = subprocess.run([*command, str(paths[layout]), layout], capture_output=True, check=True)
                    micros, passed = (float(field) for field in done.stdout.split())
                    measured[layout].append((micros, passed))
            for layout in layouts:
                runs = measured[layout]
                micros = sorted(run[0] for run in runs)[len(runs) // 2]
                passed = sorted(run[1] for run in runs)[len(runs) // 2]
                ratio = _paired_ratio(runs, measured["store"]) if "store" in measured else float("nan")
                mib = paths[layout].stat().st_size / (1 << 20)
                print(f"{ids:>12,}{layout:>8}{mib:>6.0f}{micros:>11.3f}{ratio:>9.2f}{passed:>9.2%}")
    print("µs per id: process CPU of IdFilter.maybe_stored per id; x store: the median of each repeat's")
    print("ratio to the store layout's process of that repeat; pass: the share of ids not stored that some")
    print("group may hold (each an index probe in the store).")


def _paired_ratio(runs: list[tuple[float, float]], store: list[tuple[float, float]]) -> float:
    ratios = sorted(run[0] / base[0] for run, base in zip(runs, store, strict=True))
    return ratios[len(ratios) // 2]


if __name__ == "__main__":
    main()
