"""Storage, query and config tests on real DuckDB files in tmp_path (no network)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from spanreel._config import ConfigError, load_config
from spanreel.collector import NoDatabaseError, QueryError, load_collector_config, run_query
from spanreel.collector._query import connect, execute_read_only
from spanreel.collector._schema import MIGRATIONS, migrate, rows_to_arrow
from spanreel.collector._writer import SpanWriter, open_database

REPO = Path(__file__).resolve().parents[1]
T1 = "11" * 16
T2 = "22" * 16


def _row(trace_id: str, span_id: str, parent: str | None, start: int, end: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "trace_state": "",
        "name": f"span {span_id[:4]}",
        "kind": "INTERNAL",
        "service_name": "svc",
        "scope_name": "test",
        "scope_version": "1",
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ns": end - start,
        "status_code": "UNSET",
        "status_message": "",
        "attributes": {"k": "v"},
        "resource_attributes": {"service.name": "svc"},
        "events": [],
        "links": [],
        "operation": None,
        "provider": None,
        "request_model": None,
        "response_model": None,
        "input_tokens": None,
        "output_tokens": None,
        "finish_reasons": None,
        "session_id": None,
        "conversation_id": None,
    }
    row.update(kw)
    return row


def test_migrations_idempotent_and_recorded(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    assert [m.version for m in migrate(con)] == [m.version for m in MIGRATIONS]
    assert migrate(con) == []
    recorded = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert recorded == [(m.version, m.name) for m in MIGRATIONS]
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"spans", "trace_index", "llm_calls", "traces", "schema_migrations"} <= tables
    # Every column of the tables and views is described in the catalog, as docs/schema.md says
    # (the views' columns had no comment).
    undescribed = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' AND comment IS NULL "
        "AND table_name IN ('spans', 'trace_index', 'llm_calls', 'traces')"
    ).fetchall()
    assert undescribed == []
    trace_start = con.execute(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'traces' AND column_name = 'start_time'"
    ).fetchone()
    assert trace_start is not None and str(trace_start[0]).startswith("earliest span start")


def test_writer_group_commit_duplicates_and_trace_index(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    writer = SpanWriter(open_database(db))
    base = 1_700_000_000_000_000_000
    child = _row(
        T1,
        "bb" * 8,
        "aa" * 8,
        base + 10,
        base + 20,
        operation="chat",
        input_tokens=5,
        output_tokens=2,
        session_id="s1",
        finish_reasons=["stop"],
    )
    batch1 = rows_to_arrow([child, child])  # duplicate inside one batch
    root = _row(T1, "aa" * 8, None, base, base + 100, name="root", service_name="root-svc")
    other = _row(T2, "cc" * 8, None, base + 1, base + 2)
    futures = [writer.submit(batch1), writer.submit(rows_to_arrow([root, other]))]
    assert [f.result(timeout=10).committed for f in futures] == [2, 2]
    # A retried export: same spans again, plus one new LLM span of trace 1.
    more = _row(T1, "dd" * 8, "aa" * 8, base + 30, base + 150, operation="chat", input_tokens=1)
    writer.submit(rows_to_arrow([child, root, more])).result(timeout=10)
    assert writer.stored_spans == 4 and writer.duplicate_spans == 3
    cur = writer.cursor()
    result = execute_read_only(cur, "SELECT count(*) FROM spans")
    assert result.rows == [[4]]
    traces = execute_read_only(
        cur,
        "SELECT trace_id, start_time, end_time, root_span_id, root_name, service_name, span_count, "
        "llm_calls, input_tokens, output_tokens, session_id, duration_ns FROM traces ORDER BY trace_id",
    )
    assert traces.rows[0] == [
        T1,
        "2023-11-14T22:13:20.000000000Z",
        "2023-11-14T22:13:20.000000150Z",
        "aa" * 8,
        "root",
        "root-svc",
        3,
        2,
        6,
        2,
        "s1",
        150,
    ]
    assert traces.rows[1][0] == T2 and traces.rows[1][6] == 1
    llm = execute_read_only(cur, "SELECT span_id, finish_reasons, attributes FROM llm_calls ORDER BY span_id")
    assert llm.rows == [["bb" * 8, ["stop"], '{"k":"v"}'], ["dd" * 8, None, '{"k":"v"}']]
    cur.close()
    writer.close()
    with pytest.raises(RuntimeError):
        writer.submit(rows_to_arrow([other]))


class _FailingCommit:
    """A writer connection whose COMMIT fails as DuckDB's does when the disk is full: the
    transaction is ended, then the error is raised."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.fail = True

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self.fail:
            self._con.execute("ROLLBACK")
            raise duckdb.IOException(
                'Failed to commit: Could not write file "w.wal": No space left on device'
            )
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_a_failed_commit_reports_its_own_error_and_writing_goes_on(tmp_path: Path) -> None:
    """The error of a failed COMMIT reaches the client (it used to be replaced by ROLLBACK's "no
    transaction is active"); nothing of that batch is stored and the next batch is."""
    con = _FailingCommit(open_database(tmp_path / "full.duckdb"))
    writer = SpanWriter(con)  # type: ignore[arg-type]
    row = _row(T1, "aa" * 8, None, 1_700_000_000_000_000_000, 1_700_000_000_000_000_100)
    with pytest.raises(duckdb.IOException, match="No space left on device"):
        writer.submit(rows_to_arrow([row])).result(timeout=30)
    con.fail = False
    assert writer.submit(rows_to_arrow([row])).result(timeout=30).committed == 1
    cursor = writer.cursor()
    assert cursor.execute("SELECT count(*) FROM spans").fetchone() == (1,)
    cursor.close()
    writer.close()


