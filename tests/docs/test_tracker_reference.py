"""docs/tracker.md against the tracker it describes (src/eventpipe/data/tracker.js, served as /tracker.js):
its size, its API and the numbers of its delivery rules."""

from __future__ import annotations

import re

import pytest

from tests.docs.repo_docs import DOCS, ROOT, section

PAGE = DOCS / "tracker.md"
TRACKER = ROOT / "src" / "eventpipe" / "data" / "tracker.js"
# Each number the page states, found by a pattern on the page and one in the script: they must agree.
NUMBERS = [
    (r"flushAt = (\d+)", r"o\.flushAt \|\| (\d+)"),
    (r"flushIntervalMs = (\d+)", r"o\.flushIntervalMs == null \? (\d+)"),
    (r"`maxRetryDelayMs` \(default (\d+)\)", r"o\.maxRetryDelayMs \|\| (\d+)"),
    (r"at most ([\d,]+) events and", r"var MAX_BATCH = (\d+);"),
    (r"at most [\d,]+ events and at most ([\d,]+) bytes", r"var MAX_BODY = (\d+);"),
    (r"The queue holds at most ([\d,]+) events", r"var MAX_QUEUE = (\d+);"),
    (r"a new one after (\d+) minutes", r"var IDLE_MS = (\d+) \* 60 \* 1000;"),
]


def number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, f"no match for {pattern!r}"
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize(("on_page", "in_script"), NUMBERS, ids=[page for page, _ in NUMBERS])
def test_each_number_on_the_page_is_the_scripts(on_page: str, in_script: str) -> None:
    page = " ".join(PAGE.read_text(encoding="utf-8").split())  # a sentence may break across lines
    assert number(on_page, page) == number(in_script, TRACKER.read_text(encoding="utf-8"))


def test_the_backoff_starts_at_half_a_second() -> None:
    assert "0.5 s doubling" in PAGE.read_text(encoding="utf-8")
    assert re.search(r"500 \* Math\.pow\(2,", TRACKER.read_text(encoding="utf-8"))


def test_the_stated_size_is_the_scripts() -> None:
    stated = number(r"about (\d+) KB", PAGE.read_text(encoding="utf-8"))
    assert abs(TRACKER.stat().st_size / 1000 - stated) < 1


def test_every_call_in_the_api_table_is_in_the_script() -> None:
    table = section(PAGE, "API")
    calls = re.findall(r"^\| `(\w+)", table, re.M)
    assert {"init", "track", "page", "identify", "flush", "dropped"} <= set(calls)
    script = TRACKER.read_text(encoding="utf-8")
    missing = [call for call in calls if not re.search(rf"\b{call}\s*[:=]|api\.{call}\b", script)]
    assert not missing, f"docs/tracker.md documents calls the tracker lacks: {missing}"
