"""The 1-event request line of `lambda_cost.py`: what getting single-event requests into groups costs,
measured from the calls the code makes.

Single-event HTTP requests go through the real `ingest` entry point with the request stream on
(`EVENTPIPE_REQUEST_STREAM`): each request's PutRecord is answered by `fake_aws.py`, which keeps
the record. The bench then delivers the records as Firehose does, `--requests-per-object` to an
object under `requests/` (what one buffering interval holds at the measured rate), and invokes
`ingest` with the object's EventBridge event: it reads the object, writes the group's raw batch,
its record and its request-index items, and starts its execution. Every AWS call, capacity unit,
record byte and logged byte is counted; the CPU time and the wall time with round trips slept make
the Lambda duration as for the other functions. What Firehose and API Gateway do themselves is
priced from the counts (`cost_model.PRICES`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
from cost_model import ACCESS_LOG_BYTES, ONE_VCPU_MB, PRICES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cost_model import Assumptions
    from lambda_cost import Bench, Usage

STREAM = "eventpipe-requests-bench"
FIREHOSE_RECORD_ROUNDING = 5 * 1024  # Firehose bills each record rounded up to the next 5 KB
# ingest's LoggingConfig (template.yaml) has SystemLogLevel WARN: Lambda's START, END and REPORT lines
# (PLATFORM_LOG_BYTES with Text logs) are not written for it.
INGEST_PLATFORM_LOG_BYTES = 0


@dataclass
class RequestUsage:
    """Per request: the ingest invocation; per object: the grouping invocation; and the record sizes."""

    ingest: list[Usage]
    ingest_wall: list[Usage]
    group: list[Usage]
    group_wall: list[Usage]
    record_bytes: list[int]
    requests_per_object: int

    def per_request(self, name: str, what: str) -> float:
        usages = self.ingest if name == "ingest" else self.group
        total = sum(sum(getattr(u, what).values()) if what != "log_bytes" else u.log_bytes for u in usages)
        return total / (len(usages) * (1 if name == "ingest" else self.requests_per_object))

    def calls(self, operation: str) -> float:
        """Calls of `operation` per request, both invocations together."""
        ingest = statistics.mean(u.calls[operation] for u in self.ingest)
        group = statistics.mean(u.calls[operation] for u in self.group) / self.requests_per_object
        return ingest + group

    def units(self, kind: str) -> float:
        """Capacity units per request whose name ends with `kind` ("WRU", "RRU")."""
        found: Counter[str] = Counter()
        for usage in self.group:
            found.update({k: v for k, v in usage.units.items() if k.endswith(kind)})
        ingest = sum(sum(v for k, v in u.units.items() if k.endswith(kind)) for u in self.ingest) / len(self.ingest)
        return ingest + sum(found.values()) / len(self.group) / self.requests_per_object


def one_event_requests(
    bench: Bench, lines: Iterator[bytes], count: int, per_object: int, latency: float
) -> RequestUsage:
    """`count` 1-event requests through ingest and the stream, in objects of `per_object`, twice: once
    for CPU time (no latency), once with the round trips slept (`latency` x fake_aws.LATENCY_MS)."""
    from eventpipe.awsrun.runtime import AwsRuntime
    from eventpipe.settings import AwsResources, Settings

    module = bench.functions
    direct = module.runtime
    session = direct._session
    module.runtime = AwsRuntime(
        Settings.from_env(), replace(AwsResources.from_env(), request_stream=STREAM), session=session
    )
    runs: list[tuple[list[Usage], list[Usage]]] = []
    try:
        for scale in (0.0, latency):
            bench.fake.latency_scale = scale
            bench.fake.records.clear()
            bench.fake.record_bytes.clear()
            ingest, group = [], []
            for number in range(count):
                answer = bench.invoke("ingest", {**_request(), "body": next(lines).decode()})
                while answer["statusCode"] == 400:  # a body that is no JSON at all: refused, never queued
                    answer = bench.invoke("ingest", {**_request(), "body": next(lines).decode()})
                if answer["statusCode"] != 202 or not orjson.loads(answer["body"])["batch_id"].startswith("q"):
                    raise SystemExit(f"ingest answered {answer['statusCode']}: {answer['body']}")
                ingest.append(bench.usage["ingest"])
                if (number + 1) % per_object == 0:
                    group.append(_deliver(bench, number // per_object))
            runs.append((ingest, group))
            record_bytes = list(bench.fake.record_bytes)
        bench.fake.started.clear()
    finally:
        module.runtime = direct
    (cpu_ingest, cpu_group), (wall_ingest, wall_group) = runs
    return RequestUsage(cpu_ingest, wall_ingest, cpu_group, wall_group, record_bytes, per_object)


def _request() -> dict[str, Any]:
    from lambda_cost import SAMPLE_REQUEST

    # NDJSON: the generator's malformed events are then refused one by one (202), not the request (400)
    return {**SAMPLE_REQUEST, "headers": {"content-type": "application/x-ndjson", "user-agent": "Mozilla/5.0 bench"}}


def _deliver(bench: Bench, number: int) -> Usage:
    """Firehose's delivery of the records kept: one object under requests/, then its object-created event."""
    key = f"requests/2026/12/02/10/{STREAM}-1-{number:06d}"
    bench.functions.runtime.bucket.put(key, b"".join(bench.fake.records))  # Firehose's PutObject, not ours
    bench.fake.records.clear()
    event = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": bench.functions.runtime.bucket.name}, "object": {"key": key, "etag": key}},
    }
    result = bench.invoke("ingest", event)
    if result["objects"][0]["status"] != "grouped":
        raise SystemExit(f"the requests object was not grouped: {result}")
    return bench.usage["ingest"]


