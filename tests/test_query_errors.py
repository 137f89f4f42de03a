"""Errors of the query commands, through the real CLI on real DuckDB files: a DuckDB file that is not
a spanreel database is refused and left untouched (``prune``, the collector) or named as such
(``traces``, ``show``, ``sql``) instead of DuckDB's catalog errors; DuckDB's ``LINE n:`` in a SQL
error counts the lines of the user's query (directly and through a running collector's query API).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result
from conftest import clean_env, start_collector
from test_replay_support import rec, write_db

from spanreel.cli import main

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _foreign(path: Path, *tables: str) -> Path:
    """Another application's DuckDB file holding ``tables`` (one row each); none: an empty file."""
    con = duckdb.connect(str(path))
    for table in tables:
        con.execute(f"CREATE TABLE {table} (x INTEGER)")
        con.execute(f"INSERT INTO {table} VALUES (1)")
    con.close()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        return [name for (name,) in rows]
    finally:
        con.close()


def _not_spanreel(res: Result, path: Path, reason: str = "no schema_migrations table") -> None:
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith(f"Error: not a spanreel database: {path} ({reason})")
    assert "give --db the file the collector writes" in res.stderr
    assert "Catalog Error" not in res.output and "Traceback" not in res.output


@pytest.fixture
def spanreel_db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "spans.duckdb", [rec("a1", name="root", start_ms=0, dur_ms=5)])


# -- a DuckDB file that is not spanreel's ----------------------------------------------------------


@pytest.mark.parametrize("tables", [("t",), ()], ids=["with-tables", "empty"])
def test_prune_refuses_a_foreign_database_and_leaves_it_untouched(
    tmp_path: Path, tables: tuple[str, ...]
) -> None:
    db = _foreign(tmp_path / "other.duckdb", *tables)
    before = _digest(db)
    for dry_run in ((), ("--dry-run",)):
        _not_spanreel(run("prune", "--older-than", "1d", "--db", str(db), *dry_run), db)
    assert _digest(db) == before
    assert _tables(db) == list(tables)  # no spans, traces, schema_migrations … created


def test_collector_refuses_a_foreign_database_and_leaves_it_untouched(tmp_path: Path) -> None:
    db = _foreign(tmp_path / "other.duckdb", "t")
    before = _digest(db)
    proc = subprocess.run(
        [sys.executable, "-m", "spanreel", "collector", "--db", str(db),
         "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
         "--query-endpoint", "127.0.0.1:0"],
        cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert f"Error: not a spanreel database: {db} (no schema_migrations table)" in proc.stderr
    assert _digest(db) == before and _tables(db) == ["t"]


def test_the_collector_still_initialises_an_empty_duckdb_file(tmp_path: Path) -> None:
    from spanreel.collector._writer import open_database

    db = _foreign(tmp_path / "new.duckdb")  # an existing file without any table: a new database
    open_database(db).close()
    assert {"schema_migrations", "spans", "trace_index"} <= set(_tables(db))
    assert run("traces", "--db", str(db)).exit_code == 0


@pytest.mark.parametrize("tables", [("t",), ("t", "traces", "spans"), ()], ids=["t", "same-names", "empty"])
def test_read_commands_say_a_foreign_file_is_not_a_spanreel_database(
    tmp_path: Path, tables: tuple[str, ...]
) -> None:
    db = _foreign(tmp_path / "other.duckdb", *tables)
    before = _digest(db)
    _not_spanreel(run("traces", "--db", str(db)), db)
    _not_spanreel(run("show", TRACE, "--db", str(db)), db)
    _not_spanreel(run("sql", "SELECT count(*) FROM traces", "--db", str(db)), db)
    _not_spanreel(run("sql", "SELECT 1", "--db", str(db), "--json"), db)
    assert _digest(db) == before


_THEIRS = "its schema_migrations table is another application's"

# another application's own schema_migrations: Alembic-style, and spanreel's columns with its names
_FOREIGN_MIGRATIONS = {
    "alembic": (
        "CREATE TABLE schema_migrations (version_num VARCHAR PRIMARY KEY)",
        "INSERT INTO schema_migrations VALUES ('ae1027a6acf')",
    ),
    "same-columns": (
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)",
        "INSERT INTO schema_migrations VALUES (1, 'create users', now()::TIMESTAMP)",
    ),
    "empty-table-beside-others": (
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)",
    ),
}


@pytest.mark.parametrize("kind", sorted(_FOREIGN_MIGRATIONS))
def test_a_foreign_database_with_its_own_schema_migrations_is_refused_and_left_untouched(
    tmp_path: Path, kind: str
) -> None:
    from spanreel.collector._schema import NotSpanreelDatabaseError
    from spanreel.collector._writer import open_database

    db = _foreign(tmp_path / "app.duckdb", "users")
    con = duckdb.connect(str(db))
    for statement in _FOREIGN_MIGRATIONS[kind]:
        con.execute(statement)
    con.close()
    before = _digest(db)
    _not_spanreel(run("prune", "--older-than", "1d", "--db", str(db)), db, _THEIRS)
    _not_spanreel(run("traces", "--db", str(db)), db, _THEIRS)
    _not_spanreel(run("sql", "SELECT 1", "--db", str(db)), db, _THEIRS)
    with pytest.raises(NotSpanreelDatabaseError, match="another application's"):
        open_database(db).close()  # what the collector opens its database with
    assert _digest(db) == before and _tables(db) == ["schema_migrations", "users"]


