"""RUNBOOK.md against what it names: the alarms' runbook anchors, its own links, make targets, files, commands.

An alarm's description says `Runbook: RUNBOOK.md#<anchor>`; an operator woken by it must land on the
right section, and every command that section tells them to run must exist: `make` targets, scripts,
`eventpipe` subcommands and options, and `aws <service> <operation> --option` (checked against
botocore's service models, which the AWS CLI is generated from).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import botocore.session
import pytest
import yaml
from botocore import xform_name
from botocore.exceptions import DataNotFoundError

from eventpipe.cli import main as eventpipe_main

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "RUNBOOK.md"
ALERTS = ROOT / "monitoring" / "alerts.yml"
ALARMS_HEADING = "Alarms"
ANCHOR = re.compile(r'^<a id="([^"]+)"></a>\s*$')
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"\]\(#([^)]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:bench|docs|events|infrastructure|monitoring|scripts|src|tests)/[\w./<>-]*[\w>/])"
)

# Options every AWS CLI command takes, and those of paginated operations.
AWS_GLOBAL_OPTIONS = frozenset(
    {
        "--region",
        "--profile",
        "--output",
        "--query",
        "--endpoint-url",
        "--no-cli-pager",
        "--cli-binary-format",
        "--cli-read-timeout",
        "--cli-connect-timeout",
        "--cli-input-json",
        "--cli-input-yaml",
        "--generate-cli-skeleton",
        "--no-paginate",
        "--no-sign-request",
        "--debug",
        "--color",
        "--ca-bundle",
    }
)
AWS_PAGING_OPTIONS = frozenset({"--max-items", "--starting-token", "--page-size"})
# CLI service names that differ from botocore's; and commands the CLI adds on top of the API models.
AWS_SERVICE_NAMES = {"s3api": "s3"}
AWS_CUSTOM_COMMANDS = frozenset({("logs", "tail"), ("s3", "ls"), ("s3", "cp"), ("s3", "sync"), ("s3", "rm")})


def _lines_outside_code(text: str) -> list[tuple[int, str]]:
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[\w-]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def github_slug(heading: str) -> str:
    """The id GitHub gives a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"[`*]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def runbook() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


@cache
def headings() -> list[tuple[int, int, str]]:
    """(line, level, slug) of every heading outside code blocks."""
    found = []
    for number, line in _lines_outside_code(runbook()):
        match = HEADING.match(line)
        if match:
            found.append((number, len(match.group(1)), github_slug(match.group(2))))
    return found


def alarm_sections() -> dict[str, str]:
    """Explicit anchor -> slug of the heading right after it, for the anchors under `## Alarms`."""
    lines = runbook().splitlines()
    start = next(n for n, level, slug in headings() if level == 2 and slug == github_slug(ALARMS_HEADING))
    end = next((n for n, level, _ in headings() if level <= 2 and n > start), len(lines) + 1)
    sections = {}
    for number in range(start, end - 1):
        match = ANCHOR.match(lines[number])
        if match:
            following = next((line for line in lines[number + 1 :] if line.strip()), "")
            heading = HEADING.match(following)
            sections[match.group(1)] = github_slug(heading.group(2)) if heading else ""
    return sections


def alert_runbooks() -> dict[str, str]:
    """Alert name -> its runbook anchor, from monitoring/alerts.yml (which must exist)."""
    assert ALERTS.is_file(), f"{ALERTS.relative_to(ROOT)} is missing: the alarms and their runbook anchors live there"
    alerts = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["alerts"]
    missing = [alert["name"] for alert in alerts if not alert.get("runbook")]
    assert not missing, f"alerts without a runbook anchor: {missing}"
    return {alert["name"]: alert["runbook"] for alert in alerts}


def test_every_alert_runbook_anchor_has_its_section() -> None:
    # GIVEN the anchors the alarms' descriptions link to, and the sections under "## Alarms"
    sections = alarm_sections()
    # THEN each anchor is an explicit anchor there, right before a heading with the same GitHub id
    for name, anchor in alert_runbooks().items():
        assert anchor in sections, f'alert {name}: no <a id="{anchor}"></a> under ## {ALARMS_HEADING} in RUNBOOK.md'
        assert sections[anchor] == anchor, f'the heading after <a id="{anchor}"> has the id {sections[anchor]!r}'


def test_every_alarm_section_is_used_by_an_alert() -> None:
    used = set(alert_runbooks().values())
    unused = set(alarm_sections()) - used
    assert not unused, f"RUNBOOK.md has alarm sections no alert of monitoring/alerts.yml points at: {sorted(unused)}"


