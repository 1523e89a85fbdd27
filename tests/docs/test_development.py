"""docs/development.md names every part of `make test`, as the Makefile lists them."""

from __future__ import annotations

import re

from tests.docs.repo_docs import DOCS, ROOT


def test_every_part_of_make_test_is_described() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^test: (.+)$", makefile, re.M)
    assert match
    parts = match.group(1).split()
    assert len(parts) >= 5
    page = (DOCS / "development.md").read_text(encoding="utf-8")
    # test-prerequisites is described by the script it runs
    missing = [part for part in parts if f"`make {part}`" not in page and part != "test-prerequisites"]
    assert not missing, f"docs/development.md does not describe: {missing}"
    assert "scripts/test_prerequisites.sh" in page
