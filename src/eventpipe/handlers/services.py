"""What the handlers need from a runtime; `AwsRuntime`, `LocalRuntime` and the Azure blueprint's provide it."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Protocol

from eventpipe.core.ports import BatchStore, RawBucket

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from eventpipe.core.apps import AppDirectory
    from eventpipe.core.documents import FoldAnswer
    from eventpipe.core.ingest import Ingestor
    from eventpipe.core.ports import Clock, CuratedStore, InsightsStore, Quarantine, RequestIndex, WorkflowStarter
    from eventpipe.core.steps import PipelineSteps
    from eventpipe.handlers.file_ranges import FileSplitter
    from eventpipe.settings import Settings


class ReadableBucket(RawBucket, Protocol):
    name: str

    def open(self, key: str, version_id: str | None = None) -> IO[bytes]:
        """Stream an object; `ObjectNotFoundError` when it (or that version) is gone."""


class Services(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def bucket(self) -> ReadableBucket: ...

    @property
    def analytics(self) -> RawBucket:
        """Where the insights export writes (the raw bucket's readers never get this one, nor it theirs)."""

    @property
    def batches(self) -> BatchStore: ...

    @property
    def curated(self) -> CuratedStore: ...

    @property
    def quarantine(self) -> Quarantine: ...

    @property
    def ingestor(self) -> Ingestor: ...

    @property
    def insights(self) -> InsightsStore: ...

    @property
    def apps(self) -> AppDirectory | None:
        """The apps and their write keys; None where the deployment has no apps table (keys unknown)."""

    @property
    def steps(self) -> PipelineSteps: ...

    @property
    def finishing_steps(self) -> PipelineSteps:
        """The steps for MarkDone and MarkFailed, which write only the batch record (AWS builds them
        without schemas or enrichers); `steps` itself where those cost nothing more."""

    @property
    def request_index(self) -> RequestIndex | None:
        """Which group holds each queued request (AWS micro-batching); None where requests are not queued."""

    @property
    def file_splitter(self) -> FileSplitter | None:
        """Where large dropped files are cut into byte ranges (AWS); None reads every file whole."""

    def health(self) -> dict[str, Any]:
        """Counters for `GET /health`, beside `"status": "ok"`."""


class QueueServices(Protocol):
    """What the functions fed by AWS queues need (`start_batches`): AWS only."""

    @property
    def settings(self) -> Settings: ...

    @property
    def bucket(self) -> RawBucket: ...

    @property
    def batches(self) -> BatchStore: ...

    @property
    def starter(self) -> WorkflowStarter: ...


class StreamServices(Protocol):
    """What the function fed by the insights table's stream needs (`fold_insights`): AWS only."""

    def fold_insights(self, records: Sequence[Mapping[str, Any]]) -> FoldAnswer:
        """Count the batches' insights deltas among the stream records into their minutes, each once."""