def test_second_writer_process_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "locked.duckdb"
    writer = SpanWriter(open_database(db))
    code = "\n".join(
        [
            "import sys",
            "from pathlib import Path",
            "from spanreel.collector._writer import DatabaseLockedError, open_database",
            "try:",
            "    open_database(Path(sys.argv[1]))",
            "except DatabaseLockedError as e:",
            "    print(e)",
            "    sys.exit(3)",
        ]
    )
    proc = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60)
    writer.close()
    assert proc.returncode == 3, proc.stderr
    assert str(db) in proc.stdout and "--db" in proc.stdout


def test_run_query_direct_path_and_read_only(tmp_path: Path) -> None:
    db = tmp_path / "q.duckdb"
    with pytest.raises(NoDatabaseError):
        run_query("SELECT 1", db)
    writer = SpanWriter(open_database(db))
    writer.submit(rows_to_arrow([_row(T1, "aa" * 8, None, 5, 9)])).result(timeout=10)
    writer.close()
    result = run_query("SELECT trace_id, start_time, attributes FROM spans WHERE trace_id = ?", db, [T1])
    assert result.columns == ["trace_id", "start_time", "attributes"]
    assert result.rows == [[T1, "1970-01-01T00:00:00.000000005Z", '{"k":"v"}']]
    for sql in (
        "INSERT INTO spans (trace_id, span_id) VALUES ('a', 'b')",
        "DELETE FROM spans",
        f"COPY spans TO '{tmp_path / 'x.csv'}'",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS o",
        "SELECT 1; DROP TABLE spans",
        "CREATE TABLE x (a INT)",
        "PRAGMA enable_profiling",
    ):
        with pytest.raises(QueryError):
            run_query(sql, db)
    with pytest.raises(QueryError, match=r"(?i)permission|disabled"):
        run_query("SELECT * FROM read_csv('/etc/hostname')", db)
    with pytest.raises(QueryError):
        run_query("SELEC nonsense", db)
    assert run_query("SELECT count(*) FROM spans", db).rows == [[1]]


