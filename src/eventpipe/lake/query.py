"""`eventpipe query`: DuckDB SQL over the lake (`events`) and the quarantine (`rejected`), read-only.

The connection is an in-memory DuckDB whose views read the lake's live files (from the manifest)
and, when the SQL names it, the quarantine. Then file access is closed to everything but those
files and the configuration is locked, and only one SELECT (or EXPLAIN of one) is run: COPY,
ATTACH, CREATE, INSTALL, SET and the like are refused before they run, and so is a SELECT whose WITH
clause would write (`WITH x AS (COPY ... TO ...) SELECT ...`).
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from eventpipe.core.errors import InputError, StorageError
from eventpipe.core.utf8 import is_utf8_text
from eventpipe.lake.columns import LAKE_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MAX_SQL_CHARS = 100_000
PAGE_ROWS = 10_000
# MULTI: a PIVOT without an IN list, which DuckDB runs as a CREATE TYPE of the values it finds, then the
# query; `_statements` lets it through only when it reads as a subquery.
_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.MULTI}
# What a WITH clause may hold besides a SELECT (DuckDB runs it): a statement type's check cannot see it.
_WRITE_KEYWORDS = frozenset({"COPY", "INSERT", "UPDATE", "DELETE", "MERGE"})
_REJECTED_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("batch_id", pa.string()),
        ("index", pa.int64()),
        ("stage", pa.string()),
        ("reasons", pa.string()),
        ("raw", pa.string()),
    ]
)
_QUARANTINE_COLUMNS = "event_id, batch_id, idx, stage, reasons, raw"
_AS_DUCKDB_TEXT = {"INTERVAL", "BLOB"}  # column types printed as DuckDB's own text (`_with_text_of_duckdb`)
_NAMES_REJECTED = re.compile(r"\brejected\b", re.IGNORECASE)
# What EXPLAIN explains: EXPLAIN ANALYZE runs it, so it must be a SELECT too.
_EXPLAINED = re.compile(r"\A\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^()]*\)\s*)?(?P<rest>.*)\Z", re.IGNORECASE | re.DOTALL)


class QueryError(InputError):
    """The SQL cannot run: a syntax or binding error, or a statement that is not a read."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(data_dir: Path, sql: str) -> QueryResult:
    """Run one read-only statement; `QueryError` names what is wrong with it."""
    with open_query(data_dir, sql) as (columns, pages):
        return QueryResult(columns, [row for page in pages for row in page])


@contextmanager
def open_query(data_dir: Path, sql: str) -> Iterator[tuple[list[str], Iterator[list[tuple[Any, ...]]]]]:
    """Run one read-only statement: its column names and its rows a page at a time (bounded memory
    whatever the result's size); `QueryError` names what is wrong with it."""
    if len(sql) > MAX_SQL_CHARS:
        raise QueryError(f"the SQL is longer than {MAX_SQL_CHARS} characters")
    if not is_utf8_text(sql):  # bytes of the command line that are not UTF-8
        raise QueryError("the SQL is not valid UTF-8 text")
    db_path = data_dir / "eventpipe.db"
    if not db_path.is_file():
        raise StorageError(f"no data in {data_dir}: nothing has been ingested there")
    lake_files, rejected = _read_sqlite(db_path, with_rejected=bool(_NAMES_REJECTED.search(sql)))
    con = duckdb.connect(":memory:")
    try:
        try:
            _create_views(con, [data_dir / "lake" / path for path in lake_files], rejected)
        except duckdb.Error as exc:  # a listed lake file gone or damaged: DuckDB reads each file's schema here
            raise StorageError(f"cannot read the lake: {_one_line(exc)}") from None
        statements = _statements(con, sql)
        try:
            query = statements[0].query
            if statements[0].type is duckdb.StatementType.SELECT:
                query = _with_text_of_duckdb(con, query)
            relation = con.execute(query)
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from None
        yield [d[0] for d in relation.description or []], _pages(relation)
    finally:
        con.close()


def _pages(relation: duckdb.DuckDBPyConnection) -> Iterator[list[tuple[Any, ...]]]:
    while True:
        try:
            page = relation.fetchmany(PAGE_ROWS)
        except duckdb.Error as exc:  # an error found while reading (a file gone, a bad cast)
            raise QueryError(_one_line(exc)) from None
        if not page:
            return
        yield page


def _statements(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_one_line(exc)) from None
    if len(statements) != 1:
        raise QueryError(f"give one statement, not {len(statements)}")
    if statements[0].type not in _ALLOWED:
        kind = _first_keyword(statements[0].query) or str(statements[0].type).rsplit(".", 1)[-1]
        raise QueryError(f"only SELECT queries run here (this is {kind}): the lake is read-only")
    if statements[0].type is duckdb.StatementType.MULTI and not _reads_as_subquery(con, statements[0].query):
        raise QueryError("only SELECT queries run here, PIVOT among them: the lake is read-only")
    if statements[0].type is duckdb.StatementType.EXPLAIN:
        explained = _EXPLAINED.match(statements[0].query)
        if explained is None or [s.type for s in _parsed(con, explained["rest"])] != [duckdb.StatementType.SELECT]:
            raise QueryError("EXPLAIN runs here only as EXPLAIN [ANALYZE] SELECT ...: the lake is read-only")
    if written := _write_keyword(sql):
        raise QueryError(f"only SELECT queries run here (this one names {written}): the lake is read-only")
    return statements


