"""The README's figures are docs/cost.md's: the README shows a summary, cost.md the lines and how they were
measured, and a figure updated in one must be updated in the other."""

from __future__ import annotations

import re

from tests.docs.repo_docs import DOCS, ROOT, section

README = ROOT / "README.md"
COST = DOCS / "cost.md"


def cells(text: str, label: str) -> list[str]:
    """The figures of the table row that starts with `label` (bold or not)."""
    match = re.search(rf"^\| (?:\*\*)?{re.escape(label)}(?:\*\*)? \|(.+)\|$", text, re.M)
    assert match, f"no row {label!r}"
    return [cell.strip().strip("*") for cell in match.group(1).split("|")]


def test_the_readmes_cost_table_is_cost_mds() -> None:
    readme = section(README, "Cost on AWS")
    table = COST.read_text(encoding="utf-8")
    assert cells(readme, "per million events") == cells(table, "per million events")
    assert cells(readme, "a month") == cells(table, "total")


def test_the_readmes_idle_cost_is_cost_mds() -> None:
    stated = re.search(r"receives nothing costs about (\$[\d.]+) a month", section(README, "Cost on AWS"))
    assert stated
    assert cells(section(COST, "Idle"), "total")[-1] == stated.group(1)