def test_json_safe_values() -> None:
    con = connect()
    result = execute_read_only(
        con,
        "SELECT TIMESTAMP '2024-01-02 03:04:05.123456' AS ts, TIMESTAMPTZ '2024-01-02 05:04:05+02' AS tz, "
        "DATE '2024-01-02' AS d, 'ab'::BLOB AS b, 12::HUGEINT AS h, 1.25::DECIMAL(5,2) AS dec, "
        "'NaN'::DOUBLE AS nan, [1, 2] AS l, {'a': 1} AS s, MAP {'k': 2} AS m, '{\"x\":1}'::JSON AS j, "
        "sum(x) AS total FROM range(3) t(x)",
    )
    assert result.rows == [
        [
            "2024-01-02T03:04:05.123456Z",
            "2024-01-02T03:04:05.000000Z",
            "2024-01-02",
            "YWI=",
            12,
            1.25,
            "NaN",
            [1, 2],
            {"a": 1},
            {"k": 2},
            '{"x":1}',
            3,
        ]
    ]
    json.dumps(result.rows, allow_nan=False)
    explain = execute_read_only(con, "EXPLAIN SELECT 42")
    assert explain.columns and explain.rows
    # Timestamps and dates inside lists, structs and maps (a span's times aggregated with list()
    # or a whole row as a struct): pyarrow refuses nanoseconds without pandas, and the query API
    # answered HTTP 500. Dates Python cannot hold (DuckDB's infinities, years past 9999) too.
    nested = execute_read_only(
        con,
        "SELECT [TIMESTAMP_NS '2024-01-02 03:04:05.123456789', NULL] AS l, "
        "{'at': TIMESTAMP_NS '2024-01-02 03:04:05.000000001', 'day': DATE 'infinity'} AS s, "
        "MAP {'k': [DATE '2024-01-02']} AS m, NULL::STRUCT(t TIMESTAMP)[] AS n, "
        "DATE '10000-01-01' AS far, TIMESTAMP '-infinity' AS past, DATE '0044-03-15 (BC)' AS bc, "
        "array_value(TIMESTAMP_NS '2024-01-02 03:04:05.000000001', NULL) AS a",
    )
    assert nested.rows == [
        [
            ["2024-01-02T03:04:05.123456789Z", None],
            {"at": "2024-01-02T03:04:05.000000001Z", "day": "infinity"},
            {"k": ["2024-01-02"]},
            None,
            "+10000-01-01",
            "-infinity",
            "-0043-03-15",
            ["2024-01-02T03:04:05.000000001Z", None],
        ]
    ]
    # Intervals as exact ISO 8601 durations (they were P0M1DT1e-06S: float seconds); an empty map
    # is an object like any map (it was [], to_pylist cannot tell it from a list).
    exact = execute_read_only(
        con,
        "SELECT INTERVAL '1 day 0.000001 second' AS a, INTERVAL '0.00001 second' AS b, "
        "-INTERVAL '1.5 second' AS c, INTERVAL '3 months 2 hours' AS d, "
        "TIMESTAMP '2024-01-02' - TIMESTAMP '2024-01-01 23:59:59.5' AS td, "
        "MAP {}::MAP(VARCHAR, INT) AS m0, [MAP {}::MAP(VARCHAR, INT), MAP {'a': 1}] AS ml, "
        "{'s': MAP {}::MAP(VARCHAR, INT)} AS sm",
    )
    assert exact.rows == [
        ["P0M1DT0.000001S", "P0M0DT0.00001S", "P0M0DT-1.5S", "P3M0DT7200S", "P0M0DT0.5S",
         {}, [{}, {"a": 1}], {"s": {}}],
    ]  # fmt: skip


def test_earlier_statements_are_read_only_up_to_max_rows() -> None:
    """``SELECT <millions of rows>; SELECT 1`` read the whole first result into memory, past the
    query API's row cap; it is read up to max_rows now (the error() below fires past 100,000)."""
    con = connect()
    first = "SELECT CASE WHEN i < 100000 THEN i ELSE error('read past the cap') END FROM range(10000000) t(i)"
    result = execute_read_only(con, f"{first}; SELECT 1 AS one", max_rows=5)
    assert (result.rows, result.truncated) == ([[1]], False)
    with pytest.raises(QueryError, match="read past the cap"):  # no cap: read whole, as asked
        execute_read_only(con, f"{first}; SELECT 1 AS one")
    # A trailing "; -- comment" broke the LIMIT the row cap wrapped the statement in (the query
    # API applies its cap to every query).
    for sql in (
        "SELECT 1 AS one; -- note",
        "SELECT 1 AS one;\n-- trailing\n",
        "SUMMARIZE SELECT 1 AS one; -- x",
    ):
        assert execute_read_only(con, sql, max_rows=5).rows[0][0] in (1, "one"), sql
    capped = execute_read_only(con, "SELECT * FROM range(10); -- x", max_rows=3)
    assert (capped.rows, capped.truncated) == ([[0], [1], [2]], True)


