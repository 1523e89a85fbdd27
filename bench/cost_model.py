"""The monthly bill from what one batch used (`PerBatch`, measured by `lambda_cost.py`) and AWS list prices.

Prices are us-east-1, arm64, as read on READ_ON from the pages in SOURCES; tiers are
`(cumulative units up to, price per unit)`. Everything not measured is an assumption named here or
in `Assumptions`, and printed with the table.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml
from fake_aws import read_units, write_units

from eventpipe.adapters.aws.insights_delta import ID_BYTES
from eventpipe.core.aggregate import merged_users, new_user_sketch
from eventpipe.core.funnel import FUNNEL_STEPS, SESSION_LOOKBACK_S, merged_step, new_step_sketch
from eventpipe.generate import EventGenerator

if TYPE_CHECKING:
    from collections import Counter

READ_ON = "2026-11-28"
SOURCES = {
    "API Gateway": "https://aws.amazon.com/api-gateway/pricing/",
    "Lambda": "https://aws.amazon.com/lambda/pricing/",
    "Step Functions": "https://aws.amazon.com/step-functions/pricing/",
    "DynamoDB": "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "S3": "https://aws.amazon.com/s3/pricing/",
    "CloudWatch": "https://aws.amazon.com/cloudwatch/pricing/",
    "X-Ray": "https://aws.amazon.com/xray/pricing/",
    "Data Firehose": "https://aws.amazon.com/firehose/pricing/",
}
INF = math.inf
HOURS_PER_MONTH = 730  # the AWS Pricing Calculator's month
PRICES: dict[str, Any] = {
    "http_api_request": [(300e6, 1.00e-6), (1e9, 0.90e-6), (INF, 0.80e-6)],  # per 512 KB request
    "lambda_request": 0.20e-6,
    "lambda_arm_gb_s": [(7.5e9, 0.0000133334), (18.75e9, 0.0000120001), (INF, 0.0000106667)],
    "express_request": 1.00e-6,
    "express_gb_s": [(3.6e6, 0.00001667), (18e6, 0.00000833), (INF, 0.00000456)],  # 1,000 / 4,000 GB-hours
    "standard_transition": 0.000025,  # 4,000 free a month, ignored
    "dynamodb_wru": 0.625e-6,
    "dynamodb_rru": 0.125e-6,
    "dynamodb_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,  # point-in-time recovery (continuous backups), on in the template
    "s3_put": 0.005e-3,
    "s3_get": 0.0004e-3,
    "s3_gb_month": 0.023,
    "logs_gb": 0.50,  # Lambda's logs: the first 10 TB a month
    "metric_month": 0.30,
    "alarm_month": 0.10,  # per metric of a standard-resolution alarm
    "dashboard_month": 3.00,  # per dashboard past an account's first three (free tier, ignored)
    "xray_trace": 5.00e-6,  # traces recorded, 100,000 free a month (ignored)
    "sqs_request": 0.40e-6,  # standard queue, per 64 KB chunk (first 100 TB)
    "firehose_gb": 0.029,  # Direct PUT ingestion, first 500 TB a month; each record rounded up to 5 KB
}
ONE_VCPU_MB = 1769
EXPRESS_GB = 0.0625  # an Express execution is billed in 64 MB chunks; ours (state < 1 KB) needs one
PLATFORM_LOG_BYTES = 350  # Lambda's START, END and REPORT lines per invocation (text format)
ACCESS_LOG_BYTES = 250  # one HTTP API access log line (the template's JSON format)
STANDARD_TRANSITIONS = 2  # a successful batch enters 2 states (ProcessBatch, MarkDone); each retry adds one
RAW_KEPT_DAYS = 30 + 7  # raw/ expires after RawRetentionDays (30), its noncurrent version 7 days later
ITEM_OVERHEAD_BYTES = 100  # DynamoDB's storage overhead per item (its indexing)
WORKFLOW_SAMPLING = 0.01  # WorkflowSamplingRule: a fixed 1% of executions traced; ingest is not traced
ALERTS = Path(__file__).resolve().parent.parent / "monitoring" / "alerts.yml"
TEMPLATE = Path(__file__).resolve().parent.parent / "infrastructure" / "template.yaml"
STEPS = ("ingest", "process_batch", "mark_done")


def tiered(quantity: float, tiers: list[tuple[float, float]]) -> float:
    """The price of `quantity` units over tiers of `(cumulative units up to, price per unit)`."""
    total, floor = 0.0, 0.0
    for ceiling, price in tiers:
        total += max(0.0, min(quantity, ceiling) - floor) * price
        floor = ceiling
    return total


def mean_sketch_bytes(events: int, batch: int, seed: int) -> float:
    """Mean size of a minute's sketch item over the writes that fill it with `events` events.

    Every batch of the minute rewrites the item with the merged sketches: users (HyperLogLog, 4 bytes
    a user while sparse, 8 KB dense) and the sessions of each funnel step (Theta, about 8 bytes a
    session up to 1,024, compressed).
    """
    generator = EventGenerator(seed=seed, now_ms=int(time.time() * 1000), span_minutes=1)
    events_read = [orjson.loads(line) for line in generator.lines(max(events, 1))]
    stored: dict[str, bytes | None] = {"users": None, **{step: None for step in FUNNEL_STEPS}}
    sizes = []
    for start in range(0, len(events_read), batch):
        users = new_user_sketch()
        steps = {step: new_step_sketch() for step in FUNNEL_STEPS}
        for event in events_read[start : start + batch]:
            users.update(event.get("user_id") or event.get("anonymous_id"))
            if event.get("event_type") in steps and event.get("session_id"):
                steps[event["event_type"]].update(event["session_id"])
        stored["users"] = merged_users(users, stored["users"])
        for step, sessions in steps.items():
            if not sessions.is_empty():
                stored[step] = merged_step(sessions, stored[step])
        sizes.append(sum(len(value) for value in stored.values() if value))
    return statistics.mean(sizes)


@dataclass
class PerBatch:
    """What one batch used: medians of the per-function timings, means of the counts."""

    events: int
    cpu_s: dict[str, float]
    wall_s: dict[str, float]
    log_bytes: float
    units: Counter[str]
    calls: Counter[str]
    delta_bytes: float  # a batch's insights delta item (its write units are in `units["insights WRU"]`)
    minute_bytes: float  # a counter item's bytes (the copy the fold writes after each minute item)
    sketch_item_bytes: float  # a minute item's bytes besides its sketches, as written here (the model sizes
    # the sketches and the folded deltas' ids per rate)
    minutes_per_batch: float  # distinct minutes a batch's delta touches
    keys_per_batch: float  # distinct minute items (minute and segment) it touches
    fold_cpu_s: float  # fold_insights CPU per batch folded
    fold_round_trips_s: float  # one fold_insights: its wall time with round trips slept, less its CPU time
    fold_calls: Counter[str]  # AWS calls of one fold of `fold_batches` batches
    fold_batches: int
    lake_cpu_s_per_event: float  # write_lake's CPU per event it writes (decode, Arrow, Parquet with zstd)
    lake_round_trips_s: float  # one write_lake: its wall time with round trips slept, less its CPU time
    lake_calls: Counter[str]  # AWS calls of that write_lake (the erasures' Query, a PutObject per object)
    lake_objects: int  # Parquet objects it wrote (the hours its events fall in)
    lake_log_bytes: int  # what it logged
    lake_record_bytes: float  # a stream record as Lambda hands it over (JSON, binary in base64)
    raw_bytes_per_event: float
    curated_item_bytes: float
    curated_events: float
    metrics: int


@dataclass
class Assumptions:
    memory_mb: dict[str, int]
    cpu_speed: float  # how much longer CPU work takes on a Lambda arm64 vCPU than on this machine's core
    export_every_min: int
    poll_every_s: int  # one dashboard polling GET /insights (the last 60 minutes)
    parse_us: float  # measured: botocore's CPU per item read by a Query
    alarm_metrics: int  # counted in monitoring/alerts.yml
    curated_ttl_days: int = 7  # CuratedTtlDays: how long a curated item is stored
    poll_cache: bool = True  # GET /insights reads through the sketch cache (adapters/aws/sketch_cache.py)
    detailed_monitoring: bool = False  # DetailedMonitoring: every alarm of alerts.yml and the dashboard
    cold_polls_per_hour: float = 1.0  # polls that find the cache cold (a new execution environment), assumed
    state_overhead_s: float = 0.025  # per Task state: Step Functions invoking the function (Express duration)
    fold_window_s: int = 30  # the insights stream's batching window (MaximumBatchingWindowInSeconds)
    span_minutes: int = 2  # a batch's event times spread over this (the bench's --span-minutes)
    lake: bool = True  # write_lake writes the lake from the curated table's stream
    lake_window_s: int = 30  # the curated stream's batching window (MaximumBatchingWindowInSeconds)
    lake_shards: int = 4  # shards of the curated table's stream (one per table partition), assumed

    def cpu_scale(self, function: str) -> float:
        return self.cpu_speed * max(1.0, ONE_VCPU_MB / self.memory_mb[function])

    def duration_s(self, per: PerBatch, step: str) -> float:
        return per.wall_s[step] + per.cpu_s[step] * (self.cpu_scale(step) - 1)


def alarm_metrics(path: Path = ALERTS, *, detailed: bool = False) -> int:
    """Metrics alarmed on in monitoring/alerts.yml (CloudWatch bills an alarm per metric it reads):
    the `level: core` alerts, and with `detailed` (DetailedMonitoring) the others too."""
    document = yaml.safe_load(path.read_text())
    count = 0
    for alert in document["alerts"]:
        if alert["level"] != "core" and not detailed:
            continue
        entries = alert.get("metrics") or [alert]
        metrics = sum(1 for e in entries if "metric" in e or str(e.get("expression", "")).startswith("SELECT"))
        count += metrics * (len(document["functions"]) if alert.get("for_each") == "functions" else 1)
    return count


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # without types-PyYAML, SafeLoader is Any
    """Reads the SAM template with its short-form intrinsics (!Ref, !Sub, ...) as plain values."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, _tag, node: None)


