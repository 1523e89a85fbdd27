"""Where the curated store looks for an event id: runs of ids, and a filter over the closed ones.

A single index of random 16-byte ids costs more as it grows: each new id dirties one page of it
anywhere (about 4 KiB of WAL per id), and each lookup reads index pages the page cache no longer
holds (docs/benchmark.md, "The dedup store as it grows"). So the ids are indexed per *run*,
`(run, event_id)`: new ids go into the current run only (the day's ids, at most `run_cap`), whose
pages stay few and cached, whatever the size of the store. Older runs are closed: never written
again, they are read only for an id that `IdFilter`, a fixed-size Bloom filter of every closed run's
ids, cannot rule out (the retried ids, and its false positives), and then only the runs of the
filter's groups that may hold it (each closed run is in one of 32 groups).

Exactness: the filter covers a closed run only with the number of ids the run had when added
(`curated_runs.ids`, raised in the same transaction as every insert); a run that has more (a
roll-over undone by a rollback, another process) is added again. So no id of a closed run is missed;
a false positive or a deleted id (erasure) only costs an index lookup. When a run is gone (retention
deleted its ids), its group is built again from the runs it has left.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence
    from pathlib import Path

    from eventpipe.adapters.local.id_filter import IdFilter
    from eventpipe.core.ports import Clock

log = logging.getLogger(__name__)
DEFAULT_FILTER_MIB = 16
FILTER_GROUPS = 32  # the bits of a filter slot (id_filter.py)
DAY_MS = 86_400_000
DEFAULT_RUN_CAP = 1 << 20  # ids: past it, the day's next run starts (the current run stays cheap)
_RUNS_PER_DAY_BITS = 10  # run labels are day << 10 plus a count: ordered by time
# Below the smallest SQLite limit on bound variables (999 before 3.32), whatever the batch size.
IDS_PER_QUERY = 900
_SCAN_ROWS = 50_000  # ids added to the filter at a time (bounded memory)


@dataclass(frozen=True, slots=True)
class Run:
    run: int
    ids: int
    token: str


class RunIndex:
    """The runs of one database and the filter of its closed runs (kept in memory, saved to `filter_path`)."""

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

    def current_run(self, conn: sqlite3.Connection, adding: int) -> int:
        """The run that takes `adding` new ids now (in a write transaction); starts one when due."""
        runs = _runs(conn)
        label = (self._clock.now_ms() // DAY_MS) << _RUNS_PER_DAY_BITS
        if runs and runs[-1].run >= label and runs[-1].ids + adding <= max(self._cap, adding):
            return runs[-1].run
        if runs and runs[-1].run >= label:
            label = runs[-1].run + 1  # the day's next run (or a clock set back: time never goes back here)
        if runs:
            self._drop_empty(conn, runs)
        conn.execute("INSERT INTO curated_runs (run, ids, token) VALUES (?, 0, ?)", (label, secrets.token_hex(8)))
        self._sync(conn, _runs(conn)[:-1])  # the run just closed joins the filter now, once
        return label

    @staticmethod
    def count_added(conn: sqlite3.Connection, run: int, added: int) -> None:
        if added:
            conn.execute("UPDATE curated_runs SET ids = ids + ? WHERE run = ?", (added, run))

    def owners(self, conn: sqlite3.Connection, keys: list[bytes]) -> dict[bytes, str]:
        """The batch that stored each of `keys` that is stored: the current run is looked up for
        every key, the closed runs only for keys the filter cannot rule out, in the groups it names."""
        runs = _runs(conn)
        if not runs or not keys:
            return {}
        found = _lookup(conn, [runs[-1].run], keys)
        groups = self._sync(conn, runs[:-1])
        if not groups:
            return found
        by_mask: dict[int, list[bytes]] = {}
        for key, mask in zip(keys, self._filter_of().groups_of(keys), strict=True):
            if mask and key not in found:
                by_mask.setdefault(mask, []).append(key)
        for mask, maybe in by_mask.items():
            runs_in = [run for group, labels in groups.items() if mask >> group & 1 for run in labels]
            found.update(_lookup(conn, runs_in, maybe))
        return found

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

    def _filter_of(self) -> IdFilter:
        from eventpipe.adapters.local.id_filter import IdFilter  # numpy: only where a store needs it

        if self._filter is None:
            loaded = IdFilter.load(self._path, self._mib) if self._path is not None else None
            self._filter, self._covers = loaded if loaded is not None else (IdFilter(self._mib), {})
        return self._filter

    def _sync(self, conn: sqlite3.Connection, closed: Sequence[Run]) -> dict[int, list[int]]:
        """Add to the filter each closed run it does not cover as it is now; the closed runs by group."""
        id_filter = self._filter_of()
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
        return by_group

    @staticmethod
    def _drop_empty(conn: sqlite3.Connection, runs: Sequence[Run]) -> None:
        """Forget runs whose ids were all deleted (retention, erasure): fewer runs to look in."""
        for run in runs:
            if conn.execute("SELECT 1 FROM curated WHERE run = ? LIMIT 1", (run.run,)).fetchone() is None:
                conn.execute("DELETE FROM curated_runs WHERE run = ?", (run.run,))


def _runs(conn: sqlite3.Connection) -> list[Run]:
    rows = conn.execute("SELECT run, ids, token FROM curated_runs ORDER BY run")
    return [Run(int(run), int(ids), str(token)) for run, ids, token in rows]


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


# A condition on `curated` that lets the index find an id in any run (`run` alone is no index).
IN_EVERY_RUN = "run IN (SELECT run FROM curated_runs)"
