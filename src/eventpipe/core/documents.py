"""The JSON documents that cross module and process boundaries, typed once.

Each is a `TypedDict`: the value stays a plain dict (it is written with orjson as it is), and mypy
checks every place that builds or reads one. The shapes are contracts (docs/http-api.md,
docs/architecture.md): change them only with the docs.

- the workflow's states (`pipeline.asl.json`): a batch reference in, each step's result out;
- a refusal at ingest, as the raw batch's header keeps it;
- the answers of `POST /events` and `GET /batches/{id}`;
- the insights document of `GET /insights` and `eventpipe insights --json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, final

if TYPE_CHECKING:
    from collections.abc import Mapping


class ReasonDocument(TypedDict):
    """Why an event was turned away: a code (docs/event-envelope.md), a JSON path and a message."""

    code: str
    path: str
    message: str


class Refusal(TypedDict):
    """An event refused at ingest (its shape, or its size), as the raw batch's header keeps it.

    `index` is its 0-based position in its source; `line` its NDJSON line number, where it has one;
    `raw` its text as received (only the start of an event refused for its size).
    """

    index: int
    raw: str
    reasons: list[ReasonDocument]
    line: NotRequired[int]
    event_id: NotRequired[str]


class IngestCounts(TypedDict):
    """What happened to an input's events: `eventpipe ingest --json`, and each file drop's outcome."""

    received: int
    curated: int
    duplicates: int
    rejected: dict[str, int]


class ReplayCounts(IngestCounts):
    """`eventpipe replay --rejected --json`: the counts, and the quarantine records left out, by why."""

    skipped: dict[str, int]


class RejectionDocument(TypedDict):
    """A quarantined event, as `eventpipe rejected --json` prints it."""

    event_id: str | None
    batch_id: str
    index: int
    stage: str
    reasons: list[ReasonDocument]
    raw: str


class AppDocument(TypedDict):
    """An app as `eventpipe apps list --json` shows it: never its write key nor the key's hash."""

    app_id: str
    name: str
    origins: list[str]
    created_at_ms: int
    revoked: bool


# --- the workflow's states -----------------------------------------------------------------------------


class BatchRef(TypedDict):
    """A workflow execution's input and ProcessBatch's parameters: a claim check, never the events."""

    batch_id: str
    raw_key: str


class ProcessOutcome(TypedDict):
    """ProcessBatch's result: counts only, so the state stays small whatever the batch size.

    `repeated`: the batch was done already, and nothing was processed (the counts are its record's).
    """

    valid: int
    curated: int
    duplicates: int
    rejected: dict[str, int]
    received_at_ms: int
    repeated: bool


class MarkDoneInput(TypedDict):
    """MarkDone's parameters: the batch and ProcessBatch's counts (and when it was received, for its latency)."""

    batch_id: str
    curated: int
    duplicates: int
    rejected: dict[str, int]
    received_at_ms: NotRequired[int]


class StepError(TypedDict, total=False):
    """What a Catch puts at `$.error`: the error's name and its cause."""

    Error: str
    Cause: str


class MarkFailedInput(TypedDict):
    """MarkFailed's parameters: the batch and the error its Catch caught."""

    batch_id: str
    error: NotRequired[StepError | None]


class StepStatus(TypedDict):
    """MarkDone's and MarkFailed's result."""

    status: Literal["done", "failed"]


def batch_ref(state: Mapping[str, Any]) -> BatchRef:
    """The batch reference in a state; KeyError when it lacks one."""
    return {"batch_id": str(state["batch_id"]), "raw_key": str(state["raw_key"])}


def mark_done_input(state: Mapping[str, Any]) -> MarkDoneInput:
    """MarkDone's parameters in a state; KeyError when one is missing."""
    done: MarkDoneInput = {
        "batch_id": str(state["batch_id"]),
        "curated": int(state["curated"]),
        "duplicates": int(state["duplicates"]),
        "rejected": {str(code): int(count) for code, count in state["rejected"].items()},
    }
    if "received_at_ms" in state:
        done["received_at_ms"] = int(state["received_at_ms"])
    return done


