"""The cost model's dashboard poll through the sketch cache, its insights folds and its lake writes
(bench/cost_model.py)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from cost_model import Assumptions, PerBatch, cached_poll, fold_shape, lake_shape


def test_a_poll_with_no_fold_since_reads_the_180_counter_items_only() -> None:
    # 180 counter items of 333 bytes: the window's 60 in one 4 KB-rounded Query, the lookback's 120 in another
    units, items = cached_poll(333, 13_600, 0.0)
    assert items == 180
    assert units == 5 + 10


def test_a_poll_after_a_fold_reads_the_minute_items_it_rewrote() -> None:
    units, items = cached_poll(333, 13_600, 6.5)
    assert items == 180 + 6.5
    assert units == 15 + 6.5 * 13_600 / 4096 + 1
    # AND fewer folds than polls read fewer minute items on average
    assert cached_poll(333, 13_600, 0.65)[0] < units


def per_batch(minutes: float = 3.0, keys: float = 5.5) -> PerBatch:
    return PerBatch(
        events=100,
        cpu_s={},
        wall_s={},
        log_bytes=0,
        units=Counter(),
        calls=Counter(),
        raw_bytes_per_event=0,
        curated_item_bytes=0,
        curated_events=0,
        metrics=0,
        delta_bytes=1_200,
        minute_bytes=490,
        sketch_item_bytes=690,
        minutes_per_batch=minutes,
        keys_per_batch=keys,
        fold_cpu_s=0.001,
        fold_round_trips_s=0.1,
        fold_calls=Counter(),
        fold_batches=15,
        lake_cpu_s_per_event=20e-6,
        lake_round_trips_s=0.08,
        lake_calls=Counter(),
        lake_objects=1,
        lake_log_bytes=300,
        lake_record_bytes=1_200,
    )


def assumptions(window_s: int = 30) -> Assumptions:
    return Assumptions({}, 1.5, 5, 3, 10.0, 40, fold_window_s=window_s)


def test_a_fold_a_window_when_batches_come_faster_than_windows() -> None:
    # GIVEN one batch a second (100 events/s), a 30 s window and batches touching 3 minutes, 5.5 minute items
    folds_s, keys, ids = fold_shape(100, per_batch(), assumptions())
    # THEN a fold every 30 s writes the batch's minutes and the half minute the window moved on
    assert folds_s == pytest.approx(1 / 30)
    assert keys == pytest.approx(3.5 * 5.5 / 3)
    # AND a minute item holds on average half of the 8-byte ids of the 180 batches that touch it
    assert ids == pytest.approx(8 * 60 * 3 / 2)


def test_at_low_rates_a_fold_per_batch_and_no_more_minutes_than_the_batches_touch() -> None:
    folds_s, keys, _ids = fold_shape(1, per_batch(), assumptions())
    assert folds_s == pytest.approx(1 / 100)  # one batch each 100 s: the window holds one
    assert keys == pytest.approx(5.5)


def test_write_lake_runs_once_a_window_per_shard_and_sooner_when_a_window_outgrows_lambda_s_payload() -> None:
    per = per_batch()
    per.curated_events = 85  # of 100 events a batch
    # GIVEN 4 shards and a 30 s window: at 100 events/s each shard's window holds 64 events
    invocations_s, events, objects = lake_shape(100, per, Assumptions({}, 1.5, 5, 3, 10.0, 40, lake_shards=4))
    assert invocations_s == pytest.approx(4 / 30)
    assert events == pytest.approx(85 / 4 * 30)
    assert objects == pytest.approx(1 + (30 + 120) / 3600)
    # AND at 1,000 events/s a window (6,375 records of 1.2 KB, 7.3 MB) is cut at Lambda's 6 MB payload
    invocations_s, events, _ = lake_shape(1000, per, Assumptions({}, 1.5, 5, 3, 10.0, 40, lake_shards=4))
    assert events == pytest.approx(6 * 2**20 / 1_200)
    assert invocations_s > 4 / 30
    # AND without the lake, nothing runs
    assert lake_shape(100, per, Assumptions({}, 1.5, 5, 3, 10.0, 40, lake=False)) == (0.0, 0.0, 0.0)