@dataclass
class IdleRun:
    """One run of a scheduled function when nothing happens (measured by `lambda_cost.py`)."""

    cpu_s: float
    wall_s: float
    log_bytes: int
    read_units: float
    metrics: int  # EMF metrics it publishes: CloudWatch bills each one a month


@dataclass
class Stack:
    """What an idle stack runs, read from infrastructure/template.yaml."""

    schedules: dict[str, tuple[float, int, bool]]  # handler name -> (runs a month, memory MB, traced)
    queue_sources: list[str]  # functions with an SQS event source mapping (Lambda polls each queue)
    memory_mb: dict[str, int]  # handler name -> MemorySize
    platform_lines: dict[str, bool]  # handler name -> whether Lambda logs START, END and REPORT lines


def stack(path: Path = TEMPLATE) -> Stack:
    document = yaml.load(path.read_text(), Loader=_CloudFormationLoader)  # a SafeLoader
    defaults = document["Globals"]["Function"]
    schedules: dict[str, tuple[float, int, bool]] = {}
    sources = []
    memory: dict[str, int] = {}
    platform_lines: dict[str, bool] = {}
    for resource in document["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        handler = properties["Handler"].split(".")[-1]
        memory[handler] = properties.get("MemorySize", defaults["MemorySize"])
        platform_lines[handler] = (properties.get("LoggingConfig") or {}).get("SystemLogLevel", "INFO") != "WARN"
        for event in (properties.get("Events") or {}).values():
            if event["Type"] == "SQS":
                sources.append(handler)
            elif event["Type"] == "Schedule":
                every, unit = event["Properties"]["Schedule"].removeprefix("rate(").rstrip(")").split()
                minutes = float(every) * (60 if unit.startswith("hour") else 1)
                memory_mb = properties.get("MemorySize", defaults["MemorySize"])
                traced = properties.get("Tracing", defaults.get("Tracing")) == "Active"
                schedules[handler] = (HOURS_PER_MONTH * 60 / minutes, memory_mb, traced)
    return Stack(schedules, sources, memory, platform_lines)


def platform_log_bytes(function: str, deployed: Stack) -> int:
    """Lambda's own lines per invocation: none at SystemLogLevel WARN (the template's), else START, END, REPORT."""
    return PLATFORM_LOG_BYTES if deployed.platform_lines[function] else 0


# Lambda long-polls each queue of an SQS event source mapping with 5 pollers, 20 s each, traffic or not:
# an idle queue shows about 15 empty receives a minute (what users report; AWS does not publish it).
QUEUE_POLLERS = 5
RECEIVES_PER_POLLER_MINUTE = 3


def idle_costs(runs: dict[str, IdleRun], a: Assumptions, detailed: bool = False) -> dict[str, float]:
    """The monthly bill of a stack that receives nothing, line by line, without free tiers."""
    deployed = stack()
    receives = QUEUE_POLLERS * RECEIVES_PER_POLLER_MINUTE * 60 * HOURS_PER_MONTH
    lines = {
        f"CloudWatch alarms ({alarm_metrics(detailed=detailed)} alarm metrics)": alarm_metrics(detailed=detailed)
        * PRICES["alarm_month"],
        "CloudWatch dashboard": PRICES["dashboard_month"] if detailed else 0.0,
        "SQS: Lambda polling the queues of event source mappings ("
        + (", ".join(deployed.queue_sources) or "none")
        + ")": len(deployed.queue_sources) * receives * PRICES["sqs_request"],
    }
    for name, (count, memory_mb, traced) in deployed.schedules.items():
        run = runs[name]
        scale = a.cpu_speed * max(1.0, ONE_VCPU_MB / memory_mb)
        duration = run.wall_s + run.cpu_s * (scale - 1)
        every = HOURS_PER_MONTH * 60 / count
        lines[f"`{name}` every {every:g} min: Lambda requests and duration"] = count * (
            PRICES["lambda_request"] + duration * memory_mb / 1024 * PRICES["lambda_arm_gb_s"][0][1]
        )
        lines[f"`{name}` every {every:g} min: DynamoDB reads, logs, X-Ray, metrics"] = (
            count * run.read_units * PRICES["dynamodb_rru"]
            + count * (run.log_bytes + platform_log_bytes(name, deployed)) / 2**30 * PRICES["logs_gb"]
            + (count * PRICES["xray_trace"] if traced else 0.0)  # Active: Lambda traces the first request each second
            + run.metrics * PRICES["metric_month"]
        )
    return lines


def default_traces(requests_per_s: float) -> float:
    """X-Ray's default sampling, per second: the first request each second and 5% of the others."""
    return min(requests_per_s, 1.0) + 0.05 * max(0.0, requests_per_s - 1.0)


def year_one_days(retention_days: float) -> float:
    """Days of data stored on average over the first year, when each day's data is kept `retention_days`."""
    kept = min(retention_days, 365.0)
    return kept - kept * kept / 730


def cached_poll(counter_bytes: float, minute_item_bytes: float, changed: float) -> tuple[float, float]:
    """(read units, items) of one 1-hour `GET /insights` through a warm sketch cache (docs/insights.md).

    It Queries the 180 counter items of the window and the lookback (two Queries, each rounded up to
    4 KB), and the minute items `changed` since the previous poll (the fold rewrote them). Measured
    under moto: 180 items when nothing changed, 181 after one minute did (`tests/aws/test_insights_cache.py`,
    `bench/insights_read.py --polls`).
    """
    lookback_minutes = SESSION_LOOKBACK_S // 60
    counters = math.ceil(60 * counter_bytes / 4096) + math.ceil(lookback_minutes * counter_bytes / 4096)
    minutes = changed * minute_item_bytes / 4096 + min(1.0, changed)  # one Query per run of changed minutes
    return counters + minutes, 60 + lookback_minutes + changed


def fold_shape(rate: float, per: PerBatch, a: Assumptions) -> tuple[float, float, float]:
    """(fold invocations a second, minute items each writes, ids bytes a minute item holds on average).

    The stream's event source invokes `fold_insights` once a batching window when batches came (fewer
    windows than batches at low rates). A window's batches touch the minutes of their event times: the
    span of one batch, plus the minutes the window moves on, at most; each minute item holds the
    8-byte ids of the deltas folded into it, on average half of those it ends with.
    """
    batches_s = rate / per.events
    folds_s = min(batches_s, 1 / a.fold_window_s)
    batches_per_fold = batches_s / folds_s
    minutes = min(batches_per_fold * per.minutes_per_batch, per.minutes_per_batch + a.fold_window_s / 60)
    keys = minutes * per.keys_per_batch / per.minutes_per_batch
    # a minute item receives the deltas of the batches whose events fall in it: those of its own minute and
    # of the span before and after
    ids = ID_BYTES * batches_s * 60 * per.minutes_per_batch
    return folds_s, keys, ids / 2


LAKE_BATCH_RECORDS = 10_000  # write_lake's BatchSize: a shard fuller than that in a window is invoked sooner
LAKE_PAYLOAD_BYTES = 6 * 2**20  # Lambda's invocation payload: a batch of records stops there too


def lake_shape(rate: float, per: PerBatch, a: Assumptions) -> tuple[float, float, float]:
    """(write_lake invocations a second, events each writes, Parquet objects each writes).

    Each shard of the curated table's stream invokes `write_lake` once a batching window (or sooner
    when it holds `LAKE_BATCH_RECORDS`); an invocation writes one object per hour its events fall in:
    one, and a second when its window or the events' time span crosses an hour. A batch also ends at
    Lambda's 6 MB payload.
    """
    if not a.lake:
        return 0.0, 0.0, 0.0
    inserted = rate * per.curated_events / per.events  # curated inserts a second
    per_shard = inserted / a.lake_shards
    most = min(LAKE_BATCH_RECORDS, LAKE_PAYLOAD_BYTES / per.lake_record_bytes)
    invocations_s = a.lake_shards * max(1 / a.lake_window_s, per_shard / most)
    objects = 1 + min(1.0, (a.lake_window_s + 60 * a.span_minutes) / 3600)
    return invocations_s, inserted / invocations_s, objects


def month_costs(rate: float, per: PerBatch, a: Assumptions, seed: int) -> dict[str, float]:
    """The monthly cost lines at `rate` events per second (keys starting with `_` are notes, not costs).

    Storage lines are the mean bill of the first year, so that a year of curated events under the
    chosen retention (`CuratedTtlDays`) is in the cost.
    """
    seconds = 3600 * HOURS_PER_MONTH
    events = rate * seconds
    batches = events / per.events
    sketch = mean_sketch_bytes(round(rate * 60), per.events, seed)  # one minute item per minute (no shards)
    folds_s, fold_keys, ids = fold_shape(rate, per, a)
    minute_item = per.sketch_item_bytes + sketch + ids
    folds = folds_s * seconds
    # Each batch puts its delta; each fold writes each minute item it touches once, then its counter copy,
    # and marks the hour dirty (one small update); it reads the minute items first (strongly consistent).
    fold_wru = fold_keys * (write_units(int(minute_item)) + write_units(int(per.minute_bytes))) + 1
    insights_wru = batches * per.units["insights WRU"] + folds * fold_wru
    fold_rru = folds * fold_keys * read_units(int(minute_item))
    # Besides the batches' own reads: each export reads the hours changed since the last run (the current
    # hour and, assumed, the one before), each dashboard poll one hour; a read of `hours` hours returns
    # the minute items of the hours and of the funnel's two-hour lookback.
    exports = HOURS_PER_MONTH * 60 / a.export_every_min
    polls = seconds / a.poll_every_s
    lookback_minutes = SESSION_LOOKBACK_S // 60

    def read(hours: int) -> tuple[float, float]:
        """(read units, items) of one read of `hours` hours of insights; a unit or more per Query."""
        items = hours * 60 + lookback_minutes
        return items * minute_item / 4096 + 2 * hours, items

    export_hours = 2
    export_rru, export_items = (export_hours * x for x in read(1))
    poll_rru, poll_items = read(1)
    if a.poll_cache:
        # A new execution environment's first poll reads as a read without the cache does (and keeps what it
        # read); every other poll reads through a warm cache: the counter items, and the minute items a fold
        # rewrote since the last poll (a fold every window: a poll finds one with that chance).
        cold_rru, cold_items = poll_rru, poll_items
        warm_rru, warm_items = cached_poll(
            per.minute_bytes, minute_item, fold_keys * min(1.0, a.poll_every_s * folds_s)
        )
        cold = min(1.0, a.cold_polls_per_hour * HOURS_PER_MONTH / polls)
        poll_rru = warm_rru * (1 - cold) + cold_rru * cold
        poll_items = warm_items * (1 - cold) + cold_items * cold
    export_s = export_items * a.parse_us / 1e6 * a.cpu_scale("export_insights")
    poll_s = poll_items * a.parse_us / 1e6 * a.cpu_scale("ingest") + 0.02  # + the round trips, assumed
    step_s = {step: a.duration_s(per, step) for step in STEPS}
    gb_s = batches * sum(a.memory_mb[s] / 1024 * step_s[s] for s in STEPS)
    gb_s += exports * a.memory_mb["export_insights"] / 1024 * (export_s + 1.0)  # + 1 s of round trips, assumed
    gb_s += polls * a.memory_mb["ingest"] / 1024 * poll_s
    fold_s = batches / folds * per.fold_cpu_s * a.cpu_scale("fold_insights") + per.fold_round_trips_s
    gb_s += folds * a.memory_mb["fold_insights"] / 1024 * fold_s
    lakes_s, lake_events, lake_objects = lake_shape(rate, per, a)
    lakes = lakes_s * seconds
    lake_s = lake_events * per.lake_cpu_s_per_event * a.cpu_scale("write_lake") + per.lake_round_trips_s
    gb_s += lakes * a.memory_mb["write_lake"] / 1024 * lake_s
    express_s = math.ceil((sum(step_s[s] for s in STEPS[1:]) + (len(STEPS) - 1) * a.state_overhead_s) * 10) / 10
    deployed = stack()
    log_bytes = per.log_bytes + sum(platform_log_bytes(step, deployed) for step in STEPS) + ACCESS_LOG_BYTES
    lake_log_bytes = lakes * (per.lake_log_bytes + platform_log_bytes("write_lake", deployed))
    batch_rru = sum(v for k, v in per.units.items() if k.endswith("RRU"))
    state_wru = per.units["state WRU"] + per.units["state GSI WRU"]
    s3 = per.calls["PutObject"] * PRICES["s3_put"] + per.calls["GetObject"] * PRICES["s3_get"]
    daily = events / (HOURS_PER_MONTH / 24)
    curated_gb = daily * per.curated_events / per.events * (per.curated_item_bytes + ITEM_OVERHEAD_BYTES) / 2**30
    raw_gb = daily * per.raw_bytes_per_event * RAW_KEPT_DAYS / 2**30
    # The insights are kept: a minute item and its counter copy per minute and segment, and two days of deltas.
    keys_per_minute = per.keys_per_batch / per.minutes_per_batch
    insights_gb_day = 24 * 60 * keys_per_minute * (minute_item + per.minute_bytes + 2 * ITEM_OVERHEAD_BYTES) / 2**30
    deltas_gb = 2 * daily / per.events * (per.delta_bytes + ITEM_OVERHEAD_BYTES) / 2**30
    # Scheduled functions at X-Ray's default (export every 5 min, replay every 10): a few thousand a month.
    scheduled_traces = exports + HOURS_PER_MONTH * 6
    return {
        "API Gateway HTTP API requests": tiered(batches + polls, PRICES["http_api_request"]),
        "Lambda requests": (batches * len(STEPS) + exports + polls + folds + lakes) * PRICES["lambda_request"],
        "Lambda duration (GB-s)": tiered(gb_s, PRICES["lambda_arm_gb_s"]),
        "Step Functions Express": batches * PRICES["express_request"]
        + tiered(batches * express_s * EXPRESS_GB, PRICES["express_gb_s"]),
        "DynamoDB writes: curated events": batches * per.units["curated WRU"] * PRICES["dynamodb_wru"],
        "DynamoDB writes: batch records, quarantine": batches * state_wru * PRICES["dynamodb_wru"],
        "DynamoDB writes: insights": insights_wru * PRICES["dynamodb_wru"],
        "DynamoDB reads: the batches": batches * batch_rru * PRICES["dynamodb_rru"],
        "DynamoDB reads: export and dashboard": (exports * export_rru + polls * poll_rru) * PRICES["dynamodb_rru"],
        "DynamoDB reads: insights fold": fold_rru * PRICES["dynamodb_rru"],
        # write_lake reads the live erasure tombstones once an invocation (a strongly consistent Query)
        "DynamoDB reads: the lake's erasure check": lakes * read_units(0) * PRICES["dynamodb_rru"],
        f"DynamoDB storage: curated events ({a.curated_ttl_days} days, first-year mean)": curated_gb
        * year_one_days(a.curated_ttl_days)
        * (PRICES["dynamodb_gb_month"] + PRICES["dynamodb_pitr_gb_month"]),
        "DynamoDB storage: insights (kept, first-year mean)": (insights_gb_day * year_one_days(365) + deltas_gb)
        * (PRICES["dynamodb_gb_month"] + PRICES["dynamodb_pitr_gb_month"]),
        # each export: 4 objects an hour and its day's object; the day's 24 hour sketches read, listed once
        "S3 requests": batches * s3
        + exports * ((4 * export_hours + 2) * PRICES["s3_put"] + 24 * PRICES["s3_get"])
        + lakes * lake_objects * PRICES["s3_put"],  # write_lake: an object per hour per invocation
        "S3 storage: raw bucket (30 + 7 days)": raw_gb * PRICES["s3_gb_month"],
        "CloudWatch Logs ingestion": (batches * log_bytes + lake_log_bytes) / 2**30 * PRICES["logs_gb"],
        "CloudWatch custom metrics and alarms": per.metrics * PRICES["metric_month"]
        + a.alarm_metrics * PRICES["alarm_month"],
        "X-Ray traces": (batches * WORKFLOW_SAMPLING + scheduled_traces) * PRICES["xray_trace"],
        "_standard": batches * STANDARD_TRANSITIONS * PRICES["standard_transition"],
        "_express_s": express_s,
        "_sketch": sketch,
        "_minute_item": minute_item,
        "_fold_keys": fold_keys,
        "_folds_s": folds_s,
        "_fold_s": fold_s,
        "_lakes_s": lakes_s,
        "_lake_s": lake_s,
        "_lake_events": lake_events,
        "_lake_objects": lake_objects,
        "_export_s": export_s,
        "_poll_s": poll_s,
        "_poll_rru": poll_rru,
        "_curated_gb_day": curated_gb,
    }


def per_million(per: PerBatch, a: Assumptions, rate: float, seed: int) -> dict[str, Any]:
    """`{"total_per_million", "lines": [{"line", "per_million"}]}`: each monthly line per million events."""
    costs = month_costs(rate, per, a, seed)
    millions = rate * 3600 * HOURS_PER_MONTH / 1e6
    lines = [{"line": name, "per_million": round(cost / millions, 4)} for name, cost in costs.items() if name[0] != "_"]
    total = sum(cost for name, cost in costs.items() if name[0] != "_") / millions
    return {"rate": rate, "events_per_request": per.events, "total_per_million": round(total, 4), "lines": lines}


def money(value: float) -> str:
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def idle_document(runs: dict[str, IdleRun], a: Assumptions) -> dict[str, Any]:
    lines = idle_costs(runs, a, a.detailed_monitoring)
    return {
        "total_per_month": round(sum(lines.values()), 4),
        "lines": [{"line": name, "per_month": round(cost, 4)} for name, cost in lines.items()],
    }


def report(per: PerBatch, a: Assumptions, rates: list[float], seed: int, idle: dict[str, IdleRun], out: Any) -> None:
    def say(text: str = "") -> None:
        print(text, file=out)

    report_batches(per, a, rates, seed, say)
    say()
    say("## Idle: a month without a single event, without free tiers")
    say()
    say("| line | per month |")
    say("| --- | ---: |")
    lines = idle_costs(idle, a, a.detailed_monitoring)
    for name, value in lines.items():
        say(f"| {name} | ${value:,.3f} |")
    say(f"| **total** | **${sum(lines.values()):,.2f}** |")
    say()


def report_batches(per: PerBatch, a: Assumptions, rates: list[float], seed: int, say: Any) -> None:

    say(f"## One batch of {per.events} events (one HTTP request): medians of the measured runs")
    say()
    say("| function | CPU ms (this machine) | wall ms, round trips slept | memory MB | Lambda ms (model) |")
    say("| --- | ---: | ---: | ---: | ---: |")
    for step in STEPS:
        say(
            f"| `{step}` | {per.cpu_s[step] * 1000:,.1f} | {per.wall_s[step] * 1000:,.1f} "
            f"| {a.memory_mb[step]:,} | {a.duration_s(per, step) * 1000:,.0f} |"
        )
    say(
        f"| all {len(STEPS)} | {sum(per.cpu_s.values()) * 1000:,.1f} | {sum(per.wall_s.values()) * 1000:,.1f} | "
        f"| {sum(a.duration_s(per, s) for s in STEPS) * 1000:,.0f} |"
    )
    say()
    say("AWS calls per batch: " + ", ".join(f"{n} {c:g}" for n, c in sorted(per.calls.items())) + ".")
    say("DynamoDB capacity units per batch: " + ", ".join(f"{n} {c:.1f}" for n, c in sorted(per.units.items())) + ".")
    say(
        f"Per batch: {per.curated_events:.1f} curated events of {per.curated_item_bytes:,.0f} bytes (DynamoDB item); "
        f"an insights delta of {per.delta_bytes:,.0f} bytes touching {per.keys_per_batch:.2f} minute items "
        f"({per.minutes_per_batch:.2f} minutes); folded, a minute item has {per.sketch_item_bytes:,.0f} bytes besides "
        f"its sketches, its counter copy {per.minute_bytes:,.0f}; fold_insights takes {per.fold_cpu_s * 1000:.1f} ms "
        f"of CPU a batch and makes "
        + ", ".join(f"{n} {c:g}" for n, c in sorted(per.fold_calls.items()))
        + f" calls for {per.fold_batches} batches; {per.log_bytes:,.0f} bytes of "
        f"function logs; {per.raw_bytes_per_event:,.0f} bytes of raw object per event. {per.metrics} custom metrics. "
        f"write_lake takes {per.lake_cpu_s_per_event * 1e6:,.0f} us of CPU an event and "
        f"{per.lake_round_trips_s * 1000:,.0f} ms of round trips an invocation ("
        + ", ".join(f"{n} {c:g}" for n, c in sorted(per.lake_calls.items()))
        + f" for {per.lake_objects} objects)."
    )
    say()
    months = [month_costs(rate, per, a, seed) for rate in rates]
    lines = [name for name in months[0] if not name.startswith("_")]

    def row(name: str, values: list[float], bold: bool = False) -> None:
        cells = [f"**{money(v)}**" if bold else money(v) for v in values]
        say(f"| {name} | " + " | ".join(cells) + " |")

    say("## Monthly cost, us-east-1, arm64, 730 hours")
    say()
    say("| | " + " | ".join(f"{rate:,.0f} events/s" for rate in rates) + " |")
    say("| --- |" + " ---: |" * len(rates))
    say("| events a month | " + " | ".join(f"{rate * 3600 * HOURS_PER_MONTH / 1e6:,.1f} M" for rate in rates) + " |")
    for name in lines:
        row(name, [m[name] for m in months])
    totals = [sum(m[name] for name in lines) for m in months]
    row("**total**", totals, bold=True)
    say(
        "| **per million events** | "
        + " | ".join(f"**{money(t / (r * 3.6 * HOURS_PER_MONTH / 1e3))}**" for t, r in zip(totals, rates, strict=True))
        + " |"
    )
    say()
    for rate, m in zip(rates, months, strict=True):
        say(
            f"- {rate:,.0f} events/s: curated items take {m['_curated_gb_day']:,.2f} GB a day in DynamoDB; a "
            f"minute item's sketch averages {m['_sketch']:,.0f} bytes; an Express execution bills "
            f"{m['_express_s']:.1f} s (Standard instead: {money(m['_standard'])} a month); reading the insights "
            f"takes {m['_export_s']:,.1f} s of Lambda CPU per export, {m['_poll_s']:,.2f} s per GET /insights; a "
            f"poll reads {m['_poll_rru']:,.1f} read units on average; fold_insights runs {m['_folds_s'] * 60:,.1f} "
            f"times a minute for {m['_fold_s'] * 1000:,.0f} ms, writing {m['_fold_keys']:,.1f} minute items of "
            f"{m['_minute_item']:,.0f} bytes; write_lake runs {m['_lakes_s'] * 60:,.1f} times a minute "
            f"({a.lake_shards} stream shards) for {m['_lake_s'] * 1000:,.0f} ms, each writing "
            f"{m['_lake_events']:,.0f} events in {m['_lake_objects']:.2f} Parquet objects."
        )
    say()
    say(
        f"Assumptions: memory (MB) {a.memory_mb}; a Lambda arm64 vCPU {a.cpu_speed:g}x slower than this machine's "
        f"core, and at M MB a share M/1769 of one; {a.state_overhead_s * 1000:.0f} ms per Task state (Express "
        f"duration); export every {a.export_every_min} min; one dashboard polling GET /insights every "
        f"{a.poll_every_s} s around the clock, "
        f"{'through the sketch cache (one cold poll an hour)' if a.poll_cache else 'without the sketch cache'}; "
        f"{a.alarm_metrics} alarm metrics (monitoring/alerts.yml); X-Ray traces "
        f"{WORKFLOW_SAMPLING:.0%} of executions; curated items kept {a.curated_ttl_days} days (TTL); "
        f"{STANDARD_TRANSITIONS} state transitions per Standard execution; botocore parses a Query item in "
        f"{a.parse_us:.1f} us (measured). Prices as read on {READ_ON}: "
        + "; ".join(f"{k} {v}" for k, v in SOURCES.items())
        + "."
    )