def mark_failed_input(state: Mapping[str, Any]) -> MarkFailedInput:
    """MarkFailed's parameters in a state; KeyError without a batch id."""
    error = state.get("error")
    caught: StepError | None = None
    if isinstance(error, dict):
        caught = {}
        if "Error" in error:
            caught["Error"] = str(error["Error"])
        if "Cause" in error:
            caught["Cause"] = str(error["Cause"])
    return {"batch_id": str(state["batch_id"]), "error": caught}


# --- the functions' answers (docs/aws.md) ---------------------------------------------------------------


class DropDocument(IngestCounts):
    """One dropped file or object: how it ended (`ingested`, `grouped`, `split`, `missing`, `ignored`, `refused`)."""

    key: str
    status: str
    batches: int
    ranges: NotRequired[int]  # `split`: the byte ranges queued, each ingested by its own invocation
    requests: NotRequired[int]  # `grouped` (an object of the request stream): the requests grouped anew
    error: NotRequired[str]


@final
class DropsAnswer(TypedDict):
    """ingest's answer to an object-created notification."""

    objects: list[DropDocument]


class RangeDocument(TypedDict):
    """One byte range of a large file; a message that is no range is only `{"status": "dropped"}`."""

    status: str
    key: NotRequired[str]
    start: NotRequired[int]
    end: NotRequired[int]
    batches: NotRequired[int]
    received: NotRequired[int]
    curated: NotRequired[int]
    duplicates: NotRequired[int]
    rejected: NotRequired[dict[str, int]]
    error: NotRequired[str]


@final
class RangesAnswer(TypedDict):
    """ingest's answer to a byte range of a large file (its own asynchronous invocation)."""

    ranges: list[RangeDocument]


class ExportAnswer(TypedDict):
    """export_insights: the objects written, the hours exported, the dirty hours left for the next run."""

    keys: list[str]
    hours: int
    pending: int


class FoldAnswer(TypedDict):
    """fold_insights (AWS): the deltas handed over, the minute changes counted now, the minute items written."""

    deltas: int
    folded: int
    minutes: int


class ReplayAnswer(TypedDict):
    """replay: the batches started, their events, those not done yet; with `rejected`, the records left out."""

    batches: int
    received: int
    unfinished: list[str]
    skipped: NotRequired[dict[str, int]]


# --- the HTTP API's answers ----------------------------------------------------------------------------


class EventError(TypedDict):
    """One refused event in an answer: its 0-based `index` in the body, its NDJSON `line` where it has one."""

    index: int
    event_id: str | None
    reasons: list[ReasonDocument]
    line: NotRequired[int]


@final
class AcceptedDocument(TypedDict):
    """The 202 of `POST /events`: the batch, and the events refused at ingest."""

    batch_id: str
    received: int
    rejected: int
    errors: list[EventError]


class GroupRef(TypedDict):
    batch_id: str
    first_index: int


class BatchDocument(TypedDict):
    """`GET /batches/{id}`; a request that micro-batching grouped also names its `group`."""

    batch_id: str
    status: str
    received: int
    curated: int
    duplicates: int
    rejected: int
    rejections: list[EventError]
    group: NotRequired[GroupRef]


# --- the insights document -----------------------------------------------------------------------------


class Percentiles(TypedDict):
    """Lag in milliseconds; None where no event was measured."""

    p50: int | None
    p95: int | None


class InsightsTotals(TypedDict):
    events: int
    by_type: dict[str, int]
    unique_users: int
    revenue: float
    duplicates: int
    rejected: dict[str, int]
    bots: int
    by_country: dict[str, int]


class InsightsMinute(TypedDict):
    minute: str
    events: dict[str, int]
    unique_users: int
    revenue: float
    rejected: dict[str, int]
    duplicates: int
    lag_ms: Percentiles


class InsightsDocument(TypedDict):
    """`GET /insights` and `eventpipe insights --json` (docs/http-api.md)."""

    since: str
    until: str
    currency: str
    totals: InsightsTotals
    funnel: dict[str, int]
    lag_ms: Percentiles
    minutes: list[InsightsMinute]
