"""The workflow states read at the functions' edge (core/documents.py): what a step gets, and refusals of bad states."""

from __future__ import annotations

import pytest

from eventpipe.core.documents import batch_ref, mark_done_input, mark_failed_input


def test_a_batch_reference_keeps_only_the_batch_and_its_key() -> None:
    state = {"batch_id": "h1", "raw_key": "raw/h1.ndjson", "processed": {"curated": 3}}
    assert batch_ref(state) == {"batch_id": "h1", "raw_key": "raw/h1.ndjson"}


def test_mark_done_reads_the_counts_and_the_time_when_there_is_one() -> None:
    state = {"batch_id": "h1", "curated": 2, "duplicates": 1, "rejected": {"schema_violation": 1}}
    assert mark_done_input(state) == {**state}
    assert mark_done_input({**state, "received_at_ms": 5})["received_at_ms"] == 5


def test_mark_failed_keeps_the_caught_error_and_ignores_anything_else_in_it() -> None:
    state = {"batch_id": "h1", "error": {"Error": "StorageError", "Cause": "throttled", "Extra": 1}}
    assert mark_failed_input(state) == {"batch_id": "h1", "error": {"Error": "StorageError", "Cause": "throttled"}}
    # an error that is not an object (no Catch writes one) is no error
    assert mark_failed_input({"batch_id": "h1", "error": "boom"}) == {"batch_id": "h1", "error": None}
    assert mark_failed_input({"batch_id": "h1"}) == {"batch_id": "h1", "error": None}


@pytest.mark.parametrize(
    ("read", "state"),
    [
        (batch_ref, {"batch_id": "h1"}),
        (mark_done_input, {"batch_id": "h1", "curated": 1, "duplicates": 0}),
        (mark_failed_input, {"error": {"Error": "x"}}),
    ],
)
def test_a_state_without_a_required_field_is_refused(read: object, state: dict[str, object]) -> None:
    with pytest.raises(KeyError):
        read(state)  # type: ignore[operator]
