"""The lake's commands: `eventpipe query` (and `eventpipe erase`), added to the main parser."""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import InputError, StorageError
from eventpipe.settings import Settings

MAX_TABLE_ROWS = 10_000  # an aligned table needs every row in memory to size its columns
MAX_TABLE_CHARS = 16 * 1024 * 1024  # and so at most this much text (a row may hold long JSON)
# Control characters would move the terminal's cursor (or worse) and break the columns: a table shows
# them as \xNN; a line break or tab as a space.
_CSV_QUOTED = re.compile(r'[",\r\n]')  # a field holding one of these is quoted, as the csv module does
_VISIBLE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {0x0A: " ", 0x09: " ", 0x0D: " "}

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

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
    finish_erasures(runtime)
    retention_if_due(runtime)


def finish_erasures(runtime: LocalRuntime) -> None:
    """Finish the erasures a crash interrupted (an erasure that runs now, another process's, is left to it)."""
    from eventpipe.erasure.journal import ErasureJournal

    # The erasure's modules load pyarrow (about 50 MiB and 0.2 s): only when there is something to do.
    if ErasureJournal(runtime.settings.data_dir / "erasures").has_pending():
        from eventpipe.erasure.run import resume_erasures

        resume_erasures(runtime)


def retention_if_due(runtime: LocalRuntime) -> None:
    """Retention, when configured and not run in the last day (lake/retention.py)."""
    from eventpipe.lake.settings import LakeSettings

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
            keys = _unique(columns)
            out.buffer.write(b"[")
            first = True
            for page in pages:
                for row in page:
                    record = _json(dict(zip(keys, row, strict=True)))
                    out.buffer.write(record if first else b"," + record)
                    first = False
            out.buffer.write(b"]\n")
        elif args.csv:
            out.write(_csv_line(columns))
            for page in pages:
                out.write("".join([_csv_line(row) for row in page]))
        else:
            rows: list[tuple[Any, ...]] = []
            cells: list[list[str]] = []
            chars, more = 0, False
            for page in pages:
                for row in page:
                    if len(rows) == MAX_TABLE_ROWS or chars > MAX_TABLE_CHARS:
                        more = True
                        break
                    rows.append(row)
                    cells.append(texts := [_text(v) for v in row])
                    chars += sum(map(len, texts))
                if more:
                    break
            _print_table(columns, rows, cells, more=more)
    out.flush()
    return 0


def _json(value: Any) -> bytes:
    """A value as JSON. What orjson refuses (an integer past 64 bits, a map whose keys are lists) goes
    through the standard library, which writes any integer, with the same conversions."""
    try:
        return orjson.dumps(value, default=_json_value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(_plain(value), default=_json_value, separators=(",", ":"), ensure_ascii=False).encode()


def _plain(value: Any) -> Any:
    """`value` with text keys and no NaN or infinity (null, as orjson writes them), for `json.dumps`."""
    if isinstance(value, dict):
        return {key if isinstance(key, str) else _text(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_value(value: Any) -> Any:
    """What orjson does not write itself: DECIMAL as a number, anything else (INTERVAL, BLOB) as text."""
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _unique(columns: list[str]) -> list[str]:
    """The column names as keys of one JSON object: a repeated name gets a suffix (`n`, `n_2`)."""
    keys: list[str] = []
    for name in columns:
        key, n = name, 1
        while key in keys:
            n += 1
            key = f"{name}_{n}"
        keys.append(key)
    return keys


def _erase(args: argparse.Namespace) -> int:
    from eventpipe.core.model import BatchStatus
    from eventpipe.core.utf8 import is_utf8_text
    from eventpipe.erasure.run import erase_user
    from eventpipe.erasure.target import MAX_ID_CHARS
    from eventpipe.localrun.commands import ERASE, CommandRuntime

    ids = {"--user-id": args.user_id, "--anonymous-id": args.anonymous_id}
    if not any(ids.values()):
        raise InputError("give --user-id ID, --anonymous-id ID, or both")
    for option, value in ids.items():
        if value is not None and not 0 < len(value) <= MAX_ID_CHARS:
            raise InputError(f"{option} must be 1 to {MAX_ID_CHARS} characters, as the envelope allows")
        if value is not None and not is_utf8_text(value):
            raise InputError(f"{option} must be UTF-8 text, as events are")
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
    else:
        print(f"events erased   {result.events_erased:>10,}")
        print(f"files rewritten {result.files_rewritten:>10,}")
    if result.events_erased == 0 and result.files_rewritten == 0:
        # Exit 0 all the same: the request is met (nothing of the user is stored), as the AWS function
        # answers it, and a request sent again, or after a run a crash cut short, is no error.
        print("eventpipe: no event of that user is stored: nothing was changed", file=sys.stderr)
    return 0


def _listed(value: str | None) -> list[str]:
    return [value] if value else []


def _csv_line(values: Sequence[Any]) -> str:
    """One CSV record as DuckDB's and PostgreSQL's COPY write it: NULL an empty field, an empty text `""`,
    so that a reader of either tells them apart (Python's csv module reads both as "")."""
    return ",".join([_csv_field(value) for value in values]) + "\n"


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    text = _text(value)
    if not text or _CSV_QUOTED.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _text(value: Any) -> str:
    """A value as the table and CSV show it: as --json writes it, but for text without its quotes."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, (dict, list)):
        return _json(value).decode()
    return str(value)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float, Decimal)) and not isinstance(value, bool))


def _width(text: str) -> int:
    """Columns on a terminal: East Asian wide characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, *, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def _print_table(columns: list[str], rows: list[tuple[Any, ...]], texts: list[list[str]], *, more: bool) -> None:
    """`texts`: the `rows` as `_text` wrote them. A column of numbers is right-aligned."""
    names = [name.translate(_VISIBLE) for name in columns]
    cells = [[v.translate(_VISIBLE) for v in row] for row in texts]
    widths = [_width(name) for name in names]
    for row in cells:
        widths = [max(w, _width(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        any(row[i] is not None for row in rows) and all(_is_number(row[i]) for row in rows) for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        parts = [_pad(v, w, right=num) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    print(line(names))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))
    if more:
        print(f"(the first {len(cells):,} rows; add LIMIT, or use --csv or --json for every row)")
    else:
        print(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
