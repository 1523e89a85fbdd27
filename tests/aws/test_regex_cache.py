"""The regular expressions of a cold start, compiled at package time: the same patterns, built from
their recorded opcodes; any doubt about the file and `re` compiles as usual."""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]
import marshal
import re
from re import _compiler  # type: ignore[attr-defined]
from typing import TYPE_CHECKING

import pytest

from eventpipe.adapters.aws.regex_cache import (
    MAX_CACHE_BYTES,
    PYTHON,
    REGEX_CACHE_NAME,
    build_regex_cache,
    use_compiled_regexes,
)
from tests.aws.test_cold_start import lambda_init

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("task-root") / REGEX_CACHE_NAME
    path.write_bytes(build_regex_cache(path.parent))
    return path


@pytest.fixture
def original_compile(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`re`'s compiler as it was, put back after the test (the process's other tests use `re` too)."""
    monkeypatch.setattr(_compiler, "compile", _compiler.compile)
    return _compiler.compile


def test_every_recorded_pattern_compiles_to_the_same_opcodes(recorded: Path) -> None:
    # GIVEN what a cold start compiles, recorded by a fresh interpreter
    python, table = marshal.loads(recorded.read_bytes())
    assert python == PYTHON
    # THEN it holds urllib3's URL grammar and botocore's patterns among others
    assert len(table) > 50
    assert any(isinstance(pattern, str) and pattern.startswith("^(?:([a-zA-Z]") for pattern, _ in table)
    # AND each pattern built from its opcodes equals the one `re` compiles (Pattern equality compares
    # the pattern, its flags and its opcodes)
    for (pattern, flags), arguments in table.items():
        assert _sre.compile(*arguments) == _compiler.compile(pattern, flags)


def test_a_recorded_pattern_is_built_from_its_opcodes(recorded: Path, original_compile, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # GIVEN the file in use
    assert use_compiled_regexes(recorded) > 50
    parsed: list[object] = []
    parse = re._parser.parse  # type: ignore[attr-defined]
    monkeypatch.setattr(re._parser, "parse", lambda *args: parsed.append(args) or parse(*args))  # type: ignore[attr-defined]
    _, table = marshal.loads(recorded.read_bytes())
    (pattern, flags), _ = next(iter(table.items()))
    # WHEN a recorded pattern is compiled, THEN it is not parsed, and it is the same pattern
    assert _compiler.compile(pattern, flags) == original_compile(pattern, flags)
    assert parsed == [(pattern, flags)]  # only by the reference compile above
    # AND any other pattern is compiled as usual, str and bytes apart
    assert _compiler.compile("eventpipe-(?P<n>[0-9]+)", 0).match("eventpipe-12")["n"] == "12"
    assert _compiler.compile(b"^bytes$", 0).match(b"bytes")


def test_a_cold_start_with_the_file_parses_no_pattern(recorded: Path) -> None:
    # GIVEN a function whose package (LAMBDA_TASK_ROOT) holds the file, and one without it
    counting = (
        "from re import _parser; parse = _parser.parse; calls = []; "
        "_parser.parse = lambda *a: calls.append(a) or parse(*a)"
    )
    count = "runtime.bucket._client.meta; print(len(calls))"
    with_file = lambda_init(count, before=counting, LAMBDA_TASK_ROOT=str(recorded.parent))
    without = lambda_init(count, before=counting, LAMBDA_TASK_ROOT=str(recorded.parent / "missing"))
    # THEN its init and first client parse no regular expression, where it would parse about a hundred
    assert without > 50
    assert with_file == 0


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not marshal",
        marshal.dumps(((0, 0, 0, 0), {})),  # another Python's
        marshal.dumps((PYTHON, {("a", 0): ("a", 0, "not opcodes", 0, {}, ())})),
        marshal.dumps((PYTHON, {("a", 0): ("b", 0, [], 0, {}, ())})),  # not the key's pattern
        marshal.dumps((PYTHON, [])),
    ],
)
def test_a_foreign_or_damaged_file_is_ignored(tmp_path: Path, content: bytes, original_compile) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / REGEX_CACHE_NAME
    path.write_bytes(content)
    assert use_compiled_regexes(path) == 0
    assert _compiler.compile is original_compile


def test_a_missing_or_oversized_file_is_ignored(recorded: Path, tmp_path: Path, original_compile) -> None:  # type: ignore[no-untyped-def]
    assert use_compiled_regexes(tmp_path / "missing") == 0
    oversized = tmp_path / REGEX_CACHE_NAME
    oversized.write_bytes(recorded.read_bytes() + b"\0" * MAX_CACHE_BYTES)
    assert use_compiled_regexes(oversized) == 0
    assert _compiler.compile is original_compile


def test_invalid_opcodes_are_refused_by_sre(tmp_path: Path, original_compile) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a well-formed file whose opcodes are not a valid program
    path = tmp_path / REGEX_CACHE_NAME
    path.write_bytes(marshal.dumps((PYTHON, {("x", 0): ("x", 0, [1, 2, 3], 0, {}, (None,))})))
    assert use_compiled_regexes(path) == 1
    # THEN compiling that pattern fails loudly instead of running a wrong program
    with pytest.raises(RuntimeError, match="invalid SRE code"):
        _compiler.compile("x", 0)
