from __future__ import annotations

import pytest

from eventpipe.core.model import ReasonCode
from eventpipe.core.registry import SchemaRegistry
from eventpipe.core.validation import json_path, parse_event, validate_event
from tests.conftest import make_event


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


@pytest.mark.parametrize("event_type", ["page_view", "add_to_cart", "purchase", "signup"])
def test_valid_events_of_each_bundled_type_pass(registry: SchemaRegistry, event_type: str) -> None:
    assert validate_event(make_event(event_type), registry) == []


def test_every_error_is_reported_with_its_json_path(registry: SchemaRegistry) -> None:
    # GIVEN a purchase with three faults in its properties
    event = make_event("purchase")
    event["properties"] = {
        "order_id": "o-1",
        "revenue": -1,
        "currency": "EUR",
        "items": [{"product_id": "p-1", "quantity": 0}],
    }
    # WHEN validated
    reasons = validate_event(event, registry)
    # THEN each is a schema_violation pointing at the member at fault
    assert {(r.code, r.path) for r in reasons} == {
        ("schema_violation", "$.properties.revenue"),
        ("schema_violation", "$.properties.items[0].quantity"),
        ("schema_violation", "$.properties.items[0].price"),
    }


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        ({"event_id": "not-a-uuid"}, ReasonCode.ENVELOPE_INVALID, "$.event_id"),
        ({"occurred_at": "2026-11-28T06:00:00"}, ReasonCode.ENVELOPE_INVALID, "$.occurred_at"),
        ({"occurred_at": "yesterday"}, ReasonCode.ENVELOPE_INVALID, "$.occurred_at"),
        ({"properties": 5}, ReasonCode.ENVELOPE_INVALID, "$.properties"),
        ({"event_type": "checkout"}, ReasonCode.UNKNOWN_EVENT_TYPE, "$.event_type"),
        ({"event_type": "Bad Type"}, ReasonCode.ENVELOPE_INVALID, "$.event_type"),
        ({"schema_version": "2-0-0"}, ReasonCode.UNKNOWN_SCHEMA_VERSION, "$.schema_version"),
        ({"context": {"ip": 12}}, ReasonCode.ENVELOPE_INVALID, "$.context.ip"),
    ],
)
def test_envelope_faults_get_their_code(
    registry: SchemaRegistry, change: dict[str, object], code: str, path: str
) -> None:
    event = make_event("page_view")
    event.update(change)
    reasons = validate_event(event, registry)
    assert (code, path) in {(r.code, r.path) for r in reasons}


def test_missing_required_envelope_members_are_each_reported(registry: SchemaRegistry) -> None:
    reasons = validate_event({"event_type": "page_view"}, registry)
    assert {r.path for r in reasons} == {"$.event_id", "$.occurred_at", "$.properties"}
    assert {r.code for r in reasons} == {"envelope_invalid"}


def test_a_non_object_is_envelope_invalid(registry: SchemaRegistry) -> None:
    assert [r.code for r in validate_event([1, 2], registry)] == ["envelope_invalid"]


def test_missing_schema_version_uses_the_latest(registry: SchemaRegistry) -> None:
    event = make_event("signup")
    del event["schema_version"]
    assert validate_event(event, registry) == []


def test_parse_event_reports_malformed_json_and_invalid_utf8() -> None:
    assert parse_event(b'{"a": 1}') == ({"a": 1}, None)
    for raw in (b'{"a": ', b"\xff\xfe{}", b'{"a": NaN}'):
        value, reason = parse_event(raw)
        assert value is None
        assert reason is not None
        assert reason.code == "malformed_json"


def test_json_path_quotes_keys_that_are_not_identifiers() -> None:
    assert json_path(["properties", "items", 0, "price"]) == "$.properties.items[0].price"
    assert json_path(["properties", "a b"]) == '$.properties["a b"]'
