"""A curated event as one lake row: the columns analysts filter on, the rest as JSON text.

The lake's schema is fixed here, once: the writer, the compaction, the erasure and the empty view
of `eventpipe query` all use `LAKE_SCHEMA`, so every file of the lake has the same columns.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa

log = logging.getLogger(__name__)

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


def hour_closed(partition: str, now_ms: int) -> bool:
    """True once the partition's hour ended more than an hour ago (late events are rare by then):
    when compaction merges an hour's files whatever their number."""
    day, hour = partition.removeprefix("dt=").split("/hour=")
    start = datetime.fromisoformat(f"{day}T{hour}:00:00+00:00")
    return now_ms >= int(start.timestamp() * 1000) + 2 * HOUR_MS


class _Agent(msgspec.Struct, gc=False):
    browser: str | None = None
    os: str | None = None
    device_type: str | None = None
    is_bot: bool | None = None


class _Campaign(msgspec.Struct, gc=False):
    source: str | None = None
    medium: str | None = None
    name: str | None = None


class _Referrer(msgspec.Struct, gc=False):
    host: str | None = None
    medium: str | None = None


class _Revenue(msgspec.Struct, gc=False):
    amount: float | None = None


class _Geo(msgspec.Struct, gc=False):
    country: str | None = None


class _Enrichment(msgspec.Struct, gc=False):
    """The enrichment fields the lake has columns for; the rest stays in the JSON text."""

    user_agent: _Agent | None = None
    campaign: _Campaign | None = None
    referrer: _Referrer | None = None
    revenue: _Revenue | None = None
    geo: _Geo | None = None
    bot: bool | None = None


class _Event(msgspec.Struct, gc=False):
    """A curated event as the lake reads it: `properties` and `enrichment` kept as their JSON text.

    `gc=False` on these structs: they hold no cycles, and a chunk makes tens of thousands of them.
    """

    event_id: str
    event_type: str
    occurred_at: str
    schema_version: str | None = None
    received_at: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    app_id: str | None = None
    properties: msgspec.Raw = msgspec.Raw(b"null")
    enrichment: msgspec.Raw = msgspec.Raw(b"{}")


_EVENT = msgspec.json.Decoder(_Event)
_ENRICHMENT = msgspec.json.Decoder(_Enrichment)
_NONE = _Agent()  # every field None: stands for a missing part of the enrichment
_NO_CAMPAIGN = _Campaign()
_NO_REFERRER = _Referrer()


class LakeRows:
    """Curated events turned into the lake's rows, grouped by partition.

    This runs once per curated event, so it must cost a small part of the chain's per-event time:
    msgspec decodes only the fields that have columns and hands `properties` and `enrichment` over
    as the JSON text they already are (no parse into dicts and serialisation back), and a batch's
    events share their `received_at`.
    """

    def __init__(self) -> None:
        self._partitions: dict[int, list[tuple[Any, ...]]] = {}
        self._times: dict[str, int] = {}
        self.skipped = 0

    def add(self, payload: bytes, batch_id: str) -> None:
        """Add one curated event's JSON text (curated: its envelope was valid, its ids are text)."""
        try:
            event = _EVENT.decode(payload)
            enrichment = _ENRICHMENT.decode(event.enrichment)
        except msgspec.DecodeError as exc:  # not one of ours (stored by hand, say): said, not stalling the lake
            log.error("a curated event of batch %s is not in the lake: %s", batch_id, exc)
            self.skipped += 1
            return
        occurred_ms = _ms(event.occurred_at)
        received = event.received_at
        received_ms = self._times.get(received) if received else None
        if received and received_ms is None:
            received_ms = self._times[received] = _ms(received)
        agent = enrichment.user_agent or _NONE
        campaign = enrichment.campaign or _NO_CAMPAIGN
        referrer = enrichment.referrer or _NO_REFERRER
        bot = enrichment.bot if enrichment.bot is not None else agent.is_bot
        row = (
            event.event_id,
            event.event_type,
            event.schema_version,
            occurred_ms,
            received_ms,
            event.user_id,
            event.anonymous_id,
            event.session_id,
            event.app_id,
            agent.browser,
            agent.os,
            agent.device_type,
            bot,
            enrichment.geo.country if enrichment.geo else None,
            campaign.source,
            campaign.medium,
            campaign.name,
            referrer.host,
            referrer.medium,
            enrichment.revenue.amount if enrichment.revenue else None,
            bytes(event.properties),
            bytes(event.enrichment),
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


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)
