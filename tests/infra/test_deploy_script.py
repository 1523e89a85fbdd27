"""scripts/deploy_sam.sh: refuses missing or invalid settings, prints its commands, runs `sam`.

The script is run as a process. Where it would call the SAM CLI, a stand-in `sam` first on PATH
records each call's arguments and working directory (a test double for an external binary).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from tests.infra.test_terraform import ROOT

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = ROOT / "scripts" / "deploy_sam.sh"
BASH = shutil.which("bash") or "/bin/bash"
SETTINGS = [
    "--stage", "dev",
    "--profile", "eventpipe-dev",
    "--region", "eu-west-1",
    "--jwt-issuer", "https://auth.example.com/",
    "--jwt-audience", "eventpipe-web,eventpipe-cli",
]  # fmt: skip
EXPECTED_BUILD = ["sam", "build", "--template", "infrastructure/template.yaml", "--manifest", "requirements.txt"]
# What the functions never import removed, and a function over Lambda's size limit refused.
EXPECTED_TRIM = ["python3", "scripts/trim_lambda_package.py", ".aws-sam/build"]
# Bytecode the functions' Python compiled, checked by nothing at import (SAM's zip dates every file 1980).
EXPECTED_COMPILE = [
    "python3.12", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", ".aws-sam/build",
]  # fmt: skip
# botocore's models decoded once, into each built function's folder (model_cache.py).
EXPECTED_MODELS = [
    "env", "PYTHONPATH=src", "python3.12", "-m", "eventpipe.adapters.aws.model_cache", "--sam-build", ".aws-sam/build",
]  # fmt: skip
EXPECTED_DEPLOY = [
    "sam", "deploy",
    "--template-file", ".aws-sam/build/template.yaml",
    "--stack-name", "eventpipe-dev",
    "--profile", "eventpipe-dev",
    "--region", "eu-west-1",
    "--capabilities", "CAPABILITY_IAM",
    "--no-fail-on-empty-changeset",
    "--resolve-s3",
    "--parameter-overrides",
    "JwtIssuer=https://auth.example.com/", "JwtAudience=eventpipe-web,eventpipe-cli", "GlueDatabaseName=eventpipe_dev",
    "--tags", "project=eventpipe", "stage=dev",
]  # fmt: skip

FAKE_SAM = f"""#!{sys.executable}
# Records one call (its arguments and working directory) as a JSON line; fails a build when told.
import json, os, sys

