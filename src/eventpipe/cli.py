"""The `eventpipe` command line (docs/cli.md)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.batch_ids import file_version
from eventpipe.core.errors import ConfigError, EventpipeError, InputError
from eventpipe.core.ingest import IngestSummary
from eventpipe.core.readers import DamagedInputError
from eventpipe.core.replay import BATCH_NOT_DONE, REFUSED_AT_INGEST, ReplaySummary
from eventpipe.lake.cli import add_lake_commands, before_processing, sync_lake
from eventpipe.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventpipe.core.documents import InsightsDocument
    from eventpipe.core.ports import AppStore
    from eventpipe.localrun.commands import CommandRuntime
    from eventpipe.localrun.runtime import LocalRuntime

PROGRESS_EVERY_S = 5.0
MALFORMED = "malformed_json"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # a synchronous Lambda invocation's limit


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="eventpipe: %(levelname)s: %(message)s")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take a positional after an option (`invoke FUNCTION --payload FILE OUTFILE`).
    if extra and getattr(args, "run", None) is _invoke and args.outfile is None and len(extra) == 1:
        args.outfile = extra[0]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result: int = args.run(args)
        return result
    except EventpipeError as exc:
        print(f"eventpipe: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `eventpipe generate | head`
        return 0
    except KeyboardInterrupt:  # every batch acknowledged so far is safe; the rest is not lost either
        print("eventpipe: interrupted; run the same command again to finish", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventpipe", description="Validate, enrich, store and aggregate events.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="serve the HTTP API, the Lambda Invoke API, file drops and the dashboard")
    up.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; elsewhere EVENTPIPE_API_TOKEN is required")
    up.add_argument("--port", type=int, default=8080, help="default 8080; 0 picks a free port")
    up.add_argument("--data-dir", type=Path, default=None, help="default ./.eventpipe or EVENTPIPE_DATA_DIR")
    up.add_argument("--demo", action="store_true", help="send a steady stream of generated events")
    up.set_defaults(run=_up)

    ingest = commands.add_parser("ingest", help="process JSON / NDJSON / .gz files as if dropped in incoming/")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--json", action="store_true", help="print the summary as JSON")
    ingest.set_defaults(run=_ingest)

    invoke = commands.add_parser("invoke", help="run one function with an event, like `aws lambda invoke`")
    invoke.add_argument("function", metavar="FUNCTION", help="ingest, process_batch, mark_done, ... (see docs/aws.md)")
    invoke.add_argument("--payload", required=True, metavar="FILE", help="the event as a JSON file")
    invoke.add_argument("outfile", nargs="?", metavar="OUTFILE", help="where to write the result (default stdout)")
    invoke.set_defaults(run=_invoke)

    insights = commands.add_parser("insights", help="aggregates by event-time minute")
    insights.add_argument("--since", help="RFC 3339 time or a span back from now (30m, 2h, 1d); default 60m")
    insights.add_argument("--until", help="RFC 3339 time or a span back from now; default now")
    insights.add_argument("--app-id", help="one app's insights (default: every app's)")
    insights.add_argument("--include-bots", action="store_true", help="count bots' events in (default: apart)")
    insights.add_argument("--json", action="store_true")
    insights.set_defaults(run=_insights)

    rejected = commands.add_parser("rejected", help="quarantined events and their reasons")
    rejected.add_argument("--limit", type=_positive_int, default=None, help="show at most N records (newest first)")
    rejected.add_argument("--json", action="store_true")
    rejected.set_defaults(run=_rejected)

    replay = commands.add_parser("replay", help="finish unfinished batches; with --rejected, re-validate quarantine")
    replay.add_argument("--rejected", action="store_true", help="send quarantined events through the pipeline again")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(run=_replay)

    schemas = commands.add_parser("schemas", help="registered event types and versions")
    schemas.add_argument("action", choices=["list"])
    schemas.add_argument("--json", action="store_true")
    schemas.set_defaults(run=_schemas)

    _add_apps_parser(commands)

    generate = commands.add_parser("generate", help="generated events as NDJSON on stdout")
    generate.add_argument("--count", type=int, required=True, help="how many events")
    generate.add_argument("--invalid-ratio", type=float, default=0.0, help="share of invalid events (0 to 1)")
    generate.add_argument("--duplicate-ratio", type=float, default=0.0, help="share of repeated event ids")
    generate.add_argument("--seed", type=int, default=None, help="repeatable output (default: a new stream each run)")
    generate.add_argument("--span-minutes", type=int, default=30, help="spread event times over this many minutes")
    generate.set_defaults(run=_generate)
    add_lake_commands(commands)
    return parser


def _add_apps_parser(commands: Any) -> None:
    apps = commands.add_parser("apps", help="apps and their write keys (POST /events needs one once an app exists)")
    actions = apps.add_subparsers(required=True, metavar="ACTION")
    aws_help = "act on this DynamoDB apps table (the stack's AppsTableName output) instead of the local data"
    create = actions.add_parser("create", help="create an app and print its write key (shown only once)")
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--origin", action="append", default=[], metavar="ORIGIN", help="a web origin allowed to send (repeatable)"
    )
    create.add_argument("--json", action="store_true", help='print {"app_id", "write_key"}')
    create.add_argument("--aws-table", metavar="TABLE", help=aws_help)
    create.set_defaults(run=_apps_create)
    listing = actions.add_parser("list", help="every app, revoked ones too")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--aws-table", metavar="TABLE", help=aws_help)
    listing.set_defaults(run=_apps_list)
    revoke = actions.add_parser("revoke", help="revoke an app's write key for good")
    revoke.add_argument("app_id", metavar="APP_ID")
    revoke.add_argument("--aws-table", metavar="TABLE", help=aws_help)
    revoke.set_defaults(run=_apps_revoke)


def _app_store(args: argparse.Namespace) -> AppStore:
    if args.aws_table:
        from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore

        return DynamoAppStore(args.aws_table)
    from eventpipe.adapters.local import Database, SqliteAppStore

    return SqliteAppStore(Database(_database_path(create=args.run is _apps_create)))


def _database_path(*, create: bool) -> Path:
    settings = Settings.from_env()
    path = settings.data_dir / "eventpipe.db"
    if not create and not path.exists():
        raise InputError(f"no eventpipe data in {settings.data_dir} (set EVENTPIPE_DATA_DIR or run eventpipe up)")
    return path


def _apps_create(args: argparse.Namespace) -> int:
    from eventpipe.core.apps import new_app
    from eventpipe.core.timeutil import SystemClock

    try:
        app, key = new_app(args.name, origins=tuple(args.origin), now_ms=SystemClock().now_ms())
    except ValueError as exc:
        raise InputError(str(exc)) from None
    _app_store(args).create(app)
    if args.json:
        print(orjson.dumps({"app_id": app.app_id, "write_key": key}).decode())
    else:
        print(key)
        origins = ", ".join(app.origins) or "any origin"
        print(f"eventpipe: app {app.app_id} ({app.name}, {origins}); the key is shown only now", file=sys.stderr)
    return 0


def _apps_list(args: argparse.Namespace) -> int:
    apps = _app_store(args).list_all()
    if args.json:
        print(orjson.dumps([app.as_dict() for app in apps]).decode())
        return 0
    for app in apps:
        state = "revoked" if app.revoked else "active"
        print(f"{app.app_id}  {state:<8} {app.name}  {', '.join(app.origins) or '(any origin)'}")
    return 0


def _apps_revoke(args: argparse.Namespace) -> int:
    from eventpipe.core.timeutil import SystemClock

    if not _app_store(args).revoke(args.app_id, SystemClock().now_ms()):
        raise InputError(f"no app {args.app_id}; `eventpipe apps list` shows them")
    print(f"eventpipe: app {args.app_id} revoked", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _runtime() -> LocalRuntime:
    from eventpipe.localrun.runtime import LocalRuntime  # the heavy imports, only for commands that need them

    return LocalRuntime(Settings.from_env())


def _command_runtime(command: str) -> CommandRuntime:
    """The runtime of a command that runs batches: in-process, or through a running `eventpipe up`."""
    from eventpipe.localrun.commands import CommandRuntime

    return CommandRuntime(Settings.from_env(), command)


def _read_runtime() -> LocalRuntime:
    """The runtime of a read command; an error when the data directory holds no data: a mistyped
    directory must not be created, nor answered with zeros."""
    from eventpipe.localrun.runtime import DATABASE_FILE

    settings = Settings.from_env()
    if not (settings.data_dir / DATABASE_FILE).is_file():
        raise InputError(
            f"no eventpipe data in {settings.data_dir}: ingest some first, or set EVENTPIPE_DATA_DIR to the "
            "directory that holds it"
        )
    return _runtime()


def _up(args: argparse.Namespace) -> int:
    from eventpipe.localrun.server import serve

    logging.getLogger("eventpipe").setLevel(logging.INFO)  # a long-running service says what it does
    settings = Settings.from_env()
    if args.data_dir is not None:
        settings = dataclasses.replace(settings, data_dir=args.data_dir)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number")
    return serve(settings, host=args.host, port=args.port, demo=args.demo)


def _ingest(args: argparse.Namespace) -> int:
    from eventpipe.localrun.collector import tune_for_batches

    command = _command_runtime("eventpipe ingest")
    tune_for_batches()
    try:
        if command.lock is not None:  # beside a running `eventpipe up`, it did this at its start
            before_processing(command.runtime)
        command.finish_unfinished(include_failed=False)  # what a crashed run left pending
        total = IngestSummary()
        errors = 0
        for name in args.paths:
            path = Path(name)
            summary = IngestSummary()  # filled as batches finish: what was read before an error counts
            try:
                _ingest_file(command.runtime, path, summary)
            except (OSError, InputError) as exc:
                summary = command.settle(summary)
                kept = f"; kept the {summary.received:,} events before it" if isinstance(exc, DamagedInputError) else ""
                print(f"eventpipe: error: {path}: {_describe(exc)}{kept}", file=sys.stderr)
                errors += 1
            else:
                summary = command.settle(summary)
                _warn_about(path, summary)
            total.merge(summary)
        if command.lock is not None:  # beside a running `eventpipe up`, its worker keeps the lake up to date
            sync_lake(command.runtime)  # the lake holds every event this run curated
    finally:
        command.close()
    if args.json:
        print(orjson.dumps(total.as_dict()).decode())
    else:
        _print_summary(total)
    return 1 if errors or total.unfinished else 0


def _warn_about(path: Path, summary: IngestSummary) -> None:
    """One line when a file's content does not look like events at all."""
    if summary.received == 0:
        print(f"eventpipe: warning: {path}: no events in the file", file=sys.stderr)
    elif summary.rejected[MALFORMED] * 2 > summary.received:
        print(
            f"eventpipe: warning: {path}: {summary.rejected[MALFORMED]:,} of {summary.received:,} lines are not JSON;"
            " it does not look like JSON or NDJSON",
            file=sys.stderr,
        )


