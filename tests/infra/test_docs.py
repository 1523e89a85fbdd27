"""The docs live in the repository: nothing links outside it, every relative link and anchor resolves,
and the command line's reference names every subcommand.

A user who clones the repository has only what it holds, so a link to a sibling folder (`../shared/...`)
or to a design file that is not shipped is a dead end for them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from eventpipe.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".git", ".venv", ".venv-checkov", ".venv-sam", "node_modules", "build", ".aws-sam", ".eventpipe"}
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".tf", ".json", ".sh", ".toml", ".txt", ".js", ".html", ".mk", ""}
# Outside the repository: the sibling folder the design notes lived in, and the notes' file name.
OUTSIDE = re.compile(r"\.\./shared\b|\bARCHITECTURE\.md\b")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def tracked_files() -> list[Path]:
    try:
        names = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, timeout=30
        ).stdout.split(b"\0")
        return [ROOT / name.decode() for name in names if name]
    except (OSError, subprocess.CalledProcessError):  # an unpacked archive: every file but the tools' folders
        return [p for p in ROOT.rglob("*") if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)]


def markdown_files() -> list[Path]:
    return [p for p in tracked_files() if p.suffix == ".md" and p.is_file()]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_\[\]()]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found = {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.M)}
    return found | set(re.findall(r'<a id="([\w-]+)"', text))


def test_no_tracked_file_links_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if path.suffix not in TEXT_SUFFIXES or not path.is_file() or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [
            f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}"
            for number, line in enumerate(text.splitlines(), 1)
            if OUTSIDE.search(line)
        ]
    assert not offenders, "files that point outside the repository (put the text in docs/):\n" + "\n".join(offenders)


def test_the_check_above_catches_a_link_outside() -> None:
    assert OUTSIDE.search("See [`../shared/ARCHITECTURE.md`](../shared/ARCHITECTURE.md), section 3.")
    assert not OUTSIDE.search("See [the envelope](docs/event-envelope.md).")


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    broken = []
    for target in MD_LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        name, _, fragment = target.partition("#")
        resolved = (path.parent / name).resolve() if name else path
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_the_readme_points_at_the_docs_index() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/README.md)" in readme
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    docs = {p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    assert not docs - listed, f"docs/README.md does not list: {sorted(docs - listed)}"


def test_the_cli_reference_names_every_subcommand() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    subparsers = next(a for a in _parser()._actions if a.choices and isinstance(a.choices, dict))
    commands = set(subparsers.choices)
    missing = {name for name in commands if f"## `eventpipe {name}" not in reference}
    assert not missing, f"docs/cli.md has no section for: {sorted(missing)}"