with open(os.environ["SAM_CALLS"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
if sys.argv[1:2] == ["build"] and os.environ.get("SAM_FAIL_BUILD"):
    sys.exit("Build Failed")
"""
# A stand-in for the functions' Python: the script only looks for it on PATH (sam build runs it).
FAKE_PYTHON = "#!/bin/sh\nexit 0\n"
# What the script needs besides bash builtins.
TOOLS = ("bash", "awk", "dirname")


@pytest.fixture
def fake_sam(tmp_path: Path) -> Path:
    """A directory holding the stand-in `sam`; its calls go to tmp_path/sam-calls.jsonl."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sam = bin_dir / "sam"
    sam.write_text(FAKE_SAM, encoding="utf-8")
    sam.chmod(0o755)
    return bin_dir


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A directory with only the tools the script needs (and no sam), to be the whole PATH."""
    tools_dir = tmp_path / "tools"
    tools_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the script"
        (tools_dir / tool).symlink_to(found)
    return tools_dir


def python312_dir(tmp_path: Path) -> Path:
    """A directory holding a stand-in `python3.12`, so that the tests do not depend on this machine's."""
    python_dir = tmp_path / "python"
    python_dir.mkdir(exist_ok=True)
    python = python_dir / "python3.12"
    python.write_text(FAKE_PYTHON, encoding="utf-8")
    python.chmod(0o755)
    return python_dir


def run(
    *arguments: str, tmp_path: Path, path_dirs: tuple[Path, ...] = (), **environment: str
) -> subprocess.CompletedProcess[str]:
    """The script with a clean environment: no AWS variables unless given, PATH = path_dirs + the system's.

    A stand-in python3.12 comes first on PATH (tests/infra/test_deploy_script.py tests its absence apart).
    """
    system_path = os.environ.get("PATH", "")
    env = {
        "PATH": os.pathsep.join([str(python312_dir(tmp_path)), *map(str, path_dirs), system_path]),
        "HOME": str(tmp_path),
        "SAM_CALLS": str(tmp_path / "sam-calls.jsonl"),
        **environment,
    }
    return subprocess.run(
        [BASH, str(SCRIPT), *arguments], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
    )


def sam_calls(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "sam-calls.jsonl"
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def without(option: str, settings: list[str] = SETTINGS) -> list[str]:
    index = settings.index(option)
    return settings[:index] + settings[index + 2 :]


def test_script_is_executable_bash_with_strict_mode() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run([BASH, "-n", str(SCRIPT)], check=False).returncode == 0


def test_help_describes_the_options(tmp_path: Path) -> None:
    result = run("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    for option in (
        "--stage", "--profile", "--region", "--jwt-issuer", "--jwt-audience", "--use-container", "--dry-run",
    ):  # fmt: skip
        assert option in result.stdout
    assert "eventpipe-<stage>" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (without("--stage"), "no stage: give --stage and one of: dev prod"),
        ([*without("--stage"), "--stage", "staging"], "unknown stage 'staging'"),
        (without("--profile"), "no AWS profile: give --profile NAME or set AWS_PROFILE"),
        (without("--region"), "no AWS region: give --region REGION or set AWS_REGION"),
        ([*without("--region"), "--region", "europe"], "'europe' is not an AWS region"),
        (without("--jwt-issuer"), "the template needs JwtIssuer: give --jwt-issuer URL"),
        (without("--jwt-audience"), "the template needs JwtAudience: give --jwt-audience"),
        ([*without("--jwt-issuer"), "--jwt-issuer", "http://auth.example.com/"], "JwtIssuer must be an https:// URL"),
        ([*SETTINGS, "--parameter", "NoSuchParameter=1"], "the template has no parameter 'NoSuchParameter'"),
        ([*SETTINGS, "--parameter", "LogRetentionDays"], "--parameter takes Key=Value"),
        ([*SETTINGS, "--parameter", "LogRetentionDays="], "parameter LogRetentionDays is empty"),
        ([*SETTINGS, "--stage"], "--stage needs a value"),
        ([*SETTINGS, "--force"], "unknown option '--force'"),
        ([*SETTINGS, "--parameter", "GlueDatabaseName=Eventpipe-Dev"], "is not a Glue database name"),
    ],
)
def test_missing_or_invalid_settings_are_refused(
    arguments: list[str], message: str, tmp_path: Path, fake_sam: Path
) -> None:
    # WHEN the script runs without a setting it needs, or with a wrong one (not even a dry run)
    result = run(*arguments, tmp_path=tmp_path, path_dirs=(fake_sam,))
    # THEN it says what is wrong, exits non-zero, and runs nothing
    assert result.returncode == 2
    assert message in result.stderr
    assert "--help" in result.stderr
    assert sam_calls(tmp_path) == []


def test_every_parameter_without_default_is_required(template: dict[str, Any], tmp_path: Path) -> None:
    # GIVEN the parameters the SAM template cannot do without
    required = [name for name, spec in template["Parameters"].items() if "Default" not in spec]
    assert required == ["JwtIssuer", "JwtAudience"]
    # WHEN the script runs with the settings but none of them THEN it names the first
    bare = without("--jwt-audience", without("--jwt-issuer"))
    result = run(*bare, "--dry-run", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "the template needs JwtIssuer" in result.stderr


def test_profile_and_region_can_come_from_the_environment(tmp_path: Path) -> None:
    arguments = without("--region", without("--profile"))
    result = run(*arguments, "--dry-run", tmp_path=tmp_path, AWS_PROFILE="ops", AWS_REGION="us-east-2")
    assert result.returncode == 0, result.stderr
    deploy = shlex.split(result.stdout.splitlines()[-1])
    assert deploy[deploy.index("--profile") + 1] == "ops"
    assert deploy[deploy.index("--region") + 1] == "us-east-2"


def test_dry_run_prints_the_commands_and_runs_nothing(tmp_path: Path, fake_sam: Path) -> None:
    result = run(*SETTINGS, "--dry-run", tmp_path=tmp_path, path_dirs=(fake_sam,))
    assert result.returncode == 0, result.stderr
    # THEN it prints the build, botocore's models, the bytecode compilation, the trim and the deploy, as shell commands
    assert [shlex.split(line) for line in result.stdout.splitlines()] == [
        EXPECTED_BUILD, EXPECTED_MODELS, EXPECTED_COMPILE, EXPECTED_TRIM, EXPECTED_DEPLOY,
    ]  # fmt: skip
    # AND calls nothing
    assert sam_calls(tmp_path) == []


def test_options_reach_the_deploy_command(tmp_path: Path) -> None:
    extra = ["--alarm-email", "oncall@example.com", "--parameter", "LogRetentionDays=365", "--s3-bucket", "artefacts"]
    result = run(*[*without("--stage"), "--stage", "prod"], *extra, "--dry-run", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    deploy = shlex.split(result.stdout.splitlines()[-1])
    assert deploy[deploy.index("--stack-name") + 1] == "eventpipe-prod"
    overrides = deploy[deploy.index("--parameter-overrides") + 1 : deploy.index("--tags")]
    assert "AlarmEmail=oncall@example.com" in overrides
    assert "LogRetentionDays=365" in overrides
    assert deploy[deploy.index("--s3-bucket") + 1] == "artefacts"
    assert "--resolve-s3" not in deploy
    assert "stage=prod" in deploy


def test_without_dry_run_it_runs_sam_build_then_deploy(tmp_path: Path, fake_sam: Path) -> None:
    dry = run(*SETTINGS, "--dry-run", tmp_path=tmp_path)
    # WHEN the script runs for real, with the stand-in sam first on PATH
    result = run(*SETTINGS, tmp_path=tmp_path, path_dirs=(fake_sam,))
    assert result.returncode == 0, result.stderr
    calls = sam_calls(tmp_path)
    # THEN sam ran twice, from the repository root, with exactly the commands the dry run printed
    assert [["sam", *call["argv"]] for call in calls] == [EXPECTED_BUILD, EXPECTED_DEPLOY]
    printed = [shlex.split(line) for line in dry.stdout.splitlines()]
    assert [["sam", *call["argv"]] for call in calls] == [command for command in printed if command[0] == "sam"]
    assert {call["cwd"] for call in calls} == {str(ROOT)}


def test_a_failed_build_deploys_nothing(tmp_path: Path, fake_sam: Path) -> None:
    result = run(*SETTINGS, tmp_path=tmp_path, path_dirs=(fake_sam,), SAM_FAIL_BUILD="1")
    assert result.returncode != 0
    assert [call["argv"][0] for call in sam_calls(tmp_path)] == ["build"]


def test_without_sam_on_path_it_says_so(tmp_path: Path, tools: Path) -> None:
    env = {"PATH": os.pathsep.join([str(tools), str(python312_dir(tmp_path))]), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(tools / "bash"), str(SCRIPT), *SETTINGS], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "the sam CLI is not on PATH" in result.stderr


# --- one Glue database per stage -------------------------------------------------------------------


def overrides_of(dry_run_stdout: str) -> list[str]:
    deploy = shlex.split(dry_run_stdout.splitlines()[-1])
    return deploy[deploy.index("--parameter-overrides") + 1 : deploy.index("--tags")]


def test_each_stage_gets_its_own_glue_database(template: dict[str, Any], tmp_path: Path) -> None:
    # GIVEN the template's default, the same for every stack of an account and Region
    assert template["Parameters"]["GlueDatabaseName"]["Default"] == "eventpipe"
    # WHEN dev and prod are deployed without naming the database
    dev = run(*SETTINGS, "--dry-run", tmp_path=tmp_path)
    prod = run(*without("--stage"), "--stage", "prod", "--dry-run", tmp_path=tmp_path)
    assert dev.returncode == prod.returncode == 0, dev.stderr + prod.stderr
    # THEN each stack names its own, so that both fit in one account
    assert [o for o in overrides_of(dev.stdout) if o.startswith("GlueDatabaseName=")] == [
        "GlueDatabaseName=eventpipe_dev"
    ]
    assert [o for o in overrides_of(prod.stdout) if o.startswith("GlueDatabaseName=")] == [
        "GlueDatabaseName=eventpipe_prod"
    ]


def test_a_glue_database_given_is_kept(tmp_path: Path) -> None:
    # e.g. a stack first deployed with the template's default keeps its database (and its queries)
    result = run(*SETTINGS, "--parameter", "GlueDatabaseName=eventpipe", "--dry-run", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [o for o in overrides_of(result.stdout) if o.startswith("GlueDatabaseName=")] == [
        "GlueDatabaseName=eventpipe"
    ]


# --- the build: python3.12 on PATH, or a container ------------------------------------------------


def test_use_container_builds_in_a_container(tmp_path: Path, tools: Path, fake_sam: Path) -> None:
    # GIVEN a PATH without python3.12 (the build image has it)
    env = {"PATH": os.pathsep.join([str(tools), str(fake_sam)]), "HOME": str(tmp_path)}
    # WHEN the script is asked to build in a container
    result = subprocess.run(
        [str(tools / "bash"), str(SCRIPT), *SETTINGS, "--use-container", "--dry-run"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    # THEN sam build runs with --use-container, and the deploy is unchanged
    assert result.returncode == 0, result.stderr
    build, trim, deploy = (shlex.split(line) for line in result.stdout.splitlines())
    # AND, with no python3.12 here to compile them, it warns that the functions ship no .pyc and no models
    assert "without precompiled .pyc" in result.stderr
    assert "without botocore's pre-parsed models" in result.stderr
    assert build == [*EXPECTED_BUILD[:2], "--use-container", *EXPECTED_BUILD[2:]]
    assert trim == EXPECTED_TRIM
    assert deploy == EXPECTED_DEPLOY


@pytest.mark.parametrize("dry_run", [True, False])
def test_without_python312_on_path_it_refuses_to_build(
    dry_run: bool, tmp_path: Path, tools: Path, fake_sam: Path
) -> None:
    # GIVEN a PATH with sam but without python3.12
    env = {
        "PATH": os.pathsep.join([str(tools), str(fake_sam)]),
        "HOME": str(tmp_path),
        "SAM_CALLS": str(tmp_path / "sam-calls.jsonl"),
    }
    arguments = [*SETTINGS, "--dry-run"] if dry_run else SETTINGS
    # WHEN the script runs without --use-container
    result = subprocess.run(
        [str(tools / "bash"), str(SCRIPT), *arguments],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    # THEN it says what is missing and the two ways out, prints no command, and runs nothing
    assert result.returncode == 2
    assert "python3.12 is not on PATH" in result.stderr
    assert "install Python 3.12" in result.stderr
    assert "--use-container" in result.stderr
    assert result.stdout == ""
    assert sam_calls(tmp_path) == []
