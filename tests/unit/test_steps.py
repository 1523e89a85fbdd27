"""Each workflow step run twice (a Step Functions retry) gives the same answer and counts nothing twice.

The steps run on the in-memory stores (eventpipe.adapters.memory): they keep the ports' contract
(tests/contract), so these tests check the steps, at memory speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
import pytest

from eventpipe.adapters.memory import (
    MemoryBatchStore,
    MemoryBucket,
    MemoryCuratedStore,
    MemoryInsightsStore,
    MemoryQuarantine,
)
from eventpipe.core.enrich import build_enrichers
from eventpipe.core.rawbatch import RawBatch, raw_key
from eventpipe.core.registry import SchemaRegistry
from eventpipe.handlers.wiring import build_steps
from tests.conftest import NOW_MS, FixedClock, make_event
from tests.functional.test_ingest import insights

if TYPE_CHECKING:
    from eventpipe.core.steps import PipelineSteps
    from eventpipe.settings import Settings


@dataclass
class MemoryPorts:
    """What the steps write to, in memory; `steps` is the workflow's steps over them."""

    clock: FixedClock
    bucket: MemoryBucket = field(default_factory=MemoryBucket)
    curated: MemoryCuratedStore = field(default_factory=MemoryCuratedStore)
    quarantine: MemoryQuarantine = field(default_factory=MemoryQuarantine)
    batches: MemoryBatchStore = field(default_factory=MemoryBatchStore)
    insights: MemoryInsightsStore = field(default_factory=MemoryInsightsStore)
    steps: PipelineSteps = field(init=False)


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> MemoryPorts:
    ports = MemoryPorts(clock)
    registry = SchemaRegistry.load(*settings.schema_dirs)
    ports.steps = build_steps(ports, registry, build_enrichers(settings.enrichment))
    return ports


def stored_batch(runtime: MemoryPorts) -> dict[str, str]:
    events = [make_event(), make_event("purchase"), make_event(event_id="bad")]
    duplicate = events[0]
    raw = RawBatch(
        "b-1",
        "test",
        NOW_MS,
        [orjson.dumps(e) for e in [*events, duplicate]],
        [0, 1, 2, 3],
    )
    runtime.bucket.put(raw_key("b-1"), raw.encode())
    return {"batch_id": "b-1", "raw_key": raw_key("b-1")}


def test_every_step_can_be_retried_without_changing_its_answer_or_the_stores(runtime: MemoryPorts) -> None:
    from eventpipe.core.model import BatchRecord

    runtime.batches.create(BatchRecord("b-1", raw_key("b-1"), "test", NOW_MS, 4))
    steps = runtime.steps
    state = stored_batch(runtime)
    # WHEN each step runs twice in a row (a Step Functions retry after a lost answer)
    processed = steps.process_batch(state)
    assert steps.process_batch(state) == processed
    done_input = {"batch_id": "b-1", **{key: processed[key] for key in ("curated", "duplicates", "rejected")}}
    assert steps.mark_done(done_input) == steps.mark_done(done_input) == {"status": "done"}
    # THEN each outcome is stored and counted once
    assert processed == {
        "valid": 3,
        "curated": 2,
        "duplicates": 1,
        "rejected": {"envelope_invalid": 1},
        "received_at_ms": NOW_MS,
        "repeated": False,
    }
    assert len(runtime.curated.events) == 2
    assert len(runtime.quarantine.records) == 1
    totals = insights(runtime)["totals"]
    assert totals == {
        "events": 2,
        "by_type": {"page_view": 1, "purchase": 1},
        "unique_users": 1,
        "revenue": 59.9,
        "duplicates": 1,
        "rejected": {"envelope_invalid": 1},
        "bots": 0,
        "by_country": {},
    }
    record = runtime.batches.get("b-1")
    assert record is not None
    assert (record.status, record.curated, record.duplicates, record.rejected) == ("done", 2, 1, 1)


def test_a_second_execution_of_a_done_batch_changes_nothing(runtime: MemoryPorts) -> None:
    from eventpipe.core.model import BatchRecord

    # GIVEN a batch processed and marked done
    runtime.batches.create(BatchRecord("b-1", raw_key("b-1"), "test", NOW_MS, 4))
    state = stored_batch(runtime)
    processed = runtime.steps.process_batch(state)
    runtime.steps.mark_done(
        {"batch_id": "b-1", **{key: processed[key] for key in ("curated", "duplicates", "rejected")}}
    )
    before = insights(runtime)
    # WHEN another execution of it runs (Express executions are not deduplicated by name)
    again = runtime.steps.process_batch(state)
    # THEN it answers the recorded counts, flagged as repeated, and stores and counts nothing more
    assert (again["curated"], again["duplicates"], again["rejected"], again["repeated"]) == (
        2,
        1,
        {"envelope_invalid": 1},
        True,
    )
    assert insights(runtime) == before
    assert len(runtime.curated.events) == 2


def test_a_batch_releases_only_the_quarantine_records_an_earlier_attempt_wrote(runtime: MemoryPorts) -> None:
    from eventpipe.core.model import Reason, Rejection

    steps = runtime.steps
    state = stored_batch(runtime)
    # GIVEN an earlier attempt (with another schema, say) quarantined the batch's first event
    earlier = Rejection("b-1", 0, "validate", (Reason("schema_violation", "$", "old schema"),), "{}", None)
    runtime.quarantine.add([earlier])
    released: list[list[tuple[str, int]]] = []
    remove = runtime.quarantine.remove
    runtime.quarantine.remove = lambda keys: (released.append(list(keys)), remove(keys))[1]  # type: ignore[method-assign]
    # WHEN the batch is processed again and that event passes now
    steps.process_batch(state)
    # THEN only that record is released: the other curated events have none, the invalid one keeps its own
    assert released == [[("b-1", 0)]]
    assert [(r.batch_id, r.index) for r in runtime.quarantine.for_batch("b-1")] == [("b-1", 2)]
