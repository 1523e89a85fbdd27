"""A crash at every write of the pipeline, then a restart: every event still ends counted exactly once."""

from __future__ import annotations

from dataclasses import replace
from io import BytesIO
from typing import TYPE_CHECKING, Any

import pytest

from eventpipe.core.ingest import IngestSummary
from eventpipe.core.readers import iter_lines
from eventpipe.generate import EventGenerator
from eventpipe.localrun.runtime import LocalRuntime
from tests.conftest import NOW_MS, FixedClock
from tests.functional.test_ingest import insights

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.settings import Settings

DATA = b"\n".join(EventGenerator(seed=12, now_ms=NOW_MS).lines(400, invalid_ratio=0.1, duplicate_ratio=0.05))


class Crash(BaseException):
    """Stands for the process dying: nothing in the pipeline catches it."""


def ingest(runtime: LocalRuntime) -> IngestSummary:
    summary = IngestSummary()
    lines = iter_lines(BytesIO(DATA), max_event_bytes=65536, max_total_bytes=10**8, max_document_bytes=10**6)
    for record in runtime.ingestor.ingest(lines, source="test", batch_id_for=lambda n: f"b-{n}"):
        summary.add(record)
    return summary


def outcome(runtime: LocalRuntime) -> dict[str, Any]:
    return {
        "curated": runtime.curated.count_by_type(),
        "quarantined": runtime.quarantine.count(),
        "unfinished": runtime.batches.unfinished(),
        "insights": insights(runtime),
    }


@pytest.fixture
def expected(tmp_path: Path, settings: Settings) -> dict[str, Any]:
    runtime = LocalRuntime(replace(settings, data_dir=tmp_path / "reference"), clock=FixedClock())
    ingest(runtime)
    result = outcome(runtime)
    runtime.close()
    return result


WRITES = [
    ("bucket", "put", 1),  # the raw write of the first batch
    ("bucket", "put", 3),  # the raw write of a later batch
    ("batches", "create", 2),
    ("quarantine", "add", 3),
    ("segments", "put", 2),  # a curated segment, before the index commits
    ("curated", "put_new", 2),
    ("insights", "apply", 3),
    ("quarantine", "remove", 2),  # the last write of ProcessBatch
    ("batches", "mark_done", 4),
    ("batches", "mark_done", 1),  # after ProcessBatch's writes, in the same commit
]


@pytest.mark.parametrize(("store", "method", "on_call"), WRITES, ids=[f"{s}.{m}#{n}" for s, m, n in WRITES])
def test_a_crash_at_a_write_then_a_restart_counts_every_event_once(
    settings: Settings, expected: dict[str, Any], store: str, method: str, on_call: int
) -> None:
    # GIVEN a runtime whose store dies on the n-th call of one write
    runtime = LocalRuntime(settings, clock=FixedClock())
    target = getattr(runtime, store)
    original = getattr(target, method)
    calls = 0

    def crashing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == on_call:
            raise Crash
        return original(*args, **kwargs)

    setattr(target, method, crashing)
    with pytest.raises(Crash):
        ingest(runtime)
    runtime.close()
    # WHEN the process starts again, finishes what was pending and the input is ingested again
    restarted = LocalRuntime(settings, clock=FixedClock())
    restarted.finish_unfinished(include_failed=False)
    summary = ingest(restarted)
    # THEN the stores and insights are exactly those of a run that never crashed
    assert outcome(restarted) == expected
    assert summary.curated + summary.duplicates + sum(summary.rejected.values()) == 400
    restarted.close()
