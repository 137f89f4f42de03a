"""Operations: retention (``exporters.duckdb.ttl`` and ``spanreel prune``, directly and through a
running collector), the counters (``/api/health``, the periodic log line), ``/healthz``, and the
config keys behind them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import duckdb
import httpx
import pytest
from click.testing import CliRunner
from conftest import clean_env, start_collector
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanreel._config import ConfigError, expand_env
from spanreel.cli import main
from spanreel.collector import load_collector_config, run_query
from spanreel.collector._config import ALL_INTERFACES, parse_duration, parse_endpoint
from spanreel.collector._retention import Pruner, prune
from spanreel.collector._schema import rows_to_arrow
from spanreel.collector._writer import SpanWriter, WriterClosedError, WriteResult, open_database

DAY_NS = 86_400 * 10**9
OLD_TRACE, NEW_TRACE = "0a" * 16, "0b" * 16


def _otlp(trace_hex: str, span_hex: str, end_unix_nano: int, parent: str | None = None) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes.fromhex(trace_hex), bytes.fromhex(span_hex)
    if parent:
        span.parent_span_id = bytes.fromhex(parent)
    span.name = "work"
    span.start_time_unix_nano, span.end_time_unix_nano = end_unix_nano - 10**9, end_unix_nano
    return request.SerializeToString()


def _post(url: str, payload: bytes) -> None:
    r = httpx.post(url, content=payload, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.content


def test_prune_through_the_running_collector_then_directly(tmp_path: Path) -> None:
    now = time.time_ns()
    db = tmp_path / "p.duckdb"
    with start_collector(db) as running:
        # One old trace (two spans, 40 days old), one new, and a trace old in part only: kept whole.
        _post(running.http_url, _otlp(OLD_TRACE, "01" * 8, now - 40 * DAY_NS))
        _post(running.http_url, _otlp(OLD_TRACE, "02" * 8, now - 41 * DAY_NS, parent="01" * 8))
        _post(running.http_url, _otlp(NEW_TRACE, "03" * 8, now - DAY_NS))
        _post(running.http_url, _otlp("0c" * 16, "04" * 8, now - 50 * DAY_NS))
        _post(running.http_url, _otlp("0c" * 16, "05" * 8, now))
        prune_cmd = [
            sys.executable,
            "-m",
            "spanreel",
            "prune",
            "--older-than",
            "30d",
            "--db",
            str(db),
            "--json",
        ]
        dry = subprocess.run(
            [*prune_cmd, "--dry-run"], env=clean_env(), capture_output=True, text=True, timeout=60
        )
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout) | {"cutoff": None} == {
            "traces": 1,
            "spans": 2,
            "cutoff": None,
            "dry_run": True,
        }
        real = subprocess.run(prune_cmd, env=clean_env(), capture_output=True, text=True, timeout=60)
        assert real.returncode == 0, real.stderr
        result = json.loads(real.stdout)
        assert (result["traces"], result["spans"], result["dry_run"]) == (1, 2, False)
        assert result["cutoff"].endswith("Z")
        left = run_query("SELECT trace_id, count(*) FROM spans GROUP BY 1 ORDER BY 1", db).rows
        assert left == [["0b" * 16, 1], ["0c" * 16, 2]]
        assert run_query("SELECT count(*) FROM traces WHERE trace_id = ?", db, [OLD_TRACE]).rows == [[0]]
        # Spans of a pruned trace that arrive again are stored again (nothing is blacklisted).
        _post(running.http_url, _otlp(OLD_TRACE, "01" * 8, now - 40 * DAY_NS))
        assert run_query("SELECT span_count FROM traces WHERE trace_id = ?", db, [OLD_TRACE]).rows == [[1]]
    # Without a collector the file is opened directly.
    res = CliRunner().invoke(main, ["prune", "--older-than", "720h", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("deleted 1 traces (1 spans) that ended before ")
    # A duration reaching before 1677 (beyond 64-bit nanoseconds) prunes nothing; it used to fail
    # with a binder error (and the same ttl in config failed at every retention run).
    res = CliRunner().invoke(main, ["prune", "--older-than", "200000d", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["traces"] == 0
    res = CliRunner().invoke(main, ["prune", "--older-than", "1e400s", "--db", str(db)])
    assert res.exit_code == 1 and "--older-than must be a duration" in res.output
    res = CliRunner().invoke(main, ["prune", "--older-than", "a while", "--db", str(db)])
    assert res.exit_code == 1 and "--older-than must be a duration" in res.output
    res = CliRunner().invoke(main, ["prune", "--older-than", "1d", "--db", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 1 and "no spanreel database" in res.output


def _row(trace_id: str, span_id: str, end_ns: int) -> dict[str, object]:
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": None, "trace_state": "", "name": "s",
        "kind": "INTERNAL", "service_name": "svc", "scope_name": "t", "scope_version": "1",
        "start_time_unix_nano": end_ns - 1000, "end_time_unix_nano": end_ns, "duration_ns": 1000,
        "status_code": "UNSET", "status_message": "", "attributes": {}, "resource_attributes": {},
        "events": [], "links": [], "operation": None, "provider": None, "request_model": None,
        "response_model": None, "input_tokens": None, "output_tokens": None, "finish_reasons": None,
        "session_id": None, "conversation_id": None,
    }  # fmt: skip


def test_ttl_prunes_at_start_and_counters_are_logged(tmp_path: Path) -> None:
    now = time.time_ns()
    db = tmp_path / "ttl.duckdb"
    writer = SpanWriter(open_database(db))
    writer.submit(rows_to_arrow([_row(OLD_TRACE, "01" * 8, now - 3 * DAY_NS)])).result(timeout=30)
    writer.submit(rows_to_arrow([_row(NEW_TRACE, "02" * 8, now)])).result(timeout=30)
    # Maintenance on the writer thread sees committed data and can count without deleting.
    dry = writer.run_exclusive(lambda con: prune(con, now - DAY_NS, dry_run=True)).result(timeout=30)
    assert (dry.traces, dry.spans) == (1, 1)
    writer.close()
    config = tmp_path / "ttl.yaml"
    config.write_text(
        "receivers:\n  otlp:\n    protocols:\n      http: {endpoint: 127.0.0.1:0}\n"
        "exporters:\n  duckdb:\n    ttl: 48h\n    metrics_log_interval: 1s\n    query_timeout: 1s\n"
        "    query_max_rows: 5\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    with start_collector(db, "--config", str(config)) as running:
        deadline = time.monotonic() + 30
        while run_query("SELECT count(*) FROM spans", db).rows != [[1]]:
            assert time.monotonic() < deadline, running.stderr()
            time.sleep(0.1)
        assert run_query("SELECT trace_id FROM traces", db).rows == [[NEW_TRACE]]
        _post(running.http_url, _otlp("0d" * 16, "03" * 8, now))
        _post(running.http_url, _otlp("0d" * 16, "03" * 8, now))  # a retried export: a duplicate
        r = httpx.post(running.http_url, content=b"\xff", headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 400
        health = httpx.get(f"{running.info['query_url']}/api/health").json()
        expected = {
            "received_requests": 2, "received_spans": 2, "stored_spans": 1, "duplicate_spans": 1,
            "rejected_spans": 0, "malformed_requests": 1, "refused_requests": 0, "queued_bytes": 0,
        }  # fmt: skip
        assert {k: health[k] for k in expected} == expected
        for base in (running.info["query_url"], running.http_url.removesuffix("/v1/traces")):
            assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "pid": running.proc.pid}
        # A runaway query is interrupted after query_timeout; the API keeps answering.
        started = time.monotonic()
        r = httpx.post(
            f"{running.info['query_url']}/api/query",
            json={"sql": "SELECT * FROM range(10000000000) ORDER BY 1 DESC LIMIT 1"},
            timeout=60,
        )
        assert r.status_code == 400 and "query_timeout (1 s)" in r.json()["error"], r.text
        assert time.monotonic() - started < 20
        assert run_query("SELECT count(*) FROM spans", db).rows == [[2]]
        # An answer holds at most query_max_rows rows (a SELECT over millions of rows took the
        # collector's memory with it); a smaller max_rows still applies.
        for asked, expected_rows in ((None, 5), (100, 5), (3, 3)):
            r = httpx.post(
                f"{running.info['query_url']}/api/query",
                json={"sql": "SELECT * FROM range(10)", "max_rows": asked},
            )
            assert (len(r.json()["rows"]), r.json()["truncated"]) == (expected_rows, True), r.text
        assert run_query("SELECT * FROM range(4)", db).truncated is False
        res = CliRunner().invoke(main, ["sql", "SELECT * FROM range(10); -- ten", "--db", str(db)])
        assert res.exit_code == 0, res.output
        assert "query_max_rows or query_max_bytes cut the answer at 5 rows" in " ".join(res.output.split())
        assert "--max-rows" not in res.output
        deadline = time.monotonic() + 30
        while "received 2 spans in 2 requests, stored 1, duplicates 1" not in running.stderr():
            assert time.monotonic() < deadline, running.stderr()
            time.sleep(0.1)
        code, err = running.stop()
    assert code == 0
    assert "retention: deleted 1 traces (1 spans)" in err
    assert "final counters: received 2 spans" in err


def _traces_and_orphans(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple[str, int]], int]:
    """(trace_id, span_count) of every trace_index row whose spans are all stored, and how many
    spans or rows are not in that state (spans without their trace row, rows missing spans)."""
    whole = con.execute(
        "SELECT t.trace_id, t.span_count FROM trace_index t JOIN (SELECT trace_id, count(*) AS n FROM spans "
        "GROUP BY 1) s ON s.trace_id = t.trace_id AND s.n = t.span_count ORDER BY 1"
    ).fetchall()
    row = con.execute("SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM trace_index)").fetchone()
    assert row is not None
    return whole, int(row[0]) - sum(n for _, n in whole) - len(whole)


def _expired_traces(now: int) -> list[dict[str, object]]:
    """Seven traces that ended 10 to 4 days ago (the oldest first), of 1, 2, 1, 3, 1, 2 and 1 spans."""
    rows = []
    for i, size in enumerate((1, 2, 1, 3, 1, 2, 1)):
        end = now - (10 - i) * DAY_NS
        rows += [_row(f"{i + 1:02x}" * 16, f"{i + 1:x}{s}" * 8, end - s) for s in range(size)]
    return rows


def test_exports_are_committed_between_the_chunks_of_a_prune(tmp_path: Path) -> None:
    """A prune deletes a chunk of the oldest expired traces per transaction, one step at a time on
    the writer thread, and an export queued meanwhile is committed between two chunks: it used to
    wait for the whole prune (37 s for 1.2M spans, past the exporters' 10 s timeout)."""
    now = time.time_ns()
    writer = SpanWriter(open_database(tmp_path / "chunks.duckdb"))
    writer.submit(rows_to_arrow([*_expired_traces(now), _row(NEW_TRACE, "0f" * 8, now)])).result(timeout=30)
    pruner = Pruner(now - DAY_NS, chunk_traces=3)
    late: list[Future[WriteResult]] = []
    committed_before_step: list[bool] = []

    def step(con: duckdb.DuckDBPyConnection) -> bool:
        if late:
            committed_before_step.append(late[0].done())
        done = pruner.step(con)
        if not late:  # an export arrives while the prune runs
            late.append(writer.submit(rows_to_arrow([_row("0e" * 16, "0e" * 8, now)])))
        return done

    pruning = writer.run_in_steps(step)
    pruning.result(timeout=30)
    # Chunks of 3, 3 and 1 traces, then a step that finds nothing left; the export was committed
    # right after the first chunk, before the second began.
    assert pruner.chunks == 3 and committed_before_step == [True, True, True]
    assert late[0].result(timeout=0).committed == 1
    result = pruner.result()
    assert (result.traces, result.spans, result.dry_run) == (7, 11, False)
    whole, orphans = _traces_and_orphans(writer.cursor())
    assert whole == [("0b" * 16, 1), ("0e" * 16, 1)] and orphans == 0
    # A step that raises ends the run with its error; nothing else runs after it.
    failing = writer.run_in_steps(lambda con: con.execute("SELECT no_such_column").fetchone() is None)
    with pytest.raises(duckdb.BinderException):
        failing.result(timeout=30)
    # Closing the writer stops a stepped task between two steps (a shutdown waits for one chunk).
    endless = writer.run_in_steps(lambda con: False)
    writer.close()
    with pytest.raises(WriterClosedError):
        endless.result(timeout=0)
    with pytest.raises(WriterClosedError):
        writer.run_in_steps(pruner.step)


def test_prune_chunks_hold_whole_traces_within_a_span_budget(tmp_path: Path) -> None:
    """Chunks go oldest first and stop at the span budget (a trace larger than it is a chunk of
    its own); ``dry_run`` counts all in one step; the direct ``prune`` gives the same totals."""
    now = time.time_ns()
    con = open_database(tmp_path / "budget.duckdb")
    writer = SpanWriter(con)
    writer.submit(rows_to_arrow([*_expired_traces(now), _row(NEW_TRACE, "0f" * 8, now)])).result(timeout=30)
    writer.close()
    con = open_database(tmp_path / "budget.duckdb")
    try:
        dry = Pruner(now - DAY_NS, dry_run=True, chunk_traces=1)
        assert dry.step(con) is True
        assert (dry.result().traces, dry.result().spans, dry.chunks) == (7, 11, 0)
        pruner = Pruner(now - DAY_NS, chunk_traces=100, chunk_spans=2)
        left = []
        while not pruner.step(con):
            left.append([t for t, _ in _traces_and_orphans(con)[0]])
        first = ["01" * 16, "02" * 16, "03" * 16, "04" * 16, "05" * 16, "06" * 16, "07" * 16]
        # sizes 1, 2, 1, 3, 1, 2, 1 → chunks [1], [2], [1], [3], [1], [2], [1] (1 + 2 > 2 …)
        assert left == [[*first[i:], NEW_TRACE] for i in range(1, 8)]
        assert _traces_and_orphans(con)[1] == 0
        assert (pruner.result().traces, pruner.result().spans) == (7, 11)
        assert prune(con, now - DAY_NS).traces == 0
    finally:
        con.close()


_CRASH_MID_PRUNE = """
import os, signal, sys
from spanreel.collector._retention import Pruner
from spanreel.collector._writer import open_database
con = open_database(__import__("pathlib").Path(sys.argv[1]))
pruner = Pruner(int(sys.argv[2]), chunk_traces=2)
pruner.step(con)
pruner.step(con)
print(pruner.traces, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of the prune
"""


def test_a_crash_in_the_middle_of_a_prune_leaves_whole_traces(tmp_path: Path) -> None:
    """Every chunk is one transaction: after a SIGKILL between two chunks the file holds the
    traces of the chunks not deleted yet, each whole, and a second prune deletes them."""
    now = time.time_ns()
    db = tmp_path / "crash.duckdb"
    writer = SpanWriter(open_database(db))
    writer.submit(rows_to_arrow([*_expired_traces(now), _row(NEW_TRACE, "0f" * 8, now)])).result(timeout=30)
    writer.close()
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_MID_PRUNE, str(db), str(now - DAY_NS)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -9 and proc.stdout.strip() == "4", proc.stderr
    con = open_database(db)
    try:
        whole, orphans = _traces_and_orphans(con)
        assert orphans == 0
        assert [t for t, _ in whole] == ["05" * 16, "06" * 16, "07" * 16, NEW_TRACE]
        assert (prune(con, now - DAY_NS).traces, _traces_and_orphans(con)) == (3, ([(NEW_TRACE, 1)], 0))
    finally:
        con.close()


#: 600,000 rows that DuckDB makes in a fraction of a second and spanreel converts to JSON in
#: seconds (timestamps inside a list of structs are formatted in Python).
_SLOW_TO_CONVERT = (
    "SELECT i, TIMESTAMP_NS '2026-01-01' + to_microseconds(i) AS t, [{'at': TIMESTAMP '2026-01-01' "
    "+ to_microseconds(i), 'day': DATE '2026-01-01'}] AS l FROM range(600000) t(i)"
)


def test_query_answers_are_capped_in_bytes_and_the_timeout_covers_their_conversion(tmp_path: Path) -> None:
    """``query_max_rows`` limited rows, not bytes: one query returning a 500 MB value took the
    collector from 150 MB to 1.6 GB and answered after 40 s despite a 30 s ``query_timeout``, which
    did not cover turning the result into JSON. ``query_max_bytes`` cuts an answer after the rows
    that fit (``truncated``, as the row cap), DuckDB's result is not read past it, and the
    timeout now interrupts the conversion."""
    db = tmp_path / "caps.duckdb"
    config = tmp_path / "caps.yaml"
    config.write_text(
        "receivers:\n  otlp:\n    protocols:\n      http: {endpoint: 127.0.0.1:0}\n"
        "exporters:\n  duckdb:\n    query_timeout: 1s\n    query_max_bytes: 33554432\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    checked = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(config)])
    assert "query answers   at most 1,000,000 rows, 32 MiB" in checked.output, checked.output
    cap = 32 << 20
    with start_collector(db, "--config", str(config)) as running:
        url = f"{running.info['query_url']}/api/query"
        big_rows = "SELECT i, repeat('x', 10000) AS s FROM range(5000) t(i)"  # 50 MB
        r = httpx.post(url, json={"sql": big_rows}, timeout=60)
        assert r.status_code == 200 and cap - 50_000 < len(r.content) <= cap, len(r.content)
        answer = r.json()
        assert answer["truncated"] is True and 3000 < len(answer["rows"]) < 3400
        assert [row[0] for row in answer["rows"]] == list(range(len(answer["rows"])))  # the first ones
        # One value larger than the cap: no row (it was read, converted and sent whole).
        r = httpx.post(url, json={"sql": "SELECT 1 AS n, repeat('x', 40000000) AS s"}, timeout=60)
        assert r.json() == {"columns": ["n", "s"], "rows": [], "truncated": True}
        whole = httpx.post(url, json={"sql": "SELECT repeat('x', 10000) FROM range(3000)"}, timeout=60)
        assert (len(whole.json()["rows"]), whole.json()["truncated"]) == (3000, False)
        res = CliRunner().invoke(main, ["sql", big_rows, "--db", str(db), "--json"])
        assert res.exit_code == 0 and "query_max_bytes cut the answer at" in " ".join(res.output.split())
        # DuckDB is done with it long before the timeout; the conversion takes seconds more.
        r = httpx.post(url, json={"sql": _SLOW_TO_CONVERT}, timeout=60)
        assert r.status_code == 400 and "query_timeout (1 s)" in r.json()["error"], r.text[:200]
        assert httpx.post(url, json={"sql": "SELECT 1"}).json()["rows"] == [[1]]
    config.write_text(config.read_text().replace("33554432", "-1"))
    refused = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(config)])
    assert refused.exit_code == 1 and "query_max_bytes must be a whole number of bytes ≥ 0" in refused.output


