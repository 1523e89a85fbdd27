"""`python bench/lambda_cost.py`: eventpipe's monthly AWS bill at 10, 100 and 1,000 events/s, from its own work.

What is measured here, on this machine, through the real Lambda entry points (`lambda_pipeline`)
and the real workflow definition (`pipeline.asl.json`, run by the local interpreter):

- CPU time per invocation of `ingest` (one HTTP request) and of each workflow step, for batches
  of `--batch` events (10% invalid, 5% duplicates, event times over `--span-minutes`), and of
  `fold_insights` over the batches' insights deltas (the insights table's stream), and of `write_lake`
  over the curated events they inserted (the curated table's stream: the lake's Parquet objects), with
  botocore serializing and parsing every AWS call (`fake_aws.py` answers them from memory);
- every AWS call per batch, the DynamoDB capacity units it consumes, the bytes stored in S3, and
  the bytes each function logs (Powertools JSON logs and EMF metrics);
- the same steps' wall time with a round trip slept per call (`fake_aws.LATENCY_MS`).

Everything else is an assumption, printed with the table: prices, Lambda memory sizes, how much
slower a Lambda vCPU is than this machine's core, the insights sketches' size at each rate.
Lambda duration = wall time with the round trips + CPU time x (CPU scale - 1), where the CPU scale
is `--cpu-speed` x 1,769 MB / memory (below 1,769 MB a function gets that share of one vCPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.session
import orjson
from cost_model import (
    STEPS,
    Assumptions,
    IdleRun,
    PerBatch,
    alarm_metrics,
    idle_document,
    per_million,
    report,
    stack,
)
from fake_aws import FakeAws  # beside this file: `python bench/lambda_cost.py` finds them
from request_cost import one_event_lines, one_event_requests, report_one_event

from eventpipe.generate import EventGenerator
from eventpipe.handlers.functions import TASKS
from eventpipe.workflow import PIPELINE_DEFINITION
from eventpipe.workflow.interpreter import StateMachine

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

# An API Gateway HTTP API (v2) request, as `sam local generate-event` makes it; its body is replaced.
SAMPLE_REQUEST = orjson.loads((Path(__file__).parent.parent / "events" / "sample.json").read_bytes())
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EC2_METADATA_DISABLED": "true",
    "EVENTPIPE_BUCKET": "eventpipe-raw-bench",
    "EVENTPIPE_CURATED_TABLE": "curated",
    "EVENTPIPE_STATE_TABLE": "state",
    "EVENTPIPE_INSIGHTS_TABLE": "insights",
    "EVENTPIPE_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:eventpipe-bench",
    # the export's, and write_lake's lake (Parquet), as deployed; --no-lake for the cost without the lake
    "EVENTPIPE_ANALYTICS_BUCKET": "eventpipe-analytics-bench",
    "POWERTOOLS_TRACE_DISABLED": "true",  # X-Ray is priced per trace sampled (cost_model.traces), not measured
}


class CountingStdout:
    """Stands in for stdout: counts the bytes the functions log and collects the EMF metric names."""

    def __init__(self) -> None:
        self.bytes = 0
        self.metrics: set[tuple[str, tuple[str, ...]]] = set()

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        if '"_aws"' in text:
            document = orjson.loads(text)
            for block in document["_aws"]["CloudWatchMetrics"]:
                for metric in block["Metrics"]:
                    for dimensions in block["Dimensions"]:
                        values = tuple(f"{d}={document.get(d)}" for d in dimensions)
                        self.metrics.add((metric["Name"], values))
        return len(text)

    def flush(self) -> None:
        pass


@dataclass
class Context:
    function_name: str
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:eventpipe-bench"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"


@dataclass
class Usage:
    """What one invocation took: CPU and wall seconds, AWS calls, capacity units, bytes logged."""

    cpu_s: float = 0.0
    wall_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    log_bytes: int = 0
    result: Any = None


class Bench:
    def __init__(self, fake: FakeAws, stdout: CountingStdout) -> None:
        self.fake, self.stdout = fake, stdout
        os.environ.update(ENVIRONMENT)
        import lambda_pipeline  # after the environment: it builds its runtime at import
        from eventpipe.awsrun.runtime import AwsRuntime
        from eventpipe.settings import AwsResources, Settings

        session = botocore.session.get_session()
        session.register("before-send", fake.handle)
        lambda_pipeline.runtime = AwsRuntime(Settings.from_env(), AwsResources.from_env(), session=session)
        self.functions: ModuleType = lambda_pipeline
        self.usage: dict[str, Usage] = {}
        resources = {placeholder: self._task(name) for placeholder, name in TASKS.items()}
        self.machine = StateMachine.from_file(PIPELINE_DEFINITION, resources=resources)

    def invoke(self, name: str, event: Any) -> Any:
        calls, units, logged = Counter(self.fake.calls), Counter(self.fake.units), self.stdout.bytes
        cpu, wall = time.process_time(), time.perf_counter()  # process time: persist's threads too
        result = getattr(self.functions, name)(event, Context(name))
        self.usage[name] = Usage(
            time.process_time() - cpu,
            time.perf_counter() - wall,
            self.fake.calls - calls,
            self.fake.units - units,
            self.stdout.bytes - logged,
            result,
        )
        return result

    def fold(self) -> Usage:
        """`fold_insights` with the deltas put since the last fold, as the insights table's stream hands them over."""
        records = [
            {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": i["pk"], "sk": i["sk"]}, "NewImage": i}}
            for i in self.fake.stream
        ]
        self.fake.stream.clear()
        self.invoke("fold_insights", {"Records": records})
        return self.usage.pop("fold_insights")

    def write_lake(self) -> Usage:
        """`write_lake` with the curated events inserted since the last call, as the curated table's stream
        hands them over (binary values in base64, as botocore sent them)."""
        records = [
            {
                "eventID": f"{number:032x}",
                "eventName": "INSERT",
                "dynamodb": {
                    "Keys": {"event_id": item["event_id"]},
                    "NewImage": item,
                    "SequenceNumber": f"{number + 1:021d}",
                    "StreamViewType": "NEW_IMAGE",
                },
            }
            for number, item in enumerate(self.fake.curated_stream)
        ]
        self.fake.curated_stream.clear()
        self.invoke("write_lake", {"Records": records})
        usage = self.usage.pop("write_lake")
        record_bytes = statistics.mean(len(orjson.dumps(r)) for r in records) if records else 0.0
        usage.result = {**usage.result, "records": len(records), "record_bytes": record_bytes}
        return usage

    def _task(self, name: str) -> Callable[[Any], Any]:
        return lambda event: self.invoke(name, event)

    def batch(self, lines: list[bytes]) -> dict[str, Usage]:
        """One HTTP request of `lines` through ingest, then its execution through the workflow's steps."""
        self.usage = {}
        request = {**SAMPLE_REQUEST, "headers": {"content-type": "application/x-ndjson"}}
        request["body"] = b"\n".join(lines).decode()
        answer = self.invoke("ingest", request)
        if answer["statusCode"] != 202:
            raise SystemExit(f"ingest answered {answer['statusCode']}: {answer['body']}")
        started = self.fake.started.pop()
        self.machine.run(started, execution_name=started["batch_id"])
        return self.usage


# What the schedules send when nothing happens: EventBridge's scheduled event, the replay's input.
IDLE_EVENTS = {
    "export_insights": {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
    "replay": {"pending_older_than_s": 600},
    "compact_lake": {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
}


def measure_idle(stdout: CountingStdout, latency: float) -> dict[str, IdleRun]:
    """Each scheduled function run against empty tables: warmed once, then its CPU time, then its wall time."""
    fake = FakeAws()
    bench = Bench(fake, stdout)
    runs = {}
    for name, event in IDLE_EVENTS.items():
        bench.invoke(name, event)  # lazy loading
        seen = set(stdout.metrics)
        stdout.metrics.clear()
        bench.invoke(name, event)
        cpu = bench.usage[name]
        published = len(stdout.metrics)  # EMF metrics the idle run emits: each one is billed monthly
        stdout.metrics |= seen
        fake.latency_scale = latency
        bench.invoke(name, event)
        fake.latency_scale = 0.0
        runs[name] = IdleRun(
            cpu_s=cpu.cpu_s,
            wall_s=bench.usage[name].wall_s,
            log_bytes=cpu.log_bytes,
            read_units=sum(v for k, v in cpu.units.items() if k.endswith("RRU")),
            metrics=published,
        )
    return runs


def measure(bench: Bench, stream: Iterator[bytes], size: int, count: int, latency: float) -> list[dict[str, Usage]]:
    bench.fake.latency_scale = latency
    return [bench.batch([next(stream) for _ in range(size)]) for _ in range(count)]


def delta_shape(fake: FakeAws) -> tuple[float, float]:
    """(minutes, minute items) one batch's deltas touch on average, from the deltas waiting in the stream."""
    from eventpipe.adapters.aws.insights_delta import decode_delta

    by_batch: dict[str, list[tuple[int, str]]] = {}
    for item in fake.stream:
        changes = decode_delta(item).changes
        by_batch.setdefault(item["pk"]["S"], []).extend((c.minute, c.segment) for c in changes)
    minutes = statistics.mean(len({minute for minute, _ in keys}) for keys in by_batch.values())
    return minutes, statistics.mean(len(set(keys)) for keys in by_batch.values())


def median_of(runs: list[dict[str, Usage]], step: str, what: Callable[[Usage], float]) -> float:
    return statistics.median(what(run[step]) for run in runs)


def parse_us_per_item(rows: int = 2000) -> float:
    """CPU microseconds botocore takes to parse one small item of a Query page (the export reads many)."""
    item = {"pk": {"S": "minute#2026-11-28"}, "sk": {"S": f"{0:012d}"}, "events_page_view": {"N": "12"}}
    page = orjson.dumps({"Items": [item] * rows, "Count": rows, "ScannedCount": rows})
    fake = FakeAws()
    fake._Query = lambda _body: orjson.loads(page)  # type: ignore[method-assign]
    session = botocore.session.get_session()
    session.register("before-send", fake.handle)
    client = session.create_client("dynamodb", region_name="us-east-1")
    runs = []
    for _ in range(7):  # the least of several runs: this machine's speed drifts
        cpu = time.process_time()
        client.query(
            TableName="insights", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": item["pk"]}
        )
        runs.append(time.process_time() - cpu)
    return min(runs) / rows * 1e6


def per_batch(
    fake: FakeAws,
    stdout: CountingStdout,
    events: int,
    cpu: list[dict[str, Usage]],
    wall: list[dict[str, Usage]],
    folds: tuple[Usage, Usage],
    shape: tuple[float, float],
    lake: tuple[Usage, Usage],
) -> PerBatch:
    batches = len(cpu) + len(wall)
    units: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for run in cpu + wall:
        for usage in run.values():
            units.update(usage.units)
            calls.update(usage.calls)
    return PerBatch(
        events=events,
        cpu_s={step: median_of(cpu, step, lambda u: u.cpu_s) for step in STEPS},
        wall_s={step: median_of(wall, step, lambda u: u.wall_s) for step in STEPS},
        log_bytes=statistics.mean(sum(u.log_bytes for u in run.values()) for run in cpu + wall),
        units=Counter({name: value / batches for name, value in units.items()}),
        calls=Counter({name: value / batches for name, value in calls.items()}),
        delta_bytes=statistics.mean(fake.delta_writes),
        minute_bytes=statistics.mean(size for size, _ in fake.minute_writes),
        sketch_item_bytes=statistics.mean(size - sketches for size, sketches in fake.sketch_writes),
        minutes_per_batch=shape[0],
        keys_per_batch=shape[1],
        fold_cpu_s=folds[0].cpu_s / len(cpu),
        fold_round_trips_s=max(0.0, folds[1].wall_s - folds[1].cpu_s),
        fold_calls=folds[0].calls,
        fold_batches=len(cpu),
        lake_cpu_s_per_event=lake[0].cpu_s / max(1, lake[0].result["events"]),
        lake_round_trips_s=max(0.0, lake[1].wall_s - lake[1].cpu_s),
        lake_calls=lake[0].calls,
        lake_objects=lake[0].result["objects"],
        lake_log_bytes=lake[0].log_bytes,
        lake_record_bytes=lake[0].result["record_bytes"],
        raw_bytes_per_event=fake.s3_bytes_put["raw"] / (batches * events),
        curated_item_bytes=statistics.mean(fake.sizes[ENVIRONMENT["EVENTPIPE_CURATED_TABLE"]]),
        curated_events=statistics.mean(run["process_batch"].result["curated"] for run in cpu + wall),
        metrics=len(stdout.metrics),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--events-per-request", "--batch", dest="batch", type=int, default=100, help="events per HTTP request (a batch)"
    )
    parser.add_argument("--batches", type=int, default=15, help="measured batches, with and then without latency")
    parser.add_argument("--warmup", type=int, default=3, help="batches run first and not counted (lazy loading)")
    parser.add_argument("--span-minutes", type=int, default=2, help="a batch's event times spread over this")
    parser.add_argument("--cpu-speed", type=float, default=1.5, help="Lambda arm64 vCPU vs this core (slower > 1)")
    parser.add_argument(
        "--memory",
        default="",
        help="MB per function, e.g. ingest=1024,process_batch=1024 (default: infrastructure/template.yaml's)",
    )
    parser.add_argument("--latency-scale", type=float, default=1.0, help="x the round trips of fake_aws.LATENCY_MS")
    parser.add_argument("--export-every-min", type=int, default=5)
    parser.add_argument("--poll-every-s", type=int, default=3, help="a dashboard polling GET /insights: its interval")
    parser.add_argument(
        "--no-poll-cache", dest="poll_cache", action="store_false", help="polls read every sketch item (no cache)"
    )
    parser.add_argument(
        "--detailed-monitoring",
        action="store_true",
        help="DetailedMonitoring=true: every alarm of monitoring/alerts.yml and the dashboard, not the core set",
    )
    parser.add_argument(
        "--no-lake", dest="lake", action="store_false", help="without the lake: no write_lake, no Parquet"
    )
    parser.add_argument(
        "--fold-window-s", type=int, default=30, help="the insights stream's batching window (template.yaml)"
    )
    parser.add_argument(
        "--lake-window-s", type=int, default=30, help="the curated stream's batching window (template.yaml)"
    )
    parser.add_argument(
        "--lake-shards", type=int, default=4, help="shards of the curated table's stream (its partitions), assumed"
    )
    parser.add_argument("--curated-ttl-days", type=int, default=7, help="CuratedTtlDays (template.yaml)")
    parser.add_argument("--rates", default="10,100,1000", help="events per second, for the table")
    parser.add_argument("--rate", type=float, help="one rate in events per second (instead of --rates)")
    parser.add_argument("--json", action="store_true", help='print {"total_per_million", "lines"} for one rate')
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--one-event-requests", type=int, default=600, help="1-event requests measured through the request stream"
    )
    parser.add_argument(
        "--buffer-s", type=float, default=1.0, help="the request stream's buffering interval (template.yaml)"
    )
    args = parser.parse_args()
    if not args.lake:
        ENVIRONMENT["EVENTPIPE_LAKE"] = "off"

    out = sys.stdout
    stdout = CountingStdout()
    sys.stdout = stdout  # type: ignore[assignment]  # the functions' logs and metrics, counted
    try:
        fake = FakeAws()
        bench = Bench(fake, stdout)
        generator = EventGenerator(seed=args.seed, now_ms=int(time.time() * 1000), span_minutes=args.span_minutes)
        total = (args.warmup + 2 * args.batches) * args.batch
        stream = generator.lines(total, invalid_ratio=0.10, duplicate_ratio=0.05)
        measure(bench, stream, args.batch, args.warmup, 0.0)
        bench.fold()
        bench.write_lake()  # pyarrow imported: a container's first batch only
        fake.reset_books()
        cpu = measure(bench, stream, args.batch, args.batches, 0.0)
        shape = delta_shape(fake)
        cpu_fold = bench.fold()
        cpu_lake = bench.write_lake()
        wall = measure(bench, stream, args.batch, args.batches, args.latency_scale)
        fake.latency_scale = args.latency_scale
        wall_fold = bench.fold()
        wall_lake = bench.write_lake()
        per = per_batch(fake, stdout, args.batch, cpu, wall, (cpu_fold, wall_fold), shape, (cpu_lake, wall_lake))
        parse_us = parse_us_per_item()
        # 1-event requests at the rate: what one buffering interval of the request stream holds is an object
        rate = args.rate if args.rate is not None else 100.0
        per_object = max(1, round(rate * args.buffer_s))
        singles = generator.lines(args.one_event_requests * 3, invalid_ratio=0.10, duplicate_ratio=0.05)
        requests = one_event_requests(bench, singles, args.one_event_requests, per_object, args.latency_scale)
        idle = measure_idle(stdout, args.latency_scale)  # after: it builds the functions' runtime anew
    finally:
        sys.stdout = out
    memory = {
        name: mb
        for name, mb in stack().memory_mb.items()
        if name in (*STEPS, "export_insights", "fold_insights", "write_lake")
    }
    memory.update({name: int(mb) for name, mb in (pair.split("=") for pair in args.memory.split(",") if pair)})
    assumptions = Assumptions(
        memory,
        args.cpu_speed,
        args.export_every_min,
        args.poll_every_s,
        parse_us,
        alarm_metrics(detailed=args.detailed_monitoring),
        args.curated_ttl_days,
        poll_cache=args.poll_cache,
        detailed_monitoring=args.detailed_monitoring,
        fold_window_s=args.fold_window_s,
        span_minutes=args.span_minutes,
        lake=args.lake,
        lake_window_s=args.lake_window_s,
        lake_shards=args.lake_shards,
    )
    rates = [args.rate] if args.rate is not None else [float(r) for r in args.rates.split(",")]
    if args.json:
        document = {**per_million(per, assumptions, rates[0], args.seed), "idle": idle_document(idle, assumptions)}
        singles_lines = one_event_lines(requests, assumptions)
        document["one_event_requests"] = {
            "requests_per_object": requests.requests_per_object,
            "api_gateway_per_million": round(singles_lines["API Gateway HTTP API requests"], 4),
            "rest_per_million": round(sum(v for k, v in singles_lines.items() if not k.startswith("API Gateway")), 4),
            "lines": [{"line": k, "per_million": round(v, 4)} for k, v in singles_lines.items()],
        }
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        out.write("\n")
    else:
        report(per, assumptions, rates, args.seed, idle, out)
        print(file=out)
        report_one_event(requests, assumptions, lambda text="": print(text, file=out))


if __name__ == "__main__":
    main()
