"""The repository's Markdown as the docs tests read it: the tracked files, their fenced blocks and their prose."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SKIPPED_DIRS = {".git", ".venv", ".venv-checkov", ".venv-sam", "node_modules", "build", ".aws-sam", ".eventpipe"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block: the file it is in, its first line's number, its language tag and its text."""

    path: Path
    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


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


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(path, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def prose(path: Path) -> str:
    """The file's text without its fenced blocks (examples may show anything)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def section(path: Path, heading_start: str) -> str:
    """The heading that starts with `heading_start` and its text, up to the next heading of its level or above."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(heading_start)}.*$", text, re.M)
    assert match, f"{path.relative_to(ROOT)} has no heading starting {heading_start!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, match.end())
    return text[match.start() : end.start() if end else len(text)]
