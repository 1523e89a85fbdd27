"""Wire the core to the Azure adapters, once per function app instance (at the first invocation).

The runtime is what the handlers take (the `Services` protocol of eventpipe.handlers.services),
plus the workflow: the same `pipeline.asl.json` that Step Functions runs in AWS, run here by
eventpipe's in-process interpreter in the queue-triggered `run_batch` function.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import ConfigError, ExecutionFailedError
from eventpipe.core.ingest import Ingestor
from eventpipe.core.model import BatchStatus
from eventpipe.core.timeutil import SystemClock
from eventpipe.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.ports import (
        BatchStore,
        Clock,
        CuratedStore,
        InsightsStore,
        Quarantine,
        RawBucket,
        WorkflowStarter,
    )
    from eventpipe.core.registry import SchemaRegistry
    from eventpipe.core.steps import PipelineSteps
    from eventpipe.handlers.services import ReadableBucket
    from eventpipe.workflow.interpreter import StateMachine
    from eventpipe_azure.queue import BatchMessage

log = logging.getLogger(__name__)


class AzureRuntime:
    """The pipeline on whichever adapters it is given: Azure's (`from_env`), or others through the same ports."""

    def __init__(
        self,
        settings: Settings,
        *,
        bucket: ReadableBucket,
        curated: CuratedStore,
        batches: BatchStore,
        quarantine: Quarantine,
        insights: InsightsStore,
        starter: WorkflowStarter,
        analytics: RawBucket | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._analytics = analytics
        self.clock = clock or SystemClock()
        self.bucket = bucket
        self.curated = curated
        self.batches = batches
        self.quarantine = quarantine
        self.insights = insights
        self.apps = None  # no apps store in this blueprint: POST /events takes no write key here
        self.file_splitter = None  # a dropped blob is read whole (no byte ranges in this blueprint)
        self.request_index = None  # requests are not micro-batched in this blueprint: each is a batch
        self.ingestor = Ingestor(
            bucket=bucket, batches=batches, starter=starter, clock=self.clock, limits=settings.limits
        )

    @property
    def analytics(self) -> RawBucket:
        """The analytics container the export writes (Power BI reads it, never the raw container)."""
        if self._analytics is None:
            raise ConfigError("EVENTPIPE_ANALYTICS_BUCKET not set: the export writes to the analytics container")
        return self._analytics

    def health(self) -> dict[str, Any]:
        """Nothing beside "ok": Application Insights holds the counters, and a health check reads no store."""
        return {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AzureRuntime:
        """Blob Storage, a Storage queue and Cosmos DB, named by the app settings (see resources.py)."""
        from eventpipe_azure.blob import BlobRawBucket
        from eventpipe_azure.clients import cosmos_database
        from eventpipe_azure.containers import CURATED, INSIGHTS, STATE
        from eventpipe_azure.cosmos_curated import CosmosCuratedStore
        from eventpipe_azure.cosmos_insights import CosmosInsightsStore
        from eventpipe_azure.cosmos_state import CosmosBatchStore, CosmosQuarantine
        from eventpipe_azure.queue import QueueWorkflowStarter
        from eventpipe_azure.resources import AzureResources

        resources = AzureResources.from_env(environ)
        database = cosmos_database(resources.cosmos_endpoint, resources.cosmos_database)
        state = database.get_container_client(STATE.name)
        return cls(
            Settings.from_env(environ),
            bucket=BlobRawBucket(resources.bucket, account_url=resources.blob_account_url),
            curated=CosmosCuratedStore(database.get_container_client(CURATED.name)),
            batches=CosmosBatchStore(state),
            quarantine=CosmosQuarantine(state),
            insights=CosmosInsightsStore(database.get_container_client(INSIGHTS.name)),
            starter=QueueWorkflowStarter(resources.workflow_queue, account_url=resources.queue_account_url),
            analytics=BlobRawBucket(resources.analytics_bucket, account_url=resources.blob_account_url),
        )

    # Built on first use: the HTTP and Event Hub functions only ingest, and never load the schemas.

    @cached_property
    def registry(self) -> SchemaRegistry:
        from eventpipe.core.registry import SchemaRegistry

        return SchemaRegistry.load(*self.settings.schema_dirs)

    @cached_property
    def steps(self) -> PipelineSteps:
        from eventpipe.core.enrich import build_enrichers
        from eventpipe.handlers.wiring import build_steps

        return build_steps(self, self.registry, build_enrichers(self.settings.enrichment))

    @property
    def finishing_steps(self) -> PipelineSteps:
        return self.steps

    @cached_property
    def workflow(self) -> StateMachine:
        from eventpipe.handlers.wiring import build_workflow

        return build_workflow(self, name="azure")

    def run_batch(self, message: BatchMessage) -> BatchStatus:
        """Run the workflow for one queued batch to its end; the batch's status afterwards.

        A batch that is done is not run again (a repeated message); a failed one only when the
        message asks for a retry. A failed execution has marked its batch failed: it is logged,
        not raised, so the message is not tried again (`replay` retries failed batches). Any
        other exception (the store unreachable even for MarkFailed) is raised: the queue then
        delivers the message again, and after its last try moves it to the poison queue.
        """
        record = self.batches.get(message.batch_id)
        if record is not None and record.status is BatchStatus.DONE:
            return record.status
        if record is not None and record.status is BatchStatus.FAILED and not message.retry:
            return record.status
        try:
            self.workflow.run(
                {"batch_id": message.batch_id, "raw_key": message.raw_key}, execution_name=message.batch_id
            )
        except ExecutionFailedError as exc:
            log.error("batch %s failed: %s", message.batch_id, exc)
        after = self.batches.get(message.batch_id)
        return after.status if after else BatchStatus.PENDING

    def restart_stale(self, *, older_than_ms: int) -> list[str]:
        """Queue again the pending batches received more than `older_than_ms` ago; their ids.

        A batch is pending past that when its message could not be queued (ingest logged it and
        answered 202 all the same) or its run was lost: every step may run twice, so queueing a
        batch whose run is merely slow costs a repeated run, never a wrong count.
        """
        cutoff = self.clock.now_ms() - older_than_ms
        restarted = []
        for record in self.batches.unfinished():
            if record.status is BatchStatus.PENDING and record.received_at_ms < cutoff:
                self.ingestor.starter.start(record.batch_id, record.raw_key)
                restarted.append(record.batch_id)
        return restarted
