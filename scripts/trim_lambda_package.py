"""Trim each function folder of a `sam build` to what the functions load, and refuse one over Lambda's limit.

`python scripts/trim_lambda_package.py .aws-sam/build` (run by scripts/deploy_sam.sh after the build and its .pyc).
Lambda refuses a function whose unzipped code exceeds 250 MiB; pyarrow (the lake's Parquet) and the
numpy that datasketches imports bring it to about 286 MiB (pyarrow 26, arm64, Python 3.12), 238 MiB once trimmed
and compiled. What goes is never
imported by eventpipe: pyarrow's Flight libraries and C++ test module, C headers and Cython sources, and the
test suites of pyarrow and numpy. Exit 1, naming the folder, when one is still over the limit.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Globs below a function folder; directories go whole.
UNUSED = (
    "pyarrow/include",
    "pyarrow/src",
    "pyarrow/tests",
    "pyarrow/libarrow_flight.so*",
    "pyarrow/_flight*.so",
    "pyarrow/flight.py",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_pyarrow_cpp_tests*.so",
    "pyarrow/**/*.pxd",
    "pyarrow/**/*.pyx",
    "pyarrow/**/*.pxi",
    "numpy/tests",
    "numpy/*/tests",
    "numpy/*/*/tests",
)


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def trim(folder: Path) -> int:
    """Remove the unused files of one function folder; return the bytes removed."""
    before = size_of(folder)
    for pattern in UNUSED:
        for path in sorted(folder.glob(pattern), reverse=True):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    return before - size_of(folder)


def function_folders(build_dir: Path) -> list[Path]:
    """The built functions: the folders holding a copy of the handler module."""
    return sorted(path.parent for path in build_dir.glob("*/lambda_pipeline.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", type=Path, help="the sam build folder, e.g. .aws-sam/build")
    args = parser.parse_args(argv)
    folders = function_folders(args.build_dir)
    if not folders:
        print(f"trim_lambda_package: no built function under {args.build_dir}: nothing to trim", file=sys.stderr)
        return 0
    too_large = []
    for folder in folders:
        removed = trim(folder)
        size = size_of(folder)
        print(f"{folder.name}: {size / 2**20:.0f} MiB unzipped ({removed / 2**20:.0f} MiB of unused files removed)")
        if size > LAMBDA_UNZIPPED_LIMIT:
            too_large.append(folder.name)
    if too_large:
        print(f"trim_lambda_package: over Lambda's 250 MiB unzipped: {', '.join(too_large)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
