"""The lake's fixtures: a local runtime with its lake writer, and a helper that ingests events."""

from __future__ import annotations

import io
import itertools
from typing import TYPE_CHECKING, Any

import pytest

from eventpipe.lake.writer import LakeWriter
from tests.conftest import ndjson

if TYPE_CHECKING:
    from eventpipe.localrun.runtime import LocalRuntime

_versions = itertools.count()


@pytest.fixture
def lake(runtime: LocalRuntime) -> LakeWriter:
    return LakeWriter(runtime.db, runtime.segments, runtime.settings.data_dir / "lake", runtime.clock)


def ingest(runtime: LocalRuntime, *events: Any) -> None:
    """Ingest `events` as one NDJSON file (a new file version each call)."""
    data = io.BytesIO(ndjson(*events))
    for _ in runtime.ingestor.ingest_file(data, source="file:test.ndjson", version=f"test:{next(_versions)}"):
        pass
