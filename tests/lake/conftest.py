"""The lake's fixtures: a local runtime with its lake writer, and a helper that ingests events."""

from __future__ import annotations

import io
import itertools
from typing import TYPE_CHECKING, Any

import pytest

from eventpipe.lake.feed import LakeFeed
from eventpipe.lake.writer import LakeWriter
from tests.conftest import ndjson

if TYPE_CHECKING:
    from eventpipe.localrun.runtime import LocalRuntime

_versions = itertools.count()


@pytest.fixture(params=["decoded", "fed"])
def lake(request: pytest.FixtureRequest, runtime: LocalRuntime) -> LakeWriter:
    """The runtime's lake writer: decoding the curated segments, or fed by the batch step (lake/feed.py)
    as in `eventpipe ingest`. Every test of the writer runs with each."""
    feed = None
    if request.param == "fed":
        feed = runtime.steps.curated_feed = LakeFeed()
    return LakeWriter(runtime.db, runtime.segments, runtime.settings.data_dir / "lake", runtime.clock, feed)


def ingest(runtime: LocalRuntime, *events: Any) -> None:
    """Ingest `events` as one NDJSON file (a new file version each call)."""
    data = io.BytesIO(ndjson(*events))
    for _ in runtime.ingestor.ingest_file(data, source="file:test.ndjson", version=f"test:{next(_versions)}"):
        pass
