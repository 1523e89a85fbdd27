"""The lake's commands: `eventpipe query` (and `eventpipe erase`), added to the main parser."""

from __future__ import annotations

import csv
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import InputError, StorageError
from eventpipe.settings import Settings

MAX_ID_CHARS = 256  # the envelope's limit on user_id and anonymous_id
MAX_TABLE_ROWS = 10_000  # an aligned table needs every row in memory to size its columns

if TYPE_CHECKING:
    import argparse

    from eventpipe.localrun.runtime import LocalRuntime


def add_lake_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    query = commands.add_parser("query", help="read-only SQL (DuckDB) over the views `events` and `rejected`")
    query.add_argument("sql", metavar="SQL")
    output = query.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="a JSON array of row objects")
    output.add_argument("--csv", action="store_true", help="CSV with a header line")
    query.set_defaults(run=_query)

    erase = commands.add_parser("erase", help="remove every event of a user from every store (and the lake)")
    erase.add_argument("--user-id", metavar="ID", help="match events whose user_id is ID (as sent)")
    erase.add_argument("--anonymous-id", metavar="ID", help="match events whose anonymous_id is ID")
    erase.add_argument("--json", action="store_true", help='print {"events_erased", "files_rewritten"}')
    erase.set_defaults(run=_erase)


def before_processing(runtime: LocalRuntime) -> None:
    """What a process that writes to the stores does first: finish an erasure a crash interrupted,
    so that no batch run or lake write brings an erased event back; then retention, if due."""
    from eventpipe.erasure.journal import ErasureJournal
    from eventpipe.lake.settings import LakeSettings

    # Both modules load pyarrow (about 50 MiB and 0.2 s): only when there is something to do.
    if ErasureJournal(runtime.settings.data_dir / "erasures").has_pending():
        from eventpipe.erasure.run import resume_erasures

        resume_erasures(runtime)
    settings = LakeSettings.from_env()
    if settings.retention_days is not None or settings.lake_retention_days is not None:
        from eventpipe.lake.retention import apply_retention

        apply_retention(runtime, settings)


def sync_lake(runtime: LocalRuntime) -> int:
    """Bring the lake up to date with the curated store (nothing when EVENTPIPE_LAKE=off)."""
    from eventpipe.lake.settings import LakeSettings

    if not LakeSettings.from_env().enabled:
        return 0  # before the writer's import, which loads pyarrow
    from eventpipe.lake.writer import lake_writer

    writer = lake_writer(runtime)
    return writer.sync(budget_s=float("inf")) if writer else 0


def _query(args: argparse.Namespace) -> int:
    from eventpipe.lake.query import open_query

    out = sys.stdout
    with open_query(Settings.from_env().data_dir, args.sql) as (columns, pages):
        if args.json:  # streamed, a page at a time: a result may be larger than memory
            out.buffer.write(b"[")
            first = True
            for page in pages:
                for row in page:
                    record = orjson.dumps(dict(zip(columns, row, strict=True)), default=_json_value)
                    out.buffer.write(record if first else b"," + record)
                    first = False
            out.buffer.write(b"]\n")
        elif args.csv:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            for page in pages:
                writer.writerows([[_csv_cell(v) for v in row] for row in page])
        else:
            rows: list[tuple[Any, ...]] = []
            for page in pages:
                rows.extend(page[: MAX_TABLE_ROWS + 1 - len(rows)])
                if len(rows) > MAX_TABLE_ROWS:
                    break
            _print_table(columns, rows[:MAX_TABLE_ROWS], more=len(rows) > MAX_TABLE_ROWS)
    out.flush()
    return 0


def _json_value(value: Any) -> Any:
    """What orjson does not write itself: DECIMAL as a number, anything else (INTERVAL, BLOB) as text."""
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _erase(args: argparse.Namespace) -> int:
    from eventpipe.core.model import BatchStatus
    from eventpipe.erasure.run import erase_user
    from eventpipe.localrun.commands import ERASE, CommandRuntime

    ids = {"--user-id": args.user_id, "--anonymous-id": args.anonymous_id}
    if not any(ids.values()):
        raise InputError("give --user-id ID, --anonymous-id ID, or both")
    for option, value in ids.items():
        if value is not None and not 0 < len(value) <= MAX_ID_CHARS:
            raise InputError(f"{option} must be 1 to {MAX_ID_CHARS} characters, as the envelope allows")
    settings = Settings.from_env()
    if not (settings.data_dir / "eventpipe.db").is_file():
        raise StorageError(f"no data in {settings.data_dir}: nothing has been ingested there")
    # Without `eventpipe up`, this takes the data directory's lock: no other command runs a batch
    # meanwhile (a pending batch runs later, from its raw batch rewritten here). Beside `up`, the
    # batches received before the erasure are left to finish first: one its worker is running could
    # otherwise curate the user's event just after the erasure went past it.
    command = CommandRuntime(settings, ERASE)
    try:
        command.settle_request_log()  # requests acknowledged before now are in raw batches, which it rewrites
        if command.beside_up:
            for record in command.runtime.batches.unfinished():
                if record.status is BatchStatus.PENDING:
                    command.wait(record.batch_id)
        result = erase_user(command.runtime, _listed(args.user_id), _listed(args.anonymous_id))
    finally:
        command.close()
    if args.json:
        print(orjson.dumps(result.as_dict()).decode())
    if result.events_erased == 0 and result.files_rewritten == 0:
        print("eventpipe: no event of that user is stored: nothing was changed", file=sys.stderr)
        return 1
    if not args.json:
        print(f"events erased   {result.events_erased:>10,}")
        print(f"files rewritten {result.files_rewritten:>10,}")
    return 0


def _listed(value: str | None) -> list[str]:
    return [value] if value else []


def _csv_cell(value: Any) -> Any:
    return "" if value is None else _text(value)


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _print_table(columns: list[str], rows: list[tuple[Any, ...]], *, more: bool) -> None:
    cells = [[_text(v).replace("\n", " ") for v in row] for row in rows]
    widths = [len(name) for name in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
        for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    print(line(list(columns)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))
    if more:
        print(f"(the first {len(cells):,} rows; add LIMIT, or use --csv or --json for every row)")
    else:
        print(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
