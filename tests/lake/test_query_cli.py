"""`eventpipe query` as a user runs it: output forms, bad SQL, and SQL that would write."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import orjson
import pytest

from tests.conftest import make_event, ndjson
from tests.functional.test_cli import eventpipe

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with three curated events (two users) and one rejected event."""
    root = tmp_path_factory.mktemp("query")
    events = [make_event("page_view"), make_event("purchase"), make_event("signup", user_id="u-2")]
    (root / "in.ndjson").write_bytes(ndjson(*events, b'{"event_id": "bad'))
    result = eventpipe("ingest", str(root / "in.ndjson"), data_dir=root / "data")
    assert result.returncode == 0, result.stderr
    return root / "data"


def test_json_prints_an_array_of_row_objects(data_dir: Path) -> None:
    result = eventpipe(
        "query", "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1", "--json", data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == [
        {"event_type": "page_view", "n": 1},
        {"event_type": "purchase", "n": 1},
        {"event_type": "signup", "n": 1},
    ]


def test_csv_and_the_aligned_table(data_dir: Path) -> None:
    sql = "SELECT user_id, count(*) AS events FROM events GROUP BY 1 ORDER BY 1"
    rows = list(csv.reader(io.StringIO(eventpipe("query", sql, "--csv", data_dir=data_dir).stdout)))
    assert rows == [["user_id", "events"], ["u-1", "2"], ["u-2", "1"]]
    table = eventpipe("query", sql, data_dir=data_dir).stdout.splitlines()
    assert table[0].split() == ["user_id", "events"]
    assert table[2].split() == ["u-1", "2"]
    assert len({len(line) for line in table[:4]}) == 1  # aligned columns
    assert table[-1] == "(2 rows)"


def test_the_rejected_view_holds_the_quarantine(data_dir: Path) -> None:
    result = eventpipe(
        "query", 'SELECT batch_id, "index", stage, reasons, raw FROM rejected', "--json", data_dir=data_dir
    )
    (row,) = orjson.loads(result.stdout)
    assert row["stage"] == "validate"
    assert orjson.loads(row["reasons"])[0]["code"] == "malformed_json"
    assert row["raw"] == '{"event_id": "bad'
    assert row["index"] == 4  # a file's line number


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT nope FROM events", "nope"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("COPY (SELECT * FROM events) TO 'out.csv'", "COPY"),
        ("ATTACH 'other.db' AS other", "ATTACH"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("INSTALL httpfs", "(this is INSTALL)"),  # not LOAD, as DuckDB's statement type says
        ("/* first */ SET enable_external_access = true", "(this is SET)"),
        ("SET enable_external_access = true", "only SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission"),
        ("SELECT * FROM read_text('in.ndjson')", "Permission"),
        ("SELECT * FROM read_parquet('data/lake/**/*.parquet')", "Permission"),  # the lake, outside its views
        ("SELECT * FROM query('ATTACH ''other.db'' AS o')", "SELECT"),
        ("SELECT * FROM sqlite_scan('data/eventpipe.db', 'quarantine')", "sqlite_scanner extension"),  # not loaded
        ("LOAD json", "LOAD"),
        ("EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "EXPLAIN"),  # EXPLAIN ANALYZE runs what it explains
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'out.csv'", "EXPLAIN"),
        ("-- a comment, no statement", "one statement"),
        ("WITH x AS (COPY (SELECT 1) TO 'out.csv') SELECT 1", "COPY"),  # a SELECT whose WITH clause writes
        ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", "INSERT"),
        ("WITH x AS (COPY (SELECT 1) TO 'out.csv') PIVOT events ON event_type USING count(*)", "COPY"),
        ("COPY (PIVOT events ON event_type USING count(*)) TO 'out.csv'", "PIVOT"),  # a PIVOT inside a write
        ("CREATE TABLE t AS PIVOT events ON event_type USING count(*)", "PIVOT"),
        ("EXPLAIN ANALYZE PIVOT events ON event_type USING count(*)", "PIVOT"),
        ("SELECT 'x" + "y" * 100_000 + "'", "longer than"),
    ],
)
def test_bad_or_writing_sql_is_one_line_and_exit_2(data_dir: Path, sql: str, names: str) -> None:
    before = sorted(p.name for p in data_dir.parent.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-m", "eventpipe", "query", sql],
        env={**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)},
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert names in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in data_dir.parent.rglob("*")) == before  # nothing written


