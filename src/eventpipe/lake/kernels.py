"""The few Arrow compute kernels the lake writer uses, called by name through `pyarrow._compute`.

`import pyarrow.compute` builds a Python wrapper, with its docstring, for each of Arrow's ~300
functions: 40 ms, a tenth of the lake's CPU in a 100,000-event `eventpipe ingest`. The writer calls
three kernels, and the Cython module that `pyarrow.compute` itself calls them through loads in 3 ms.
"""

from __future__ import annotations

import pyarrow as pa
from pyarrow import _compute


def cast(values: pa.Array, to: pa.DataType, *, safe: bool = True) -> pa.Array:
    """`values` as `to` (pa.ArrowInvalid if a value cannot be; `safe=False` truncates instead)."""
    options = _compute.CastOptions.safe(to) if safe else _compute.CastOptions.unsafe(to)
    result: pa.Array = _compute.call_function("cast", [values], options)
    return result


def is_valid(values: pa.Array) -> pa.BooleanArray:
    result: pa.BooleanArray = _compute.call_function("is_valid", [values])
    return result


def rows_where(table: pa.Table, mask: pa.BooleanArray) -> pa.Table:
    result: pa.Table = _compute.call_function("filter", [table, mask])
    return result
