"""The replay function's modes: everything unfinished, or (on a schedule) pending batches left behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from eventpipe.core.errors import InputError
from eventpipe.handlers.ingest import handle_ingest
from eventpipe.handlers.replay import handle_replay
from eventpipe.localrun.runtime import LocalRuntime
from tests.conftest import NOW_MS, FixedClock, make_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventpipe.settings import Settings


@pytest.fixture
def deferred(settings: Settings, clock: FixedClock) -> Iterator[LocalRuntime]:
    """A runtime whose new batches stay pending, as when their workflow did not start."""
    runtime = LocalRuntime(settings, clock=clock, defer_to=lambda: None)
    yield runtime
    runtime.close()


def test_pending_older_than_restarts_only_batches_left_behind(deferred: LocalRuntime, clock: FixedClock) -> None:
    # GIVEN a batch acknowledged 10 minutes ago and one just now, both still pending
    clock.now = NOW_MS - 600_000
    old = handle_ingest({"events": [make_event()]}, deferred)["batch_id"]
    clock.now = NOW_MS
    new = handle_ingest({"events": [make_event()]}, deferred)["batch_id"]
    # WHEN the scheduled replay asks for pending batches older than 5 minutes
    answer = handle_replay({"pending_older_than_s": 300}, deferred)
    # THEN only the old one is started again (here: handed to the worker, so it is still pending)
    assert answer == {"batches": 1, "received": 1, "unfinished": [old]}
    assert new != old


@pytest.mark.parametrize("value", [-1, 1.5, "300", True, None])
def test_pending_older_than_must_be_whole_seconds(deferred: LocalRuntime, value: object) -> None:
    if value is None:  # absent: every unfinished batch, the operator's replay
        assert handle_replay({}, deferred)["batches"] == 0
        return
    with pytest.raises(InputError, match="pending_older_than_s"):
        handle_replay({"pending_older_than_s": value}, deferred)


def test_a_failed_batch_replayed_is_pending_again_for_the_worker(deferred: LocalRuntime) -> None:
    # GIVEN a failed batch
    batch_id = handle_ingest({"events": [make_event()]}, deferred)["batch_id"]
    deferred.batches.mark_failed(batch_id, "boom")
    # WHEN replay starts it again
    assert handle_replay({}, deferred)["batches"] == 1
    # THEN it is pending, for the worker to take (no workflow runs in the caller's thread)
    record = deferred.batches.get(batch_id)
    assert record is not None
    assert record.status == "pending"
    assert deferred.batches.pending(10)[0].batch_id == batch_id
