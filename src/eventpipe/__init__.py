"""eventpipe: validate, enrich, store and aggregate analytics events, on AWS or on one machine."""

from __future__ import annotations

import os

# numpy, which pyarrow and the dedup filter import, starts OpenBLAS's pool of threads at import, and
# they spin: about 90 ms of CPU in every process here (each runner of `eventpipe up`, each command).
# eventpipe calls no BLAS routine, so one thread; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__all__ = ["__version__"]

__version__ = "0.1.0"