def test_a_database_left_with_only_an_empty_schema_migrations_table_is_completed(tmp_path: Path) -> None:
    """A crash between creating schema_migrations and committing migration 1 leaves that table
    alone: it is spanreel's, and the next start finishes creating the database."""
    from spanreel.collector._schema import MIGRATIONS
    from spanreel.collector._writer import open_database

    db = _foreign(tmp_path / "half.duckdb")
    con = duckdb.connect(str(db))
    con.execute(_FOREIGN_MIGRATIONS["empty-table-beside-others"][0])
    con.close()
    open_database(db).close()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (MIGRATIONS[-1].version,)
    con.close()
    assert run("traces", "--db", str(db)).exit_code == 0


def test_read_commands_still_read_a_spanreel_database(spanreel_db: Path) -> None:
    res = run("sql", "SELECT name FROM spans", "--db", str(spanreel_db), "--json")
    assert res.exit_code == 0, res.output
    assert '"root"' in res.stdout


# -- LINE numbers of SQL errors ----------------------------------------------------------------------


def _error_line(res: Result) -> str:
    assert res.exit_code == 1, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("LINE ")]
    assert len(lines) == 1, res.stderr
    return lines[0]


# (query, the LINE line DuckDB's error must show)
_LINE_CASES = [
    ("SELECT 'a'::INT", "LINE 1: SELECT 'a'::INT"),
    ("SELECT 1,\n  2,\n  'a'::INT", "LINE 3:   'a'::INT"),
    ("\n\nSELECT 1,\n  'a'::INT FROM spans", "LINE 4:   'a'::INT FROM spans"),  # blank lines first
    ("SELECT 1;\nSELECT 2,\n  'a'::INT", "LINE 3:   'a'::INT"),  # in the second statement
    ("SELECT 'a'::INT;\nSELECT 2", "LINE 1: SELECT 'a'::INT"),  # in the first of two (DuckDB drops the ;)
    ("SELECT 1,\n  'a'::INT; -- a comment", "LINE 2:   'a'::INT; -- a comment"),  # not LIMIT-wrapped
    ("SELECT 1,\n  2 FRM spans", "LINE 2:   2 FRM spans"),  # syntax error: was right already
]


@pytest.mark.parametrize(("query", "expected"), _LINE_CASES)
def test_sql_error_lines_count_the_users_query(spanreel_db: Path, query: str, expected: str) -> None:
    assert _error_line(run("sql", query, "--db", str(spanreel_db))) == expected
    assert _error_line(run("sql", query, "--db", str(spanreel_db), "--json")) == expected


def test_sql_error_lines_through_the_query_api(tmp_path: Path) -> None:
    db = write_db(tmp_path / "spans.duckdb", [rec("a1", name="root", start_ms=0, dur_ms=5)])
    with start_collector(db):
        for query, expected in _LINE_CASES:
            assert _error_line(run("sql", query, "--db", str(db))) == expected, query


# -- times are UTC, whatever the machine's zone --------------------------------------------------

_TZ_SQL = (
    "SELECT current_setting('TimeZone') AS tz, start_time::TIMESTAMPTZ AS start_tz, "
    "(SELECT count(*) FROM spans WHERE start_time > (TIMESTAMPTZ '2026-11-21 20:00:00+00')::TIMESTAMP) "
    "AS since_20h FROM spans"
)  # the span starts at 00:47 UTC


def _sql_in_zone(db: Path, zone: str) -> list[Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "spanreel", "sql", _TZ_SQL, "--db", str(db), "--json"],
        env=clean_env(TZ=zone), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows: list[Any] = json.loads(proc.stdout)["rows"]
    return rows


def test_sql_times_are_utc_in_every_zone_directly_and_through_the_collector(tmp_path: Path) -> None:
    """The stored times are UTC, but DuckDB took the zone of the process that ran the query: a
    span at 00:47 UTC read as 15:47 the day before in Tokyo, a "since" filter counted other spans in
    New York, and the collector's query API answered in the collector's zone."""
    db = write_db(tmp_path / "spans.duckdb", [rec("a1", name="root", start_ms=0, dur_ms=5)])
    expected = _sql_in_zone(db, "UTC")
    ((tz, start, since_20h),) = expected
    assert (tz, start, since_20h) == ("UTC", "2026-11-22T00:47:00.000000Z", 1)
    for zone in ("Asia/Tokyo", "America/New_York"):
        assert _sql_in_zone(db, zone) == expected, zone
    with start_collector(db, env={"TZ": "America/New_York"}):
        assert _sql_in_zone(db, "Asia/Tokyo") == expected
