"""Turn one raw event into either a parsed event or every reason it is invalid, with JSON paths."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.envelope import EVENT_TYPE_PATTERN
from eventpipe.core.model import Reason, ReasonCode

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eventpipe.core.registry import SchemaRegistry

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(parts: Iterable[str | int]) -> str:
    """`["properties", "items", 0]` -> `$.properties.items[0]`."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}"
        else:
            path += "[" + orjson.dumps(part).decode() + "]"
    return path


def parse_event(raw: bytes) -> tuple[Any, Reason | None]:
    """Parse one event's JSON text; a failure is a `malformed_json` reason, never an exception."""
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, Reason(ReasonCode.MALFORMED_JSON, "$", f"not valid JSON: {exc}")


def validate_event(event: Any, registry: SchemaRegistry) -> list[Reason]:
    """Every reason `event` breaks the envelope or its type's schema; empty when it is valid.

    The envelope and the type schema are compiled into one validator, so a valid event (the
    common case) costs one `is_valid` call; errors are only collected for invalid events.
    """
    if not isinstance(event, dict):
        return [Reason(ReasonCode.ENVELOPE_INVALID, "$", "an event must be a JSON object")]
    event_type = event.get("event_type")
    version = event.get("schema_version")
    if isinstance(event_type, str) and registry.has_type(event_type):
        entry = registry.entry(event_type, version if isinstance(version, str) else None)
        if entry is None:
            known = ", ".join(registry.versions(event_type))
            return [
                Reason(
                    ReasonCode.UNKNOWN_SCHEMA_VERSION,
                    "$.schema_version",
                    f"{event_type} has no schema version {version!r} (registered: {known})",
                )
            ]
        validator = entry.validator
        reasons: list[Reason] = []
    else:
        # Unknown or malformed type: still report what is wrong with the rest of the envelope.
        validator = registry.envelope_validator
        reasons = []
        if isinstance(event_type, str) and EVENT_TYPE_PATTERN.match(event_type):
            reasons.append(
                Reason(
                    ReasonCode.UNKNOWN_EVENT_TYPE,
                    "$.event_type",
                    f"event type {event_type!r} is not registered (see `eventpipe schemas list`)",
                )
            )
    if validator.is_valid(event):
        return reasons
    return reasons + [_reason(error) for error in validator.iter_errors(event)]


def _reason(error: Any) -> Reason:
    parts = list(error.instance_path)
    if error.kind.name == "required":
        parts.append(error.kind.property)  # point at the missing member, not at its parent
    in_properties = bool(parts) and parts[0] == "properties"
    code = ReasonCode.SCHEMA_VIOLATION if in_properties and len(parts) > 1 else ReasonCode.ENVELOPE_INVALID
    return Reason(code, json_path(parts), error.message)
