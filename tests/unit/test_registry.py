from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pytest

from eventpipe.core.errors import SchemaLoadError
from eventpipe.core.registry import SchemaRegistry

if TYPE_CHECKING:
    from pathlib import Path


def write_schema(root: Path, event_type: str, version: str, schema: object) -> Path:
    path = root / event_type / f"{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(schema) if not isinstance(schema, bytes) else schema)
    return path


def test_bundled_types_are_registered_at_1_0_0() -> None:
    # WHEN the registry loads with no user directory
    registry = SchemaRegistry.load()
    # THEN the four bundled types are there
    assert [(e.event_type, e.version) for e in registry.entries()] == [
        ("add_to_cart", "1-0-0"),
        ("page_view", "1-0-0"),
        ("purchase", "1-0-0"),
        ("signup", "1-0-0"),
    ]


def test_user_directory_adds_types_and_versions_and_latest_wins(tmp_path: Path) -> None:
    # GIVEN a new type and a newer page_view version
    write_schema(tmp_path, "search", "1-0-0", {"type": "object", "required": ["query"]})
    write_schema(tmp_path, "page_view", "1-1-0", {"type": "object", "required": ["path", "title"]})
    write_schema(tmp_path, "page_view", "1-0-10", {"type": "object"})
    # WHEN loaded
    registry = SchemaRegistry.load(tmp_path)
    # THEN both are known and "latest" compares SchemaVer numerically, not as text
    assert registry.has_type("search")
    assert registry.versions("page_view") == ["1-0-0", "1-0-10", "1-1-0"]
    latest = registry.entry("page_view", None)
    assert latest is not None
    assert latest.version == "1-1-0"
    assert registry.entry("page_view", "9-0-0") is None


@pytest.mark.parametrize(
    ("event_type", "version", "content", "message"),
    [
        ("broken", "1-0-0", b"{not json", "not valid JSON"),
        ("broken", "1-0-0", {"type": "no-such-type"}, "not a valid JSON Schema"),
        ("broken", "1-0-0", {"minimum": "zero"}, "not a valid JSON Schema"),
        ("broken", "1-0-0", [1, 2], "must be a JSON object"),
        ("broken", "v1", {"type": "object"}, "SchemaVer"),
        ("Bad-Type", "1-0-0", {"type": "object"}, "not an event type"),
    ],
)
def test_a_bad_schema_file_is_refused_at_load_with_its_path(
    tmp_path: Path, event_type: str, version: str, content: object, message: str
) -> None:
    # GIVEN a schema directory with one bad file
    path = write_schema(tmp_path, event_type, version, content)
    # WHEN / THEN loading names the file and the problem
    with pytest.raises(SchemaLoadError, match=message) as info:
        SchemaRegistry.load(tmp_path)
    assert str(path.parent if event_type == "Bad-Type" else path) in str(info.value)


def test_a_huge_schema_file_is_refused(tmp_path: Path) -> None:
    write_schema(tmp_path, "big", "1-0-0", b"{" + b" " * 300_000 + b"}")
    with pytest.raises(SchemaLoadError, match="larger than"):
        SchemaRegistry.load(tmp_path)


def test_a_missing_schema_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match="EVENTPIPE_SCHEMA_DIR"):
        SchemaRegistry.load(tmp_path / "nope")
