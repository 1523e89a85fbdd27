"""The lake's files as the issue lists them, read as a user would after `eventpipe ingest`: the columns
(names, order, types), zstd, and Hive partitions of the event's UTC time under the data directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import make_event, ndjson
from tests.functional.test_cli import eventpipe

if TYPE_CHECKING:
    from pathlib import Path

# The list, in the order docs/lake.md gives it, and batch_id (the event's lineage).
TEXT = pa.string()
UTC = pa.timestamp("ms", tz="UTC")
COLUMNS = [
    ("event_id", TEXT),
    ("event_type", TEXT),
    ("schema_version", TEXT),
    ("occurred_at", UTC),
    ("received_at", UTC),
    ("user_id", TEXT),
    ("anonymous_id", TEXT),
    ("session_id", TEXT),
    ("app_id", TEXT),
    ("browser", TEXT),
    ("os", TEXT),
    ("device_type", TEXT),
    ("bot", pa.bool_()),
    ("country", TEXT),
    ("utm_source", TEXT),
    ("utm_medium", TEXT),
    ("utm_campaign", TEXT),
    ("referrer_host", TEXT),
    ("referrer_medium", TEXT),
    ("revenue", pa.float64()),
    ("properties", TEXT),
    ("enrichment", TEXT),
    ("batch_id", TEXT),
]


def test_a_lake_file_has_the_listed_columns_zstd_and_the_partition_of_the_utc_event_time(tmp_path: Path) -> None:
    # GIVEN an event whose time is written with an offset: 01:30 at -05:00 is 06:30 UTC
    event = make_event("purchase", occurred_at="2026-11-28T01:30:00.000-05:00")
    (tmp_path / "in.ndjson").write_bytes(ndjson(event))
    data_dir = tmp_path / "data"
    # WHEN it is ingested as a user does
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0
    # THEN one Parquet file holds it under the data directory, in its UTC day and hour
    (path,) = (data_dir / "lake").rglob("*.parquet")
    assert path.relative_to(data_dir / "lake").parent.as_posix() == "dt=2026-11-28/hour=06"
    # AND its columns are the listed ones, in order, timestamps in UTC, every column zstd
    assert [(f.name, f.type) for f in pq.read_schema(path)] == COLUMNS
    metadata = pq.read_metadata(path)
    row_group = metadata.row_group(0)
    assert {row_group.column(i).compression for i in range(row_group.num_columns)} == {"ZSTD"}
    (row,) = pq.read_table(path).to_pylist()
    assert row["occurred_at"].isoformat() == "2026-11-28T06:30:00+00:00"
    # AND properties and enrichment are JSON text; revenue is in the base currency (EUR)
    assert orjson.loads(row["properties"]) == event["properties"]
    assert orjson.loads(row["enrichment"])["user_agent"]["browser"] == row["browser"] == "Firefox"
    assert row["revenue"] == 59.9
    # AND `eventpipe query` shows the same columns, with the partition's dt and hour
    described = eventpipe("query", "DESCRIBE events", "--json", data_dir=data_dir)
    assert described.returncode == 0, described.stderr
    types = {r["column_name"]: r["column_type"] for r in orjson.loads(described.stdout)}
    assert list(types) == [name for name, _ in COLUMNS] + ["dt", "hour"]
    assert (types["occurred_at"], types["dt"], types["hour"]) == ("TIMESTAMP WITH TIME ZONE", "DATE", "INTEGER")
