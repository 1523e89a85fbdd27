"""The Glue table `events` reads the Parquet files the lake writes: same columns, same types."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from eventpipe.lake.columns import LAKE_SCHEMA

# How Athena (Hive DDL) names the Arrow types of LAKE_SCHEMA.
HIVE_TYPES = {
    pa.string(): "string",
    pa.bool_(): "boolean",
    pa.float64(): "double",
    pa.timestamp("ms", tz="UTC"): "timestamp",
}


def test_the_glue_columns_are_the_parquet_schema_in_order_and_type(resources: dict[str, Any]) -> None:
    # GIVEN the lake table of the SAM template (Terraform's is compared with it in test_terraform_parity)
    table = resources["EventsGlueTable"]["Properties"]["TableInput"]
    glue = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    # THEN its columns are the Parquet schema's, each in the Hive type of its Arrow type
    assert glue == [(field.name, HIVE_TYPES[field.type]) for field in LAKE_SCHEMA]
    # AND it reads Parquet, partitioned by dt and hour as the files are laid out
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert [k["Name"] for k in table["PartitionKeys"]] == ["dt", "hour"]
    template = table["Parameters"]["storage.location.template"]["Fn::Sub"]
    assert template == "s3://${AnalyticsBucket}/events/dt=${!dt}/hour=${!hour}/"
    assert table["Parameters"]["projection.enabled"] == "true"
