"""The event lake: curated events as Parquet files, SQL over them, erasure of a user, retention.

    <data dir>/lake/dt=YYYY-MM-DD/hour=HH/part-<first row>-<last row>-<random>.parquet

`LakeWriter` follows the curated store and writes its new events; `run_query` runs read-only
DuckDB SQL over the views `events` and `rejected`; `erase_user` removes a user's events from every
store. docs/lake.md describes the layout and the guarantees.
"""

from __future__ import annotations
