"""The examples in the docs are real: every JSON block parses; an example event passes validation against the
envelope and its type's schema (the bundled ones); an example answer has the shape of the `TypedDict` in
`core/documents.py` that the code builds it from. The README's `curl` event and the tracker's `track` call
are held to the same schemas."""

from __future__ import annotations

import json
import re
import shlex
import types
import typing
from typing import Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from eventpipe.core.documents import AcceptedDocument, BatchDocument, InsightsDocument
from eventpipe.core.registry import SchemaRegistry
from eventpipe.core.validation import validate_event
from tests.docs.repo_docs import DOCS, ROOT, Block, blocks, markdown_files

JSON_BLOCKS = [block for path in markdown_files() for block in blocks(path) if block.lang == "json"]
# Which document an example answer is, by keys only it has.
ANSWERS: list[tuple[set[str], Any]] = [
    ({"since", "totals"}, InsightsDocument),
    ({"status", "rejections"}, BatchDocument),
    ({"received", "errors"}, AcceptedDocument),
]
NOW = "2026-11-28T06:00:00Z"


def shape_errors(value: Any, expected: Any, where: str = "$") -> list[str]:
    """Where `value` departs from the type `expected` (a TypedDict, list, dict, Literal, union or scalar)."""
    origin = get_origin(expected)
    if is_typeddict(expected):
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        hints = get_type_hints(expected, include_extras=True)
        errors = [f"{where}.{key}: not in {expected.__name__}" for key in value if key not in hints]
        for key, hint in hints.items():
            optional = get_origin(hint) is NotRequired
            hint = get_args(hint)[0] if optional else hint
            if key in value:
                errors += shape_errors(value[key], hint, f"{where}.{key}")
            elif not optional:
                errors.append(f"{where}.{key}: missing ({expected.__name__} always has it)")
        return errors
    if origin in (Union, types.UnionType):
        options = [shape_errors(value, option, where) for option in get_args(expected)]
        return [] if any(not found for found in options) else min(options, key=len)
    if origin is Literal:
        return [] if value in get_args(expected) else [f"{where}: {value!r} is not one of {get_args(expected)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [
            error
            for i, item in enumerate(value)
            for error in shape_errors(item, get_args(expected)[0], f"{where}[{i}]")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [
            error
            for key, item in value.items()
            for error in shape_errors(item, get_args(expected)[1], f"{where}.{key}")
        ]
    if expected is type(None):
        return [] if value is None else [f"{where}: not null"]
    if expected is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{where}: not a number"]
    if expected is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: not an integer"]
    if expected is typing.Any:
        return []
    return [] if isinstance(value, expected) else [f"{where}: not a {expected.__name__}"]


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


def test_the_docs_hold_json_examples() -> None:
    assert len(JSON_BLOCKS) >= 5


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=str)
def test_every_json_example_parses_and_has_its_documents_shape(block: Block, registry: SchemaRegistry) -> None:
    try:
        document = json.loads(block.text)
    except ValueError as exc:
        pytest.fail(f'{block}: not JSON ({exc}); write the elided parts as strings ("...")')
    if isinstance(document, dict) and {"event_id", "event_type"} <= document.keys():
        reasons = validate_event(document, registry)
        assert not reasons, f"{block}: the example event is refused: {reasons}"
        return
    kind = next((typed for keys, typed in ANSWERS if keys <= document.keys()), None)
    assert kind is not None, f"{block}: which document is this? add its keys to ANSWERS"
    errors = shape_errors(document, kind)
    assert not errors, f"{block}: not a {kind.__name__}: {errors}"


def test_the_shape_check_finds_what_departs() -> None:
    accepted = {"batch_id": "q1", "received": 1, "rejected": 0, "errors": []}
    assert shape_errors(accepted, AcceptedDocument) == []
    assert shape_errors({**accepted, "extra": 1}, AcceptedDocument) == ["$.extra: not in AcceptedDocument"]
    assert shape_errors({**accepted, "received": "1"}, AcceptedDocument) == ["$.received: not an integer"]
    assert shape_errors({"batch_id": "q1"}, AcceptedDocument)
    errors = [{"index": 0, "event_id": None, "reasons": [{"code": "too_large", "path": "$"}]}]
    assert shape_errors({**accepted, "errors": errors}, AcceptedDocument) == [
        "$.errors[0].reasons[0].message: missing (ReasonDocument always has it)"
    ]


def curl_events() -> list[tuple[str, Any]]:
    """The events the docs' `curl ... -d '...'` examples send, with `$(date ...)` as the shell would fill it."""
    found = []
    for path in (ROOT / "README.md", *sorted(DOCS.glob("*.md"))):
        for block in blocks(path):
            if block.lang != "sh" or not re.search(r"^curl .* -d ", block.text, re.M):
                continue
            words = shlex.split(re.sub(r"\$\(date [^)]*\)", NOW, block.text), comments=True)
            found += [
                (str(block), json.loads(words[i + 1]))
                for i, word in enumerate(words)
                if word == "-d" and not words[i + 1].startswith("@")
            ]
    return [(where, body) for where, body in found if isinstance(body, dict)]


def test_the_readme_sends_an_event_with_curl() -> None:
    assert any(where.startswith("README.md") for where, _ in curl_events())


@pytest.mark.parametrize(("where", "event"), curl_events(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_event_sent_with_curl_in_the_docs_is_valid(where: str, event: Any, registry: SchemaRegistry) -> None:
    assert validate_event(event, registry) == [], where


def tracked_calls() -> list[tuple[str, dict[str, Any]]]:
    """The tracker page's `eventpipe.track(type, {...})` calls, their object literals read as JSON."""
    text = (DOCS / "tracker.md").read_text(encoding="utf-8")
    calls = re.findall(r'eventpipe\.track\("(\w+)", (\{[^}]*\})\)', text)
    return [(event_type, json.loads(re.sub(r"(\w+):", r'"\1":', literal))) for event_type, literal in calls]


def test_the_trackers_example_events_are_valid(registry: SchemaRegistry) -> None:
    calls = tracked_calls()
    assert calls, "docs/tracker.md shows no eventpipe.track call"
    for event_type, properties in calls:
        event = {"event_id": "7f0c3a4e-1f7e-4b8e-9a55-2e0f6f9d1c11", "event_type": event_type, "occurred_at": NOW}
        assert validate_event({**event, "properties": properties}, registry) == [], (event_type, properties)