@pytest.mark.parametrize(
    "sql",
    [
        "PIVOT events ON event_type USING count(*) GROUP BY user_id ORDER BY user_id",
        "PIVOT events ON event_type USING count(*) GROUP BY user_id ORDER BY user_id; -- the end",
        "WITH p AS (PIVOT events ON event_type USING count(*) GROUP BY user_id) FROM p ORDER BY user_id",
        "PIVOT events ON event_type IN ('page_view', 'purchase', 'signup') USING count(*) GROUP BY user_id"
        " ORDER BY user_id",
    ],
)
def test_a_pivot_finds_its_columns_itself(data_dir: Path, sql: str) -> None:
    # DuckDB runs a PIVOT without an IN list as two statements: one that finds the values, then the query
    result = eventpipe("query", sql, "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == [
        {"user_id": "u-1", "page_view": 1, "purchase": 1, "signup": 0},
        {"user_id": "u-2", "page_view": 0, "purchase": 0, "signup": 1},
    ]


def test_a_with_clause_cannot_write_over_a_lake_file(data_dir: Path) -> None:
    # The lake's files are the ones the connection may open, and DuckDB runs a COPY in a WITH clause
    lake_file = next((data_dir / "lake").rglob("*.parquet"))
    before = lake_file.read_bytes()
    sql = f"WITH x AS (COPY (SELECT 42 AS n) TO '{lake_file}' (USE_TMP_FILE false)) SELECT 1"
    result = eventpipe("query", sql, data_dir=data_dir)
    assert (result.returncode, result.stdout) == (2, "")
    assert "COPY" in result.stderr
    assert lake_file.read_bytes() == before


def test_a_column_named_like_a_write_is_read_in_quotes(data_dir: Path) -> None:
    assert eventpipe("query", "SELECT update FROM (SELECT 1 AS update)", data_dir=data_dir).returncode == 2
    result = eventpipe("query", """SELECT "update" FROM (SELECT 'copy' AS "update")""", "--csv", data_dir=data_dir)
    assert (result.returncode, result.stdout) == (0, "update\ncopy\n")


