"""Wire the core to the AWS adapters, once per Lambda container (at cold start).

Clients are built eagerly: Lambda gives the init phase a whole CPU whatever the memory size. What
only some functions use (the schema registry and enrichers, the sketches behind insights) is
built on first use, so the ingest function never loads them.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import botocore.session

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore
from eventpipe.adapters.aws.dynamodb_curated import DynamoCuratedStore
from eventpipe.adapters.aws.dynamodb_state import DynamoBatchStore, DynamoQuarantine
from eventpipe.adapters.aws.s3 import S3RawBucket
from eventpipe.adapters.aws.stepfunctions import StepFunctionsStarter
from eventpipe.core.apps import AppDirectory
from eventpipe.core.errors import ConfigError
from eventpipe.core.ingest import Ingestor
from eventpipe.core.timeutil import SystemClock

if TYPE_CHECKING:
    from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
    from eventpipe.core.ports import Clock
    from eventpipe.core.registry import SchemaRegistry
    from eventpipe.core.steps import PipelineSteps
    from eventpipe.settings import AwsResources, Settings


# Each container keeps a key's answer this long: a burst of requests costs one GetItem per key, and
# a revoked key stops working everywhere within this time.
APP_CACHE_TTL_S = 60.0


class AwsRuntime:
    def __init__(
        self,
        settings: Settings,
        resources: AwsResources,
        *,
        session: botocore.session.Session | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.resources = resources
        self.clock = clock or SystemClock()
        session = session or botocore.session.get_session()
        self._dynamodb = make_client("dynamodb", session)
        self.bucket = S3RawBucket(resources.bucket, make_client("s3", session))
        self.batches = DynamoBatchStore(resources.state_table, self._dynamodb)
        self.quarantine = DynamoQuarantine(resources.state_table, self._dynamodb)
        self.curated = DynamoCuratedStore(resources.curated_table, self._dynamodb)
        self._sfn = make_client("stepfunctions", session) if resources.state_machine_arn else None
        self.apps = (
            AppDirectory(DynamoAppStore(resources.apps_table, self._dynamodb), ttl_s=APP_CACHE_TTL_S)
            if resources.apps_table
            else None
        )

    def health(self) -> dict[str, Any]:
        """Nothing beside "ok": CloudWatch holds a deployment's counters, and a health check reads no table."""
        return {}

    @cached_property
    def ingestor(self) -> Ingestor:
        if self.resources.state_machine_arn is None:
            raise ConfigError("EVENTPIPE_STATE_MACHINE_ARN not set: the ingest function starts the workflow")
        starter = StepFunctionsStarter(self.resources.state_machine_arn, self._sfn)
        return Ingestor(
            bucket=self.bucket, batches=self.batches, starter=starter, clock=self.clock, limits=self.settings.limits
        )

    @cached_property
    def insights(self) -> DynamoInsightsStore:
        from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore

        return DynamoInsightsStore(self.resources.insights_table, self._dynamodb)

    @cached_property
    def registry(self) -> SchemaRegistry:
        from eventpipe.core.registry import SchemaRegistry

        return SchemaRegistry.load(*self.settings.schema_dirs)

    @cached_property
    def steps(self) -> PipelineSteps:
        from eventpipe.core.enrich import build_enrichers
        from eventpipe.core.steps import PipelineSteps

        return PipelineSteps(
            registry=self.registry,
            enrichers=build_enrichers(self.settings.enrichment),
            bucket=self.bucket,
            curated=self.curated,
            quarantine=self.quarantine,
            batches=self.batches,
            insights=self.insights,
            clock=self.clock,
        )
