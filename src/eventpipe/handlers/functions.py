"""The pipeline's functions, in one table: each one's use-case, the workflow Task it serves and what it reports.

Every runtime reads this table and nothing else to know its functions:
- `src/lambda_pipeline.py` exports one Lambda entry point per function (the names the templates
  give as `Handler`), each under the same Powertools decorators;
- `task_resources` binds the workflow's Tasks (the `${...}` names of `pipeline.asl.json`) to the
  functions that serve them, for the in-process interpreter (one machine, Azure, the AWS tests);
- `eventpipe invoke` and the local Lambda Invoke API run the functions that are not `aws_only`.

A function takes its event, a runtime's services and a `Report`: the Lambda entry points report
CloudWatch metrics and log lines through it, the local runtime reports nothing (`SILENT`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from eventpipe.core.batch_ids import is_replay
from eventpipe.core.queued import is_queued_answer

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from eventpipe.adapters.aws.erasure import ErasureAnswer
    from eventpipe.adapters.aws.lake_compaction import CompactionAnswer
    from eventpipe.adapters.aws.lake_stream import LakeWriteAnswer
    from eventpipe.core.documents import (
        AcceptedDocument,
        ExportAnswer,
        FoldAnswer,
        ProcessOutcome,
        ReplayAnswer,
        StepStatus,
    )
    from eventpipe.handlers.erase import ErasureServices
    from eventpipe.handlers.ingest import IngestAnswer
    from eventpipe.handlers.lake import LakeServices
    from eventpipe.handlers.services import QueueServices, Services, StreamServices

Event = dict[str, Any]
Unit = Literal["Count", "Milliseconds"]

log = logging.getLogger(__name__)


class Report(Protocol):
    """Where a function reports what it did: CloudWatch metrics (EMF) and log lines in AWS."""

    def metric(self, name: str, value: float, unit: Unit = "Count", **dimensions: str) -> None:
        """One metric; with `dimensions` it is also emitted on its own with them (e.g. by reason)."""

    def info(self, message: str, **extra: Any) -> None: ...

    def error(self, message: str, **extra: Any) -> None: ...

    def correlate(self, correlation_id: str) -> None:
        """Tag the invocation's further log lines with this id (a batch id)."""


class SilentReport:
    """Reports nothing: the local runtime counts at `GET /health`, not per invocation."""

    def metric(self, name: str, value: float, unit: Unit = "Count", **dimensions: str) -> None:
        pass

    def info(self, message: str, **extra: Any) -> None:
        pass

    def error(self, message: str, **extra: Any) -> None:
        pass

    def correlate(self, correlation_id: str) -> None:
        pass


SILENT = SilentReport()


@dataclass(frozen=True)
class Function:
    """One function of the pipeline: a Lambda function in AWS, a name for `eventpipe invoke` here."""

    name: str
    run: Callable[[Event, Any, Report], Any]  # (event, services, report) -> result
    doc: str
    task: str | None = None  # the `${...}` placeholder of pipeline.asl.json whose Task it serves
    correlation_id_path: str | None = None  # where the event holds the id its log lines carry
    aws_only: bool = False  # fed by an AWS queue: on one machine nothing calls it


# --- what each function does and reports ------------------------------------------------------------
# Each imports its handler when first called: a Lambda function's cold start loads its own use-case
# only (the workflow steps never load the ingest path: about 10 ms).


def _ingest(event: Event, services: Services, report: Report) -> IngestAnswer:
    from eventpipe.handlers.ingest import handle_ingest

    result = handle_ingest(event, services)
    if "statusCode" in result:
        # API Gateway counts requests, 4xx and 5xx for free; this tells the handler's own refusals and
        # failures from the gateway's, and costs a custom metric only while there are some.
        if result["statusCode"] >= 400:
            report.metric("HttpResponses", 1, status=f"{str(result['statusCode'])[0]}xx")
        # A request put on the request stream adds no metric (at one event a request, its EMF line would
        # cost more than the rest of its way, docs/cost.md): its object's invocation counts its events.
        if result["statusCode"] == 202 and not is_queued_answer(result["body"]):
            _accepted(result["body"], report)
    elif "objects" in result:
        report.metric("FileDrops", len(result["objects"]))
        for outcome in result["objects"]:
            report.metric("EventsReceived", outcome["received"])
            report.metric("FileDropOutcomes", 1, status=outcome["status"])
    elif "ranges" in result:  # a byte range of a large file, ingest's own asynchronous invocation
        for part in result["ranges"]:
            report.metric("EventsReceived", part.get("received", 0))
            report.metric("FileRangeOutcomes", 1, status=part["status"])
    else:
        _accepted(result, report)
    return result


