"""The functions' package ships bytecode that Lambda's Python uses as it is, with no compiling at cold start.

How the .pyc get there: `sam build` copies the sources without `__pycache__` (the pip workflow of
aws-lambda-builders excludes it), `scripts/deploy_sam.sh` then compiles `.aws-sam/build` with
`--invalidation-mode unchecked-hash`, and `sam deploy` zips that folder as it is, every entry dated
1980 (samcli's `make_zip`). A timestamp-checked .pyc would not match a source dated 1980 and
`/var/task` is read-only, so each cold start would compile every module again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING

from tests.aws.test_cold_start import SRC

if TYPE_CHECKING:
    from pathlib import Path

ZIP_EPOCH = 315532800  # 1980-01-01: the date of every entry of SAM's zip (zipfile.ZipInfo's default)


def package(tmp_path: Path, mode: str) -> Path:
    """A function's code as Lambda unpacks it: built, compiled in `mode`, zipped as SAM does, unpacked read-only."""
    build = tmp_path / f"build-{mode}"
    shutil.copytree(SRC / "eventpipe", build / "eventpipe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SRC / "lambda_pipeline.py", build)
    compile_all = [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", mode, str(build)]
    subprocess.run(compile_all, check=True, capture_output=True)
    archive = tmp_path / f"{mode}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(build.rglob("*")):
            if path.is_file():
                zipped.writestr(zipfile.ZipInfo(str(path.relative_to(build))), path.read_bytes())
    task = tmp_path / f"task-{mode}"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(task)
    for path in sorted(task.rglob("*"), reverse=True):  # the entries' date, and read-only as /var/task
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))
        path.chmod(0o555 if path.is_dir() else 0o444)
    return task


def compiled_at_import(task: Path) -> list[str]:
    """The package's modules that `import lambda_pipeline` compiled from source instead of reading their .pyc."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(task),
        "AWS_REGION": "eu-west-1",
        "EVENTPIPE_BUCKET": "b",
        "EVENTPIPE_CURATED_TABLE": "c",
        "EVENTPIPE_STATE_TABLE": "s",
        "EVENTPIPE_INSIGHTS_TABLE": "i",
    }
    done = subprocess.run(
        [sys.executable, "-v", "-c", "import lambda_pipeline"], env=env, capture_output=True, text=True, check=True
    )
    loaded = re.findall(r"^# code object from '?([^'\n]+)'?$", done.stderr, re.MULTILINE)
    ours = [path for path in loaded if path.startswith(str(task))]
    assert any("lambda_pipeline" in path for path in ours), "lambda_pipeline was not loaded from the package"
    return [path for path in ours if path.endswith(".py")]


def test_the_packaged_bytecode_is_used_as_it_is(tmp_path: Path) -> None:
    # GIVEN the package as deploy_sam.sh compiles it (unchecked-hash) and SAM zips it
    task = package(tmp_path, "unchecked-hash")
    # WHEN a cold start imports the entry module THEN no module of the package is compiled again
    assert compiled_at_import(task) == []


def test_timestamp_bytecode_would_be_compiled_again(tmp_path: Path) -> None:
    # GIVEN the same package compiled the default way (.pyc checked against the source's date)
    task = package(tmp_path, "timestamp")
    # WHEN it is imported THEN its modules are compiled again: the 1980 date voids those .pyc
    assert any(path.endswith("lambda_pipeline.py") for path in compiled_at_import(task))
