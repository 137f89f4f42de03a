"""Duplicate suppression per trace, migration 3 (upgrade of an existing file) and the normalised
messages / cost columns, on real DuckDB files in tmp_path."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from test_collector_storage import _row as storage_row

from spanreel._attributes import SPANREEL_COST_USD
from spanreel.cli import main
from spanreel.collector import _schema, run_query
from spanreel.collector._batch import prepare_batch
from spanreel.collector._client import OutdatedDatabaseWarning
from spanreel.collector._schema import MIGRATIONS, migrate, rows_to_arrow
from spanreel.collector._writer import SpanWriter, open_database

T1, T2, T3 = "11" * 16, "22" * 16, "33" * 16
BASE = 1_700_000_000_000_000_000


def _row(trace_id: str, span_id: str, start: int, **kw: Any) -> dict[str, Any]:
    """A root-less span row lasting 10 ns (the storage tests' builder)."""
    return storage_row(trace_id, span_id, kw.pop("parent_span_id", None), start, start + 10, **kw)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def test_spans_are_unique_per_trace_across_groups_restarts_and_within_a_group(tmp_path: Path) -> None:
    db = tmp_path / "d.duckdb"
    writer = SpanWriter(open_database(db))
    a, b, c = (_row(T1, s * 16, BASE + i, operation="chat", input_tokens=i + 1) for i, s in enumerate("abc"))
    other = _row(T2, "dd" * 8, BASE)
    # One group holding an export and its retry (same spans twice), plus another trace.
    futures = [writer.submit(rows_to_arrow([a, b])), writer.submit(rows_to_arrow([a, b, other]))]
    assert [f.result(timeout=30).committed for f in futures] == [2, 3]
    writer.close()

    # After a restart nothing is cached: the stored ids come from the file.
    writer = SpanWriter(open_database(db))
    writer.submit(rows_to_arrow([b, c, b])).result(timeout=30)  # one new span, in a batch with a repeat
    writer.submit(rows_to_arrow([a, other])).result(timeout=30)  # a pure retry
    assert (writer.stored_spans, writer.duplicate_spans) == (1, 4)
    writer.close()

    con = duckdb.connect(str(db), read_only=True)
    assert _rows(con, "SELECT trace_id, span_id, count(*) FROM spans GROUP BY ALL HAVING count(*) > 1") == []
    assert _rows(con, "SELECT count(*) FROM spans") == [(4,)]
    assert _rows(
        con,
        "SELECT trace_id, span_count, llm_calls, input_tokens, len(span_ids), list_sort(span_ids) "
        "FROM trace_index ORDER BY trace_id",
    ) == [
        (T1, 3, 3, 6, 3, sorted(int(s * 16, 16) for s in "abc")),
        (T2, 1, 0, None, 1, [0xDDDDDDDDDDDDDDDD]),
    ]
    con.close()


def _llm_request() -> bytes:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    messages_in = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    messages_out = [
        {"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}
    ]
    for i, (operation, cost) in enumerate([("chat", 0.25), ("chat", 0.5), (None, 9.0)]):
        span = scope_spans.spans.add(
            trace_id=bytes.fromhex(T3),
            span_id=bytes([i + 1]) * 8,
            name="call",
            start_time_unix_nano=BASE + i,
            end_time_unix_nano=BASE + 100,
        )
        attributes = {
            gen_ai.GEN_AI_INPUT_MESSAGES: json.dumps(messages_in, indent=2),
            gen_ai.GEN_AI_OUTPUT_MESSAGES: json.dumps(messages_out),
            SPANREEL_COST_USD: str(cost),
        }
        if operation:
            attributes[gen_ai.GEN_AI_OPERATION_NAME] = operation
        span.attributes.extend(KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items())
    return request.SerializeToString()


def test_llm_calls_get_normalised_messages_and_cost(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    writer = SpanWriter(open_database(db))
    writer.submit(prepare_batch(_llm_request(), json_encoded=False).table).result(timeout=30)
    writer.close()
    con = duckdb.connect(str(db), read_only=True)
    calls = _rows(con, "SELECT input_messages, output_messages, cost_usd FROM llm_calls ORDER BY span_id")
    assert calls == [
        (
            '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
            '[{"role":"assistant","parts":[{"type":"text","content":"hello"}],"finish_reason":"stop"}]',
            cost,
        )
        for cost in (0.25, 0.5)
    ]
    # Not an LLM call (no operation): no messages, no cost, and not in the trace's sum.
    assert _rows(con, "SELECT input_messages, cost_usd FROM spans WHERE operation IS NULL") == [(None, None)]
    assert _rows(con, "SELECT llm_calls, cost_usd FROM traces") == [(2, 0.75)]
    assert _rows(con, "SELECT json_extract_string(input_messages, '$[0].role') FROM llm_calls LIMIT 1") == [
        ("user",)
    ]
    con.close()


def test_migration_3_upgrades_a_database_written_by_the_previous_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "old.duckdb"
    # A file as the previous release wrote it: migrations 1 and 2, rows stored by its writer.
    with monkeypatch.context() as patched:
        patched.setattr(_schema, "MIGRATIONS", MIGRATIONS[:2])
        con = duckdb.connect(str(db))
        assert [m.version for m in migrate(con)] == [1, 2]
    con.execute(
        "INSERT INTO spans (trace_id, span_id, parent_span_id, name, service_name, start_time, end_time, "
        "attributes, operation, input_tokens, received_at) VALUES "
        f"('{T1}', 'aaaaaaaaaaaaaaaa', NULL, 'root', 'svc', make_timestamp_ns({BASE}), "
        f" make_timestamp_ns({BASE + 50}), '{{}}', NULL, NULL, now()::TIMESTAMP), "
        f"('{T1}', 'bbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaa', 'chat', 'svc', make_timestamp_ns({BASE + 1}), "
        f" make_timestamp_ns({BASE + 20}), '{{}}', 'chat', 7, now()::TIMESTAMP)"
    )
    con.execute(
        f"INSERT INTO trace_index VALUES ('{T1}', make_timestamp_ns({BASE}), make_timestamp_ns({BASE + 50}), "
        "'aaaaaaaaaaaaaaaa', 'root', 'svc', 2, 1, 7, NULL, NULL)"
    )
    con.close()

    writer = SpanWriter(open_database(db))  # migrates to the current schema
    retry = _row(T1, "bb" * 8, BASE + 1, parent_span_id="aa" * 8, operation="chat", input_tokens=7)
    late = _row(T1, "cc" * 8, BASE + 30, parent_span_id="aa" * 8, operation="chat", input_tokens=3)
    writer.submit(rows_to_arrow([retry, late])).result(timeout=30)
    assert (writer.stored_spans, writer.duplicate_spans) == (1, 1)
    writer.close()

    con = duckdb.connect(str(db), read_only=True)
    assert _rows(con, "SELECT max(version) FROM schema_migrations") == [(MIGRATIONS[-1].version,)]
    assert _rows(con, "SELECT span_id, input_tokens FROM spans ORDER BY start_time") == [
        ("aa" * 8, None),
        ("bb" * 8, 7),
        ("cc" * 8, 3),
    ]
    assert _rows(
        con, "SELECT span_count, llm_calls, input_tokens, root_name, len(span_ids) FROM trace_index"
    ) == [(3, 2, 10, "root", 3)]
    # The span primary key is gone (duplicates are suppressed per trace); trace_index keeps its key.
    assert _rows(
        con, "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' ORDER BY 1"
    ) == [("schema_migrations",), ("trace_index",)]
    columns = {
        name
        for (name,) in _rows(con, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'llm_calls'")
    }
    assert {"input_messages", "output_messages", "cost_usd"} <= columns
    assert _rows(
        con, "SELECT comment FROM duckdb_columns() WHERE table_name = 'spans' AND column_name = 'cost_usd'"
    )[0][0].startswith("LLM calls: cost in US dollars")
    con.close()


def test_exports_queued_together_commit_in_one_transaction_and_are_acknowledged_after_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.duckdb"
    writer = SpanWriter(open_database(db), max_group_rows=6)
    release = threading.Event()
    blocked = writer.run_exclusive(lambda con: release.wait(30))  # the writer thread is busy
    batches = [
        rows_to_arrow([_row(f"{i:02x}" * 16, f"{s}{i}" * 8, BASE + i) for s in "ab"]) for i in range(1, 8)
    ]
    futures = [writer.submit(batch) for batch in batches]
    # Nothing is acknowledged (or stored) before its commit.
    assert not any(f.done() for f in futures)
    assert writer.cursor().execute("SELECT count(*) FROM spans").fetchall() == [(0,)]
    release.set()
    assert blocked.result(timeout=30) is True
    assert [f.result(timeout=30).committed for f in futures] == [2] * 7
    writer.close()
    con = duckdb.connect(str(db), read_only=True)
    # One transaction per group (one received_at each): 7 exports of 2 spans, at most 6 rows a
    # group, queued while the writer was busy → groups of 3, 3 and 1 exports.
    groups = _rows(con, "SELECT count(*) FROM spans GROUP BY received_at ORDER BY min(start_time)")
    assert groups == [(6,), (6,), (2,)]


def test_migration_5_takes_agent_and_tool_spans_out_of_the_llm_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earlier releases stored ``invoke_agent`` / ``execute_tool`` spans with an operation, so they
    were LLM calls and an agent span's run usage was added to its chat calls' (trace totals
    doubled). Migration 5 clears their operation and recounts their traces; other traces are
    left alone."""
    db = tmp_path / "agents.duckdb"
    with monkeypatch.context() as patched:
        patched.setattr(_schema, "MIGRATIONS", MIGRATIONS[:4])
        writer = SpanWriter(open_database(db))

        def child(span_id: str, start: int, **kw: Any) -> dict[str, Any]:
            return _row(T1, span_id, start, parent_span_id="aa" * 8, **kw)

        rows = [
            _row(
                T1, "aa" * 8, BASE, operation="invoke_agent", input_tokens=300, output_tokens=30, cost_usd=0.3
            ),
            child("bb" * 8, BASE + 1, operation="chat", input_tokens=100, cost_usd=0.1),
            child("cc" * 8, BASE + 2, operation="execute_tool"),
            child("dd" * 8, BASE + 3, operation="chat", input_tokens=200, cost_usd=0.2),
            _row(T2, "ee" * 8, BASE, operation="chat", input_tokens=5),
        ]
        writer.submit(rows_to_arrow(rows)).result(timeout=30)
        writer.close()
    # Read-only commands cannot migrate: they say the file is out of date (they were silent).
    with pytest.warns(OutdatedDatabaseWarning, match="start `spanreel collector` on it once"):
        assert run_query("SELECT llm_calls FROM traces ORDER BY trace_id", db).rows == [[4], [1]]
    con = duckdb.connect(str(db))
    assert _rows(con, "SELECT llm_calls, input_tokens FROM trace_index ORDER BY trace_id") == [
        (4, 600),
        (1, 5),
    ]
    assert [m.version for m in migrate(con)] == [5, 6]
    assert _rows(con, "SELECT span_id FROM llm_calls ORDER BY span_id") == [
        ("bb" * 8,),
        ("dd" * 8,),
        ("ee" * 8,),
    ]
    rows_after = _rows(
        con,
        "SELECT llm_calls, input_tokens, output_tokens, cost_usd, span_count FROM trace_index "
        "ORDER BY trace_id",
    )
    assert rows_after[0][:3] == (2, 300, None) and rows_after[0][3] == pytest.approx(0.3)
    assert rows_after[0][4] == 4 and rows_after[1][:2] == (1, 5)
    con.close()


def test_migration_6_adds_the_sessions_view_and_spanreel_sessions_reads_older_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written before migration 6 has no ``sessions`` view: read-only commands say so,
    ``spanreel sessions`` still lists its sessions (its query does not need the view), and the
    collector's migration adds the view."""
    db = tmp_path / "before-6.duckdb"
    attrs = {"session.id": "s-1", "user.id": "alice", "spanreel.session.name": "chat"}
    with monkeypatch.context() as patched:
        patched.setattr(_schema, "MIGRATIONS", MIGRATIONS[:5])
        writer = SpanWriter(open_database(db))
        rows = [
            _row(T1, "aa" * 8, BASE, session_id="s-1", attributes=attrs),
            _row(T1, "bb" * 8, BASE + 1, session_id="s-1", operation="chat", input_tokens=7, cost_usd=0.5),
            _row(T2, "cc" * 8, BASE + 2, session_id="s-1", status_code="ERROR"),
        ]
        writer.submit(rows_to_arrow(rows)).result(timeout=30)
        writer.close()
    listed = CliRunner().invoke(main, ["sessions", "--db", str(db), "--json"], catch_exceptions=False)
    # the command's two queries warn once, as one line (not Python's file:line form)
    warned = [line for line in listed.stderr.splitlines() if line.startswith("spanreel: warning:")]
    assert len(warned) == 1 and "the `sessions` view (migration 6) is missing" in warned[0]
    assert "OutdatedDatabaseWarning" not in listed.stderr
    expected = {
        "session_id": "s-1", "session_name": "chat", "user_id": "alice", "trace_count": 2, "span_count": 3,
        "llm_calls": 1, "error_count": 1, "input_tokens": 7, "output_tokens": None, "cost_usd": 0.5,
    }  # fmt: skip
    assert [{k: r[k] for k in expected} for r in json.loads(listed.stdout)] == [expected]
    con = duckdb.connect(str(db))
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM sessions")
    assert [m.version for m in migrate(con)] == [6]
    assert _rows(con, "SELECT session_id, trace_count, llm_calls FROM sessions") == [("s-1", 2, 1)]
    con.close()