def test_headings_have_unique_ids_and_every_link_resolves() -> None:
    slugs = [slug for _, _, slug in headings()]
    repeated = {slug for slug in slugs if slugs.count(slug) > 1}
    assert not repeated, f"headings with the same id (GitHub would suffix -1): {sorted(repeated)}"
    targets = set(slugs) | {m.group(1) for _, line in _lines_outside_code(runbook()) if (m := ANCHOR.match(line))}
    broken = sorted({fragment for fragment in LINK.findall(runbook()) if fragment not in targets})
    assert not broken, f"links to no heading or anchor: {broken}"


def test_other_files_link_to_existing_anchors() -> None:
    # The deployed alarms carry the link: the template's descriptions and the Terraform alarms.
    targets = {slug for _, _, slug in headings()} | set(alarm_sections())
    sources = [ROOT / "infrastructure" / "template.yaml", *sorted((ROOT / "infrastructure").rglob("*.tf"))]
    for source in (path for path in sources if path.is_file()):
        for anchor in re.findall(r"RUNBOOK\.md#([\w-]+)", source.read_text(encoding="utf-8")):
            assert anchor in targets, f"{source.relative_to(ROOT)} links to RUNBOOK.md#{anchor}, which does not exist"


def _make_targets() -> set[str]:
    """Targets of the Makefile and of the files it includes."""
    targets: set[str] = set()
    pending, seen = [ROOT / "Makefile"], set()
    while pending:
        path = pending.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for line in path.read_text(encoding="utf-8").splitlines():
            if match := re.match(r"^-?include\s+(.+)$", line):
                pending.extend(ROOT / name for name in match.group(1).split())
            elif match := re.match(r"^([A-Za-z0-9_./-]+(?:\s+[A-Za-z0-9_./-]+)*)\s*::?(?!=)", line):
                targets.update(match.group(1).split())
    return targets


def _commands() -> list[str]:
    """Every command of the runbook: code block lines (continuations joined) and inline code spans."""
    commands = []
    for block in _code_blocks(runbook()):
        commands.extend(line for line in block.replace("\\\n", " ").splitlines() if line.strip())
    for _, line in _lines_outside_code(runbook()):
        commands.extend(INLINE_CODE.findall(line))
    return commands


def test_named_make_targets_exist() -> None:
    named = {m.group(1) for command in _commands() for m in re.finditer(r"\bmake\s+([\w.-]+)", command)}
    assert named, "the runbook names no make target (make bench, make test, ...)"
    missing = named - _make_targets()
    assert not missing, f"make targets named in RUNBOOK.md but defined in no Makefile: {sorted(missing)}"


def test_named_files_exist() -> None:
    named = {m.group(1) for m in REPO_PATH.finditer(runbook())}
    assert any(path.startswith("scripts/") for path in named)
    missing = []
    for path in sorted(named):
        existing = path.split("<", 1)[0]  # `environments/<stage>`: the part before the placeholder
        if not (ROOT / existing).exists():
            missing.append(path)
    assert not missing, f"files and folders named in RUNBOOK.md that do not exist: {missing}"


def _eventpipe_help(subcommand: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        eventpipe_main([subcommand, "--help"])
    assert exited.value.code == 0, f"`eventpipe {subcommand}` is not a subcommand"
    return out.getvalue()


def test_named_eventpipe_commands_and_options_exist() -> None:
    named: dict[str, set[str]] = {}
    for command in _commands():
        for match in re.finditer(r"(?:^|[\s;|&(])eventpipe\s+([a-z]+)((?:\s+(?![|;&])\S+)*)", command):
            named.setdefault(match.group(1), set()).update(re.findall(r"(?<!\S)(--[a-z][\w-]*)", match.group(2)))
    assert "replay" in named
    assert "--rejected" in named["replay"]
    for subcommand, options in sorted(named.items()):
        text = _eventpipe_help(subcommand)
        for option in sorted(options):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
                f"`eventpipe {subcommand}` has no {option}"
            )


def _aws_invocations() -> list[tuple[str, str, list[str], str]]:
    """(service, operation, options, command) of each `aws` call in the runbook's code."""
    found: list[tuple[str, str, list[str], str]] = []
    for command in _commands():
        _find_aws(command, command, found)
    return found


