"""docs/development.md names every part of `make test`, as the Makefile lists them."""

from __future__ import annotations

import re
import subprocess

from tests.docs.repo_docs import DOCS, ROOT, markdown_files


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


def documented_targets() -> set[str]:
    """Every `make TARGET` the Markdown files name, in prose or in a shell example."""
    found = set()
    for path in markdown_files():
        found |= set(re.findall(r"(?:`|^)make ([\w./-]+)", path.read_text(encoding="utf-8"), re.M))
    return found


def test_every_make_target_the_docs_name_exists() -> None:
    targets = documented_targets()
    assert {"run", "test", "bench"} <= targets
    missing = []
    for target in sorted(targets):
        dry_run = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        if dry_run.returncode != 0:
            missing.append(f"{target}: {dry_run.stderr.strip()}")
    assert not missing, f"the docs name make targets the Makefile lacks: {missing}"
