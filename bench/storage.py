"""Storage benchmark: get-trace-by-id and one analytical query on a spans table of 10M rows.

The database is built with the collector's own migrations and filled by DuckDB SQL (no Python
loop): 10M spans in 2M traces of 5 spans (a root and four LLM calls over six models), spread in
arrival order over 30 days as a collector writes them, with ~300 bytes of attributes each (LLM
calls also have their messages and cost columns); the per-trace lookup ``trace_index`` (with the
stored span ids) is derived the way the writer keeps it.

Measured on the read-only connection the CLI uses (DuckDB ``read_only``, external access off):

- **get-trace-by-id** for random existing traces — the baseline ``WHERE trace_id = ?`` (a full
  scan: random ids defeat zone maps), against the per-trace lookup: ``trace_index`` gives the
  trace's time range, and ``start_time BETWEEN`` lets DuckDB skip every other row group. Target
  < 50 ms.
- **tokens by model by hour** over the whole table. Target < 1 s.
- **recent sessions**: what ``spanreel sessions`` runs (the newest 20 session ids from two
  columns, then the ``sessions`` view's rows for those ids only), against reading the whole
  ``sessions`` view and keeping the newest 20 (baseline). Sessions have random ids (no zone-map
  help), 50 spans each. Target < 1 s.

Run (generation takes a few minutes on 2 cores; not part of CI):

    python bench/storage.py                      # 10M spans in a temporary file
    python bench/storage.py --spans 1000000 --keep /tmp/spans-1m.duckdb
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from spanreel._trace_sql import RECENT_SESSIONS_SQL, SESSIONS_BY_ID_SQL, TRACE_SPANS
from spanreel.collector._query import connect, execute_read_only
from spanreel.collector._writer import open_database

SPANS_PER_TRACE = 5
CHUNK = 1_000_000

_FILL = """
INSERT INTO spans
SELECT
    md5((i // 5)::VARCHAR)                                            AS trace_id,
    substr(md5('s' || i::VARCHAR), 1, 16)                             AS span_id,
    CASE WHEN i % 5 = 0 THEN NULL ELSE substr(md5('s' || (i - i % 5)::VARCHAR), 1, 16) END,
    ''                                                                 AS trace_state,
    CASE WHEN i % 5 = 0 THEN 'invoke_agent planner' ELSE 'chat ' || m.model END AS name,
    CASE WHEN i % 5 = 0 THEN 'INTERNAL' ELSE 'CLIENT' END             AS kind,
    'svc-' || (i // 5 % 7)::VARCHAR                                    AS service_name,
    'spanreel', '0.1.0',
    t.start_time,
    t.start_time + INTERVAL 800 MILLISECOND,
    800000000,
    CASE WHEN i % 97 = 0 THEN 'ERROR' ELSE 'UNSET' END, '',
    json_object('gen_ai.operation.name', 'chat', 'gen_ai.request.model', m.model,
                'gen_ai.usage.input_tokens', 100 + i % 400, 'gen_ai.usage.output_tokens', 20 + i % 300,
                'session.id', 'sess-' || md5((i // 50)::VARCHAR)[:12],
                'gen_ai.input.messages', repeat('lorem ipsum ', 12))           AS attributes,
    '{"service.name":"bench"}', '[]', '[]',
    CASE WHEN i % 5 = 0 THEN NULL ELSE 'chat' END                      AS operation,
    CASE WHEN i % 5 = 0 THEN NULL ELSE m.provider END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE m.model END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE m.model || '-2026-01-01' END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE 100 + i % 400 END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE 20 + i % 300 END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE ['stop'] END,
    'sess-' || md5((i // 50)::VARCHAR)[:12], NULL,
    CASE WHEN i % 5 = 0 THEN NULL ELSE json_array(json_object('role', 'user', 'parts',
        json_array(json_object('type', 'text', 'content', repeat('lorem ipsum ', 12))))) END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE json_array(json_object('role', 'assistant', 'parts',
        json_array(json_object('type', 'text', 'content', 'dolor sit amet')), 'finish_reason', 'stop')) END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE (i % 100) / 10000.0 END        AS cost_usd,
    t.start_time::TIMESTAMP
FROM range(?, ?) r(i),
LATERAL (SELECT (TIMESTAMP_NS '2026-10-01' + to_microseconds((i * ?)::BIGINT))::TIMESTAMP_NS AS start_time) t,
LATERAL (SELECT ['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4', 'claude-haiku-4', 'gemini-2.5-pro',
                 'o3'][1 + i % 6] AS model,
                ['openai', 'openai', 'anthropic', 'anthropic', 'gcp.gemini', 'openai'][1 + i % 6]
                AS provider) m
"""

#: trace_index derived from stored spans, the way the writer keeps it (also used by ui_queries.py).
TRACE_INDEX_FILL = """
INSERT INTO trace_index
SELECT trace_id, min(start_time), max(end_time),
       arg_min(span_id, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(service_name, start_time), count(*), count(operation),
       sum(input_tokens) FILTER (WHERE operation IS NOT NULL),
       sum(output_tokens) FILTER (WHERE operation IS NOT NULL),
       arg_min(session_id, start_time) FILTER (WHERE session_id IS NOT NULL),
       sum(cost_usd) FILTER (WHERE operation IS NOT NULL),
       list(('0x' || span_id)::UBIGINT)
FROM spans GROUP BY trace_id
"""

#: Baseline: what a query without the per-trace lookup does.
TRACE_SCAN_SQL = "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time, span_id"
#: With the lookup: the trace's time range from trace_index bounds the scan (zone maps).
#: (the query `spanreel show`, `replay` and `export` run: spanreel/_trace_sql.py)
TRACE_LOOKUP_SQL = f"SELECT s.* FROM {TRACE_SPANS} ORDER BY s.start_time, s.span_id"
#: Baseline for recent sessions: the whole view, then the newest 20.
ALL_SESSIONS_SQL = "SELECT * FROM sessions ORDER BY start_time DESC, session_id LIMIT 20"
TOKENS_BY_MODEL_BY_HOUR_SQL = """
SELECT request_model, date_trunc('hour', start_time) AS hour,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, count(*) AS calls
FROM llm_calls GROUP BY ALL ORDER BY hour, request_model
"""


def build(path: Path, n_spans: int) -> None:
    con = open_database(path)
    step_us = 30 * 86_400 * 1_000_000 / n_spans  # 30 days of arrivals
    try:
        started = time.perf_counter()
        for lo in range(0, n_spans, CHUNK):
            hi = min(lo + CHUNK, n_spans)
            con.execute(_FILL, [lo, hi, step_us])
            print(f"  {hi:>11,} spans  {time.perf_counter() - started:6.1f} s", flush=True)
        con.execute(TRACE_INDEX_FILL)
        con.execute("CHECKPOINT")
        print(f"  trace_index built, checkpointed: {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        con.close()


def _timed(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    result = execute_read_only(con, sql, params)
    return time.perf_counter() - started, len(result.rows)


def _recent_sessions(con: duckdb.DuckDBPyConnection) -> float:
    """Seconds for the two queries of ``spanreel sessions`` (20 sessions)."""
    started = time.perf_counter()
    ids = [row[0] for row in execute_read_only(con, RECENT_SESSIONS_SQL, [20]).rows]
    rows = execute_read_only(con, SESSIONS_BY_ID_SQL, [ids]).rows
    assert len(rows) == 20 and all(row[8] == 50 for row in rows), rows[:1]  # span_count
    return time.perf_counter() - started


def _summary(name: str, seconds: list[float], target_s: float) -> str:
    ms = sorted(s * 1000 for s in seconds)
    verdict = "met" if statistics.median(ms) < target_s * 1000 else "NOT met"
    return (
        f"{name:<34} median {statistics.median(ms):8.1f} ms   max {ms[-1]:8.1f} ms   "
        f"(n={len(ms)}; target < {target_s * 1000:.0f} ms: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000_000, help="rows in spans")
    parser.add_argument("--lookups", type=int, default=30, help="trace ids looked up")
    parser.add_argument(
        "--keep", type=Path, help="build (or reuse) this database file instead of a temporary one"
    )
    args = parser.parse_args()
    workdir = None
    if args.keep:
        path = args.keep
    else:
        workdir = Path(tempfile.mkdtemp(prefix="spanreel-storage-"))
        path = workdir / "spans.duckdb"
    try:
        if not path.exists():
            print(f"building {args.spans:,} spans in {path} …", flush=True)
            build(path, args.spans)
        con = connect(str(path), read_only=True)
        try:
            rows = con.execute("SELECT count(*), (SELECT count(*) FROM trace_index) FROM spans").fetchone()
            assert rows is not None
            size = os.path.getsize(path)
            print(
                f"spans: {rows[0]:,}, traces: {rows[1]:,}, file: {size / 2**30:.2f} GiB, "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
            )
            rnd = random.Random(1)
            sample = (
                f"SELECT trace_id FROM trace_index USING SAMPLE reservoir({int(args.lookups)}) REPEATABLE (7)"
            )
            ids = [r[0] for r in con.execute(sample).fetchall()]
            rnd.shuffle(ids)
            lookup, scan = [], []
            for trace_id in ids:
                seconds, n = _timed(con, TRACE_LOOKUP_SQL, [trace_id])
                assert n == SPANS_PER_TRACE, (trace_id, n)
                lookup.append(seconds)
            for trace_id in ids[: max(3, len(ids) // 5)]:
                seconds, n = _timed(con, TRACE_SCAN_SQL, [trace_id])
                assert n == SPANS_PER_TRACE
                scan.append(seconds)
            analytics = [_timed(con, TOKENS_BY_MODEL_BY_HOUR_SQL)[0] for _ in range(5)]
            recent_sessions = [_recent_sessions(con) for _ in range(5)]
            all_sessions = [_timed(con, ALL_SESSIONS_SQL)[0] for _ in range(3)]
        finally:
            con.close()
        print(_summary("get-trace-by-id (trace_index)", lookup, 0.050))
        print(_summary("get-trace-by-id (scan, baseline)", scan, 0.050))
        speedup = statistics.median(scan) / statistics.median(lookup)
        relation = f"{speedup:.1f}× faster than" if speedup >= 1 else f"{1 / speedup:.1f}× slower than"
        print(f"{'':<34} the lookup is {relation} the scan (ratio scan/lookup {speedup:.2f})")
        print(_summary("tokens by model by hour", analytics, 1.0))
        print(_summary("recent sessions (20)", recent_sessions, 1.0))
        print(_summary("whole sessions view (baseline)", all_sessions, 1.0))
        ratio = statistics.median(all_sessions) / statistics.median(recent_sessions)
        print(f"{'':<34} `spanreel sessions` is {ratio:.1f}× faster than reading the whole view")
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