def duration_s(cpu: list[Usage], wall: list[Usage], memory_mb: int, a: Assumptions) -> float:
    """Lambda's billed seconds of one invocation (median): wall with round trips + CPU x (scale - 1)."""
    scale = a.cpu_speed * max(1.0, ONE_VCPU_MB / memory_mb)
    billed = statistics.median(u.wall_s for u in wall) + statistics.median(u.cpu_s for u in cpu) * (scale - 1)
    return math.ceil(billed * 1000) / 1000  # Lambda bills by the millisecond


def one_event_lines(usage: RequestUsage, a: Assumptions) -> dict[str, float]:
    """The cost per million 1-event requests of getting them into groups (the groups' processing is the
    per-event cost of batches of that many events, the table above)."""
    requests = 1e6
    objects = requests / usage.requests_per_object
    memory = a.memory_mb["ingest"]
    ingest_s = duration_s(usage.ingest, usage.ingest_wall, memory, a)
    group_s = duration_s(usage.group, usage.group_wall, memory, a)
    gb_s = (requests * ingest_s + objects * group_s) * memory / 1024
    rounding = FIREHOSE_RECORD_ROUNDING
    billed_bytes = statistics.mean(math.ceil(size / rounding) * rounding for size in usage.record_bytes)
    record = f"records of {statistics.mean(usage.record_bytes):.0f} B billed as {billed_bytes / 1024:.0f} KB"
    duration = f"{ingest_s * 1000:.0f} ms a request, {group_s * 1000:.0f} ms an object, {memory} MB"
    logged = usage.per_request("ingest", "log_bytes") + usage.per_request("group", "log_bytes")
    logged += INGEST_PLATFORM_LOG_BYTES * (1 + 1 / usage.requests_per_object) + ACCESS_LOG_BYTES
    s3 = (usage.calls("PutObject") + 1 / usage.requests_per_object) * PRICES["s3_put"]  # + Firehose's object
    s3 += usage.calls("GetObject") * PRICES["s3_get"]
    return {
        "API Gateway HTTP API requests": requests * PRICES["http_api_request"][0][1],
        "Lambda requests (ingest each, and ingest per delivered object)": (requests + objects)
        * PRICES["lambda_request"],
        f"Lambda duration ({duration})": gb_s * PRICES["lambda_arm_gb_s"][0][1],
        f"Firehose ingestion ({record})": requests * billed_bytes / 2**30 * PRICES["firehose_gb"],
        "DynamoDB writes: group records, request-index items": requests * usage.units("WRU") * PRICES["dynamodb_wru"],
        "DynamoDB reads: the request index, the groups": requests * usage.units("RRU") * PRICES["dynamodb_rru"],
        "S3 requests: Firehose's object, its read, the group's raw batch": requests * s3,
        "CloudWatch Logs ingestion (function, platform and access logs)": requests * logged / 2**30 * PRICES["logs_gb"],
    }


def report_one_event(usage: RequestUsage, a: Assumptions, say: Any) -> dict[str, float]:
    lines = one_event_lines(usage, a)
    say(
        f"## 1-event requests, micro-batched: per million requests, before processing their groups of "
        f"{usage.requests_per_object}"
    )
    say()
    say("| line | per million requests |")
    say("| --- | ---: |")
    for name, value in lines.items():
        say(f"| {name} | ${value:,.2f} |")
    rest = sum(v for k, v in lines.items() if not k.startswith("API Gateway"))
    say(f"| **API Gateway / the rest** | **${lines['API Gateway HTTP API requests']:,.2f} / ${rest:,.2f}** |")
    say()
    calls = ", ".join(
        f"{operation} {usage.calls(operation):.3f}"
        for operation in ("PutRecord", "GetObject", "PutObject", "PutItem", "GetItem", "Query", "StartExecution")
    )
    units = f"write units {usage.units('WRU'):.3f}, read units {usage.units('RRU'):.3f}"
    say(f"Calls per request, measured: {calls}; {units}.")
    return lines
