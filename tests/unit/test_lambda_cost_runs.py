"""`bench/lambda_cost.py --json`, the issue's cost contract, runs end to end on the code as it is:
every function it invokes (the batch's steps, the folds, the lake, the idle schedules) answers
through the bench's fake AWS, which must know each call they make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_the_cost_model_prints_its_json_contract() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "lambda_cost.py"),
            *("--rate", "100", "--events-per-request", "100", "--batches", "2", "--warmup", "1"),
            *("--latency-scale", "0", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = orjson.loads(done.stdout)
    lines = {line["line"]: line["per_million"] for line in document["lines"]}
    assert abs(document["total_per_million"] - sum(lines.values())) < 0.001
    assert lines["DynamoDB writes: curated events"] > 0
    assert document["idle"]
