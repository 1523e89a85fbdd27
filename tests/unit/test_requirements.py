"""requirements.txt (what the Lambda package installs) follows pyproject's dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
LOCAL_SERVER_ONLY = {"uvicorn", "httptools", "uvloop", "plotly"}  # `eventpipe up`, never in a Lambda function
# `eventpipe query` (DuckDB) runs on one machine only; on AWS Athena reads the lake (pyarrow and
# msgspec are in the Lambda package: ProcessBatch writes Parquet).
LOCAL_LAKE_ONLY = {"duckdb"}
LOCAL_STORE_ONLY = {"numpy"}  # the SQLite curated store's id filter; DynamoDB needs none


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_the_lambda_requirements_are_the_core_and_aws_dependencies() -> None:
    # GIVEN pyproject's dependencies and its aws extra
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["aws"]}
    # WHEN requirements.txt is read
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    listed = {_name(line) for line in lines if line and not line.startswith("#")}
    # THEN it lists them all but the local server's, and boto3, which the Lambda runtime provides
    assert listed == expected - LOCAL_SERVER_ONLY - LOCAL_LAKE_ONLY - LOCAL_STORE_ONLY - {"boto3"}
