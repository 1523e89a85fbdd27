"""The example queries of docs/lake.md run on DuckDB over the local lake (Athena runs them on AWS)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from eventpipe.lake.query import run_query
from tests.conftest import make_event
from tests.lake.conftest import ingest

if TYPE_CHECKING:
    from eventpipe.lake.writer import LakeWriter
    from eventpipe.localrun.runtime import LocalRuntime

DOC = Path(__file__).parents[2] / "docs" / "lake.md"


def example_queries() -> list[str]:
    """The statements of the ```sql block under "Example queries"."""
    section = DOC.read_text().split("## Example queries", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, flags=re.S)
    assert block is not None, "docs/lake.md has no ```sql block under Example queries"
    return [statement.strip() for statement in block.group(1).split(";") if statement.strip()]


def visit(referrer: str | None, event_type: str = "page_view", **overrides: object) -> dict[str, object]:
    event = make_event(event_type, **overrides)
    if referrer is None:
        event["context"].pop("referrer", None)  # type: ignore[union-attr]
    else:
        event["context"]["referrer"] = referrer  # type: ignore[index]
    return event


def test_the_three_example_queries_run_on_the_local_lake(runtime: LocalRuntime, lake: LakeWriter) -> None:
    # GIVEN a lake with page views from two referrers, a purchase and a signup, one user's among others
    ingest(
        runtime,
        *[visit("https://www.google.com/", user_id="u-9") for _ in range(3)],
        visit("https://news.example.org/a", user_id="u-9"),
        visit(None, user_id="u-123"),
        visit(None, "purchase", user_id="u-123"),
        visit(None, "signup", user_id="u-7"),
    )
    lake.sync()
    data_dir = runtime.settings.data_dir
    per_day, referrers, user = example_queries()
    # WHEN each runs, THEN it answers its question
    rows = run_query(data_dir, per_day)
    assert rows.columns == ["dt", "event_type", "events"]
    assert [(r[1], r[2]) for r in rows.rows] == [("page_view", 5), ("purchase", 1), ("signup", 1)]
    rows = run_query(data_dir, referrers)
    assert [(r[0], r[2]) for r in rows.rows] == [("google.com", 3), ("news.example.org", 1)]
    rows = run_query(data_dir, user)
    assert [r[1] for r in rows.rows] == ["page_view", "purchase"]
    assert rows.columns == ["occurred_at", "event_type", "properties"]
