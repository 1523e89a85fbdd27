"""The handlers on the local runtime: `eventpipe invoke` answers as the Lambda functions do, and a
dropped file is streamed, never read whole."""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from eventpipe.handlers.drops import ObjectDrop, ingest_drop
from tests.conftest import make_event, ndjson
from tests.functional.test_cli import as_json, eventpipe

if TYPE_CHECKING:
    import pytest

    from eventpipe.localrun.runtime import LocalRuntime

SAMPLE = Path(__file__).parents[2] / "events" / "sample.json"


def test_invoke_ingest_with_the_sample_payload_then_read_insights(tmp_path: Path) -> None:
    # GIVEN the payload the README sends with `aws lambda invoke`
    out = tmp_path / "out.json"
    # WHEN it is invoked locally, the AWS CLI's way (function, payload, then the output file)
    result = eventpipe("invoke", "ingest", "--payload", str(SAMPLE), str(out), data_dir=tmp_path / "data")
    # THEN the output file holds the same proxy response the Lambda function gives, and the events are curated
    assert result.returncode == 0, result.stderr
    response = orjson.loads(out.read_bytes())
    assert response["statusCode"] == 202
    assert orjson.loads(response["body"])["received"] == 5
    # (at their own times: the sample's sent_at is days from now, too far off to be a clock's skew)
    window = ("--since", "2026-11-28T05:30:00Z", "--until", "2026-11-28T06:30:00Z")
    insights = as_json(eventpipe("insights", *window, "--json", data_dir=tmp_path / "data"))
    assert insights["totals"]["events"] == 5


def test_invoke_a_route_and_a_step(tmp_path: Path) -> None:
    payload = tmp_path / "health.json"
    payload.write_bytes(
        orjson.dumps(
            {"version": "2.0", "rawPath": "/health", "requestContext": {"http": {"method": "GET"}, "stage": "$default"}}
        )
    )
    health = as_json(eventpipe("invoke", "ingest", "--payload", str(payload), data_dir=tmp_path))
    assert (health["statusCode"], orjson.loads(health["body"])) == (
        200,
        {"status": "ok", "batches": {"pending": 0, "failed": 0}},
    )
    failed = tmp_path / "failed.json"
    failed.write_bytes(b'{"batch_id": "unknown", "error": {"Error": "X", "Cause": "y"}}')
    assert as_json(eventpipe("invoke", "mark_failed", "--payload", str(failed), data_dir=tmp_path)) == {
        "status": "failed"
    }


def test_invoke_refuses_bad_arguments(tmp_path: Path) -> None:
    not_json = tmp_path / "bad.json"
    not_json.write_bytes(b"{nope")
    cases = {
        ("invoke", "nope", "--payload", str(SAMPLE)): "no function 'nope'",
        ("invoke", "ingest", "--payload", str(not_json)): "not JSON",
        ("invoke", "ingest", "--payload", str(tmp_path / "missing.json")): "no such file",
        ("invoke", "ingest", "--payload", str(SAMPLE), "a", "b"): "unrecognized arguments",
        ("invoke", "ingest", "--payload", str(not_json.with_name("x"))): "no such file",
    }
    for args, message in cases.items():
        result = eventpipe(*args, data_dir=tmp_path / "data")
        assert result.returncode == 2, args
        assert message in result.stderr, (args, result.stderr)


class TrackingStream(io.RawIOBase):
    """A file that records how far it has been read."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.position = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.inner.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def test_a_dropped_file_is_streamed_batch_by_batch(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a dropped file of 20,000 events (about 10 MB), cut into batches of 50
    data = ndjson(*(make_event("page_view") for _ in range(20_000)))
    runtime.bucket.put("incoming/big.ndjson", data)
    streams: list[TrackingStream] = []
    opened = runtime.bucket.open

    def tracking_open(key: str, version_id: str | None = None) -> IO[bytes]:
        streams.append(TrackingStream(opened(key, version_id)))
        return io.BufferedReader(streams[-1])

    read_at_start: list[int] = []
    started = runtime.start

    def recording_start(batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        read_at_start.append(streams[0].position)
        started(batch_id, raw_key, retry=retry)

    monkeypatch.setattr(runtime.bucket, "open", tracking_open)
    monkeypatch.setattr(runtime.ingestor, "starter", type("Starter", (), {"start": staticmethod(recording_start)})())
    # WHEN the drop is ingested
    outcome = ingest_drop(ObjectDrop(runtime.bucket.name, "incoming/big.ndjson", None), runtime)
    # THEN every event went through, and when the first batch started only the start of the file had been read
    assert (outcome.status, outcome.summary.received, outcome.summary.curated) == ("ingested", 20_000, 20_000)
    assert read_at_start[0] < 3 * 1024 * 1024 < len(data) / 2
    assert read_at_start == sorted(read_at_start)
