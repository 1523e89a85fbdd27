""".github/workflows/ci.yml: valid for GitHub Actions, and it runs what `make test` runs.

The schema check uses check-jsonschema's bundled copy of the GitHub workflow schema
(`--builtin-schema vendor.github-workflows`), so it needs no network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def test_workflow_is_valid_for_github_actions(tmp_path: Path) -> None:
    # GIVEN the workflow and a copy with a typo a reviewer could miss
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "run-on:"), encoding="utf-8")
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    # WHEN check-jsonschema validates both (the dev tools install it: pyproject.toml's dev extra)
    valid = subprocess.run([*command, str(WORKFLOW)], capture_output=True, text=True, check=False, timeout=120)
    invalid = subprocess.run([*command, str(broken)], capture_output=True, text=True, check=False, timeout=120)
    # THEN the workflow passes and the broken copy does not
    assert "No module named check_jsonschema" not in valid.stderr, "add check-jsonschema to the dev extra"
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert invalid.returncode == 1, invalid.stdout + invalid.stderr


def test_workflow_runs_make_test_on_push_and_pull_requests() -> None:
    document = workflow()
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = document["jobs"].values()
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    # .ci/run is the one CI entry point: it runs `make test`, which installs Chromium when missing.
    assert "bash .ci/run" in commands
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_workflow_has_python_311_node_20_and_caches() -> None:
    (job,) = workflow()["jobs"].values()
    assert "3.11" in job["strategy"]["matrix"]["python"]
    assert job["container"]["image"].startswith("python:${{ matrix.python }}")
    node = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-node@"))
    assert node["with"]["node-version"] == "20"
    assert node["with"]["cache"] == "npm"
    cache = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.cache/pip"
