"""The erasure and the lake's compaction on AWS under moto: never at once (the lake's lease).

A merge that read an hour's objects before the erasure rewrote them would write the user's rows back
into its merged object; so the erasure waits for the lease (the compaction stops after its current
merge once an erasure wants it), and a compaction that finds the erasure holding it skips its run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from eventpipe.core.errors import StorageError
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.aws.test_erase_on_aws import VICTIM, lake_user_ids
from tests.aws.test_lake_on_aws import accept, compactor, lake_keys
from tests.conftest import make_event

if TYPE_CHECKING:
    from eventpipe.adapters.aws.lake_compaction import S3LakeCompactor


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch)


def two_hours_of_small_objects(pipeline: Pipeline) -> None:
    """Two closed hours, each of three write_lake objects, the victim's events among others' in each."""
    for hour in ("06", "07"):
        for n in range(3):
            at = f"2026-11-28T{hour}:1{n}:00.000Z"
            user = VICTIM if n == 1 else f"other-{hour}-{n}"
            accept(pipeline, [make_event(user_id=user, occurred_at=at), make_event(user_id="x", occurred_at=at)])
            pipeline.drain()


def test_an_erasure_during_a_merge_waits_and_the_compaction_yields(
    pipeline: Pipeline, s3: Any, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_hours_of_small_objects(pipeline)
    run: S3LakeCompactor = compactor(s3, dynamodb)
    # GIVEN an erasure invoked while the compaction merges its first hour: it has read the hour's objects
    # (the victim's rows among them) and is about to write the merged object
    put = run._put
    during: dict[str, Any] = {}

    def erase_then_put(key: str, data: bytes) -> None:
        if "/c-" in key and not during:
            try:
                during["answer"] = pipeline.invoke("erase", {"user_id": VICTIM})
            except StorageError as exc:
                during["error"] = str(exc)
        put(key, data)

    monkeypatch.setattr(run, "_put", erase_then_put)
    result = run.compact()
    # THEN the erasure did not rewrite the lake under the merge: it waited for the lease (here, in one thread,
    # until it gave up), asking the compaction to yield
    assert "answer" not in during, "the erasure rewrote the lake while a merge held the victim's rows"
    assert "compaction" in during["error"]
    # AND the compaction stopped after the merge it was writing, leaving the second hour for a later run
    assert result.written_objects == 1
    # WHEN the operator invokes the erasure again THEN it runs, and no lake object holds the victim
    assert pipeline.invoke("erase", {"user_id": VICTIM})["events_erased"] == 2
    assert VICTIM not in lake_user_ids(s3)
    # AND the next compaction merges the rest, the victim still gone
    assert compactor(s3, dynamodb).compact().written_objects == 1
    assert VICTIM not in lake_user_ids(s3)
    assert len([key for key in lake_keys(s3) if "/c-" in key]) == 2


def test_a_compaction_while_an_erasure_runs_skips_its_run(
    pipeline: Pipeline, s3: Any, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_hours_of_small_objects(pipeline)
    erasure = pipeline.module.runtime.erasure
    curated = erasure._curated
    during: dict[str, Any] = {}

    def compact_then_delete(event_ids: set[str]) -> None:  # the erasure between its lake and curated steps
        during["result"] = compactor(s3, dynamodb, later_s=0).compact()
        during["keys"] = lake_keys(s3)
        curated(event_ids)

    monkeypatch.setattr(erasure, "_curated", compact_then_delete)
    pipeline.invoke("erase", {"user_id": VICTIM})
    # THEN the compaction that ran during the erasure did nothing (not even finish a journal), and said so
    assert during["result"].skipped
    assert not any("/c-" in key for key in during["keys"])
    # AND once the erasure is done the lease is free again: the next run compacts
    assert compactor(s3, dynamodb).compact().written_objects == 2
    assert VICTIM not in lake_user_ids(s3)


def test_a_lease_left_by_a_killed_holder_expires(pipeline: Pipeline, s3: Any, dynamodb: Any) -> None:
    from eventpipe.adapters.aws.lake_lease import LEASE_S, LakeLease
    from tests.aws.conftest import STATE_TABLE
    from tests.aws.test_lake_on_aws import LaterClock, real_now_ms

    # GIVEN a lease taken by a compaction that was then killed (it never released it)
    killed = LakeLease(STATE_TABLE, dynamodb, LaterClock(real_now_ms()), holder="compaction")
    assert killed.take()
    # THEN another holder cannot take it before it expires, and can after
    soon = LakeLease(STATE_TABLE, dynamodb, LaterClock(real_now_ms() + (LEASE_S - 5) * 1000), holder="erasure")
    assert not soon.take()
    later = LakeLease(STATE_TABLE, dynamodb, LaterClock(real_now_ms() + (LEASE_S + 1) * 1000), holder="erasure")
    assert later.take()
    # AND the killed holder's release does not free the new holder's lease
    killed.release()
    assert later.still_mine()


def test_an_erasure_stopped_by_its_timeout_leaves_the_next_one_a_clear_answer(
    pipeline: Pipeline, s3: Any, dynamodb: Any
) -> None:
    from eventpipe.adapters.aws.lake_lease import LakeLease
    from tests.aws.conftest import STATE_TABLE
    from tests.aws.test_lake_on_aws import LaterClock, real_now_ms

    two_hours_of_small_objects(pipeline)
    # GIVEN an erasure stopped by its timeout: its lease is left until it expires
    assert LakeLease(STATE_TABLE, dynamodb, LaterClock(real_now_ms()), holder="erasure").take()
    before = lake_keys(s3)
    # WHEN the operator invokes the erasure again THEN it answers at once, saying until when, and erases nothing
    with pytest.raises(StorageError, match="another erasure holds the lake until 20"):
        pipeline.invoke("erase", {"user_id": VICTIM})
    assert pipeline.slept == []
    assert lake_keys(s3) == before
    assert VICTIM in lake_user_ids(s3)