def test_explain_analyze_cannot_write(tmp_path: Path) -> None:
    con = connect(str(tmp_path / "e.duckdb"))
    con.execute("CREATE TABLE t (a INT)")
    with pytest.raises(QueryError):
        execute_read_only(con, "EXPLAIN ANALYZE INSERT INTO t VALUES (1)")
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(0,)]


# -- config --------------------------------------------------------------------------------------


def test_repo_config_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    monkeypatch.delenv("SPANREEL_GRPC_ENDPOINT", raising=False)
    monkeypatch.setenv("SPANREEL_HTTP_ENDPOINT", "127.0.0.1:5318")
    cfg = load_collector_config(REPO / "otel-config.yaml")
    assert cfg.grpc_endpoint == "127.0.0.1:4317" and cfg.http_endpoint == "127.0.0.1:5318"
    assert cfg.query_endpoint == "127.0.0.1:0" and cfg.max_recv_msg_size == 64 * 1024 * 1024
    assert cfg.db_path.name == "spanreel.duckdb"
    cfg = load_collector_config(REPO / "otel-config.yaml", db=tmp_path / "x.duckdb", grpc_endpoint="[::1]:0")
    assert cfg.db_path == tmp_path / "x.duckdb" and cfg.grpc_endpoint == "[::1]:0"


def test_defaults_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPANREEL_DB", str(tmp_path / "env.duckdb"))
    cfg = load_collector_config()
    assert (cfg.grpc_endpoint, cfg.http_endpoint, cfg.query_endpoint) == (
        "127.0.0.1:4317",
        "127.0.0.1:4318",
        "127.0.0.1:0",
    )
    assert cfg.db_path == tmp_path / "env.duckdb"


_VALID = """
receivers:
  otlp/main:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        max_recv_msg_size_mib: 1
exporters:
  duckdb/local:
    path: rel.duckdb
service:
  pipelines:
    traces:
      receivers: [otlp/main]
      exporters: [duckdb/local]
"""


def test_named_components_and_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(_VALID)
    cfg = load_collector_config(path)
    assert cfg.grpc_endpoint == "127.0.0.1:0" and cfg.http_endpoint is None
    assert cfg.max_recv_msg_size == 1024 * 1024 and cfg.db_path == tmp_path / "rel.duckdb"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (_VALID.replace("otlp/main:\n", "zipkin:\n", 1), "receivers.zipkin"),
        (_VALID.replace("duckdb/local:\n", "kafka:\n", 1), "exporters.kafka"),
        (  # a forwarder alone: the pipeline still needs its duckdb exporter
            _VALID.replace("duckdb/local:\n    path: rel.duckdb", "otlp:\n    endpoint: x:4317").replace(
                "exporters: [duckdb/local]", "exporters: [otlp]"
            ),
            "one duckdb exporter",
        ),
        (_VALID.replace("exporters: [duckdb/local]", "exporters: [duckdb/other]"), "duckdb/other"),
        (_VALID.replace("    traces:", "    logs:"), "service.pipelines"),
        (_VALID.replace("endpoint: 127.0.0.1:0", "endpoint: nohost"), "protocols.grpc.endpoint"),
        # an exporter's URL copied into a receiver: it failed only when the collector started
        (_VALID.replace("endpoint: 127.0.0.1:0", "endpoint: http://0.0.0.0:4317"), "got the URL"),
        (_VALID.replace("max_recv_msg_size_mib: 1", "max_recv_msg_size_mib: -1"), "max_recv_msg_size_mib"),
        (_VALID.replace("path: rel.duckdb", "path: rel.duckdb\n    query_endpoint: 0.0.0.0:0"), "loopback"),
        # passed --check-config, then grpc refused to start (its limit is a signed 32-bit int)
        (_VALID.replace("max_recv_msg_size_mib: 1", "max_recv_msg_size_mib: 2048"), "gRPC's largest message"),
        # fractions of a byte passed the positive check and became 0
        (_VALID.replace("path: rel.duckdb", "max_queue_bytes: 0.5"), "max_queue_bytes is a number of bytes"),
        (
            _VALID.replace(
                "max_recv_msg_size_mib: 1",
                "max_recv_msg_size_mib: 1\n      http:\n"
                "        endpoint: 127.0.0.1:0\n        max_request_body_size: 1.5",
            ),
            "max_request_body_size is a number of bytes",
        ),
        # two listeners on one port: the second could not bind
        (
            _VALID.replace("endpoint: 127.0.0.1:0", "endpoint: 127.0.0.1:45555").replace(
                "max_recv_msg_size_mib: 1",
                "max_recv_msg_size_mib: 1\n      http:\n        endpoint: 0.0.0.0:45555",
            ),
            "both listen on port 45555",
        ),
        # PyYAML keeps the last of two equal keys silently; the OTel Collector rejects the file
        (
            _VALID.replace("    path: rel.duckdb", "    path: rel.duckdb\n    path: other.duckdb"),
            "duplicate key 'path'",
        ),
    ],
)
def test_config_errors_name_the_key(
    text: str, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("/", "/")):
        load_collector_config(path)


