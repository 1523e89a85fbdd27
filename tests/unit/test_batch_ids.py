"""Batch ids (core/batch_ids.py): every kind fits an execution name, derived ids repeat, request ids do not."""

from __future__ import annotations

import os

from eventpipe.core import batch_ids
from eventpipe.core.batch_ids import (
    RANDOM_POOL_BYTES,
    execution_retry_name,
    group_batch_id,
    is_batch_id,
    is_replay,
    object_version,
    queued_batch_id,
    queued_id_facts,
    random_hex,
    range_version,
    replay_batch_id,
    request_batch_id,
    source_batch_ids,
)

NOW_MS = 1_764_300_000_000


def every_kind() -> dict[str, str]:
    version = object_version("bucket", "incoming/a.ndjson", "v1")
    return {
        "request": request_batch_id(NOW_MS),
        "queued": queued_batch_id(NOW_MS, 7),
        "group": group_batch_id(["ha", "hb"]),
        "source": source_batch_ids(version, 500)(3),
        "range": source_batch_ids(range_version(version, 0, 1024), 500)(0),
        "replay": replay_batch_id(NOW_MS, [["ha", 1], ["hb", 0]]),
    }


def test_every_kind_of_id_is_a_batch_id_short_enough_for_an_execution_name_with_its_retry_suffix() -> None:
    for kind, batch_id in every_kind().items():
        assert is_batch_id(batch_id), kind
        assert len(batch_id) <= 31, kind
        assert len(execution_retry_name(batch_id, NOW_MS)) <= 80, kind


def test_each_kind_has_its_own_prefix_and_only_replays_are_replays() -> None:
    ids = every_kind()
    assert {kind: batch_id[0] for kind, batch_id in ids.items()} == {
        "request": "h",
        "queued": "q",
        "group": "g",
        "source": "s",
        "range": "s",
        "replay": "r",
    }
    assert [kind for kind, batch_id in ids.items() if is_replay(batch_id)] == ["replay"]


def test_derived_ids_repeat_and_request_ids_do_not() -> None:
    # GIVEN the same work twice WHEN its ids are formed THEN they are the same; requests get fresh ones
    assert every_kind()["group"] == every_kind()["group"]
    assert every_kind()["source"] == every_kind()["source"]
    assert every_kind()["replay"] == every_kind()["replay"]
    assert request_batch_id(NOW_MS) != request_batch_id(NOW_MS)
    # a different batch size or range never gives the same ids
    version = object_version("bucket", "k", "v1")
    assert source_batch_ids(version, 500)(0) != source_batch_ids(version, 499)(0)
    assert source_batch_ids(range_version(version, 0, 10), 500)(0) != source_batch_ids(
        range_version(version, 10, 20), 500
    )(0)


def test_a_queued_id_gives_back_its_time_and_count_and_no_other_id_does() -> None:
    assert queued_id_facts(queued_batch_id(NOW_MS, 7)) == (NOW_MS, 7)
    assert queued_id_facts(queued_batch_id(NOW_MS, 10_000)) == (NOW_MS, 0xFFF)  # the count is capped
    for kind, batch_id in every_kind().items():
        if kind != "queued":
            assert queued_id_facts(batch_id) is None, kind


def test_malformed_ids_are_not_batch_ids() -> None:
    for text in ("", "../x", "a b", "h" * 65, "é", "a/b"):
        assert not is_batch_id(text)
    assert is_batch_id("h" * 64)
    assert batch_ids.BATCH_ID.pattern.endswith("{1,64}$")


def test_request_ids_drawn_from_one_pool_are_all_different() -> None:
    # More ids than one pool page holds: the pool is drawn again, never repeats
    ids = {request_batch_id(1_700_000_000_000) for _ in range(2 * RANDOM_POOL_BYTES)}
    assert len(ids) == 2 * RANDOM_POOL_BYTES


def test_a_forked_child_draws_random_bytes_of_its_own() -> None:
    random_hex(8)  # the parent's pool holds bytes not drawn yet
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the id it would share with its parent without a pool of its own
        os.write(write_end, random_hex(8).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.close(write_end)
    assert len(child) == 16
    assert child != random_hex(8)