def _find_aws(text: str, command: str, found: list[tuple[str, str, list[str], str]]) -> None:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an inline span that is prose, not a whole command
        return
    for position, token in enumerate(tokens):
        for inner in re.findall(r"\$\(([^()]+)\)", token):  # "$(aws ...)": a command inside a quoted word
            _find_aws(inner, command, found)
        if token != "aws" or position + 2 >= len(tokens):
            continue
        service, operation = tokens[position + 1], tokens[position + 2]
        if not re.fullmatch(r"[a-z0-9-]+", service) or not re.fullmatch(r"[a-z0-9-]+", operation):
            continue
        options = []
        for word in tokens[position + 3 :]:
            if word and set(word) <= set("|&;()<>"):
                break
            if word.startswith("--"):
                options.append(word.split("=", 1)[0])
        found.append((service, operation, options, command))


def test_named_aws_commands_and_options_exist() -> None:
    session = botocore.session.get_session()
    invocations = _aws_invocations()
    assert {(s, o) for s, o, _, _ in invocations} >= {
        ("sqs", "get-queue-attributes"),
        ("cloudwatch", "get-metric-statistics"),
        ("logs", "tail"),
        ("lambda", "invoke"),
    }
    # The workflow is Express: no execution can be listed, described or redriven, so none is named
    assert not {o for s, o, _, _ in invocations if s == "stepfunctions"}
    for service, operation, options, command in invocations:
        if (service, operation) in AWS_CUSTOM_COMMANDS:
            continue
        model = session.get_service_model(AWS_SERVICE_NAMES.get(service, service))
        operations = {xform_name(name, "-"): name for name in model.operation_names}
        assert operation in operations, f"`aws {service} {operation}` does not exist: {command}"
        operation_model = model.operation_model(operations[operation])
        members = operation_model.input_shape.members if operation_model.input_shape else {}
        allowed = set(AWS_GLOBAL_OPTIONS) | {f"--{xform_name(name, '-')}" for name in members}
        allowed |= {f"--no-{xform_name(n, '-')}" for n, shape in members.items() if shape.type_name == "boolean"}
        if _paginates(session, model.service_name, operations[operation]):
            allowed |= AWS_PAGING_OPTIONS
        unknown = [option for option in options if option not in allowed]
        assert not unknown, f"`aws {service} {operation}` takes no {unknown}: {command}"


def _paginates(session: botocore.session.Session, service: str, operation: str) -> bool:
    try:
        session.get_paginator_model(service).get_paginator(operation)
    except (ValueError, KeyError, DataNotFoundError):
        return False
    return True


def test_named_stack_resources_and_outputs_exist() -> None:
    # The runbook looks names up by the template's logical ids: `res X`, `fn X` (XFunction),
    # `logs X` (XLogGroup) and the stack's outputs with `out X`.
    template = (ROOT / "infrastructure" / "template.yaml").read_text(encoding="utf-8")
    resources = set(re.findall(r"^  ([A-Za-z0-9]+):\n    Type: ", template, flags=re.MULTILINE))
    outputs_section = template.split("\nOutputs:\n", 1)[1]
    outputs = set(re.findall(r"^  ([A-Za-z0-9]+):", outputs_section, flags=re.MULTILINE))
    code = "\n".join(_code_blocks(runbook())) + "\n".join(INLINE_CODE.findall(runbook()))
    named = {m.group(1) for m in re.finditer(r"\bres ([A-Z]\w+)", code)}
    named |= {m.group(1) + "Function" for m in re.finditer(r"\bfn \$?([A-Z]\w+)", code)}
    named |= {m.group(1) + "LogGroup" for m in re.finditer(r"\blogs \$?([A-Z]\w+)", code)}
    assert {"HttpApi", "ProcessBatchFunction", "ProcessBatchLogGroup"} <= named
    assert not named - resources, f"logical ids the runbook uses that the template lacks: {sorted(named - resources)}"
    used_outputs = set(re.findall(r"\bout ([A-Z]\w+)", code))
    assert used_outputs
    assert not used_outputs - outputs, f"stack outputs the template lacks: {sorted(used_outputs - outputs)}"


def test_shell_blocks_parse() -> None:
    # `bash -n` parses without running anything: quoting and continuations an operator can paste.
    blocks = re.findall(r"^```sh\n(.*?)^```", runbook(), flags=re.MULTILINE | re.DOTALL)
    assert blocks
    for block in blocks:
        result = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, check=False, timeout=30)
        assert result.returncode == 0, f"{result.stderr}\n{block}"
