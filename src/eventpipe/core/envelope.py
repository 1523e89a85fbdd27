"""The event envelope (docs/event-envelope.md) as a JSON Schema, and how a type's schema plugs into it."""

from __future__ import annotations

import copy
import re
from typing import Any

EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SCHEMA_VERSION_PATTERN = re.compile(r"^([1-9][0-9]*)-([0-9]+)-([0-9]+)$")
# A pattern, not format "uuid": it checks the same canonical form and runs several times faster.
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

_SHORT_TEXT = {"type": "string", "maxLength": 256}

ENVELOPE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["event_id", "event_type", "occurred_at", "properties"],
    "properties": {
        "event_id": {"type": "string", "pattern": UUID_PATTERN},
        "event_type": {"type": "string", "pattern": EVENT_TYPE_PATTERN.pattern},
        "schema_version": {"type": "string", "pattern": SCHEMA_VERSION_PATTERN.pattern},
        "occurred_at": {"type": "string", "format": "date-time"},
        "sent_at": {"type": "string", "format": "date-time"},
        "user_id": _SHORT_TEXT,
        "anonymous_id": _SHORT_TEXT,
        "session_id": _SHORT_TEXT,
        "app_id": {"type": "string", "maxLength": 64},
        "context": {
            "type": "object",
            "properties": {
                "ip": {"type": "string", "maxLength": 64},
                "user_agent": {"type": "string", "maxLength": 2048},
                "page_url": {"type": "string", "maxLength": 8192},
                "referrer": {"type": "string", "maxLength": 8192},
                "locale": {"type": "string", "maxLength": 64},
            },
        },
        "properties": {"type": "object"},
    },
}


def envelope_with(type_schema: dict[str, Any], schema_id: str) -> dict[str, Any]:
    """The envelope whose `properties` member must match `type_schema`.

    The type schema is embedded as its own resource (`$id`), so its local `$ref`s such as
    `#/$defs/item` keep resolving inside it, and one compiled validator checks the whole event.
    """
    embedded = {k: v for k, v in type_schema.items() if k != "$schema"}
    embedded["$id"] = schema_id
    envelope = copy.deepcopy(ENVELOPE_SCHEMA)
    envelope["properties"]["properties"] = embedded
    return envelope


def parse_schema_version(version: str) -> tuple[int, int, int] | None:
    """`"1-0-2"` -> `(1, 0, 2)`, or None when it is not SchemaVer (MODEL-REVISION-ADDITION)."""
    match = SCHEMA_VERSION_PATTERN.match(version)
    if match is None:
        return None
    model, revision, addition = match.groups()
    return int(model), int(revision), int(addition)
