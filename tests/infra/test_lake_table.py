"""The Glue table `events` reads the Parquet files the lake writes: same columns, same types; the docs' example
queries are SQL Athena can run over it."""

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


def test_the_example_queries_parse_as_athena_sql_over_the_glue_table(resources: dict[str, Any]) -> None:
    # GIVEN docs/lake.md's example queries (run on DuckDB by tests/lake/test_example_queries.py)
    import sqlglot
    from sqlglot import exp

    from tests.lake.test_example_queries import example_queries

    table = resources["EventsGlueTable"]["Properties"]["TableInput"]
    columns = {c["Name"] for c in table["StorageDescriptor"]["Columns"]} | {k["Name"] for k in table["PartitionKeys"]}
    for sql in example_queries():
        # WHEN each is parsed as Athena's dialect (Trino)
        tree = sqlglot.parse_one(sql, read="athena")
        # THEN it reads the Glue table, names only its columns (or the query's own aliases), and calls no
        # function the dialect does not know (DuckDB's json_extract_string, say)
        assert [t.name for t in tree.find_all(exp.Table)] == ["events"]
        aliases = {a.alias for a in tree.find_all(exp.Alias)}
        assert {c.name for c in tree.find_all(exp.Column)} <= columns | aliases, sql
        assert not list(tree.find_all(exp.Anonymous)), sql
