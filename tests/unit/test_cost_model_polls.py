"""The cost model's dashboard poll through the sketch cache (bench/cost_model.py, docs/cost.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from cost_model import cached_poll


def test_a_poll_with_no_batch_since_reads_the_180_counter_items_only() -> None:
    # 180 counter items of 333 bytes: the window's 60 in one 4 KB-rounded Query, the lookback's 120 in another
    units, items = cached_poll(333, 13_600, 5.4, 0.0)
    assert items == 180
    assert units == 5 + 10


def test_the_sketch_items_read_are_those_one_batch_spans_however_many_batches_came() -> None:
    one, items_one = cached_poll(333, 13_600, 5.4, 1.0)
    many, items_many = cached_poll(333, 13_600, 5.4, 30.0)
    assert one == many
    assert items_one == items_many == 180 + 5.4
    assert one == 15 + 5.4 * 13_600 / 4096 + 1
    # AND fewer batches than polls read fewer sketch items on average
    assert cached_poll(333, 13_600, 5.4, 0.3)[0] < one
