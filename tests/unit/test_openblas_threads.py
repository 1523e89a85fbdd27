"""eventpipe keeps numpy's OpenBLAS to one thread (it calls no BLAS routine), unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

SHOW = "import eventpipe, numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"


def threads_setting(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | env
    done = subprocess.run([sys.executable, "-c", SHOW], env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_one_openblas_thread_by_default_and_the_users_setting_wins() -> None:
    assert threads_setting() == "1"
    assert threads_setting(OPENBLAS_NUM_THREADS="4") == "4"
