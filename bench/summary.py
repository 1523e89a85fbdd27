"""The table at the end of `make bench`: every headline figure beside its baseline and target.

Each bench script calls `record(...)` for its headline figures; when `make bench` runs them, they
append to the file named by `EVENTPIPE_BENCH_SUMMARY` (one JSON object a line).
`python bench/summary.py --start FILE` begins a run's file (and its clock), `python bench/summary.py
FILE` prints the table and the run's time against its 10-minute budget. Run alone, a script
records nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

SUMMARY_ENV = "EVENTPIPE_BENCH_SUMMARY"
COLUMNS = ("figure", "value", "baseline", "ratio", "target", "met?")
BUDGET_S = 600  # `make bench` runs in under 10 minutes


def record(
    figure: str,
    value: float,
    *,
    baseline: float | None = None,
    ratio: float | None = None,
    target: str = "",
    met: bool | None = None,
) -> None:
    """Add one row to the summary of this `make bench` run (nothing outside it).

    `ratio` defaults to value / baseline; give it when the script measured it otherwise (e.g. the
    median of paired runs' ratios).
    """
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    if ratio is None and baseline:
        ratio = value / baseline
    row = {"figure": figure, "value": value, "baseline": baseline, "ratio": ratio, "target": target, "met": met}
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(row) + "\n")


def number(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def table(rows: list[dict[str, object]]) -> list[str]:
    cells = [
        (
            str(row["figure"]),
            number(row["value"]),  # type: ignore[arg-type]
            number(row["baseline"]),  # type: ignore[arg-type]
            "" if row["ratio"] is None else f"{row['ratio']:.2f}",
            str(row["target"]),
            {True: "yes", False: "NO", None: ""}[row["met"]],  # type: ignore[index]
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [COLUMNS, *cells]) for i in range(len(COLUMNS))]
    out = []
    for line in [COLUMNS, *cells]:
        first, *rest = line
        out.append("  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--start", action="store_true", help="begin a run: empty the file, note the time")
    args = parser.parse_args()
    if args.start:
        args.file.parent.mkdir(parents=True, exist_ok=True)
        args.file.write_text(json.dumps({"started": time.time()}) + "\n", encoding="utf-8")
        return
    lines = [json.loads(line) for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()]
    started = next((line["started"] for line in lines if "started" in line), None)
    rows = [line for line in lines if "figure" in line]
    print("\nmake bench: summary (ratio: value / baseline, or as the script measured it)")
    print("\n".join(table(rows)))
    missed = [row["figure"] for row in rows if row["met"] is False]
    print(f"{len(rows) - len(missed)} of {len(rows)} figures meet their target" if rows else "no figures recorded")
    if started is not None:
        took = time.time() - started
        verdict = "within" if took <= BUDGET_S else "OVER"
        print(f"make bench took {took / 60:.1f} min ({verdict} its {BUDGET_S // 60}-minute budget)")


if __name__ == "__main__":
    main()
