"""Wire the core to the AWS adapters, once per Lambda container (at cold start).

Everything is built on first use, clients included: an adapter holds a `LazyClient`, built at its
first call, so an invocation builds only the clients it calls (a small request to ingest, which
goes to the request stream, builds no S3 or Step Functions client; a workflow step never builds
the Step Functions client; `mark_failed` no S3 client), and the ingest function never loads the
schema registry, the enrichers or the sketches behind insights.
What only one side uses (the ingest path, the curated store, the quarantine) is imported when first
built, too.
"""

from __future__ import annotations

import os
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.botocore_loader import fast_session
from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.dynamodb_state import DynamoBatchStore
from eventpipe.adapters.aws.lambda_async import AsyncInvoker
from eventpipe.adapters.aws.model_cache import MODEL_CACHE_NAME, PreparsedModels
from eventpipe.adapters.aws.s3 import S3RawBucket
from eventpipe.core.errors import ConfigError
from eventpipe.core.timeutil import SystemClock

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import botocore.session

    from eventpipe.adapters.aws.dynamodb_curated import DynamoCuratedStore
    from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
    from eventpipe.adapters.aws.dynamodb_quarantine import DynamoQuarantine
    from eventpipe.adapters.aws.dynamodb_requests import DynamoRequestIndex
    from eventpipe.adapters.aws.erasure import AwsErasure
    from eventpipe.adapters.aws.erasure_tombstones import ErasureTombstones
    from eventpipe.adapters.aws.file_ranges import S3FileRanges
    from eventpipe.adapters.aws.firehose import FirehoseRequestStream
    from eventpipe.adapters.aws.lake_compaction import S3LakeCompactor
    from eventpipe.adapters.aws.lake_lease import LakeLease
    from eventpipe.adapters.aws.lake_stream import LakeStreamWriter
    from eventpipe.adapters.aws.stepfunctions import StepFunctionsStarter
    from eventpipe.core.apps import AppDirectory
    from eventpipe.core.documents import FoldAnswer
    from eventpipe.core.enrich import Enricher, EnrichmentConfig
    from eventpipe.core.ingest import Ingestor
    from eventpipe.core.ports import Clock, WorkflowStarter
    from eventpipe.core.registry import SchemaRegistry
    from eventpipe.core.steps import PipelineSteps
    from eventpipe.settings import AwsResources, Settings


# Each container keeps a key's answer this long: a burst of requests costs one GetItem per key, and
# a revoked key stops working everywhere within this time.
APP_CACHE_TTL_S = 60.0


