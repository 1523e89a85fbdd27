"""`timestamps`: clock-skew correction and the event time the aggregator buckets by."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from eventpipe.core.enrich.timestamps import TimestampsEnricher, epoch_ms, format_ms
from eventpipe.core.errors import EnrichmentError


def enrich(event: dict[str, Any]) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    TimestampsEnricher().enrich(event, enrichment)
    return enrichment


def test_skew_from_sent_and_received_corrects_occurred_at() -> None:
    # GIVEN a device clock 2 minutes behind: sent 06:00:01, received by the server 06:02:01.250
    event = {
        "occurred_at": "2026-11-28T06:00:00.123Z",
        "sent_at": "2026-11-28T06:00:01.000Z",
        "received_at": "2026-11-28T06:02:01.250Z",
    }
    # WHEN enriched
    enrichment = enrich(event)
    # THEN the skew is added to occurred_at
    assert enrichment == {
        "corrected_at": "2026-11-28T06:02:00.373Z",
        "clock_skew_ms": 120_250,
        "event_time_ms": 1795845600123 + 120_250,
    }


def test_without_sent_at_occurred_at_is_kept_and_skew_is_zero() -> None:
    # GIVEN no sent_at
    event = {"occurred_at": "2026-11-28T06:00:00.123Z", "received_at": "2026-11-28T07:00:00.000Z"}
    # WHEN enriched
    enrichment = enrich(event)
    # THEN occurred_at is the event time
    assert enrichment == {
        "corrected_at": "2026-11-28T06:00:00.123Z",
        "clock_skew_ms": 0,
        "event_time_ms": 1795845600123,
    }


def test_offsets_are_normalised_to_utc_with_milliseconds() -> None:
    # GIVEN occurred_at with a +02:00 offset and microseconds, and a negative skew (device ahead)
    event = {
        "occurred_at": "2026-11-28T08:00:00.123456+02:00",
        "sent_at": "2026-11-28T08:00:05+02:00",
        "received_at": "2026-11-28T06:00:04.000Z",
    }
    # WHEN enriched
    enrichment = enrich(event)
    # THEN the output is UTC, "Z", milliseconds (truncated), and the skew is negative
    assert enrichment["corrected_at"] == "2026-11-28T05:59:59.123Z"
    assert enrichment["clock_skew_ms"] == -1000
    assert enrichment["event_time_ms"] == 1795845600123 - 1000


@pytest.mark.parametrize(
    ("sent_at", "skew_ms"),
    [
        ("2026-11-27T06:00:00.001Z", 24 * 3_600_000 - 1),  # a day behind, less a millisecond: corrected
        ("2026-11-29T05:59:59.999Z", -(24 * 3_600_000 - 1)),  # a day ahead, less a millisecond: corrected
    ],
)
def test_a_skew_under_a_day_is_corrected(sent_at: str, skew_ms: int) -> None:
    event = {"occurred_at": "2026-11-28T06:00:00.000Z", "sent_at": sent_at, "received_at": "2026-11-28T06:00:00.000Z"}
    enrichment = enrich(event)
    assert enrichment["clock_skew_ms"] == skew_ms
    assert enrichment["event_time_ms"] == 1795845600000 + skew_ms
    assert "clock_skew_ignored_ms" not in enrichment


@pytest.mark.parametrize(
    ("sent_at", "skew_ms"),
    [
        ("2026-11-27T06:00:00.000Z", 24 * 3_600_000),  # exactly a day behind
        ("2026-11-29T06:00:00.000Z", -24 * 3_600_000),  # exactly a day ahead
        ("1971-01-01T00:00:00.000Z", 1795845600000 - 31536000000),  # a device that thinks it is 1971
    ],
)
def test_a_skew_of_a_day_or_more_is_not_applied_and_is_flagged(sent_at: str, skew_ms: int) -> None:
    # GIVEN a sent_at a day or more away from the server's clock
    event = {"occurred_at": "2026-11-28T05:59:30.000Z", "sent_at": sent_at, "received_at": "2026-11-28T06:00:00.000Z"}
    # WHEN enriched
    enrichment = enrich(event)
    # THEN occurred_at is kept (the event stays where its own clock put it) and the skew is flagged
    assert enrichment == {
        "corrected_at": "2026-11-28T05:59:30.000Z",
        "clock_skew_ms": 0,
        "event_time_ms": 1795845570000,
        "clock_skew_ignored_ms": skew_ms,
    }


def test_received_at_is_not_needed_without_sent_at() -> None:
    # GIVEN an event the pipeline has not stamped, with no sent_at
    # WHEN enriched
    enrichment = enrich({"occurred_at": "2026-11-28T06:00:00Z"})
    # THEN the time is still derived, with milliseconds added
    assert enrichment["corrected_at"] == "2026-11-28T06:00:00.000Z"


@pytest.mark.parametrize(
    ("event", "path"),
    [
        ({"occurred_at": "yesterday"}, "$.occurred_at"),
        ({"occurred_at": "2026-11-28T06:00:00"}, "$.occurred_at"),  # no offset
        ({"occurred_at": 1795845600}, "$.occurred_at"),
        ({}, "$.occurred_at"),
        ({"occurred_at": "2026-11-28T06:00:00Z", "sent_at": "2026-13-01T00:00:00Z"}, "$.sent_at"),
        ({"occurred_at": "2026-11-28T06:00:00Z", "sent_at": "2026-11-28T06:00:00Z"}, "$.received_at"),
        (
            {
                "occurred_at": "9999-12-31T23:00:00Z",
                "sent_at": "2026-01-01T00:00:00Z",
                "received_at": "2026-01-01T02:00:00Z",
            },
            "$.occurred_at",
        ),
    ],
)
def test_unusable_timestamp_is_an_error_at_its_path(event: dict[str, Any], path: str) -> None:
    # GIVEN a timestamp that cannot be parsed, lacks an offset, or corrects beyond year 9999
    # WHEN / THEN enriching raises at that timestamp's path
    with pytest.raises(EnrichmentError) as caught:
        enrich(event)
    assert caught.value.path == path


@pytest.mark.parametrize(
    "moment",
    [
        "1970-01-01T00:00:00.000Z",
        "1969-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00.000Z",
        "2026-11-28T06:00:59.999Z",
    ],
)
def test_format_ms_and_epoch_ms_round_trip(moment: str) -> None:
    # GIVEN an instant, including ones before the epoch and at the edge of the range
    # WHEN it goes to epoch milliseconds and back to text
    text = format_ms(epoch_ms(datetime.fromisoformat(moment)))
    # THEN the text is unchanged
    assert text == moment


def test_received_at_of_each_batch_is_used_with_one_enricher() -> None:
    # GIVEN one enricher (as a process keeps it) and events of two batches received at different times
    enricher = TimestampsEnricher()
    sent = "2026-11-28T06:00:00.000Z"
    skews = []
    for received_at in ("2026-11-28T06:00:01.000Z", "2026-11-28T06:00:01.000Z", "2026-11-28T06:00:03.500Z"):
        enrichment: dict[str, Any] = {}
        # WHEN each is enriched
        enricher.enrich({"occurred_at": sent, "sent_at": sent, "received_at": received_at}, enrichment)
        skews.append(enrichment["clock_skew_ms"])
    # THEN each skew comes from its own batch's received_at
    assert skews == [1000, 1000, 3500]
    # AND a bad received_at after a good one is still refused at its path
    with pytest.raises(EnrichmentError) as caught:
        enricher.enrich({"occurred_at": sent, "sent_at": sent, "received_at": "soon"}, {})
    assert caught.value.path == "$.received_at"