def test_yaml_merges_are_not_duplicate_keys(tmp_path: Path) -> None:
    """A mapping that merges (``<<``) and overrides a merged key, itself merged elsewhere, was
    reported as a duplicate key: PyYAML had flattened it by the time it was checked."""
    path = tmp_path / "m.yaml"
    text = "base: &b {<<: &z {x: 1}, x: 2}\nc: {<<: *b, y: 3}\nd: *b\nm: {'1': a, 1: b}\n<<: *z\n"
    path.write_text(text)
    assert load_config(path) == yaml.safe_load(text)  # as PyYAML merges, whatever it makes of it
    path.write_text("c: {<<: {x: 1}, y: 2, y: 3}\n")
    with pytest.raises(ConfigError, match="duplicate key 'y'"):
        load_config(path)


@pytest.mark.parametrize(
    ("first", "second"), [("~", "null"), ("1", "0x1"), ("true", "True"), ("x", "'x'"), ("1.0", "1.00")]
)
def test_yaml_spellings_of_one_key_are_duplicates(first: str, second: str, tmp_path: Path) -> None:
    """PyYAML reads both spellings as one key and keeps the second value silently."""
    path = tmp_path / "d.yaml"
    path.write_text(f"m:\n  {first}: a\n  {second}: b\n")
    with pytest.raises(ConfigError, match="duplicate key"):
        load_config(path)


def test_schema_doc_is_generated_from_the_migrations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spanreel.collector._schema_doc import DEFAULT_OUTPUT, main, render_schema_doc

    page = render_schema_doc()
    assert DEFAULT_OUTPUT == REPO / "docs" / "schema.md"
    assert DEFAULT_OUTPUT.read_text() == page, (
        "docs/schema.md is stale: run python -m spanreel.collector._schema_doc"
    )
    assert main(["--check"]) == 0
    for migration in MIGRATIONS:
        assert f"| {migration.version} | {migration.name} |" in page
    assert "| trace_id | VARCHAR | no | 32 lowercase hex characters |" in page
    stale = tmp_path / "schema.md"
    stale.write_text(page.replace("32 lowercase hex", "32 hex"))
    assert main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    # The descriptions live in the database too.
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    migrate(con)
    comment = con.execute(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'spans' AND column_name = 'duration_ns'"
    ).fetchall()
    assert comment == [("end_time - start_time, nanoseconds",)]