def test_sql_that_is_not_utf8_text_is_one_line_and_exit_2(data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eventpipe", "query", b"SELECT '\xff'"],
        env={**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "eventpipe: error: the SQL is not valid UTF-8 text\n"


ODD_VALUES = (
    "SELECT 12345678901234567890123::HUGEINT AS big, MAP {1: [2]} AS map, {'k': MAP {[1]: 2}} AS nested,"
    " 'nan'::DOUBLE AS nan, 1.25::DECIMAL(4, 2) AS dec, '\\xAA'::BLOB AS blob, INTERVAL 3 DAY AS span, 1 AS big"
)


@pytest.mark.parametrize("form", [[], ["--csv"], ["--json"]])
def test_values_of_any_type_print_in_every_form(data_dir: Path, form: list[str]) -> None:
    result = eventpipe("query", ODD_VALUES, *form, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if form == ["--json"]:
        # integers past 64 bits stay numbers, map keys become text, NaN is null, a repeated name a suffix
        (row,) = json.loads(result.stdout)  # the standard library reads integers past 64 bits
        assert row == {
            "big": 12345678901234567890123,
            "map": {"1": [2]},
            "nested": {"k": {"key": [[1]], "value": [2]}},
            "nan": None,
            "dec": 1.25,
            "blob": "\\xAA",
            "span": "3 days",
            "big_2": 1,
        }
    elif form == ["--csv"]:
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["big", "map", "nested", "nan", "dec", "blob", "span", "big"]
        assert rows[1][:3] == ["12345678901234567890123", '{"1":[2]}', '{"k":{"key":[[1]],"value":[2]}}']
    else:
        assert result.stdout.splitlines()[2].split()[:2] == ["12345678901234567890123", '{"1":[2]}']


@pytest.mark.parametrize("form", [[], ["--csv"], ["--json"]])
def test_intervals_and_blobs_print_as_duckdb_writes_them(data_dir: Path, form: list[str]) -> None:
    # Python's timedelta would hold 1 month as 30 days, and bytes print as b'...'; a repeated name, a
    # quoted one and a closing semicolon with a comment survive the cast around the query.
    sql = (
        'SELECT INTERVAL 1 MONTH + INTERVAL 90 MINUTE AS span, \'a\\x00\\xAA\'::BLOB AS "the ""blob""",'
        " 1 AS n, 2 AS n; -- the end"
    )
    result = eventpipe("query", sql, *form, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    if form == ["--json"]:
        assert json.loads(result.stdout) == [
            {"span": "1 month 01:30:00", 'the "blob"': "a\\x00\\xAA", "n": 1, "n_2": 2}
        ]
    elif form == ["--csv"]:
        assert result.stdout == 'span,"the ""blob""",n,n\n1 month 01:30:00,a\\x00\\xAA,1,2\n'
    else:
        assert result.stdout.splitlines()[2].split() == ["1", "month", "01:30:00", "a\\x00\\xAA", "1", "2"]


def test_csv_and_the_table_write_booleans_times_and_nested_values_as_json_does(data_dir: Path) -> None:
    sql = (
        "SELECT bot, NOT bot AS human, NULL AS nothing, TIMESTAMPTZ '2026-11-28 05:59:30.5+00' AS at,"
        " {'ok': true, 'n': NULL} AS nested, [false, NULL] AS list FROM events WHERE event_type = 'signup'"
    )
    (row,) = orjson.loads(eventpipe("query", sql, "--json", data_dir=data_dir).stdout)
    assert row == {
        "bot": False,
        "human": True,
        "nothing": None,
        "at": "2026-11-28T05:59:30.500000+00:00",
        "nested": {"ok": True, "n": None},
        "list": [False, None],
    }
    rows = list(csv.reader(io.StringIO(eventpipe("query", sql, "--csv", data_dir=data_dir).stdout)))
    assert rows[1] == ["false", "true", "", "2026-11-28T05:59:30.500000+00:00", '{"ok":true,"n":null}', "[false,null]"]
    table = eventpipe("query", sql, data_dir=data_dir).stdout.splitlines()
    assert table[2].split() == ["false", "true", "NULL", *rows[1][3:]]


def test_csv_tells_null_from_an_empty_text_as_duckdb_and_postgresql_do(data_dir: Path, tmp_path: Path) -> None:
    import duckdb

    sql = """SELECT * FROM (VALUES (NULL, 'a'), ('', 'b,c'), ('say "hi"', 'd' || chr(10) || 'e')) t(x, y)"""
    # WHEN the result is written as CSV
    written = eventpipe("query", sql, "--csv", data_dir=data_dir).stdout
    # THEN NULL is an empty field and an empty text a quoted one, as DuckDB's own COPY writes them
    assert written.splitlines()[:3] == ["x,y", ",a", '"","b,c"']
    copied = tmp_path / "copied.csv"
    duckdb.connect().execute(f"COPY ({sql}) TO '{copied}' (HEADER)")
    assert written == copied.read_text(encoding="utf-8")
    # AND a reader that keeps quoted empty fields apart (PostgreSQL's COPY FROM, DuckDB's below) reads back
    # exactly what the query gave
    (tmp_path / "out.csv").write_text(written, encoding="utf-8")
    options = "header = true, all_varchar = true, allow_quoted_nulls = false"
    read = duckdb.connect().execute(f"SELECT * FROM read_csv('{tmp_path / 'out.csv'}', {options})")
    assert read.fetchall() == [(None, "a"), ("", "b,c"), ('say "hi"', "d\ne")]


def test_the_table_shows_control_characters_and_aligns_wide_ones(data_dir: Path) -> None:
    # an event's text is someone else's input: an escape sequence in it must not reach the terminal
    sql = "SELECT * FROM (VALUES ('日本語', 'a' || chr(27) || '[2J' || chr(10) || 'b'), ('ab', 'c')) t(wide, ctl)"
    table = eventpipe("query", sql, data_dir=data_dir).stdout.splitlines()
    assert "\x1b" not in "".join(table)
    assert table[2] == "日本語  a\\x1b[2J b"
    assert table[3] == "ab      c"  # 日本語 is six columns wide on a terminal
    assert table[1] == "------  ----------"


def test_a_directory_without_data_exits_non_zero_and_creates_nothing(tmp_path: Path) -> None:
    result = eventpipe("query", "SELECT 1", data_dir=tmp_path / "none")
    assert result.returncode != 0
    assert "no data" in result.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_kill_9_while_ingesting_then_a_restart_leaves_each_event_once(tmp_path: Path) -> None:
    # GIVEN an ingest of 20,000 events killed part way (the lake is written at its end, or not at all)
    events = [make_event() for _ in range(20_000)]
    source = tmp_path / "big.ndjson"
    source.write_bytes(ndjson(*events))
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "eventpipe", "ingest", str(source)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3.0)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # WHEN it runs again to its end
    assert subprocess.run(command, env=env, capture_output=True, timeout=300, check=False).returncode == 0
    # THEN the lake holds every event exactly once
    result = eventpipe(
        "query", "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events", "--json", data_dir=tmp_path / "data"
    )
    assert orjson.loads(result.stdout) == [{"n": 20_000, "d": 20_000}]


def test_results_of_any_size_stream_and_the_table_stops_at_its_cap(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventpipe import cli
    from eventpipe.lake import cli as lake_cli
    from eventpipe.lake import query

    monkeypatch.setenv("EVENTPIPE_DATA_DIR", str(data_dir))
    monkeypatch.setattr(query, "PAGE_ROWS", 7)
    monkeypatch.setattr(lake_cli, "MAX_TABLE_ROWS", 20)
    sql = "SELECT range AS n, 1.5 AS d FROM range(25)"
    assert cli.main(["query", sql, "--json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [r["n"] for r in rows] == list(range(25))
    assert rows[0]["d"] == 1.5  # DECIMAL as a number
    assert cli.main(["query", sql, "--csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 26
    assert cli.main(["query", sql]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + 20 + 1
    assert "the first 20 rows" in table[-1]
    # AND the table holds at most MAX_TABLE_CHARS of text (here 1,000: the rows past it are left out)
    monkeypatch.setattr(lake_cli, "MAX_TABLE_CHARS", 1_000)
    assert cli.main(["query", "SELECT repeat('x', 300) AS s FROM range(25)"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "the first 4 rows" in table[-1]


@pytest.mark.parametrize("damage", ["cut short", "deleted"])
def test_a_damaged_or_missing_lake_file_is_one_line_and_exit_2(tmp_path: Path, damage: str) -> None:
    (tmp_path / "in.ndjson").write_bytes(ndjson(make_event(), make_event(user_id="u-2")))
    data_dir = tmp_path / "data"
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0
    (path,) = (data_dir / "lake").rglob("*.parquet")
    if damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:100])
    result = eventpipe("query", "SELECT count(*) FROM events", data_dir=data_dir)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("eventpipe: error: cannot read the lake: ")
    assert len(result.stderr.splitlines()) == 1
    # AND an erasure says which file it cannot read, without a traceback, or goes past a deleted one
    erased = eventpipe("erase", "--user-id", "u-2", data_dir=data_dir)
    assert "Traceback" not in erased.stderr
    if damage == "deleted":
        assert erased.returncode == 0, erased.stderr
        assert eventpipe("query", "SELECT count(*) FROM events", data_dir=data_dir).returncode == 0
    else:
        assert erased.returncode == 2
        assert f"cannot read the lake file {path}" in erased.stderr
