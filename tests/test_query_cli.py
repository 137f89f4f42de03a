"""``spanreel sql | traces | show`` through click, on a DuckDB file with the documented schema,
read by the real ``spanreel.collector.run_query`` (direct read-only path: no collector running)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_replay_support import TRACE, rec, write_db

from spanreel.cli import main

OTHER = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    spans = [
        rec("a1", name="debate", start_ms=0, dur_ms=1500, service_name="debate-app"),
        rec(
            "b1",
            "a1",
            name="chat gpt-4o-mini",
            kind="CLIENT",
            start_ms=10,
            dur_ms=400,
            operation="chat",
            request_model="gpt-4o-mini",
            input_tokens=20,
            output_tokens=30,
        ),
        rec(
            "b2",
            "a1",
            name="chat judge",
            kind="CLIENT",
            start_ms=500,
            dur_ms=300,
            operation="chat",
            request_model="judge",
            input_tokens=5,
            output_tokens=7,
            status_code="ERROR",
            status_message="HTTP 500",
        ),
        rec("e1", name="later", trace_id=OTHER, start_ms=60_000, dur_ms=2),
    ]
    return write_db(tmp_path / "q.duckdb", spans)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_sql_json_and_table(db: Path) -> None:
    sql = "SELECT name, input_tokens FROM spans WHERE operation = 'chat' ORDER BY start_time"
    res = run("sql", sql, "--db", str(db), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {
        "columns": ["name", "input_tokens"],
        "rows": [["chat gpt-4o-mini", 20], ["chat judge", 5]],
        "truncated": False,
    }
    res = run("sql", sql, "--db", str(db))
    assert res.exit_code == 0
    assert "chat gpt-4o-mini" in res.stdout and "input_tokens" in res.stdout and "20" in res.stdout
    # Several statements: the last one's result (it failed: "connection has an unfinished result").
    res = run(
        "sql",
        "SELECT 1 AS a; SELECT count(*) AS n FROM spans WHERE operation = 'chat'",
        "--db",
        str(db),
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"columns": ["n"], "rows": [[2]], "truncated": False}


def test_sql_prints_at_most_max_rows_and_says_so(db: Path) -> None:
    """A query returning millions of rows was read whole (the collector's memory and event loop
    with it); now at most --max-rows (default 10,000) rows are read, with a note."""
    res = CliRunner().invoke(main, ["sql", "SELECT * FROM range(1000000)", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["rows"]) == 10_000 and out["truncated"] is True
    assert "more rows than --max-rows 10000" in res.stderr
    res = CliRunner().invoke(main, ["sql", "SELECT * FROM range(3)", "--db", str(db), "--max-rows", "3"])
    assert res.exit_code == 0 and "3 rows" in res.stderr and "more rows" not in res.stderr


def test_sql_db_from_environment(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANREEL_DB", str(db))
    res = run("sql", "SELECT count(*) AS n FROM spans", "--json")
    assert json.loads(res.stdout)["rows"] == [[4]]


@pytest.mark.parametrize(
    "sql",
    ["SELEC nonsense", "SELECT * FROM no_such_table", "DELETE FROM spans", "CREATE TABLE x (a INT)"],
)
def test_sql_user_errors_are_one_line(db: Path, sql: str) -> None:
    res = run("sql", sql, "--db", str(db))
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr.startswith("Error: ") and "Traceback" not in res.stderr


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    for args in (("sql", "SELECT 1"), ("traces",), ("sessions",), ("show", TRACE), ("replay", TRACE)):
        res = run(*args, "--db", str(missing))
        assert res.exit_code == 1, args
        assert str(missing) in res.stderr and "Traceback" not in res.stderr
        assert not missing.exists()


def test_traces_newest_first(db: Path) -> None:
    res = run("traces", "--db", str(db), "--json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert [r["trace_id"] for r in records] == [OTHER, TRACE]
    debate = records[1]
    assert debate["root_name"] == "debate" and debate["service_name"] == "debate-app"
    assert debate["llm_calls"] == 2 and debate["input_tokens"] == 25 and debate["output_tokens"] == 37
    assert debate["duration_ns"] == 1_500_000_000 and debate["span_count"] == 3
    # --json has every column of the traces view, as --help says (end_time, root_span_id and
    # cost_usd were missing)
    view = run("sql", "SELECT * FROM traces LIMIT 0", "--db", str(db), "--json")
    assert list(debate) == json.loads(view.stdout)["columns"]
    assert [
        r["trace_id"] for r in json.loads(run("traces", "--db", str(db), "--json", "--limit", "1").stdout)
    ] == [OTHER]
    table = run("traces", "--db", str(db)).stdout
    assert TRACE in table and "debate" in table and "1.50 s" in table and "25/37" in table


def test_show_tree_and_json(db: Path) -> None:
    res = run("show", TRACE[:10], "--db", str(db))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert TRACE in lines[0]
    order = [
        next(i for i, line in enumerate(lines) if name in line) for name in ("debate", "gpt-4o-mini", "judge")
    ]
    assert order == sorted(order)
    assert "ERROR" in next(line for line in lines if "chat judge" in line)
    data = json.loads(run("show", TRACE, "--db", str(db), "--json").stdout)
    assert data["trace_id"] == TRACE and data["span_count"] == 3
    (root,) = data["roots"]
    assert [c["name"] for c in root["children"]] == ["chat gpt-4o-mini", "chat judge"]


def test_show_unknown_or_bad_trace_id(db: Path) -> None:
    res = run("show", "f" * 32, "--db", str(db))
    assert res.exit_code == 1
    assert f"trace {'f' * 32} not found in {db}" in res.stderr
    res = run("show", "xyz", "--db", str(db))
    assert res.exit_code == 1 and "invalid trace id" in res.stderr


def test_help_texts_have_examples() -> None:
    for cmd in ("sql", "traces", "sessions", "show", "replay"):
        res = run(cmd, "--help")
        assert res.exit_code == 0 and "Examples:" in res.stdout and "--db" in res.stdout


def test_replay_with_nothing_replayable_explains_why(db: Path) -> None:
    # The fixture's LLM spans carry no recorded request: nothing is sent, no trace is created, and
    # the check fails (it compared nothing) unless --fail-on never.
    res = run("replay", TRACE, "--db", str(db), "--json")
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    assert report["verdict"]["reasons"][0].startswith("nothing was replayed: 2 of 2 calls skipped (content")
    assert run("replay", TRACE, "--db", str(db), "--fail-on", "never").exit_code == 0
    # The dry run says so the same way (it exited 0 where the replay itself exits 1).
    dry = run("replay", TRACE, "--db", str(db), "--dry-run", "--json")
    assert dry.exit_code == 1 and not any(c["replayable"] for c in json.loads(dry.stdout)["calls"])
    assert run("replay", TRACE, "--db", str(db), "--dry-run", "--fail-on", "never").exit_code == 0
    assert report["replay_trace_id"] is None and report["export"] is None
    assert [c["status"] for c in report["calls"]] == ["skipped", "skipped"]
    assert all(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in c["skip_reason"] for c in report["calls"]
    )
    assert report["calls"][1]["original_status"] == "error"
    assert "no replayable LLM calls" in res.stderr
    text = run("replay", TRACE, "--db", str(db)).stdout
    assert "not replayed: content capture was off" in text and "0/2 calls replayed" in text


def test_replay_rejects_bad_base_url(db: Path) -> None:
    res = run("replay", TRACE, "--db", str(db), "--base-url", "localhost:8000")
    assert res.exit_code == 2 and "--base-url" in res.stderr and "Traceback" not in res.stderr


def test_control_characters_in_stored_data_are_printed_escaped(db: Path) -> None:
    """Span data comes from any OTLP sender: an escape sequence in it was printed raw, so a span
    name could clear the screen or retitle the terminal. It is shown as ``\\x1b`` now."""
    res = run("sql", "SELECT chr(27) || '[2J' || chr(27) || ']0;pwned' || chr(7) AS name", "--db", str(db))
    assert res.exit_code == 0
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "│ \\x1b[2J\\x1b]0;pwned\\x07 │" in res.stdout  # escaped before the layout: aligned


@pytest.mark.parametrize(
    ("ns", "shown"),
    [
        (2_500_000, "2.5 ms"),
        (5_500_000_000, "5.50 s"),
        (119_600_000_000, "2 min 0 s"),
        (3_723 * 10**9, "1 h 2 min"),
    ],
)
def test_durations_of_traces_and_sessions_read_as_in_the_viewer(ns: int, shown: str) -> None:
    from spanreel.replay._cli import _fmt_duration_ns

    assert _fmt_duration_ns(ns) == shown
