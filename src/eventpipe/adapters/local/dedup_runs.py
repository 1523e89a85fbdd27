"""Where the curated store looks for an event id: runs of ids, and a filter over the closed ones.

A single index of random 16-byte ids costs more as it grows: each new id dirties one page of it
anywhere (about 4 KiB of WAL per id), and each lookup reads index pages the page cache no longer
holds (docs/benchmark.md, "The dedup store as it grows"). So the ids are indexed per *run*,
`(run, event_id)`: new ids go into the current run only (the day's ids, at most `run_cap`), whose
pages stay few and cached, whatever the size of the store. Older runs are closed: never written
again, they are read only for an id that `IdFilter`, a Bloom filter of every closed run's ids,
cannot rule out (the retried ids, and its false positives), and then only the runs of the filter's
groups that may hold it (each closed run is in one of 32 groups), all in one query per batch. Such
an id is a retry of an old event: whether it is new again for this batch (stored by an earlier try
of the same batch) needs the row's batch only when the batch stored ids in a closed run
(`curated_batches`, written with the ids); else the index alone answers, one page read fewer or two
(the row's table pages, which a large store's page cache no longer holds). The
filter is sized to the closed runs' ids (16 to 24 bits each, up to the most allowed): a fixed size
let its false positives, each an index probe, grow with the store (7% of new ids at 10 million).
Once saved, the filter is its file mapped (the page cache's pages, as the database's are), so the
process's private memory does not grow with it (id_filter.py).

Exactness: the filter covers a closed run only with the number of ids the run had when added
(`curated_runs.ids`, raised in the same transaction as every insert); a run that has more (a
roll-over undone by a rollback, another process) is added again. So no id of a closed run is missed;
a false positive or a deleted id (erasure) only costs an index lookup. When a run is gone (retention
deleted its ids), its group is built again from the runs it has left.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence
    from pathlib import Path

    from eventpipe.adapters.local.id_filter import IdFilter
    from eventpipe.core.ports import Clock

log = logging.getLogger(__name__)
DEFAULT_FILTER_MIB = 64  # the largest filter (about 22 to 33 million ids at full precision)
# The filter is sized to the closed runs' ids: built with 24 bits per id, built again larger once
# they are fewer than 16 (about 0.2% then 2% of ids not stored pass it), smaller past 64 (retention
# dropped runs). So an id costs the same whatever the store holds, up to the largest filter allowed.
BITS_PER_ID = 16
BUILT_BITS_PER_ID = 24
SHRINK_BITS_PER_ID = 64
FILTER_GROUPS = 32  # the bits of a filter slot (id_filter.py)
DAY_MS = 86_400_000
DEFAULT_RUN_CAP = 1 << 20  # ids: past it, the day's next run starts (the current run stays cheap)
_RUNS_PER_DAY_BITS = 10  # run labels are day << 10 plus a count: ordered by time
# Below the smallest SQLite limit on bound variables (999 before 3.32), whatever the batch size.
IDS_PER_QUERY = 900
PAIRS_PER_QUERY = IDS_PER_QUERY // 2  # (run, id): two variables each
# A probe query's number of pairs, rounded up to one of these: a handful of statement texts, each
# compiled once and kept in the connection's statement cache, instead of a new one nearly every batch
# (its compilation cost as much as a few probes). The pairs added match nothing: no run is negative.
PROBE_SHAPES = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, PAIRS_PER_QUERY)
_NO_PAIR = (-1, b"")
_SCAN_ROWS = 50_000  # ids added to the filter at a time (bounded memory)


class Run(NamedTuple):  # read twice per batch: a tuple costs a tenth of a frozen dataclass
    run: int
    ids: int
    token: str


class RunIndex:
    """The runs of one database and the filter of its closed runs (saved to `filter_path`, and mapped from it)."""

    def __init__(
        self,
        clock: Clock,
        *,
        filter_path: Path | None = None,
        filter_mib: int = DEFAULT_FILTER_MIB,
        run_cap: int = DEFAULT_RUN_CAP,
    ) -> None:
        self._clock = clock
        self._path = filter_path
        self._mib = filter_mib
        self._cap = run_cap
        self._filter: IdFilter | None = None
        self._covers: dict[str, tuple[int, int]] = {}  # run token -> its ids when added to the filter, its group
        self._unsaved = False
        # The closed runs as last synced (token, ids) and the runs each group mask names: a batch
        # whose closed runs did not change (nearly all) skips the sync.
        self._synced: tuple[tuple[str, int], ...] | None = None
        self._by_group: dict[int, list[int]] = {}
        self._runs_of_mask: dict[int, list[int]] = {}

    @staticmethod
    def runs(conn: sqlite3.Connection) -> list[Run]:
        """The runs as the transaction sees them, oldest first (the last one is the current run)."""
        return [Run(*row) for row in conn.execute("SELECT run, ids, token FROM curated_runs ORDER BY run")]

    def current_run(self, conn: sqlite3.Connection, adding: int, runs: list[Run]) -> int:
        """The run that takes `adding` new ids now (in a write transaction that read `runs`); starts one when due."""
        label = (self._clock.now_ms() // DAY_MS) << _RUNS_PER_DAY_BITS
        if runs and runs[-1].run >= label and runs[-1].ids + adding <= max(self._cap, adding):
            return runs[-1].run
        if runs and runs[-1].run >= label:
            label = runs[-1].run + 1  # the day's next run (or a clock set back: time never goes back here)
        if runs:
            self._drop_empty(conn, runs)
        conn.execute("INSERT INTO curated_runs (run, ids, token) VALUES (?, 0, ?)", (label, secrets.token_hex(8)))
        self._sync(conn, self.runs(conn)[:-1])  # the run just closed joins the filter now, once
        return label

    @staticmethod
    def count_added(conn: sqlite3.Connection, run: int, added: int, batch_id: str) -> None:
        """Count the ids `batch_id` just added to `run`, and note that the batch stored ids there."""
        if added:
            conn.execute("UPDATE curated_runs SET ids = ids + ? WHERE run = ?", (added, run))
            conn.execute("INSERT OR IGNORE INTO curated_batches (batch_id, run) VALUES (?, ?)", (batch_id, run))

    def owners(
        self, conn: sqlite3.Connection, keys: list[bytes], runs: list[Run], batch_id: str | None = None
    ) -> dict[bytes, str | None]:
        """The batch that stored each of `keys` that is stored: the current run is looked up for
        every key, the closed runs only for keys the filter cannot rule out, in the runs of the
        groups it names, all of them in one query (each probe reads pages the cache does not hold).
        With `batch_id`, a key found in a closed run is None when that batch stored no id in a
        closed run: another batch's, not read (its row's pages are not read either)."""
        if not runs or not keys:
            return {}
        found: dict[bytes, str | None] = {}
        found.update(_lookup(conn, [runs[-1].run], keys))
        if not self._sync(conn, runs[:-1]):
            return found
        pairs: list[tuple[int, bytes]] = []
        for position, mask in self._filter_of().maybe_stored(keys):
            if keys[position] not in found:
                pairs.extend((run, keys[position]) for run in self._runs_of(mask))
        if not pairs:
            return found
        query = "SELECT 1 FROM curated_batches WHERE batch_id = ? AND run < ? LIMIT 1"
        if batch_id is None or conn.execute(query, (batch_id, runs[-1].run)).fetchone() is not None:
            found.update(_lookup_pairs(conn, pairs))
        else:
            found.update(dict.fromkeys(_lookup_pairs_stored(conn, pairs)))
        return found

    def _runs_of(self, mask: int) -> list[int]:
        """The closed runs of the groups in `mask` (a few distinct masks per batch: kept until the runs change)."""
        runs = self._runs_of_mask.get(mask)
        if runs is None:
            runs = [run for group, labels in self._by_group.items() if mask >> group & 1 for run in labels]
            self._runs_of_mask[mask] = runs
        return runs

    def save(self) -> None:
        """Write the filter if it changed (after the transaction: a filter is never ahead of nothing)."""
        if not self._unsaved or self._path is None or self._filter is None:
            return
        try:
            self._filter.save(self._path, self._covers)
            self._unsaved = False
        except OSError as exc:  # the next start builds it again: slower, still exact
            log.warning("cannot save the dedup filter %s: %s", self._path, exc)

    def forget(self) -> None:
        """Drop the in-memory filter (after a failed transaction): it is loaded or built again."""
        self._filter, self._covers, self._unsaved = None, {}, False
        self._synced = None

    def _filter_of(self) -> IdFilter:
        from eventpipe.adapters.local.id_filter import IdFilter  # numpy: only where a store needs it

        if self._filter is None:
            loaded = IdFilter.load(self._path, self._mib) if self._path is not None else None
            self._filter, self._covers = loaded if loaded is not None else (IdFilter(1), {})
        return self._filter

    def _sized(self, closed_ids: int) -> IdFilter:
        """The filter, built again (empty) when it is too small or too large for `closed_ids`."""
        id_filter = self._filter_of()
        if (
            filter_mib(closed_ids, BITS_PER_ID, self._mib)
            <= id_filter.mib
            <= filter_mib(closed_ids, SHRINK_BITS_PER_ID, self._mib)
        ):
            return id_filter
        from eventpipe.adapters.local.id_filter import IdFilter

        mib = filter_mib(closed_ids, BUILT_BITS_PER_ID, self._mib)
        log.info("sizing the dedup filter to %d MiB for %d ids (was %d MiB)", mib, closed_ids, id_filter.mib)
        self._filter = None  # the old bits go before the new ones are allocated
        self._filter, self._covers, self._unsaved = IdFilter(mib), {}, True
        return self._filter

    def _sync(self, conn: sqlite3.Connection, closed: Sequence[Run]) -> dict[int, list[int]]:
        """Add to the filter each closed run it does not cover as it is now; the closed runs by group."""
        state = tuple((run.token, run.ids) for run in closed)
        if state == self._synced and self._filter is not None:
            return self._by_group
        id_filter = self._sized(sum(run.ids for run in closed))
        live = {run.token for run in closed}
        for token in [token for token in self._covers if token not in live]:  # deleted runs
            # Their bits would only cost lookups: the group starts again with the runs it has left.
            group = self._covers.pop(token)[1]
            id_filter.clear(group)
            self._covers = {t: (0, g) if g == group else (n, g) for t, (n, g) in self._covers.items()}
            self._unsaved = True
        sizes = [0] * FILTER_GROUPS
        for ids, group in self._covers.values():
            sizes[group] += ids
        for run in closed:
            covered = self._covers.get(run.token)
            if covered is not None and covered[0] == run.ids:
                continue
            group = covered[1] if covered is not None else sizes.index(min(sizes))
            log.info("adding run %d (%d ids) to the dedup filter, group %d", run.run, run.ids, group)
            cursor = conn.execute("SELECT event_id FROM curated WHERE run = ?", (run.run,))
            while rows := cursor.fetchmany(_SCAN_ROWS):
                id_filter.add([bytes(row[0]) for row in rows], group)
            sizes[group] += run.ids - (covered[0] if covered is not None else 0)
            self._covers[run.token] = (run.ids, group)
            self._unsaved = True
        by_group: dict[int, list[int]] = {}
        for run in closed:
            by_group.setdefault(self._covers[run.token][1], []).append(run.run)
        self._synced, self._by_group, self._runs_of_mask = state, by_group, {}
        return by_group

    @staticmethod
    def _drop_empty(conn: sqlite3.Connection, runs: Sequence[Run]) -> None:
        """Forget runs whose ids were all deleted (retention, erasure): fewer runs to look in."""
        for run in runs:
            if conn.execute("SELECT 1 FROM curated WHERE run = ? LIMIT 1", (run.run,)).fetchone() is None:
                conn.execute("DELETE FROM curated_runs WHERE run = ?", (run.run,))
                conn.execute("DELETE FROM curated_batches WHERE run = ?", (run.run,))  # a scan: once a run


def filter_mib(ids: int, bits_per_id: int, most: int) -> int:
    """The MiB that hold `ids` at `bits_per_id`: at least 1, at most `most`."""
    return max(1, min(most, -(-ids * bits_per_id // (8 << 20))))


def _lookup(conn: sqlite3.Connection, runs: Sequence[int], keys: Sequence[bytes]) -> dict[bytes, str]:
    """`event_id -> batch_id` for the keys stored in one of `runs` (each run, one index probe per key)."""
    found: dict[bytes, str] = {}
    in_runs = ",".join(str(int(run)) for run in runs)  # integers read from the database
    for start in range(0, len(keys), IDS_PER_QUERY):
        chunk = keys[start : start + IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT event_id, batch_id FROM curated WHERE run IN ({in_runs}) AND event_id IN ({marks})"
        found.update((bytes(key), str(batch)) for key, batch in conn.execute(query, chunk))
    return found


def _lookup_pairs(conn: sqlite3.Connection, pairs: list[tuple[int, bytes]]) -> dict[bytes, str]:
    """`event_id -> batch_id` for the `(run, key)` pairs stored: one index probe each, one query for all
    (a query per run cost more than its probes). Sorted: probes of one run share its upper pages."""
    return {bytes(key): str(batch) for key, batch in _probe_pairs(conn, pairs, "c.event_id, c.batch_id")}


def _lookup_pairs_stored(conn: sqlite3.Connection, pairs: list[tuple[int, bytes]]) -> list[bytes]:
    """The keys of the `(run, key)` pairs stored, from the index alone (their rows are not read)."""
    return [bytes(key) for (key,) in _probe_pairs(conn, pairs, "c.event_id")]


def _probe_pairs(conn: sqlite3.Connection, pairs: list[tuple[int, bytes]], columns: str) -> list[Any]:
    found: list[Any] = []
    pairs.sort()
    for start in range(0, len(pairs), PAIRS_PER_QUERY):
        chunk = pairs[start : start + PAIRS_PER_QUERY]
        shape = next(size for size in PROBE_SHAPES if size >= len(chunk))
        chunk += [_NO_PAIR] * (shape - len(chunk))
        values = ",".join(["(?,?)"] * shape)
        query = (  # CROSS JOIN: the pairs are the outer loop, each an equality probe of the index
            f"SELECT {columns} FROM (VALUES {values}) AS v"
            " CROSS JOIN curated AS c ON c.run = v.column1 AND c.event_id = v.column2"
        )
        found.extend(conn.execute(query, [value for pair in chunk for value in pair]))
    return found


# A condition on `curated` that lets the index find an id in any run (`run` alone is no index).
IN_EVERY_RUN = "run IN (SELECT run FROM curated_runs)"
