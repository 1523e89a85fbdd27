"""`make bench`: Lambda cold start, i.e. importing `lambda_pipeline` and building the clients a function uses.

Each measure is a fresh interpreter with the environment Lambda gives a function (its name, task
root and region, fake credentials: nothing is called over the network); the task root holds what
`scripts/deploy_sam.sh` adds to the package, botocore's models pre-parsed (`model_cache.py`).
eventpipe builds its clients on first use, so the measure is the import plus what the function's
first invocation builds: S3, DynamoDB and Step Functions clients for
`ingest`'s first HTTP request, S3 and DynamoDB clients for a workflow step (not the schemas and
user-agent rules, which `process_batch` loads at its first batch). The baseline,
measured in the same run and alternating with it, is the naive version of the same init: boto3,
Powertools Logger, Metrics and Tracer, and the same clients. Targets: at most 200 ms, and at most
0.7 of the naive init.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile

from summary import record

from eventpipe.adapters.aws.model_cache import main as build_model_cache

TARGET_MS = 200
TARGET_RATIO = 0.7
# CPU time of the init: Lambda gives it a core of its own, while this machine's cores are shared,
# so wall time here would mostly measure the neighbours.
TIMED = "import time; t = time.process_time(); {code}; print((time.process_time() - t) * 1000)"
NAIVE = (
    "import boto3; from aws_lambda_powertools import Logger, Metrics, Tracer; "
    "Logger(); Metrics(namespace='x'); Tracer(); "
    "[boto3.client(name) for name in {clients}]"
)
OURS = "import lambda_pipeline; runtime = lambda_pipeline.runtime; {uses}"
REQUEST = {"version": "2.0", "rawPath": "/events", "requestContext": {"http": {"method": "POST"}, "stage": "$default"}}
ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:eventpipe"
START_FUNCTION = "eventpipe-start_batches"  # its Lambda client is built only when a start fails
FUNCTIONS = {
    # function: (its extra environment, the clients the naive init builds, what its first call builds)
    # ingest's first HTTP request builds the ingestor and reads the request (file drops, not measured,
    # load Powertools' S3 event classes)
    "ingest": (
        {"EVENTPIPE_STATE_MACHINE_ARN": ARN, "EVENTPIPE_START_FUNCTION": START_FUNCTION},
        ("s3", "dynamodb", "stepfunctions"),
        "runtime.ingestor; from eventpipe.handlers.http_api import request_of; request_of({request})",
    ),
    "a workflow step": ({}, ("s3", "dynamodb"), "runtime.bucket; runtime.curated"),
}


def lambda_environment(function: str, extra: dict[str, str], task_root: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "LAMBDA_TASK_ROOT": task_root,
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "cold-start-bench",
        "AWS_SECRET_ACCESS_KEY": "cold-start-bench",
        "POWERTOOLS_SERVICE_NAME": "eventpipe",
        "EVENTPIPE_BUCKET": "eventpipe-raw",
        "EVENTPIPE_CURATED_TABLE": "eventpipe-curated",
        "EVENTPIPE_STATE_TABLE": "eventpipe-state",
        "EVENTPIPE_INSIGHTS_TABLE": "eventpipe-insights",
        **extra,
    }


def timed_ms(code: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", TIMED.format(code=code)], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9, help="fresh interpreters per measure, alternating")
    parser.add_argument(
        "--before", type=os.path.abspath, help="also the init of another checkout's src/ (e.g. `git worktree add`)"
    )
    args = parser.parse_args()
    print(
        f"\ncold start: import and clients, CPU ms, median of {args.repeat} fresh interpreters "
        f"(targets: at most {TARGET_MS} ms and {TARGET_RATIO} x naive)"
    )
    print(f"{'init':<34}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'x naive':>9}")
    with tempfile.TemporaryDirectory(prefix="eventpipe-task-root-") as task_root:
        with contextlib.redirect_stdout(io.StringIO()):
            build_model_cache([task_root])
        for function, (extra, clients, uses) in FUNCTIONS.items():
            env = lambda_environment(function, extra, task_root)
            measure(function, env, clients, uses.format(request=REQUEST), args.repeat, args.before)


def measure(
    function: str, env: dict[str, str], clients: tuple[str, ...], uses: str, repeat: int, before: str | None
) -> None:
    naive, ours, older = [], [], []
    here = {**env, "PYTHONPATH": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")}
    for _ in range(repeat):
        naive.append(timed_ms(NAIVE.format(clients=clients), env))
        ours.append(timed_ms(OURS.format(uses=uses), here))
        if before is not None:
            older.append(timed_ms(OURS.format(uses=uses), {**env, "PYTHONPATH": before}))
    ratio = statistics.median(o / n for o, n in zip(ours, naive, strict=True))
    rows = [("naive boto3 + Powertools", naive, 1.0), (f"lambda_pipeline, {function}", ours, ratio)]
    if older:
        rows.insert(
            1, ("  the same, --before", older, statistics.median(o / n for o, n in zip(older, naive, strict=True)))
        )
    for name, values, x in rows:
        print(f"{name:<34}{statistics.median(values):>10.0f}{min(values):>9.0f}{max(values):>9.0f}{x:>9.2f}")
    median = statistics.median(ours)
    met = median <= TARGET_MS and ratio <= TARGET_RATIO
    print(f"  {function}: {median:.0f} ms, {ratio:.2f} x naive: {'met' if met else 'NOT met'}")
    record(
        f"cold start, {function} (CPU ms)",
        median,
        baseline=statistics.median(naive),
        ratio=ratio,
        target=f"<= {TARGET_MS} ms, <= {TARGET_RATIO} x",
        met=met,
    )


if __name__ == "__main__":
    main()
