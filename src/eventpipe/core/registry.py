"""The schema registry: every (event type, version) JSON Schema, compiled once at load.

Bundled types live beside this module in `schemas/<event_type>/<version>.json`; users add types or
versions in a directory of the same layout (`EVENTPIPE_SCHEMA_DIR`), which wins on a clash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

from eventpipe.core.envelope import (
    ENVELOPE_SCHEMA,
    EVENT_TYPE_PATTERN,
    envelope_with,
    parse_schema_version,
)
from eventpipe.core.errors import SchemaLoadError

if TYPE_CHECKING:
    from collections.abc import Iterable

BUNDLED_SCHEMA_DIR = Path(__file__).parent / "schemas"
MAX_SCHEMA_FILE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    event_type: str
    version: str
    path: Path
    validator: Any  # a compiled jsonschema_rs validator of the envelope with this type's properties


def compile_schema(schema: dict[str, Any]) -> Any:
    """Compile a draft 2020-12 schema with format checks on; remote `$ref`s are refused, never fetched."""
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, offline=True)


class SchemaRegistry:
    """Looks up the compiled validator for an event's type and `schema_version`."""

    def __init__(self, entries: Iterable[SchemaEntry]) -> None:
        self._by_type: dict[str, dict[str, SchemaEntry]] = {}
        for entry in entries:
            self._by_type.setdefault(entry.event_type, {})[entry.version] = entry
        self._latest = {
            event_type: max(versions.values(), key=lambda e: parse_schema_version(e.version) or (0, 0, 0))
            for event_type, versions in self._by_type.items()
        }
        self.envelope_validator = compile_schema(ENVELOPE_SCHEMA)

    @classmethod
    def load(cls, *directories: Path) -> SchemaRegistry:
        """Load the bundled schemas, then each directory in turn (later ones override earlier)."""
        entries: dict[tuple[str, str], SchemaEntry] = {}
        for directory in (BUNDLED_SCHEMA_DIR, *directories):
            for entry in _load_directory(directory):
                entries[(entry.event_type, entry.version)] = entry
        return cls(entries.values())

    def has_type(self, event_type: str) -> bool:
        return event_type in self._by_type

    def entry(self, event_type: str, version: str | None) -> SchemaEntry | None:
        """The entry for `version`, or the latest version when `version` is None."""
        if version is None:
            return self._latest.get(event_type)
        return self._by_type.get(event_type, {}).get(version)

    def versions(self, event_type: str) -> list[str]:
        versions = self._by_type.get(event_type, {})
        return sorted(versions, key=lambda v: parse_schema_version(v) or (0, 0, 0))

    def entries(self) -> list[SchemaEntry]:
        return [self._by_type[t][v] for t in sorted(self._by_type) for v in self.versions(t)]


def _load_directory(directory: Path) -> list[SchemaEntry]:
    if not directory.is_dir():
        raise SchemaLoadError(f"{directory}: schema directory not found (check EVENTPIPE_SCHEMA_DIR)")
    entries = []
    for type_dir in sorted(p for p in directory.iterdir() if not p.name.startswith((".", "_"))):
        if not type_dir.is_dir():
            continue
        if not EVENT_TYPE_PATTERN.match(type_dir.name):
            raise SchemaLoadError(
                f"{type_dir}: directory name is not an event type (lower case, ^[a-z][a-z0-9_]{{0,63}}$)"
            )
        for path in sorted(type_dir.glob("*.json")):
            entries.append(_load_file(type_dir.name, path))
    return entries


def _load_file(event_type: str, path: Path) -> SchemaEntry:
    version = path.name.removesuffix(".json")
    if parse_schema_version(version) is None:
        raise SchemaLoadError(f"{path}: file name must be a SchemaVer version such as 1-0-0.json")
    if not path.is_file():
        raise SchemaLoadError(f"{path}: not a file")
    if path.stat().st_size > MAX_SCHEMA_FILE_BYTES:
        raise SchemaLoadError(f"{path}: schema file larger than {MAX_SCHEMA_FILE_BYTES} bytes")
    try:
        schema = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise SchemaLoadError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(schema, dict):
        raise SchemaLoadError(f"{path}: a schema must be a JSON object")
    try:
        jsonschema_rs.meta.validate(schema)
        validator = compile_schema(envelope_with(schema, f"urn:eventpipe:schema:{event_type}:{version}"))
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        first_line = str(exc).splitlines()[0]
        raise SchemaLoadError(f"{path}: not a valid JSON Schema (draft 2020-12): {first_line}") from exc
    return SchemaEntry(event_type, version, path, validator)
