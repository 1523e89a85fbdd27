"""`pseudonymise`: configured identifiers replaced by keyed HMAC-SHA256 pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from eventpipe.core.enrich.pseudonymise import PseudonymiseEnricher, pseudonym
from eventpipe.core.errors import ConfigError, EnrichmentError

KEY = b"0123456789abcdef0123456789abcdef"


def reference(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def enrich(event: dict[str, Any], fields: tuple[str, ...], key: bytes = KEY) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    PseudonymiseEnricher(fields, key).enrich(event, enrichment)
    return enrichment


def test_string_and_nested_fields_are_replaced() -> None:
    # GIVEN a user id and a nested e-mail configured for pseudonymisation
    event = {"user_id": "u-123", "context": {"email": "ann@example.com", "locale": "en"}}
    # WHEN enriched
    enrichment = enrich(event, ("user_id", "context.email"))
    # THEN both values are their 32-hex HMAC-SHA256 pseudonyms and are listed
    assert event["user_id"] == reference(KEY, "u-123")
    assert event["context"] == {"email": reference(KEY, "ann@example.com"), "locale": "en"}
    assert len(event["user_id"]) == 32
    assert enrichment == {"pseudonymised": ["user_id", "context.email"]}


def test_numbers_are_hashed_as_their_text() -> None:
    # GIVEN a numeric identifier
    event: dict[str, Any] = {"properties": {"customer_no": 12345}}
    # WHEN enriched
    enrich(event, ("properties.customer_no",))
    # THEN it is hashed as "12345"
    assert event["properties"]["customer_no"] == reference(KEY, "12345")


@pytest.mark.parametrize("key", [b"k", KEY, b"x" * 64, b"y" * 65, b"z" * 200])
def test_prepared_hmac_matches_the_standard_library(key: bytes) -> None:
    # GIVEN keys shorter than, equal to and longer than the SHA-256 block
    event = {"user_id": "u-123"}
    # WHEN enriched
    enrich(event, ("user_id",), key)
    # THEN the result is exactly hmac-sha256 truncated, as the reference function computes it
    assert event["user_id"] == reference(key, "u-123") == pseudonym(key, "u-123")


def test_same_input_same_pseudonym_and_key_matters() -> None:
    # GIVEN two events of the same user, and a third under another key
    first, second, third = {"user_id": "u-1"}, {"user_id": "u-1"}, {"user_id": "u-1"}
    # WHEN each is enriched
    enrich(first, ("user_id",))
    enrich(second, ("user_id",))
    enrich(third, ("user_id",), b"another key of some length......")
    # THEN pseudonyms still join, and differ with the key
    assert first == second
    assert first != third


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], True])
def test_object_array_or_bool_at_a_path_is_an_error(value: object) -> None:
    # GIVEN a configured path that holds an object, an array or a boolean
    event = {"context": {"email": value}}
    # WHEN / THEN enriching raises at that path
    with pytest.raises(EnrichmentError) as caught:
        enrich(event, ("context.email",))
    assert caught.value.path == "$.context.email"


@pytest.mark.parametrize(
    "event",
    [{}, {"user_id": None}, {"context": "text"}, {"context": {}}, {"context": {"email": None}}],
)
def test_missing_values_write_nothing(event: dict[str, Any]) -> None:
    # GIVEN an event without the configured fields (or with null, or a non-object parent)
    before = dict(event)
    # WHEN enriched
    enrichment = enrich(event, ("user_id", "context.email"))
    # THEN nothing is written or changed
    assert enrichment == {}
    assert event == before


def test_no_fields_configured_is_a_no_op() -> None:
    # GIVEN an enricher with no fields and no key
    enrichment: dict[str, Any] = {}
    event = {"user_id": "u-1"}
    # WHEN enriched
    PseudonymiseEnricher((), None).enrich(event, enrichment)
    # THEN nothing happens
    assert (event, enrichment) == ({"user_id": "u-1"}, {})


def test_fields_without_key_is_a_config_error() -> None:
    # GIVEN fields and an empty key
    # WHEN / THEN construction refuses
    with pytest.raises(ConfigError, match="key"):
        PseudonymiseEnricher(("user_id",), b"")
