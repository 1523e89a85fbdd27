"""`fingerprint`: a content digest that ignores the event id."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from eventpipe.core.enrich.fingerprint import FingerprintEnricher
from eventpipe.core.errors import EnrichmentError

EVENT: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "purchase",
    "occurred_at": "2026-11-28T06:00:00.123Z",
    "user_id": "u-123",
    "anonymous_id": "a-77",
    "session_id": "s-9",
    "properties": {"order_id": "o-1", "revenue": 59.9, "currency": "EUR"},
}


def fingerprint(event: dict[str, Any], secret: bytes | None = None) -> str:
    enrichment: dict[str, Any] = {}
    FingerprintEnricher(secret).enrich(event, enrichment)
    value = enrichment["fingerprint"]
    assert isinstance(value, str)
    return value


def test_same_content_under_another_event_id_has_the_same_fingerprint() -> None:
    # GIVEN the same content sent twice under two event ids, properties in another key order
    other = copy.deepcopy(EVENT)
    other["event_id"] = "e-2"
    other["session_id"] = "s-10"
    other["properties"] = dict(reversed(list(EVENT["properties"].items())))
    # WHEN both are fingerprinted
    # THEN the fingerprints match, and are 32 hex characters
    assert fingerprint(EVENT) == fingerprint(other)
    assert len(fingerprint(EVENT)) == 32
    int(fingerprint(EVENT), 16)


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_type", "add_to_cart"), ("user_id", "u-124"), ("occurred_at", "2026-11-28T06:00:00.124Z")],
)
def test_identifying_fields_change_the_fingerprint(field: str, value: str) -> None:
    # GIVEN an event differing in one identifying field
    other = copy.deepcopy(EVENT)
    other[field] = value
    # WHEN both are fingerprinted
    # THEN they differ
    assert fingerprint(EVENT) != fingerprint(other)


def test_properties_change_the_fingerprint() -> None:
    # GIVEN an event with another revenue
    other = copy.deepcopy(EVENT)
    other["properties"]["revenue"] = 60.0
    # WHEN / THEN the fingerprints differ
    assert fingerprint(EVENT) != fingerprint(other)


def test_anonymous_id_is_used_without_user_id() -> None:
    # GIVEN two anonymous events of different visitors
    first = {k: v for k, v in EVENT.items() if k != "user_id"}
    second = {**first, "anonymous_id": "a-78"}
    # WHEN / THEN their fingerprints differ
    assert fingerprint(first) != fingerprint(second)


def test_keyed_fingerprint_differs_from_unkeyed() -> None:
    # GIVEN a secret
    # WHEN fingerprinted with and without it
    # THEN the digests differ, and the keyed one is stable
    keyed = fingerprint(EVENT, b"secret key")
    assert keyed != fingerprint(EVENT)
    assert keyed == fingerprint(EVENT, b"secret key")


def test_unserialisable_properties_are_an_error() -> None:
    # GIVEN an integer beyond 64 bits (possible when another JSON parser produced the event)
    event = {**EVENT, "properties": {"n": 2**70}}
    # WHEN / THEN fingerprinting raises at $.properties
    with pytest.raises(EnrichmentError) as caught:
        fingerprint(event)
    assert caught.value.path == "$.properties"
