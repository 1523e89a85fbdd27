"""`make bench`: Lambda cold start, i.e. importing `lambda_pipeline` and building the clients a function uses.

Each measure is a fresh interpreter with the environment Lambda gives a function (its name, task
root and region, fake credentials: nothing is called over the network); the task root holds what
`scripts/deploy_sam.sh` adds to the package, botocore's models pre-parsed (`model_cache.py`) and the
regular expressions compiled (`regex_cache.py`).
eventpipe builds its clients on first use, so the measure is the import plus what the function's
first invocation builds: for `ingest`, what a small first HTTP request builds (with the template's
settings: the request stream, an apps table): the ingestor, the write-key directory, the Firehose
and DynamoDB clients it calls (its S3 and Step Functions clients are built by a larger request)
and one invocation through its Lambda handler (`GET /health`: the Powertools decorators, the
routing and every module an HTTP request imports, without a call to AWS); for a workflow step,
the S3 and DynamoDB clients, the quarantine and the curated store (not the schemas and user-agent
rules, which `process_batch` loads at its first batch). The baseline, measured in
the same run and alternating with it, is the naive version of the same init: boto3, Powertools
Logger, Metrics and Tracer, and the same clients. Targets: at most 200 ms, and at most 0.7 of the naive init.

`--python PATH` measures both with another interpreter, e.g. a venv of the functions' runtime
(Python 3.12) holding what Lambda has: `requirements.txt` and boto3 (`make bench` does so when
this machine has a Python 3.12). The Tracer of the naive init patches every library it supports
that is installed: in the dev venv that includes `requests` (a test dependency), about 15 ms more
than on Lambda, so the dev venv's ratios flatter eventpipe by about 0.05.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from summary import record

from eventpipe.adapters.aws.model_cache import MODEL_CACHE_NAME
from eventpipe.adapters.aws.regex_cache import REGEX_CACHE_NAME

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
HEALTH = {"version": "2.0", "rawPath": "/health", "requestContext": {"http": {"method": "GET"}, "stage": "$default"}}
CONTEXT = (
    "type('Context', (), {'function_name': 'ingest', 'memory_limit_in_mb': 1024, 'aws_request_id': 'cold', "
    "'invoked_function_arn': 'arn:aws:lambda:eu-west-1:123456789012:function:ingest'})()"
)
SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:eventpipe"
START_FUNCTION = "eventpipe-start_batches"  # its Lambda client is built only when a start fails
FUNCTIONS = {
    # function: (its extra environment, the clients the naive init builds, what its first call builds)
    # ingest's first HTTP request, a small one, builds the ingestor (with the request stream, as the
    # template sets it) and the write-key directory, calls Firehose and DynamoDB (its write key), and
    # goes through the handler. `.meta` builds a client that is built at its first call.
    "ingest": (
        {
            "EVENTPIPE_STATE_MACHINE_ARN": ARN,
            "EVENTPIPE_START_FUNCTION": START_FUNCTION,
            "EVENTPIPE_RANGE_FUNCTION": "eventpipe-ingest",
            "EVENTPIPE_REQUEST_STREAM": "eventpipe-requests",
        },
        ("s3", "dynamodb", "stepfunctions", "firehose"),
        "runtime.ingestor; runtime.apps; runtime.request_queue._client.meta; runtime._dynamodb.meta;"
        f" lambda_pipeline.ingest({HEALTH}, {CONTEXT})",
    ),
    # process_batch's first call builds the raw bucket, the curated store and the quarantine and reads
    # its input with core.documents (then loads the schemas and enrichers: not measured)
    "a workflow step": (
        {},
        ("s3", "dynamodb"),
        "runtime.bucket._client.meta; runtime.curated._client.meta; runtime.quarantine;"
        " import eventpipe.core.documents",
    ),
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
        "EVENTPIPE_APPS_TABLE": "eventpipe-apps",
        **extra,
    }


def timed_ms(python: str, code: str, env: dict[str, str]) -> float:
    done = subprocess.run([python, "-c", TIMED.format(code=code)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"cold start: the init failed with {python}:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def python_version(python: str) -> str:
    done = subprocess.run([python, "-c", "import platform; print(platform.python_version())"], capture_output=True)
    if done.returncode != 0:
        sys.exit(f"cold start: {python} does not run")
    return done.stdout.decode().strip()


def write_model_cache(python: str, task_root: str) -> None:
    """botocore's pre-parsed models and the compiled regular expressions, as `scripts/deploy_sam.sh` adds
    them: by that Python and its botocore."""
    subprocess.run(
        [python, "-m", "eventpipe.adapters.aws.model_cache", task_root],
        env={**os.environ, "PYTHONPATH": SRC},
        check=True,
        capture_output=True,
    )
    for name in (MODEL_CACHE_NAME, REGEX_CACHE_NAME):
        if not os.path.exists(os.path.join(task_root, name)):
            sys.exit(f"cold start: {python} wrote no {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9, help="fresh interpreters per measure, alternating")
    parser.add_argument(
        "--before", type=os.path.abspath, help="also the init of another checkout's src/ (e.g. `git worktree add`)"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of both inits, with boto3 and requirements.txt installed (default: this one)",
    )
    args = parser.parse_args()
    version = python_version(args.python)
    print(
        f"\ncold start on Python {version}: import and clients, CPU ms, median of {args.repeat} fresh "
        f"interpreters (targets: at most {TARGET_MS} ms and {TARGET_RATIO} x naive)"
    )
    print(f"{'init':<34}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'x naive':>9}")
    with tempfile.TemporaryDirectory(prefix="eventpipe-task-root-") as task_root:
        write_model_cache(args.python, task_root)
        for function, (extra, clients, uses) in FUNCTIONS.items():
            env = lambda_environment(function, extra, task_root)
            measure(Init(args.python, version, function, env, clients, uses), args.repeat, args.before)


@dataclass(frozen=True)
class Init:
    python: str
    version: str  # the Python's, e.g. 3.12.1
    function: str
    env: dict[str, str]
    clients: tuple[str, ...]
    uses: str


def measure(init: Init, repeat: int, before: str | None) -> None:
    function, env = init.function, init.env
    naive, ours, older = [], [], []
    for _ in range(repeat):
        naive.append(timed_ms(init.python, NAIVE.format(clients=init.clients), env))
        ours.append(timed_ms(init.python, OURS.format(uses=init.uses), {**env, "PYTHONPATH": SRC}))
        if before is not None:
            older.append(timed_ms(init.python, OURS.format(uses=init.uses), {**env, "PYTHONPATH": before}))
    ratio = statistics.median(o / n for o, n in zip(ours, naive, strict=True))
    rows = [("naive boto3 + Powertools", naive, 1.0), (f"lambda_pipeline, {function}", ours, ratio)]
    if older:
        rows.insert(
            1, ("  the same, --before", older, statistics.median(o / n for o, n in zip(older, naive, strict=True)))
        )
    for name, values, x in rows:
        print(f"{name:<34}{statistics.median(values):>10.0f}{min(values):>9.0f}{max(values):>9.0f}{x:>9.2f}")
    if older:  # the paired ratios, each run against the --before run next to it: steadier than two medians
        paired = sorted(o / b for o, b in zip(ours, older, strict=True))
        print(f"  x --before: {statistics.median(paired):.3f} (runs {paired[0]:.3f} to {paired[-1]:.3f})")
    median = statistics.median(ours)
    met = median <= TARGET_MS and ratio <= TARGET_RATIO
    print(f"  {function}: {median:.0f} ms, {ratio:.2f} x naive: {'met' if met else 'NOT met'}")
    minor = ".".join(init.version.split(".")[:2])
    record(
        f"cold start, {function}, Python {minor} (CPU ms)",
        median,
        baseline=statistics.median(naive),
        ratio=ratio,
        target=f"<= {TARGET_MS} ms, <= {TARGET_RATIO} x",
        met=met,
    )


if __name__ == "__main__":
    main()