def _accepted(accepted: AcceptedDocument | str, report: Report) -> None:
    """Log and count an accepted batch, from the 202 document or the HTTP body holding it."""
    document: AcceptedDocument = orjson.loads(accepted) if isinstance(accepted, str) else accepted
    report.correlate(document["batch_id"])
    # No log line: process_batch logs the one line a batch gets (CloudWatch bills logs by the byte).
    report.metric("EventsReceived", document["received"])


def _process_batch(event: Event, services: Services, report: Report) -> ProcessOutcome:
    from eventpipe.core.documents import batch_ref  # the workflow's documents: not loaded by ingest (1.3 ms)

    result = services.steps.process_batch(batch_ref(event))
    # The batch's one log line: its counts and its rejections by reason code (Logs Insights reads them
    # by reason; a metric per reason code would cost $0.30 a month each).
    report.info("process batch", result=result)
    if result["repeated"]:  # the batch was done already: its events were counted then
        return result
    report.metric("EventsCurated", result["curated"])
    report.metric("Duplicates", result["duplicates"])
    if not is_replay(event["batch_id"]):  # a replay adds no EventsReceived to compare with
        # the total, with the service dimension alone: the rejection-ratio alarm reads it as a plain metric
        report.metric("EventsRejected", sum(result["rejected"].values()))
    return result


def _mark_done(event: Event, services: Services, report: Report) -> StepStatus:
    from eventpipe.core.documents import mark_done_input

    result = services.finishing_steps.mark_done(mark_done_input(event))
    report.metric("BatchesDone", 1)
    report.metric("BatchLatency", max(0, services.clock.now_ms() - int(event["received_at_ms"])), "Milliseconds")
    return result


def _mark_failed(event: Event, services: Services, report: Report) -> StepStatus:
    from eventpipe.core.documents import mark_failed_input

    report.error("batch failed", error=event.get("error"))
    report.metric("BatchesFailed", 1)
    return services.finishing_steps.mark_failed(mark_failed_input(event))


def _export_insights(event: Event, services: Services, report: Report) -> ExportAnswer:
    from eventpipe.handlers.export import handle_export

    result = handle_export(event, services)
    if result["keys"]:  # a metric published every 5 minutes, even as 0, is billed every month: idle too
        report.metric("InsightsObjectsExported", len(result["keys"]))
    return result


def _fold_insights(event: Event, services: StreamServices, report: Report) -> FoldAnswer:
    result = services.fold_insights(event.get("Records", []))
    report.info("insights folded", **result)  # twice a minute at most: no metric (billed per month)
    return result


def _replay(event: Event, services: Services, report: Report) -> ReplayAnswer:
    from eventpipe.handlers.replay import handle_replay

    result = handle_replay(event, services)
    if result["batches"]:  # the schedule runs every 10 minutes: nothing to say, or pay for, when idle
        report.info("replay started", **result)
        report.metric("BatchesReplayed", result["batches"])
    return result


def _compact_lake(event: Event, services: LakeServices, report: Report) -> CompactionAnswer:
    from eventpipe.handlers.lake import handle_compact_lake

    result = handle_compact_lake(event, services)
    if result["written_objects"] or result["journals_finished"]:  # every 15 minutes: silent when idle
        report.info("lake compacted", **result)
        report.metric("LakeObjectsMerged", result["merged_objects"])
    elif result["skipped"]:
        report.info("lake compaction skipped: an erasure holds the lake")
    return result


def _write_lake(event: Event, services: LakeServices, report: Report) -> LakeWriteAnswer:
    from eventpipe.handlers.lake import handle_write_lake

    result = handle_write_lake(event, services)
    # Twice a minute per shard: a log line, no metric (billed per month) but for records left out.
    report.info("lake written", **result)
    if result["unreadable"]:
        report.error("stream records made no lake row: kept in lake-unreadable/", unreadable=result["unreadable"])
        report.metric("LakeRecordsUnreadable", result["unreadable"])
    return result


