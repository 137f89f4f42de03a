"""End-to-end: real processes only.

A collector subprocess on a fresh DuckDB file, an app subprocess that uses the real ``openai`` SDK
and has nothing but ``SPANREEL_ENABLED=1`` (plus where to send spans and which LLM server to use),
the CLI run as subprocesses while the collector runs (query API) and after it stopped (direct DB),
a replay that is itself recorded, and a clean SIGTERM shutdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CollectorProcess, clean_env

from spanreel.fakellm import FakeLLMServer

APP = textwrap.dedent(
    """
    import asyncio, json
    from openai import AsyncOpenAI, OpenAI
    from opentelemetry import trace
    import spanreel

    client = OpenAI()
    with spanreel.session("e2e-session", session_id="sess-e2e"):
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        a = client.chat.completions.create(
            model="gpt-4o-mini", temperature=0.2,
            messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Name a colour."}],
        ).choices[0].message.content
        parts = []
        for chunk in client.chat.completions.create(
            model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Name a fruit."}],
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)

        async def judge() -> str:
            r = await AsyncOpenAI().chat.completions.create(
                model="judge-mini", messages=[{"role": "user", "content": "Score this: " + a}]
            )
            return r.choices[0].message.content or ""

        verdict = asyncio.run(judge())
    print(json.dumps({"trace_id": trace_id, "outputs": [a, "".join(parts), verdict]}))
    """
)


def _spanreel(*args: str, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # In another working directory: the installed console script, as a user runs it.
    command = [str(Path(sys.executable).with_name("spanreel"))] if cwd else [sys.executable, "-m", "spanreel"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _json(*args: str) -> Any:
    proc = _spanreel(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(port=0) as server:
        yield server


def _wait_rows(db: Path, sql: str, expected: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        count = int(_json("sql", sql, "--db", str(db))["rows"][0][0])
        if count >= expected:
            return count
        time.sleep(0.2)
    return count


def test_record_collect_query_replay_shutdown(
    tmp_path: Path, llm: FakeLLMServer, collector_process: CollectorProcess
) -> None:
    info, db = collector_process.info, collector_process.db
    app = tmp_path / "app.py"
    app.write_text(APP)
    canary = "sk-canary-e2e-0123456789abcdef"
    run = subprocess.run(
        [sys.executable, str(app)],
        env=clean_env(
            SPANREEL_ENABLED="1",
            OTEL_SERVICE_NAME="e2e-app",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{info['http_endpoint']}",
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY=canary,
        ),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    trace_id = result["trace_id"]
    assert len(trace_id) == 32 and trace_id != "0" * 32

    # The collector is running: every query goes through its read-only query API.
    assert _wait_rows(db, f"SELECT count(*) FROM llm_calls WHERE trace_id = '{trace_id}'", 3) == 3
    calls = _json(
        "sql",
        "SELECT request_model, response_model, input_tokens, output_tokens, session_id, finish_reasons "
        f"FROM llm_calls WHERE trace_id = '{trace_id}' ORDER BY start_time",
        "--db", str(db),
    )  # fmt: skip
    rows = [dict(zip(calls["columns"], row, strict=True)) for row in calls["rows"]]
    assert [r["request_model"] for r in rows] == ["gpt-4o-mini", "gpt-4o-mini", "judge-mini"]
    assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 for r in rows)
    assert all(r["session_id"] == "sess-e2e" for r in rows)
    assert all(r["finish_reasons"] == ["stop"] for r in rows)

    # The API key never reaches the store, in any column.
    leaked = _json(
        "sql", f"SELECT count(*) FROM spans WHERE CAST(spans AS VARCHAR) LIKE '%{canary}%'", "--db", str(db)
    )
    assert leaked["rows"][0][0] == 0

    traces = _json("traces", "--db", str(db))
    assert any(t["trace_id"] == trace_id and t["llm_calls"] == 3 for t in _records(traces))

    tree = _json("show", trace_id, "--db", str(db))
    text = json.dumps(tree)
    assert "e2e-session" in text and "chat gpt-4o-mini" in text and "chat judge-mini" in text

    # Replay verbatim against the same deterministic server: same outputs, a new linked trace.
    report = _json("replay", trace_id, "--db", str(db), "--base-url", llm.base_url)
    assert report["original_trace_id"] == trace_id
    new_trace = report["replay_trace_id"]
    assert new_trace != trace_id and len(report["calls"]) == 3
    assert [c["new_output"] for c in report["calls"]] == [c["original_output"] for c in report["calls"]]
    assert [c["original_output"] for c in report["calls"]] == result["outputs"]

    # ... and with an edited system prompt the outputs change.
    edited = _json("replay", trace_id, "--db", str(db), "--base-url", llm.base_url, "--system", "Be verbose.")
    assert any(c["new_output"] != c["original_output"] for c in edited["calls"])

    linked = _wait_rows(
        db,
        f"SELECT count(*) FROM llm_calls WHERE trace_id = '{new_trace}' "
        f"AND attributes->>'$.\"spanreel.replay.original_trace_id\"' = '{trace_id}'",
        3,
    )
    assert linked == 3

    # SIGTERM drains and exits 0; the discovery file goes away; the DB is then read directly.
    code, err = collector_process.stop()
    assert code == 0, err
    assert not collector_process.discovery.exists()
    after = _json("sql", "SELECT count(DISTINCT trace_id) FROM llm_calls", "--db", str(db))
    assert after["rows"][0][0] >= 3  # original + two replays


def _records(payload: Any) -> list[dict[str, Any]]:
    """``spanreel traces --json`` rows as dicts, whether it prints a list or columns/rows."""
    if isinstance(payload, list):
        return payload
    if "columns" in payload:
        return [dict(zip(payload["columns"], row, strict=True)) for row in payload["rows"]]
    return list(payload.get("traces", []))


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    # Run from a folder holding a `spanreel` directory (a clone, a data dir): the demo's child
    # processes must still import the installed package, not that folder.
    (tmp_path / "spanreel").mkdir()
    proc = _spanreel("demo", "--db", str(db), "--rounds", "1", timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for expected in (
        "The session tree",
        "tokens per model",
        "Replay with an edited system prompt",
        "Trace id:",
        f"$ spanreel collector --db {db}",  # was "$ spanreel spanreel collector …"
    ):
        assert expected in out
    trace_id = out.split("Trace id:")[1].split()[0]
    n = _json("sql", f"SELECT count(*) FROM llm_calls WHERE trace_id = '{trace_id}'", "--db", str(db))
    assert n["rows"][0][0] == 4  # 1 round: two arguments, two judge calls
    assert not Path(f"{db}.collector.json").exists()


def test_demo_without_the_openai_sdk_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install spanreel` alone has no openai SDK: the demo stops before starting anything and
    says what to install (it used to start a collector and fail with the app's traceback)."""
    import importlib.util

    from click.testing import CliRunner

    from spanreel.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openai" else real_find_spec(name, *a)
    )
    result = CliRunner().invoke(main, ["demo", "--db", str(tmp_path / "d.duckdb")])
    assert result.exit_code == 1
    assert "pip install openai" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.duckdb").exists()


def test_demo_with_a_database_under_a_file_says_so(tmp_path: Path) -> None:
    """``--db app.py/spans.duckdb`` ended in a FileExistsError traceback."""
    from click.testing import CliRunner

    from spanreel.cli import main

    (tmp_path / "app.py").write_text("")
    result = CliRunner().invoke(main, ["demo", "--db", str(tmp_path / "app.py" / "spans.duckdb")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # not an uncaught error
    assert "is a file, not a folder" in result.output and "Traceback" not in result.output