def _write_keyword(sql: str) -> str | None:
    """The first keyword of `sql` that writes from inside a query (a name in quotes, a string or a
    comment is no keyword)."""
    for _, kind, word in _tokens(sql):
        if kind == duckdb.token_type.keyword and word.upper() in _WRITE_KEYWORDS:
            return word.upper()
    return None


def _first_keyword(sql: str) -> str | None:
    """The statement's first keyword (`INSTALL`, which DuckDB's statement type calls LOAD), if it starts with one."""
    words = [(kind, word) for _, kind, word in _tokens(sql) if kind != duckdb.token_type.comment]
    return words[0][1].upper() if words and words[0][0] == duckdb.token_type.keyword else None


def _reads_as_subquery(con: duckdb.DuckDBPyConnection, query: str) -> bool:
    """True when `query` parses as the subquery of a SELECT: a query, not a COPY or CREATE around one."""
    wrapped = "SELECT * FROM (\n" + _subquery(query) + "\n)"
    return [s.type for s in _parsed(con, wrapped)] in ([duckdb.StatementType.MULTI], [duckdb.StatementType.SELECT])


def _with_text_of_duckdb(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """`query` with its INTERVAL and BLOB columns cast to text as DuckDB writes them (`1 month`, `\\xAA`):
    as Python values an interval's months become 30 days and bytes print as `b'...'`. Binding alone
    tells the types; nothing runs here."""
    relation = con.sql(query)
    types = [str(kind) for kind in relation.types]
    if not _AS_DUCKDB_TEXT.intersection(types):
        return query
    columns = [
        f"CAST(#{n} AS VARCHAR) AS {_identifier(name)}" if kind in _AS_DUCKDB_TEXT else f"#{n} AS {_identifier(name)}"
        for n, (name, kind) in enumerate(zip(relation.columns, types, strict=True), start=1)
    ]
    return f"SELECT {', '.join(columns)} FROM (\n{_subquery(query)}\n)"


def _subquery(query: str) -> str:
    """`query` without its closing `;` and the comments after it, which a subquery cannot hold."""
    tokens = _tokens(query)
    while tokens and (tokens[-1][1] == duckdb.token_type.comment or tokens[-1][2] == ";"):
        tokens.pop()
    end = tokens[-1][0] + len(tokens[-1][2].encode()) if tokens else 0
    return query.encode()[:end].decode()


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tokens(sql: str) -> list[tuple[int, Any, str]]:
    """DuckDB's tokens of `sql`: each one's offset in the UTF-8 text (as the tokenizer gives it), kind
    and text."""
    text = sql.encode()
    starts = duckdb.tokenize(sql)
    ends = [start for start, _ in starts[1:]] + [len(text)]
    return [(start, kind, text[start:end].decode().strip()) for (start, kind), end in zip(starts, ends, strict=True)]


def _parsed(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    try:
        return list(con.extract_statements(sql))
    except duckdb.Error:
        return []


def _read_sqlite(db_path: Path, *, with_rejected: bool) -> tuple[list[str], pa.Table]:
    """The live lake files, and the quarantine as an Arrow table (empty unless the SQL names it)."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            has_lake = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'lake_files'").fetchone()
            files = (
                [str(r[0]) for r in conn.execute("SELECT path FROM lake_files WHERE retired_ms IS NULL")]
                if has_lake
                else []
            )
            rows = (
                conn.execute(
                    "SELECT event_id, batch_id, idx, stage, reasons, raw FROM quarantine ORDER BY id"
                ).fetchall()
                if with_rejected
                else []
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read {db_path}: {exc}") from exc
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in _REJECTED_SCHEMA]
    rejected = pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, _REJECTED_SCHEMA, strict=True)], schema=_REJECTED_SCHEMA
    )
    return files, rejected


def _create_views(con: duckdb.DuckDBPyConnection, files: list[Path], rejected: pa.Table) -> None:
    con.register("rejected_rows", rejected)
    con.execute("CREATE VIEW rejected AS SELECT * FROM rejected_rows")
    if files:
        names = "[" + ", ".join(_literal(str(path)) for path in files) + "]"
        con.execute(
            f"CREATE VIEW events AS SELECT * FROM read_parquet({names}, hive_partitioning = true,"
            " hive_types = {'dt': DATE, 'hour': INTEGER})"
        )
        con.execute(f"SET allowed_paths = {names}")
    else:
        empty = LAKE_SCHEMA.empty_table()
        con.register("no_events", empty)
        con.execute("CREATE VIEW events AS SELECT *, NULL::DATE AS dt, NULL::INTEGER AS hour FROM no_events")
    con.execute("SET TimeZone = 'UTC'")  # timestamps print in UTC, whatever the machine's zone
    # No extension is fetched or loaded because the SQL names one of its functions (sqlite_scan, read_xlsx):
    # the SQL runs with what DuckDB is built with (Parquet and JSON among it).
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