def packaged_models() -> PreparsedModels | None:
    """botocore's models pre-parsed at package time (`scripts/deploy_sam.sh`), when the function ships them."""
    root = os.environ.get("LAMBDA_TASK_ROOT")
    return PreparsedModels.load(os.path.join(root, MODEL_CACHE_NAME)) if root else None


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
        self._session = session or fast_session(packaged_models())
        self.monotonic = time.monotonic
        self.sleep = time.sleep  # the erasure waits out write_lake's invocations (tests replace it)
        self._steps: tuple[SchemaRegistry, PipelineSteps] | None = None

    @cached_property
    def _dynamodb(self) -> Any:
        return make_client("dynamodb", self._session, lazy=True)

    @cached_property
    def _s3(self) -> Any:
        """The one S3 client: the raw and analytics buckets, the byte ranges of large files, the schemas,
        the currency rates."""
        return make_client("s3", self._session, lazy=True)

    @cached_property
    def bucket(self) -> S3RawBucket:
        return S3RawBucket(self.resources.bucket, self._s3)

    @cached_property
    def batches(self) -> DynamoBatchStore:
        return DynamoBatchStore(self.resources.state_table, self._dynamodb)

    @cached_property
    def quarantine(self) -> DynamoQuarantine:
        from eventpipe.adapters.aws.dynamodb_quarantine import DynamoQuarantine

        return DynamoQuarantine(self.resources.state_table, self._dynamodb, ttl_days=self.resources.quarantine_ttl_days)

    @cached_property
    def curated(self) -> DynamoCuratedStore:
        from eventpipe.adapters.aws.dynamodb_curated import DynamoCuratedStore

        return DynamoCuratedStore(
            self.resources.curated_table, self._dynamodb, ttl_days=self.resources.curated_ttl_days
        )

    @cached_property
    def apps(self) -> AppDirectory | None:
        if not self.resources.apps_table:
            return None
        from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore
        from eventpipe.core.apps import AppDirectory

        return AppDirectory(DynamoAppStore(self.resources.apps_table, self._dynamodb), ttl_s=APP_CACHE_TTL_S)

    def health(self) -> dict[str, Any]:
        """Nothing beside "ok": CloudWatch holds a deployment's counters, and a health check reads no table."""
        return {}

    @cached_property
    def starter(self) -> StepFunctionsStarter:
        """Starts a batch's execution now (`start_batches` uses it; ingest through `DeferringStarter`)."""
        if self.resources.state_machine_arn is None:
            raise ConfigError("EVENTPIPE_STATE_MACHINE_ARN not set: this function starts the workflow")
        from eventpipe.adapters.aws.stepfunctions import StepFunctionsStarter

        return StepFunctionsStarter(
            self.resources.state_machine_arn, make_client("stepfunctions", self._session, lazy=True)
        )

    @cached_property
    def request_queue(self) -> FirehoseRequestStream | None:
        """Micro-batching: requests go to this delivery stream; its objects in `requests/` become groups."""
        if not self.resources.request_stream:
            return None
        from eventpipe.adapters.aws.firehose import FirehoseRequestStream

        return FirehoseRequestStream(self.resources.request_stream, make_client("firehose", self._session, lazy=True))

    @cached_property
    def request_index(self) -> DynamoRequestIndex:
        """Which group holds each queued request (`GET /batches/{id}` of one, and forming groups)."""
        from eventpipe.adapters.aws.dynamodb_requests import DynamoRequestIndex

        return DynamoRequestIndex(self.resources.state_table, self._dynamodb)

    @cached_property
    def ingestor(self) -> Ingestor:
        from eventpipe.adapters.aws.start_queue import DeferringStarter
        from eventpipe.core.ingest import Ingestor

        starter: WorkflowStarter = self.starter
        if self.resources.start_function is not None:  # a start that fails is retried by start_batches
            retries = AsyncInvoker(self.resources.start_function, session=self._session)
            starter = DeferringStarter(self.starter, retries)
        return Ingestor(
            bucket=self.bucket,
            batches=self.batches,
            starter=starter,
            clock=self.clock,
            limits=self.settings.limits,
            queue=self.request_queue,
            queue_below_events=self.resources.microbatch_below_events,
        )

    @cached_property
    def file_splitter(self) -> S3FileRanges | None:
        """Large dropped files in byte ranges, one invocation each, when the stack names the range function."""
        if self.resources.range_function is None:
            return None
        from eventpipe.adapters.aws.file_ranges import S3FileRanges

        ranges = AsyncInvoker(self.resources.range_function, session=self._session)
        return S3FileRanges(ranges, self.settings.file_range_bytes, self._s3)

    @cached_property
    def analytics(self) -> S3RawBucket:
        if self.resources.analytics_bucket is None:
            raise ConfigError("EVENTPIPE_ANALYTICS_BUCKET not set: the export writes to the analytics bucket")
        return S3RawBucket(self.resources.analytics_bucket, self._s3)

    @cached_property
    def lake_writer(self) -> LakeStreamWriter | None:
        """`write_lake`: the curated table's stream into Parquet in the analytics bucket; None with
        EVENTPIPE_LAKE=off."""
        from eventpipe.lake.settings import LakeSettings

        if not LakeSettings.from_env().enabled:
            return None
        from eventpipe.adapters.aws.lake_stream import LakeStreamWriter

        return LakeStreamWriter(
            self.analytics, self.tombstones, self.resources.curated_table, self._dynamodb, self.clock
        )

    @cached_property
    def tombstones(self) -> ErasureTombstones:
        """The erasures the lake's stream writer checks (state table): `erase` writes them."""
        from eventpipe.adapters.aws.erasure_tombstones import ErasureTombstones

        return ErasureTombstones(self.resources.state_table, self._dynamodb)

    @cached_property
    def erasure(self) -> AwsErasure:
        """The `erase` function's work: the lake, the curated table, the quarantine and the raw bucket."""
        from eventpipe.adapters.aws.erasure import AwsErasure, AwsStores

        return AwsErasure(
            AwsStores(
                s3=self._s3,
                dynamodb=self._dynamodb,
                raw_bucket=self.resources.bucket,
                analytics_bucket=self.analytics.name,
                curated_table=self.resources.curated_table,
                quarantine=self.quarantine,
                clock=self.clock,
                max_file_bytes=self.settings.limits.max_file_bytes,
            ),
            tombstones=self.tombstones,
            lease=self.lake_lease("erasure"),
            sleep=lambda seconds: self.sleep(seconds),
        )

    @cached_property
    def lake_compactor(self) -> S3LakeCompactor:
        from eventpipe.adapters.aws.lake_compaction import S3LakeCompactor

        return S3LakeCompactor(self.analytics.name, self._s3, self.batches, self.clock, self.lake_lease("compaction"))

    def lake_lease(self, holder: str) -> LakeLease:
        """The lake's lease (state table), which the erasure and the compaction take in turn."""
        from eventpipe.adapters.aws.lake_lease import LakeLease

        return LakeLease(self.resources.state_table, self._dynamodb, self.clock, holder=holder)

    @cached_property
    def insights(self) -> DynamoInsightsStore:
        from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
        from eventpipe.adapters.aws.sketch_cache import SketchCache

        # One store per container: its sketch cache makes the dashboard's polls read only changed minutes.
        return DynamoInsightsStore(self.resources.insights_table, self._dynamodb, sketch_cache=SketchCache())

    def fold_insights(self, records: Sequence[Mapping[str, Any]]) -> FoldAnswer:
        """The insights table's stream records: their deltas counted into the minutes (insights_fold.py)."""
        from eventpipe.adapters.aws.insights_delta import stream_deltas

        result = self.insights.fold(stream_deltas(records))
        return {"deltas": result.deltas, "folded": result.folded, "minutes": result.minutes}

    @cached_property
    def _schemas(self) -> Callable[[], SchemaRegistry]:
        """The registry source: bundled and local schemas once, or an S3 prefix refreshed on a TTL."""
        from eventpipe.core.registry import SchemaRegistry

        if self.settings.schema_uri is None:
            registry = SchemaRegistry.load(*self.settings.schema_dirs)
            return lambda: registry
        from eventpipe.adapters.aws.s3_config import S3Schemas, parse_s3_uri

        bucket, prefix = parse_s3_uri(self.settings.schema_uri, "EVENTPIPE_SCHEMA_DIR")
        schemas = S3Schemas(
            bucket,
            prefix,
            self._s3,
            refresh_s=self.settings.schema_refresh_s,
            monotonic=lambda: self.monotonic(),
        )
        return schemas.current

    @property
    def registry(self) -> SchemaRegistry:
        return self._schemas()

    @cached_property
    def enrichment(self) -> EnrichmentConfig:
        """The enrichment settings, with the currency rates (S3) and the pseudonym key (SSM) read at cold start."""
        # Imported here: Powertools Parameters imports boto3 (about 30 ms), which only ProcessBatch needs.
        from eventpipe.awsrun.secrets import resolve_enrichment

        return resolve_enrichment(self.settings, self._session, self._s3)

    @cached_property
    def finishing_steps(self) -> PipelineSteps:
        """MarkDone and MarkFailed: they write only the batch record, so they load no schema, rates or key."""
        from eventpipe.core.registry import SchemaRegistry

        return self._pipeline_steps(SchemaRegistry([]), [])

    @property
    def steps(self) -> PipelineSteps:
        """The workflow steps; built again only when the schemas in S3 changed (see `S3Schemas`)."""
        from eventpipe.core.enrich import build_enrichers

        registry = self.registry
        if self._steps is None or self._steps[0] is not registry:
            self._steps = (registry, self._pipeline_steps(registry, build_enrichers(self.enrichment)))
        return self._steps[1]

    def _pipeline_steps(self, registry: SchemaRegistry, enrichers: Sequence[Enricher]) -> PipelineSteps:
        # No lake here: write_lake writes it from the curated table's stream (lake_stream.py).
        from eventpipe.handlers.wiring import build_steps

        return build_steps(self, registry, enrichers)
