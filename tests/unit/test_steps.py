"""Each workflow step run twice (a Step Functions retry) gives the same answer and counts nothing twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.core.rawbatch import RawBatch, raw_key
from tests.conftest import NOW_MS, make_event
from tests.functional.test_ingest import insights

if TYPE_CHECKING:
    from eventpipe.localrun.runtime import LocalRuntime

import orjson


def stored_batch(runtime: LocalRuntime) -> dict[str, str]:
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


def test_every_step_can_be_retried_without_changing_its_answer_or_the_stores(runtime: LocalRuntime) -> None:
    from eventpipe.core.model import BatchRecord

    runtime.batches.create(BatchRecord("b-1", raw_key("b-1"), "test", NOW_MS, 4))
    steps = runtime.steps
    state = stored_batch(runtime)
    # WHEN each step runs twice in a row
    validated = steps.validate_enrich(state)
    assert steps.validate_enrich(state) == validated
    persisted = steps.persist({**state, **validated})
    assert steps.persist({**state, **validated}) == persisted
    aggregate_input = {
        **state,
        "staged_key": validated["staged_key"],
        "new_indexes": persisted["new_indexes"],
        "rejected": validated["rejected"],
        "duplicates": persisted["duplicates"],
        "is_replay": validated["is_replay"],
    }
    assert steps.aggregate(aggregate_input) == {"applied": True}
    assert steps.aggregate(aggregate_input) == {"applied": False}
    done_input = {**state, "staged_key": validated["staged_key"], "curated": persisted["curated"]}
    done_input |= {"duplicates": persisted["duplicates"], "rejected": validated["rejected"]}
    assert steps.mark_done(done_input) == steps.mark_done(done_input) == {"status": "done"}
    # THEN each outcome is stored and counted once
    assert validated["rejected"] == {"envelope_invalid": 1}
    assert (persisted["curated"], persisted["duplicates"]) == (2, 1)
    assert runtime.curated.count() == 2
    assert runtime.quarantine.count() == 1
    totals = insights(runtime)["totals"]
    assert totals == {
        "events": 2,
        "by_type": {"page_view": 1, "purchase": 1},
        "unique_users": 1,
        "revenue": 59.9,
        "duplicates": 1,
        "rejected": {"envelope_invalid": 1},
    }
    record = runtime.batches.get("b-1")
    assert record is not None
    assert (record.status, record.curated, record.duplicates, record.rejected) == ("done", 2, 1, 1)
    assert list(runtime.bucket.keys("staged/")) == []


def test_a_batch_releases_only_the_quarantine_records_an_earlier_attempt_wrote(runtime: LocalRuntime) -> None:
    from eventpipe.core.model import Reason, Rejection

    steps = runtime.steps
    state = stored_batch(runtime)
    # GIVEN an earlier attempt (with another schema, say) quarantined the batch's first event
    earlier = Rejection("b-1", 0, "validate", (Reason("schema_violation", "$", "old schema"),), "{}", None)
    runtime.quarantine.add([earlier])
    # WHEN the batch validates again and that event passes now
    validated = steps.validate_enrich(state)
    staged = orjson.loads(runtime.bucket.get(validated["staged_key"]).partition(b"\n")[0])
    # THEN only that record is to be released by MarkDone: the other curated events have none
    assert staged["released"] == [["b-1", 0]]
