"""A throttled StartExecution is retried by start_batches, an asynchronous invocation, under moto.

Step Functions throttles StartExecution past the account's token bucket. moto never does, so the
tests make the state machine's client answer `ThrottlingException` through botocore's own event
hooks (the request never leaves the client, as with a real throttle after botocore's retries).
ingest hands the start to `start_batches` as an asynchronous invocation (`adapters/aws/lambda_async.py`),
recorded here (`tests/aws/async_invocations.py`) and run as Lambda would run it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest
from botocore.exceptions import ClientError

from eventpipe.core.errors import StorageError
from eventpipe.core.model import BatchStatus
from eventpipe.handlers.start_batches import start_queued_batch
from tests.aws.async_invocations import Invocations
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.conftest import make_event

if TYPE_CHECKING:
    from collections.abc import Callable

START_FUNCTION = "eventpipe-start_batches"


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch, EVENTPIPE_START_FUNCTION=START_FUNCTION)


@pytest.fixture
def invocations(pipeline: Pipeline) -> Invocations:
    recorded = Invocations()
    recorded.watch(pipeline.module.runtime.ingestor.starter.retries)
    return recorded


def throttle_starts(pipeline: Pipeline, times: int) -> Callable[[], int]:
    """The next `times` StartExecution calls of the functions' client fail as throttled; returns a call counter."""
    calls = {"n": 0}

    def throttled(**_kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= times:
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            raise ClientError(error, "StartExecution")

    client = pipeline.module.runtime.starter._client
    client.meta.events.register("before-call.states.StartExecution", throttled)
    return lambda: calls["n"]


def test_a_throttled_start_is_handed_to_start_batches_which_starts_it(
    pipeline: Pipeline, invocations: Invocations
) -> None:
    # GIVEN StartExecution throttled (botocore's own retries are spent too)
    throttle_starts(pipeline, times=1)
    # WHEN a request is ingested
    answer = pipeline.invoke("ingest", {"events": [make_event("page_view"), make_event("signup")]})
    # THEN it is acknowledged, no execution started, and the start is one invocation of start_batches
    batch_id = answer["batch_id"]
    assert answer["received"] == 2
    assert pipeline.drain() == []
    (event,) = invocations.events(START_FUNCTION)
    assert event == {"batch_id": batch_id, "raw_key": f"raw/{batch_id}.ndjson", "retry": False}
    # WHEN Lambda runs it
    assert pipeline.invoke("start_batches", event) == {"outcome": "started"}
    # THEN the batch's execution runs (named after the batch) and the batch is done
    assert pipeline.drain() == [batch_id]
    record = pipeline.module.runtime.batches.get(batch_id)
    assert record is not None
    assert (record.status, record.curated) == (BatchStatus.DONE, 2)


def test_a_start_that_fails_again_raises_so_lambda_runs_it_again(pipeline: Pipeline, invocations: Invocations) -> None:
    # GIVEN a start handed on, and StartExecution still throttled at its first retry
    calls = throttle_starts(pipeline, times=2)
    batch_id = pipeline.invoke("ingest", {"events": [make_event("page_view")]})["batch_id"]
    (event,) = invocations.events(START_FUNCTION)
    # WHEN start_batches runs THEN it fails (Lambda retries a failed asynchronous invocation twice)
    with pytest.raises(StorageError):
        pipeline.invoke("start_batches", event)
    assert calls() == 2
    # AND Lambda's next run starts it
    assert pipeline.invoke("start_batches", event) == {"outcome": "started"}
    assert pipeline.drain() == [batch_id]


def test_a_done_or_unknown_batch_is_skipped_and_a_foreign_message_dropped(pipeline: Pipeline) -> None:
    runtime = pipeline.module.runtime
    batch_id = pipeline.invoke("ingest", {"events": [make_event("page_view")]})["batch_id"]
    pipeline.drain()
    done = orjson.dumps({"batch_id": batch_id, "raw_key": f"raw/{batch_id}.ndjson"}).decode()
    assert start_queued_batch(done, runtime.batches, runtime.starter) == "skipped"
    unknown = orjson.dumps({"batch_id": "no-such-batch", "raw_key": "raw/x.ndjson"}).decode()
    assert start_queued_batch(unknown, runtime.batches, runtime.starter) == "skipped"
    for body in ["", "not json", "[1]", '{"batch_id": "../x", "raw_key": "k"}', '{"batch_id": "b"}', "x" * 5000]:
        assert start_queued_batch(body, runtime.batches, runtime.starter) == "dropped", body
    assert pipeline.drain() == []  # nothing started twice


def test_when_lambda_refuses_too_the_batch_stays_pending_for_the_schedule(
    pipeline: Pipeline, invocations: Invocations
) -> None:
    # GIVEN StartExecution throttled and Lambda refusing the asynchronous invocation
    throttle_starts(pipeline, times=1)
    invocations.refuse = True
    # WHEN a request is ingested THEN it is still acknowledged, and the batch waits, pending
    answer = pipeline.invoke("ingest", {"events": [make_event("page_view")]})
    record = pipeline.module.runtime.batches.get(answer["batch_id"])
    assert record is not None
    assert record.status is BatchStatus.PENDING
    assert invocations.events(START_FUNCTION) == []
    # AND a replay (the pending-batch schedule) restarts it
    assert pipeline.invoke("replay", {})["batches"] == 1
    assert pipeline.drain()
