"""A curated event as one lake row: the columns analysts filter on, the rest as JSON text.

The lake's schema is fixed here, once: the writer, the compaction, the erasure and the empty view
of `eventpipe query` all use `LAKE_SCHEMA`, so every file of the lake has the same columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

_TIMESTAMP = pa.timestamp("ms", tz="UTC")
LAKE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.string()),
        ("occurred_at", _TIMESTAMP),
        ("received_at", _TIMESTAMP),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("session_id", pa.string()),
        ("app_id", pa.string()),
        ("browser", pa.string()),
        ("os", pa.string()),
        ("device_type", pa.string()),
        ("bot", pa.bool_()),
        ("country", pa.string()),
        ("utm_source", pa.string()),
        ("utm_medium", pa.string()),
        ("utm_campaign", pa.string()),
        ("referrer_host", pa.string()),
        ("referrer_medium", pa.string()),
        ("revenue", pa.float64()),
        ("properties", pa.string()),
        ("enrichment", pa.string()),
        ("batch_id", pa.string()),  # lineage: the batch that curated the event
    ]
)
COLUMN_NAMES = tuple(LAKE_SCHEMA.names)


def partition_of(occurred_at_ms: int) -> str:
    """`dt=2026-11-28/hour=06`: the Hive partition of an event time (UTC)."""
    moment = datetime.fromtimestamp(occurred_at_ms / 1000, UTC)
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


def row_of(payload: bytes, batch_id: str) -> tuple[str, tuple[Any, ...]]:
    """The partition and the column values of one curated event's JSON text.

    The pipeline curated the event, so its envelope is valid: `occurred_at` parses, ids are text.
    """
    event = orjson.loads(payload)
    enrichment = event.get("enrichment") or {}
    occurred_ms = _ms(event["occurred_at"])
    agent = enrichment.get("user_agent") or {}
    campaign = enrichment.get("campaign") or {}
    referrer = enrichment.get("referrer") or {}
    revenue = enrichment.get("revenue") or {}
    geo = enrichment.get("geo") or {}
    bot = enrichment.get("bot", agent.get("is_bot"))
    row = (
        event["event_id"],
        event["event_type"],
        _text(event.get("schema_version")),
        occurred_ms,
        _ms(event["received_at"]) if event.get("received_at") else None,
        _text(event.get("user_id")),
        _text(event.get("anonymous_id")),
        _text(event.get("session_id")),
        _text(event.get("app_id")),
        _text(agent.get("browser")),
        _text(agent.get("os")),
        _text(agent.get("device_type")),
        bot if isinstance(bot, bool) else None,
        _text(geo.get("country") if isinstance(geo, dict) else None),
        _text(campaign.get("source")),
        _text(campaign.get("medium")),
        _text(campaign.get("name")),
        _text(referrer.get("host")),
        _text(referrer.get("medium")),
        _number(revenue.get("amount")),
        orjson.dumps(event.get("properties")).decode(),
        orjson.dumps(enrichment).decode(),
        batch_id,
    )
    return partition_of(occurred_ms), row


def table_of(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Rows of `row_of` as an Arrow table of `LAKE_SCHEMA`."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMN_NAMES]
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, LAKE_SCHEMA, strict=True)],
        schema=LAKE_SCHEMA,
    )


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