def _erase(event: Event, services: ErasureServices, report: Report) -> ErasureAnswer:
    from eventpipe.handlers.erase import handle_erase

    result = handle_erase(event, services)
    report.info("erasure finished", **result)  # time and counts only: never the ids
    report.metric("EventsErased", result["events_erased"])
    return result


def _start_batches(event: Event, services: QueueServices, report: Report) -> Event:
    from eventpipe.handlers.start_batches import start_queued_batch

    # An asynchronous invocation from ingest: a start that fails raises, and Lambda runs it again.
    outcome = start_queued_batch(orjson.dumps(event).decode(), services.batches, services.starter)
    report.metric("BatchStartsRetried" if outcome == "started" else "BatchStartsSkipped", 1)
    return {"outcome": outcome}


FUNCTIONS: Mapping[str, Function] = {
    function.name: function
    for function in (
        Function(
            "ingest",
            _ingest,
            "API Gateway requests, object-created notifications (`incoming/` files, `requests/` objects of the "
            'request stream), `{"events": [...]}`, file ranges (its own asynchronous invocations).',
        ),
        Function(
            "process_batch",
            _process_batch,
            "The workflow's one processing step: validate, enrich, persist and aggregate a batch in one pass.",
            task="ProcessBatchFunctionArn",
            correlation_id_path="batch_id",
        ),
        Function(
            "mark_done",
            _mark_done,
            "The workflow's last step: the batch's counts, and its status done.",
            task="MarkDoneFunctionArn",
            correlation_id_path="batch_id",
        ),
        Function(
            "mark_failed",
            _mark_failed,
            "The workflow's Catch: the batch's status failed, with the error.",
            task="MarkFailedFunctionArn",
            correlation_id_path="batch_id",
        ),
        Function(
            "export_insights",
            _export_insights,
            'Scheduled: the last two hours of insights to `insights/dt=.../hour=...` (or `{"since", "until"}`).',
        ),
        Function(
            "fold_insights",
            _fold_insights,
            "The insights table's stream (its filter passes delta inserts only): the batches' deltas counted "
            "into their minutes, each once. An error fails the stream batch, which Lambda delivers again.",
            aws_only=True,
        ),
        Function(
            "replay",
            _replay,
            '`{}` restarts pending and failed batches; `{"rejected": true}` replays the quarantine.',
        ),
        Function(
            "start_batches",
            _start_batches,
            "A start that failed at ingest, invoked asynchronously: a start that fails again raises, and "
            "Lambda runs it again.",
            aws_only=True,
        ),
        Function(
            "compact_lake",
            _compact_lake,
            "Scheduled: merge the small Parquet objects of the AWS lake's closed (or crowded) hours.",
            aws_only=True,  # the local lake compacts itself (lake/writer.py)
        ),
        Function(
            "write_lake",
            _write_lake,
            "The curated table's stream (its filter passes inserts only): each newly curated event into the "
            "AWS lake, one Parquet object per hour per batch of records. An error fails the stream batch, which "
            "Lambda delivers again; its objects are written again in place.",
            aws_only=True,  # the local lake follows the curated store itself (lake/writer.py)
        ),
        Function(
            "erase",
            _erase,
            'An erasure request: `{"user_id": ID}` and/or `{"anonymous_id": ID}`; every store, time and counts logged.',
            aws_only=True,  # on one machine: `eventpipe erase`
        ),
    )
}
"""Every function, by the name the templates give it (`lambda_pipeline.<name>`)."""

LOCAL_FUNCTIONS: Mapping[str, Function] = {name: f for name, f in FUNCTIONS.items() if not f.aws_only}
"""What `eventpipe invoke` runs on this machine: a failed start stays pending for `eventpipe replay`."""

TASKS: Mapping[str, str] = {f.task: f.name for f in FUNCTIONS.values() if f.task is not None}
"""Each Task placeholder of pipeline.asl.json and the function that serves it."""


def task_resources(services: Services) -> dict[str, Callable[[Any], Any]]:
    """The workflow's Tasks bound to their functions on `services`, for the in-process interpreter."""

    def bound(function: Function) -> Callable[[Any], Any]:
        return lambda event: function.run(event, services, SILENT)

    return {placeholder: bound(FUNCTIONS[name]) for placeholder, name in TASKS.items()}
