"""The rows of a lake table that an erasure matches (on `user_id` or `anonymous_id`), both runtimes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from eventpipe.erasure.target import ErasureTarget


def matching_rows(table: pa.Table, target: ErasureTarget) -> pa.ChunkedArray:
    """A boolean mask: True where the row's `user_id` or `anonymous_id` is one of the target's ids."""
    masks = [
        pc.fill_null(pc.is_in(table.column(field), value_set=pa.array(sorted(values), type=pa.string())), False)
        for field, values in target.ids.items()
    ]
    return pc.or_(masks[0], masks[1])