def _ingest_file(runtime: LocalRuntime, path: Path, summary: IngestSummary) -> None:
    if path.is_dir():
        raise InputError("is a directory; name the files in it (for example dir/*.ndjson)")
    stat = path.stat()  # raises FileNotFoundError for a missing path
    if not S_ISREG(stat.st_mode):  # a FIFO would block the command until something writes to it
        raise InputError("is not a regular file")
    # A file version is its path, size and modification time (an S3 object's key and version id).
    version = file_version(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    started = last_report = time.monotonic()
    with path.open("rb") as stream:
        for record in runtime.ingestor.ingest_file(stream, source=f"file:{path.name}", version=version):
            summary.add(record)
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY_S:
                rate = summary.received / (now - started)
                print(f"{path}: {summary.received:,} events so far ({rate:,.0f}/s)", file=sys.stderr)
                last_report = now


def _invoke(args: argparse.Namespace) -> int:
    from eventpipe.handlers.functions import LOCAL_FUNCTIONS, SILENT

    function = LOCAL_FUNCTIONS.get(args.function)
    if function is None:
        raise InputError(f"no function {args.function!r}; the functions are {', '.join(LOCAL_FUNCTIONS)}")
    path = Path(args.payload)
    try:
        if path.stat().st_size > MAX_PAYLOAD_BYTES:
            raise InputError(f"{path}: larger than {MAX_PAYLOAD_BYTES} bytes, Lambda's limit for a payload")
        event = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: {_describe(exc)}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON: {exc}") from None
    runtime = _runtime()
    try:
        result = orjson.dumps(function.run(event, runtime, SILENT))
    finally:
        runtime.close()
    if args.outfile:
        Path(args.outfile).write_bytes(result + b"\n")
    else:
        print(result.decode())
    return 0


def _describe(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return str(exc)


def _print_summary(summary: IngestSummary) -> None:
    rejected = sum(summary.rejected.values())
    print(f"received   {summary.received:>10,}")
    print(f"curated    {summary.curated:>10,}")
    print(f"duplicates {summary.duplicates:>10,}")
    print(f"rejected   {rejected:>10,}")
    for code, count in sorted(summary.rejected.items()):
        print(f"  {code:<24}{count:>10,}")
    if summary.unfinished:
        print(f"{len(summary.unfinished)} batch(es) failed; see the log above, then run `eventpipe replay`")


def _insights(args: argparse.Namespace) -> int:
    from eventpipe.core.insights import insights_document
    from eventpipe.core.segments import view_of
    from eventpipe.core.timeutil import (
        INSIGHTS_DEFAULT_WINDOW_MS,
        INSIGHTS_LONGER,
        INSIGHTS_MAX_WINDOW_MS,
        SystemClock,
        parse_window,
    )

    try:  # the same windows as GET /insights
        since_ms, until_ms = parse_window(
            args.since,
            args.until,
            now_ms=SystemClock().now_ms(),
            default_ms=INSIGHTS_DEFAULT_WINDOW_MS,
            max_ms=INSIGHTS_MAX_WINDOW_MS,
            longer=INSIGHTS_LONGER,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        view = view_of(args.app_id, "true" if args.include_bots else None)
    except ValueError as exc:
        raise InputError(f"--app-id: {exc}") from None
    runtime = _read_runtime()
    currency = runtime.settings.enrichment.base_currency
    document = insights_document(runtime.insights, since_ms=since_ms, until_ms=until_ms, currency=currency, view=view)
    if args.json:
        print(orjson.dumps(document).decode())
    else:
        _print_insights(document)
    return 0


def _print_insights(doc: InsightsDocument) -> None:
    totals = doc["totals"]
    print(f"insights {doc['since']} .. {doc['until']}")
    print(f"events        {totals['events']:>10,}   " + "  ".join(f"{k}={v:,}" for k, v in totals["by_type"].items()))
    print(f"unique users  {totals['unique_users']:>10,}")
    print(f"bots          {totals['bots']:>10,}")
    countries = list(totals["by_country"].items())[:10]
    if countries:
        print("countries     " + "  ".join(f"{k}={v:,}" for k, v in countries))
    print(f"revenue       {totals['revenue']:>10,.2f} {doc['currency']}")
    print("funnel        " + " -> ".join(f"{k} {v:,}" for k, v in doc["funnel"].items()))
    print(f"lag ms        p50={_count(doc['lag_ms']['p50'])}  p95={_count(doc['lag_ms']['p95'])}")
    print(f"duplicates    {totals['duplicates']:>10,}")
    rejected = totals["rejected"]
    print(f"rejected      {sum(rejected.values()):>10,}   " + "  ".join(f"{k}={v:,}" for k, v in rejected.items()))


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _rejected(args: argparse.Namespace) -> int:
    runtime = _read_runtime()
    records = runtime.quarantine.iter_all(limit=args.limit, newest_first=True)
    if args.json:  # streamed: the quarantine may be larger than memory
        out = sys.stdout.buffer
        out.write(b"[")
        for number, record in enumerate(records):
            out.write((b"," if number else b"") + orjson.dumps(record.as_dict()))
        out.write(b"]\n")
        out.flush()
        return 0
    total = runtime.quarantine.count()
    shown = total if args.limit is None else min(args.limit, total)
    print(f"{total:,} quarantined events" + (f", the newest {shown:,} first:" if total else ""))
    for record in records:
        print(f"{record.batch_id} #{record.index} {record.event_id or '-'} ({record.stage})")
        for reason in record.reasons:
            print(f"    {reason.code:<22} {reason.path:<28} {reason.message}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    command = _command_runtime("eventpipe replay")
    try:
        if command.lock is not None:  # beside a running `eventpipe up`, it did this at its start
            before_processing(command.runtime)
        # A batch not done may still curate its events: finish it before replaying the quarantine.
        summary = IngestSummary()
        for record in command.finish_unfinished(include_failed=True):
            summary.add(record)
        if args.rejected:
            from eventpipe.handlers.replay import replay_quarantine

            replayed = replay_quarantine(command.runtime)
            summary = command.settle(replayed)
    finally:
        command.close()
    if args.json:
        print(orjson.dumps(summary.as_dict()).decode())
    else:
        _print_summary(summary)
        if isinstance(summary, ReplaySummary):
            _print_skipped(summary)
    return 1 if summary.unfinished else 0


SKIPPED_WHY = {
    REFUSED_AT_INGEST: "refused at ingest (not JSON, too large, no event_id or event_type): no schema admits them",
    BATCH_NOT_DONE: "their batch is not done: run `eventpipe replay` first",
}


def _print_skipped(summary: ReplaySummary) -> None:
    print(f"skipped    {summary.skipped.total():>10,}")
    for why, count in sorted(summary.skipped.items()):
        print(f"  {count:>10,}  {SKIPPED_WHY.get(why, why)}")


def _schemas(args: argparse.Namespace) -> int:
    from eventpipe.core.registry import BUNDLED_SCHEMA_DIR, SchemaRegistry

    settings = Settings.from_env()
    registry = SchemaRegistry.load(*settings.schema_dirs)
    entries = [
        {
            "event_type": e.event_type,
            "version": e.version,
            "source": "bundled" if e.path.is_relative_to(BUNDLED_SCHEMA_DIR) else str(e.path),
        }
        for e in registry.entries()
    ]
    if args.json:
        print(orjson.dumps(entries).decode())
    else:
        for entry in entries:
            print(f"{entry['event_type']:<24} {entry['version']:<10} {entry['source']}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from eventpipe.core.timeutil import SystemClock
    from eventpipe.generate import EventGenerator

    ratios = (args.invalid_ratio, args.duplicate_ratio)
    # written so that NaN, which fails every comparison, fails this one too
    if not (args.count >= 0 and args.span_minutes >= 1 and min(ratios) >= 0 and sum(ratios) <= 1):
        raise InputError("--count must be >= 0, --span-minutes >= 1, and the ratios >= 0 with a sum of at most 1")
    seed = args.seed if args.seed is not None else time.time_ns()
    generator = EventGenerator(seed=seed, now_ms=SystemClock().now_ms(), span_minutes=args.span_minutes)
    out = sys.stdout.buffer
    for line in generator.lines(args.count, invalid_ratio=args.invalid_ratio, duplicate_ratio=args.duplicate_ratio):
        out.write(line + b"\n")
    out.flush()
    return 0
