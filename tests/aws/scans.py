"""What a test reads straight from the tables (full Scans: for tests, never for a production path)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.aws.conftest import CURATED_TABLE


def curated_types(dynamodb: Any, table: str = CURATED_TABLE) -> dict[str, int]:
    """The curated events stored, by type."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="event_type")
    return dict(Counter(item["event_type"]["S"] for page in pages for item in page["Items"]))


def curated_count(dynamodb: Any, table: str = CURATED_TABLE) -> int:
    """The curated events stored."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(page["Count"] for page in pages)