def test_duration_and_ops_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_duration("30d", "k") == 30 * 86400
    assert parse_duration("1h30m", "k") == 5400
    assert parse_duration("250ms", "k") == 0.25
    assert parse_duration(90, "k") == 90
    for bad in ("", "30", "d", "1x", "-5s", True, -1):
        with pytest.raises(ConfigError, match="k"):
            parse_duration(bad, "k")
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    monkeypatch.setenv("SPANREEL_TEST_TOKEN", "tok")
    path = tmp_path / "c.yaml"
    path.write_text(
        "extensions:\n  bearertokenauth/ci:\n    token: ${env:SPANREEL_TEST_TOKEN}\n    scheme: Token\n"
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n"
        "        auth: {authenticator: bearertokenauth/ci}\n"
        "exporters:\n  duckdb:\n    ttl: 2w\n    max_queue_bytes: 1000000\n    decode_workers: 0\n"
        "    query_endpoint: 0.0.0.0:0\n    auth: {authenticator: bearertokenauth/ci}\n"
        "service:\n  extensions: [bearertokenauth/ci]\n"
        "  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    cfg = load_collector_config(path)
    assert (cfg.ttl_s, cfg.max_queue_bytes, cfg.decode_workers) == (14 * 86400, 1_000_000, 0)
    assert cfg.grpc_auth == cfg.query_auth == "Token tok" and cfg.http_auth is None
    assert "tok" not in repr(cfg)
    # Without auth the query API must stay on loopback.
    path.write_text(
        path.read_text().replace("    auth: {authenticator: bearertokenauth/ci}\nservice", "service")
    )
    with pytest.raises(ConfigError, match="loopback"):
        load_collector_config(path)
    assert cfg.query_max_rows == 1_000_000  # the default
    path.write_text(path.read_text().replace("    ttl: 2w\n", "    ttl: 2w\n    query_max_rows: -1\n"))
    with pytest.raises(ConfigError, match=r"query_max_rows must be a whole number ≥ 0"):
        load_collector_config(path)


def test_env_references_are_substituted_after_the_yaml_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the OpenTelemetry Collector, a variable's text is never read as YAML: a token with
    ``#`` or ``: `` is kept whole (it used to be cut at the ``#``), digits stay the token's text,
    an IPv6 endpoint works from a variable; typed settings read a whole-value reference as a YAML
    scalar; ``${VAR}`` has the default scheme ``env``; ``:port`` listens on every interface."""
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    env = {
        "SR_TOKEN": "s3cret #2024: [x]",
        "SR_DIGITS": "0123",
        "SR_GRPC": "[::1]:4317",
        "SR_QUEUE": "2000000",
        "SR_WORKERS": "0",
        "SR_TTL": "2w",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SR_UNSET", raising=False)
    path = tmp_path / "c.yaml"
    config = (
        "extensions:\n  bearertokenauth/a:\n    token: ${env:SR_TOKEN}\n"
        "  bearertokenauth/b: {token: '${SR_DIGITS}'}\n"
        "receivers:\n  otlp:\n    protocols:\n"
        "      grpc: {endpoint: '${env:SR_GRPC}', auth: {authenticator: bearertokenauth/a}}\n"
        "      http: {endpoint: '${SR_UNSET:-}:4318', auth: {authenticator: bearertokenauth/b}}\n"
        "exporters:\n  duckdb:\n    max_queue_bytes: ${env:SR_QUEUE}\n    decode_workers: ${SR_WORKERS}\n"
        "    ttl: ${env:SR_TTL}\n"
        "service:\n  extensions: [bearertokenauth/a, bearertokenauth/b]\n"
        "  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    path.write_text(config)
    cfg = load_collector_config(path)
    assert cfg.grpc_auth == "Bearer s3cret #2024: [x]" and cfg.http_auth == "Bearer 0123"
    assert parse_endpoint(cfg.grpc_endpoint or "", "k") == ("::1", 4317)
    assert parse_endpoint(cfg.http_endpoint or "", "k") == (ALL_INTERFACES, 4318)
    assert (cfg.max_queue_bytes, cfg.decode_workers, cfg.ttl_s) == (2_000_000, 0, 14 * 86400)

    assert expand_env("pa$$word $${env:SR_TOKEN}") == "pa$word ${env:SR_TOKEN}"
    for bad, reason in (
        ("${file:/etc/token}", "provider 'file' is not supported"),
        ("${1x}", "not a reference"),
    ):
        path.write_text(config.replace("${env:SR_TOKEN}", bad))
        with pytest.raises(ConfigError, match=rf"extensions\.bearertokenauth/a\.token: .*{reason}"):
            load_collector_config(path)
    monkeypatch.setenv("SR_QUEUE", "lots")
    path.write_text(config)
    with pytest.raises(ConfigError, match="max_queue_bytes must be a positive number, got 'lots'"):
        load_collector_config(path)


def test_keys_of_real_otel_collector_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings found in OpenTelemetry Collector configs that spanreel refused: ``service.telemetry``
    (``logs.level`` applies; ``metrics`` and the rest are listed as ignored, not errors),
    ``bearertokenauth.filename`` (the token read from a file next to the config) and
    ``compression: ""`` (the Collector's "none")."""
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    (tmp_path / "token.txt").write_text("from-a-file\n")
    path = tmp_path / "otel-config.yaml"
    config = (
        "extensions:\n  bearertokenauth:\n    filename: token.txt\n"
        "receivers:\n  otlp:\n    protocols:\n      http:\n        auth: {authenticator: bearertokenauth}\n"
        "exporters:\n  duckdb: {path: spans.duckdb}\n"
        "  otlphttp: {endpoint: 'http://127.0.0.1:9', compression: ''}\n"
        "service:\n  extensions: [bearertokenauth]\n"
        "  telemetry:\n    logs: {level: WARN, encoding: json}\n    metrics: {level: detailed}\n"
        "  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb, otlphttp]}\n"
    )
    path.write_text(config)
    cfg = load_collector_config(path)
    assert cfg.http_auth == "Bearer from-a-file"
    assert cfg.forwarders[0].compression == "none"
    assert cfg.log_level == "WARNING"
    assert cfg.ignored_settings == ("service.telemetry.metrics", "service.telemetry.logs.encoding")
    checked = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(path)])
    assert checked.exit_code == 0, checked.output
    assert "log level       warning" in checked.output
    assert "ignored         service.telemetry.metrics, service.telemetry.logs.encoding" in checked.output
    assert "from-a-file" not in checked.output
    for broken, message in [
        (config.replace("level: WARN", "level: loud"), "service.telemetry.logs.level must be one of"),
        (config.replace("filename: token.txt", "filename: missing.txt"), "filename: no such file"),
        (config.replace("filename: token.txt", "filename: token.txt\n    token: t"), "not both"),
        (config.replace("compression: ''", "compression: zstd"), "compression must be gzip or none"),
    ]:
        path.write_text(broken)
        with pytest.raises(ConfigError, match=message):
            load_collector_config(path)
    (tmp_path / "token.txt").write_text("  \n")
    path.write_text(config)
    with pytest.raises(ConfigError, match="is empty"):
        load_collector_config(path)


def test_the_cli_does_not_record_its_own_calls_to_the_collector(tmp_path: Path) -> None:
    """With ``SPANREEL_ENABLED=1`` exported in the shell, every ``spanreel traces``/``sql`` recorded
    its own ``GET /healthz`` and ``POST /api/query`` as new traces in the database it listed."""
    db = tmp_path / "spans.duckdb"
    with start_collector(db) as collector:
        env = clean_env(
            SPANREEL_ENABLED="1",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.http_url,
            OTEL_BSP_SCHEDULE_DELAY="10",
        )
        for args in (["traces"], ["sql", "SELECT count(*) FROM spans"]):
            proc = subprocess.run(
                [sys.executable, "-m", "spanreel", *args, "--db", str(db)],
                env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        # The control: an app's own HTTP request from the same set-up is recorded (and exported at
        # exit before the process ends), so nothing above was lost to a missing exporter.
        app = f"import httpx; httpx.get({collector.info['query_url'] + '/healthz'!r})"
        proc = subprocess.run(
            [sys.executable, "-c", app], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr  # exported at exit; acknowledged means committed
        names = run_query("SELECT name, attributes FROM spans", db).rows
    assert len(names) == 1 and names[0][0] == "GET", names
