"""The docs live in the repository: nothing links outside it or names a path of the machine it was written on,
every relative link and anchor resolves, and every repository file the docs name exists.

A user who clones the repository has only what it holds, so a link to a sibling folder (`../shared/...`)
or to a design file that is not shipped is a dead end for them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.repo_docs import FENCE, ROOT, markdown_files, prose, tracked_files

TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".tf", ".json", ".sh", ".toml", ".txt", ".js", ".html", ".mk", ""}
# Outside the repository: the sibling folder the design notes lived in, and the notes' file name.
OUTSIDE = re.compile(r"\.\./shared\b|\bARCHITECTURE\.md\b")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A path of the machine the docs were written on: a home folder, a workspace, a scratch folder.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:home|Users|root|work|tmp)/[\w.-]+")
# A repository path named in backticks (`src/eventpipe/cli.py`, `tests/aws/test_start_retry.py`, `awsrun/secrets.py`).
NAMED_PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|json|yaml|yml|sh|tf|md|mk|js|toml|txt|html))`")
# Where a named path may start: the repository, src/ and the package (docs name modules from there), the doc's folder.
PATH_BASES = ("", "src", "src/eventpipe")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_\[\]()]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found = {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.M)}
    return found | set(re.findall(r'<a id="([\w-]+)"', text))


def lines_matching(pattern: re.Pattern[str]) -> list[str]:
    """`file:line: text` of every line of a tracked text file (this one excepted) that `pattern` finds."""
    offenders = []
    for path in tracked_files():
        if path.suffix not in TEXT_SUFFIXES or not path.is_file() or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [
            f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}"
            for number, line in enumerate(text.splitlines(), 1)
            if pattern.search(line)
        ]
    return offenders


def test_no_tracked_file_links_outside_the_repository() -> None:
    offenders = lines_matching(OUTSIDE)
    assert not offenders, "files that point outside the repository (put the text in docs/):\n" + "\n".join(offenders)


def test_the_check_above_catches_a_link_outside() -> None:
    assert OUTSIDE.search("See [`../shared/ARCHITECTURE.md`](../shared/ARCHITECTURE.md), section 3.")
    assert not OUTSIDE.search("See [the envelope](docs/event-envelope.md).")


def test_no_tracked_file_names_a_path_of_this_machine() -> None:
    offenders = lines_matching(MACHINE_PATH)
    assert not offenders, "files that name a path of one machine (use a path in the repository):\n" + "\n".join(
        offenders
    )


def test_the_check_above_catches_a_machine_path() -> None:
    for line in ("see /home/ana/eventpipe/notes", "data in /tmp/tmpab12/data", "cd /work/main && make"):
        assert MACHINE_PATH.search(line), line
    for line in ("`<data dir>/bucket/tmp/`", "s3://bucket/work/x", "https://example.com/home/x", "./tmp/x"):
        assert not MACHINE_PATH.search(line), line


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


def named_path_exists(name: str, doc: Path) -> bool:
    return any((ROOT / base / name).exists() for base in PATH_BASES) or (doc.parent / name).exists()


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_file_the_docs_name_exists(path: Path) -> None:
    missing = [name for name in NAMED_PATH.findall(prose(path)) if not named_path_exists(name, path)]
    assert not missing, f"{path.relative_to(ROOT)} names files that are not in the repository: {missing}"


def test_the_check_above_reads_named_paths() -> None:
    doc = ROOT / "docs" / "aws.md"
    assert NAMED_PATH.findall("as `tests/aws/test_start_retry.py` shows, and `awsrun/secrets.py`") == [
        "tests/aws/test_start_retry.py",
        "awsrun/secrets.py",
    ]
    assert named_path_exists("awsrun/secrets.py", doc)
    assert not named_path_exists("tests/aws/test_no_such_module.py", doc)


def test_the_readme_points_at_the_docs_index() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/README.md)" in readme
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    docs = {p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    assert not docs - listed, f"docs/README.md does not list: {sorted(docs - listed)}"
