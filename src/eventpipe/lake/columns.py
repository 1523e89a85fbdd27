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


HOUR_MS = 3_600_000


def partition_of(occurred_at_ms: int) -> str:
    """`dt=2026-11-28/hour=06`: the Hive partition of an event time (UTC)."""
    moment = datetime.fromtimestamp(occurred_at_ms // HOUR_MS * 3600, UTC)
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


class LakeRows:
    """Curated events turned into the lake's columns, one set of columns per partition.

    Built column by column, with the few conversions cached (a batch's events share their
    `received_at`; a chunk's events share a few hours): this runs once per curated event, so it
    must cost a small part of the chain's per-event time.
    """

    def __init__(self) -> None:
        self._partitions: dict[int, list[tuple[Any, ...]]] = {}
        self._times: dict[str, int] = {}

    def add(self, payload: bytes, batch_id: str) -> None:
        """Add one curated event's JSON text. The pipeline curated it, so its envelope's fields are
        text where present (the envelope schema says so) and the enrichment is what our enrichers
        wrote: only the values an outside source may shape are checked."""
        event = orjson.loads(payload)
        get = event.get
        enrichment = get("enrichment") or _EMPTY
        occurred_ms = _ms(event["occurred_at"])
        received = get("received_at")
        received_ms = self._times.get(received) if received else None
        if received and received_ms is None:
            received_ms = self._times[received] = _ms(received)
        agent = enrichment.get("user_agent") or _EMPTY
        campaign = enrichment.get("campaign") or _EMPTY
        referrer = enrichment.get("referrer") or _EMPTY
        revenue = enrichment.get("revenue") or _EMPTY
        geo = enrichment.get("geo") or _EMPTY
        bot = enrichment.get("bot", agent.get("is_bot"))
        row = (
            event["event_id"],
            event["event_type"],
            get("schema_version"),
            occurred_ms,
            received_ms,
            get("user_id"),
            get("anonymous_id"),
            get("session_id"),
            _text(get("app_id")),
            agent.get("browser"),
            agent.get("os"),
            agent.get("device_type"),
            bot if bot is True or bot is False else None,
            _text(geo.get("country") if geo.__class__ is dict else None),
            campaign.get("source"),
            campaign.get("medium"),
            campaign.get("name"),
            referrer.get("host"),
            referrer.get("medium"),
            _number(revenue.get("amount")),
            orjson.dumps(get("properties")),  # bytes: Arrow takes UTF-8 bytes as text without a copy to str
            orjson.dumps(enrichment),
            batch_id,
        )
        hour = occurred_ms // HOUR_MS
        rows = self._partitions.get(hour)
        if rows is None:
            rows = self._partitions[hour] = []
        rows.append(row)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._partitions.values())

    def tables(self) -> dict[str, pa.Table]:
        """Each partition's rows as an Arrow table of `LAKE_SCHEMA`, by partition."""
        return {partition_of(hour * HOUR_MS): table_of(rows) for hour, rows in sorted(self._partitions.items())}


def table_of(rows: list[tuple[Any, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, LAKE_SCHEMA, strict=True)],
        schema=LAKE_SCHEMA,
    )


_EMPTY: dict[str, Any] = {}


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _text(value: Any) -> str | None:
    if value is None or value.__class__ is str:
        return value
    if isinstance(value, (dict, list)):
        return None
    return str(value)


def _number(value: Any) -> float | None:
    if value is None or value.__class__ is float:
        return value
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else None