def test_collector_database_uses_small_row_groups_and_needs_no_big_checkpoint(tmp_path: Path) -> None:
    """A 10,000-span group is written in 4096-row row groups (DuckDB writes them at commit, so the
    WAL stays small and checkpoints short); reopening keeps the data and the layout of new rows."""
    db = tmp_path / "rg.duckdb"
    trace = "ab" * 16
    rows = [
        _row(
            trace,
            f"{i + 1:016x}",
            None if i == 0 else "0" * 15 + "1",
            i,
            i + 5,
            attributes={"k": f"{i:01000d}"},
        )
        for i in range(10_000)
    ]  # ~10 MB of attributes
    writer = SpanWriter(open_database(db))
    assert writer.submit(rows_to_arrow(rows)).result(timeout=60).committed == 10_000
    wal = Path(str(db) + ".wal")
    # Full row groups went straight to the file: the WAL holds at most the last partial one.
    assert not wal.exists() or wal.stat().st_size < 4 * 1024 * 1024
    cur = writer.cursor()
    sizes = cur.execute(
        "SELECT max(count) FROM (SELECT row_group_id, max(count) AS count "
        "FROM pragma_storage_info('spans') GROUP BY row_group_id)"
    ).fetchone()
    cur.close()
    writer.close()
    assert sizes is not None and sizes[0] <= 4096
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), max(span_count) FROM spans, trace_index").fetchone() == (
        10_000,
        10_000,
    )
    con.close()


def test_check_config_fails_for_an_address_this_machine_cannot_listen_on(tmp_path: Path) -> None:
    """``--check-config`` said "OK" for a receiver host that is not this machine's (or does not
    resolve); the collector then failed to start. It binds a probe socket (port 0) now."""
    from click.testing import CliRunner

    from spanreel.cli import main

    args = ["collector", "--check-config", "--db", str(tmp_path / "c.duckdb")]
    bad = CliRunner().invoke(main, [*args, "--http-endpoint", "192.0.2.1:4318"])  # TEST-NET-1, not ours
    # named as the user gave it: the flag (it named a config key the user never wrote)
    assert bad.exit_code == 1 and "cannot listen on" in bad.output and "--http-endpoint:" in bad.output
    good = CliRunner().invoke(main, [*args, "--http-endpoint", "127.0.0.1:4318"])
    assert good.exit_code == 0, good.output


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted at a folder of ``tmp_path`` (needs root: skipped otherwise), so the
    disk can really fill up under DuckDB."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16M", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _big_spans(trace: int, n: int) -> pa.Table:
    return rows_to_arrow(
        [
            _row(f"{trace:032x}", f"{j + 1:016x}", None, 1, 2, attributes={"k": "x" * 20_000 + str(j)})
            for j in range(n)
        ]
    )


def test_writer_reports_a_full_disk_and_reopens_a_database_invalidated_by_a_failed_checkpoint(
    small_filesystem: Path,
) -> None:
    """A checkpoint that fails on a full disk makes DuckDB invalidate the database: every later
    statement fails until it is attached again. The writer says why in ``error`` (what /healthz
    serves) and, once there is room again, opens the database again and goes on storing, with
    every span it acknowledged before still there."""
    db = small_filesystem / "spans.duckdb"
    writer = SpanWriter(open_database(db), reopen=lambda: open_database(db))
    for trace in range(60):  # ~6 MB of WAL
        assert writer.submit(_big_spans(trace, 5)).result(timeout=30).committed == 5
    assert writer.error is None
    filler = small_filesystem / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    # A COMMIT that cannot write its log: refused, not acknowledged, and said in ``error``.
    with pytest.raises(duckdb.Error, match="No space left on device"):
        writer.submit(_big_spans(999, 1)).result(timeout=30)
    assert writer.error is not None and "Failed to commit" in writer.error
    with pytest.raises(duckdb.IOException, match="invalidated"):
        writer.run_exclusive(lambda con: con.execute("CHECKPOINT")).result(timeout=30)
    # Invalidated, reopened, and the write still fails: the disk is full. Not acknowledged.
    with pytest.raises(duckdb.Error, match="No space left on device"):
        writer.submit(_big_spans(1000, 1)).result(timeout=30)
    assert writer.error is not None and "invalidated" in writer.error
    filler.unlink()
    assert writer.submit(_big_spans(1001, 1)).result(timeout=30).committed == 1
    assert writer.error is None
    cursor = writer.cursor()
    assert cursor.execute("SELECT count(*), count(DISTINCT trace_id) FROM spans").fetchone() == (301, 61)
    cursor.close()
    writer.close()
