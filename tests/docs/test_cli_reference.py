"""docs/cli.md against the `eventpipe` parser: a section per command naming each of its options, and every
`eventpipe` command line in the docs' shell examples accepted by the parser as it is written."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex

import pytest

from eventpipe.cli import _parser
from eventpipe.handlers.functions import FUNCTIONS, LOCAL_FUNCTIONS
from tests.docs.repo_docs import DOCS, Block, blocks, markdown_files, section

REFERENCE = DOCS / "cli.md"
# `eventpipe` where a shell runs it: at the start of a line, after `$(`, a pipe or `;` / `&&`.
COMMAND = re.compile(r"(?:^|\$\(|[|;&]\s*)\s*(?:\.venv/bin/)?eventpipe\s+(.*)$")
SHELL_OPERATORS = {"|", "||", "&&", ";", ")", "<"}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> set[str]:
    """The long options a command takes, its subcommands' included (`apps create --origin`)."""
    found = {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= options(sub)
    return found


def test_the_cli_reference_names_every_subcommand() -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    missing = {name for name in subcommands(_parser()) if f"## `eventpipe {name}" not in reference}
    assert not missing, f"docs/cli.md has no section for: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(subcommands(_parser())))
def test_each_commands_section_names_its_options(name: str) -> None:
    text = section(REFERENCE, f"`eventpipe {name}")
    missing = sorted(option for option in options(subcommands(_parser())[name]) if option not in text)
    assert not missing, f"docs/cli.md, `eventpipe {name}`: options not described: {missing}"


def command_lines() -> list[tuple[Block, list[str]]]:
    """Each `eventpipe ...` line of the docs' `sh` blocks, as the argument list the shell would pass."""
    found = []
    for path in markdown_files():
        for block in blocks(path):
            if block.lang not in ("sh", "bash"):
                continue
            for line in block.text.replace("\\\n", " ").splitlines():
                if match := COMMAND.search(line):
                    words = []
                    for word in shlex.split(match.group(1), comments=True):
                        if word in SHELL_OPERATORS or word.startswith((">", "2>")):
                            break
                        words.append(word)
                    found.append((block, words))
    return found


def parse_error(argv: list[str]) -> str | None:
    """What the parser says of `argv` (as `eventpipe.cli.main` reads it), or None when it accepts it."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args, extra = _parser().parse_known_args(argv)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    # main() takes one word after `invoke FUNCTION --payload FILE` as the output file
    if extra and not (args.run.__name__ == "_invoke" and args.outfile is None and len(extra) == 1):
        return f"unrecognized arguments: {extra}"
    return None


def test_the_docs_run_eventpipe_in_their_examples() -> None:
    # a reference without examples would pass the test below by reading nothing
    assert sum(block.path == REFERENCE for block, _ in command_lines()) >= 10


@pytest.mark.parametrize(
    ("block", "argv"), command_lines(), ids=lambda v: str(v) if isinstance(v, Block) else " ".join(v)[:40]
)
def test_every_documented_command_line_parses(block: Block, argv: list[str]) -> None:
    error = parse_error(argv)
    assert error is None, f"{block}: eventpipe {' '.join(argv)}: {error}"


def test_the_check_above_refuses_a_wrong_line() -> None:
    assert parse_error(["rejected", "--limit", "0"])
    assert parse_error(["apps", "list", "[--json]"])
    assert parse_error(["ingest"])
    assert parse_error(["invoke", "ingest", "--payload", "events/sample.json", "out.json"]) is None


def test_the_command_pattern_finds_eventpipe_only_where_a_shell_runs_it() -> None:
    assert COMMAND.search(".venv/bin/eventpipe apps create shop --json")
    assert COMMAND.search("KEY=$(eventpipe apps create shop)")
    assert not COMMAND.search("aws cloudwatch get-metric-statistics --namespace eventpipe --metric-name X")


def test_the_invoke_section_names_which_functions_run_here() -> None:
    text = section(REFERENCE, "`eventpipe invoke")
    local = text[text.index("The functions that run here") : text.index("The others")]
    aws_only = text[text.index("The others") :]
    assert set(re.findall(r"`(\w+)`", local)) == set(LOCAL_FUNCTIONS)
    assert set(re.findall(r"`(\w+)`", aws_only)) >= set(FUNCTIONS) - set(LOCAL_FUNCTIONS)
