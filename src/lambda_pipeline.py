"""The Lambda entry points the templates name: `lambda_pipeline.ingest`, `lambda_pipeline.process_batch`, ...

Each is a few lines over one use-case. Settings and clients are built once per container, at cold
start; logs are JSON with the batch id as correlation id, metrics go out as CloudWatch EMF.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from eventpipe.awsrun.runtime import AwsRuntime
from eventpipe.awsrun.tracing import SampledTracer
from eventpipe.core.batch_ids import is_replay
from eventpipe.handlers.export import handle_export
from eventpipe.handlers.ingest import handle_ingest
from eventpipe.handlers.replay import handle_replay
from eventpipe.handlers.request_queue import handle_request_queue
from eventpipe.handlers.start_batches import start_queued_batch
from eventpipe.settings import AwsResources, Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

NAMESPACE = "eventpipe"

logger = Logger(service="eventpipe")
metrics = Metrics(namespace=NAMESPACE, service="eventpipe")
# The X-Ray SDK is imported only when an invocation is sampled (awsrun/tracing.py); botocore is our
# only I/O library, and patching all modules costs 20 ms more.
tracer = SampledTracer(service="eventpipe", patch_modules=("botocore",))
copy_config_to_registered_loggers(source_logger=logger)  # the eventpipe.* loggers log JSON too
runtime = AwsRuntime(Settings.from_env(on_aws=True), AwsResources.from_env())

Event = dict[str, Any]


def _count(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """A metric with its own dimensions (e.g. rejections by reason), flushed at once."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension("service", "eventpipe")
        for key, dimension in dimensions.items():
            metric.add_dimension(key, dimension)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def ingest(event: Event, context: LambdaContext) -> Event:
    """API Gateway requests, S3 / EventBridge object-created notifications, `{"events": [...]}`, file ranges (SQS)."""
    result = handle_ingest(event, runtime)
    if "statusCode" in result:
        metrics.add_metric("HttpRequests", MetricUnit.Count, 1)
        _count("HttpResponses", 1, status=f"{str(result['statusCode'])[0]}xx")
        if result["statusCode"] == 202:
            _record_accepted(result["body"])
    elif "objects" in result:
        metrics.add_metric("FileDrops", MetricUnit.Count, len(result["objects"]))
        for outcome in result["objects"]:
            metrics.add_metric("EventsReceived", MetricUnit.Count, outcome["received"])
            _count("FileDropOutcomes", 1, status=outcome["status"])
    elif "ranges" in result:  # the byte ranges of a large file, from the file-range queue
        for part in result["ranges"]:
            metrics.add_metric("EventsReceived", MetricUnit.Count, part.get("received", 0))
            _count("FileRangeOutcomes", 1, status=part["status"])
    else:
        _record_accepted(result)
    return result


def _record_accepted(accepted: Event | str) -> None:
    """Log and count an accepted batch, from the 202 document or the HTTP body holding it."""
    document: Event = orjson.loads(accepted) if isinstance(accepted, str) else accepted
    logger.set_correlation_id(document["batch_id"])
    logger.info("batch accepted", extra={"received": document["received"], "refused": document["rejected"]})
    metrics.add_metric("EventsReceived", MetricUnit.Count, document["received"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def batch_requests(event: Event, context: LambdaContext) -> Event:
    """SQS, after its batching window: queued requests become group batches, one execution each."""
    result = handle_request_queue(
        event,
        bucket=runtime.bucket,
        groups=runtime.batches,
        starter=runtime.starter,
        limits=runtime.settings.limits,
    )
    failed = len(result["batchItemFailures"])
    metrics.add_metric("RequestsGrouped", MetricUnit.Count, len(event.get("Records", [])) - failed)
    metrics.add_metric("RequestsNotGrouped", MetricUnit.Count, failed)
    return result


@logger.inject_lambda_context(correlation_id_path="batch_id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def process_batch(event: Event, context: LambdaContext) -> Event:
    """The workflow's one processing step: validate, enrich, persist and aggregate a batch in one pass."""
    result = runtime.steps.process_batch(event)
    logger.info("process batch", extra={"result": result})
    if result["repeated"]:  # the batch was done already: its events were counted then
        return result
    metrics.add_metric("EventsValid", MetricUnit.Count, result["valid"])
    metrics.add_metric("EventsCurated", MetricUnit.Count, result["curated"])
    metrics.add_metric("Duplicates", MetricUnit.Count, result["duplicates"])
    if not is_replay(event["batch_id"]):  # a replay adds no EventsReceived to compare with
        for code, count in result["rejected"].items():
            _count("EventsRejected", count, reason=code)
        # the total, with the service dimension alone: the rejection-ratio alarm reads it as a plain metric
        metrics.add_metric("EventsRejected", MetricUnit.Count, sum(result["rejected"].values()))
    return result


@logger.inject_lambda_context(correlation_id_path="batch_id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def mark_done(event: Event, context: LambdaContext) -> Event:
    result = runtime.finishing_steps.mark_done(event)
    logger.info("mark done", extra={"result": result})
    metrics.add_metric("BatchesDone", MetricUnit.Count, 1)
    latency = max(0, runtime.clock.now_ms() - int(event["received_at_ms"]))
    metrics.add_metric("BatchLatency", MetricUnit.Milliseconds, latency)
    return result


@logger.inject_lambda_context(correlation_id_path="batch_id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def mark_failed(event: Event, context: LambdaContext) -> Event:
    logger.error("batch failed", extra={"error": event.get("error")})
    metrics.add_metric("BatchesFailed", MetricUnit.Count, 1)
    return runtime.finishing_steps.mark_failed(event)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def export_insights(event: Event, context: LambdaContext) -> Event:
    """Scheduled: the last two hours of insights to `insights/dt=.../hour=...` (or `{"since", "until"}`)."""
    result = handle_export(event, runtime)
    metrics.add_metric("InsightsObjectsExported", MetricUnit.Count, len(result["keys"]))
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def replay(event: Event, context: LambdaContext) -> Event:
    """`{}` restarts pending and failed batches; `{"rejected": true}` replays the quarantine (after a schema fix)."""
    result = handle_replay(event, runtime)
    logger.info("replay started", extra=result)
    metrics.add_metric("BatchesReplayed", MetricUnit.Count, result["batches"])
    return result


@functools.cache
def _start_queue() -> BatchProcessor:
    """Failed records are reported (ReportBatchItemFailures), even all of them: SQS delivers each again.

    Built at the first SQS event: Powertools' batch utility costs every other function's cold start 20 ms.
    """
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _start_queued(record: SQSRecord) -> None:
    outcome = start_queued_batch(record.body, runtime.batches, runtime.starter)
    metrics.add_metric("BatchStartsRetried" if outcome == "started" else "BatchStartsSkipped", MetricUnit.Count, 1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def start_batches(event: Event, context: LambdaContext) -> Event:
    """SQS: the start-retry queue. A start that fails again is reported, and SQS delivers it again."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    processor = _start_queue()
    answer = process_partial_response(event=event, record_handler=_start_queued, processor=processor, context=context)
    return dict(answer)
