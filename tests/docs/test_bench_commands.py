"""Every `python bench/<script>.py --option` the docs and the Makefile give is an option the script takes:
the figures in the docs are reproduced by running those lines."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.docs.repo_docs import ROOT, markdown_files

COMMAND = re.compile(r"python3? (bench/\w+\.py)((?: --[a-z][a-z-]*(?: [^\s`|)-][^\s`|)]*)?)*)")


def documented_options() -> dict[str, set[str]]:
    """Each bench script the docs or the Makefile run, and the options they give it."""
    texts = [path.read_text(encoding="utf-8") for path in markdown_files()]
    texts.append((ROOT / "Makefile").read_text(encoding="utf-8").replace("$(BIN)/python", "python"))
    found: dict[str, set[str]] = {}
    for text in texts:
        for script, options in COMMAND.findall(text):
            found.setdefault(script, set()).update(re.findall(r"--[a-z][a-z-]*", options))
    return found


def test_the_docs_run_the_benchmarks() -> None:
    assert {"bench/run.py", "bench/lambda_cost.py", "bench/http_load.py"} <= set(documented_options())


@pytest.mark.parametrize(
    ("script", "options"), sorted((s, o) for s, o in documented_options().items() if o), ids=lambda v: str(v)
)
def test_every_documented_option_is_the_scripts(script: str, options: set[str]) -> None:
    usage = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    missing = sorted(option for option in options if not re.search(rf"{re.escape(option)}\b", usage))
    assert not missing, f"{script} does not take {missing}, which the docs or the Makefile give it"
