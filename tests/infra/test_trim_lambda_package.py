"""scripts/trim_lambda_package.py: what a built function never imports goes; a function over 250 MiB is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    import pytest

ROOT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trim_lambda_package", ROOT / "scripts" / "trim_lambda_package.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built_function(build: Path, name: str) -> Path:
    folder = build / name
    for relative in (
        "lambda_pipeline.py",
        "pyarrow/__init__.py",
        "pyarrow/parquet/core.py",
        "pyarrow/libarrow.so.2000",
        "pyarrow/libparquet.so.2000",
        "pyarrow/libarrow_flight.so.2000",
        "pyarrow/_flight.cpython-312-aarch64-linux-gnu.so",
        "pyarrow/libarrow_substrait.so.2000",  # pyarrow.lib links it: it stays
        "pyarrow/_pyarrow_cpp_tests.cpython-312-aarch64-linux-gnu.so",
        "pyarrow/include/arrow/api.h",
        "pyarrow/tests/test_table.py",
        "pyarrow/lib.pyx",
        "pyarrow/includes/libarrow.pxd",
        "numpy/__init__.py",
        "numpy/_core/tests/test_numeric.py",
        "numpy/tests/test_public_api.py",
    ):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    return folder


def test_unused_files_go_and_the_used_ones_stay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trim = load()
    folders = [built_function(tmp_path, "IngestFunction"), built_function(tmp_path, "ProcessBatchFunction")]
    assert trim.main([str(tmp_path)]) == 0
    for folder in folders:
        kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert kept == [
            "lambda_pipeline.py",
            "numpy/__init__.py",
            "pyarrow/__init__.py",
            "pyarrow/libarrow.so.2000",
            "pyarrow/libarrow_substrait.so.2000",
            "pyarrow/libparquet.so.2000",
            "pyarrow/parquet/core.py",
        ]
    assert "IngestFunction: 0 MiB unzipped" in capsys.readouterr().out


def test_a_function_over_lambdas_limit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trim = load()
    built_function(tmp_path, "ProcessBatchFunction")
    trim.LAMBDA_UNZIPPED_LIMIT = 3000  # the files kept weigh 7,000 bytes
    assert trim.main([str(tmp_path)]) == 1
    assert "over Lambda's 250 MiB unzipped: ProcessBatchFunction" in capsys.readouterr().err
