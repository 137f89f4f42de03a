"""Speed of the trace viewer's queries at scale (``spanreel.collector._ui_data``).

Builds a DuckDB file with the collector's schema (``collector/_schema.py`` migrations) holding
``--spans`` synthetic spans (10 per trace: a root, 3 LLM calls with messages, 6 other spans;
stored in time order as the collector receives them), then times, median of ``--runs``:

- the traces list, first page and a deep page (keyset cursor 90 % into the history), against two
  baselines measured in the same run: OFFSET paging over ``trace_index`` to the same depth, and
  the naive list computed from ``spans`` (GROUP BY trace, ORDER BY start, LIMIT);
- the list with each filter (service, model, session, status, time range, text search);
- one trace's page data, a session, and a replay comparison's lookups.

Run: ``python bench/ui_queries.py [--spans 1000000] [--runs 5] [--db PATH]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage import TRACE_INDEX_FILL

from spanreel.collector._query import QueryResult, connect, execute_read_only
from spanreel.collector._schema import migrate
from spanreel.collector._ui_data import (
    TraceFilters,
    encode_cursor,
    list_traces,
    session_detail,
    trace_detail,
)

SPANS_PER_TRACE = 10
_FILL = """
INSERT INTO spans BY NAME
WITH t AS (SELECT range AS t FROM range(?)),
     s AS (SELECT range AS s FROM range(10))
SELECT md5(t::VARCHAR) AS trace_id,
       substr(md5(t::VARCHAR || '-' || s::VARCHAR), 1, 16) AS span_id,
       CASE WHEN s = 0 THEN NULL
            ELSE substr(md5(t::VARCHAR || '-' || CASE WHEN s IN (2, 4, 6, 8) THEN s - 1 ELSE 0 END), 1, 16)
       END AS parent_span_id,
       '' AS trace_state,
       CASE WHEN s = 0 THEN 'handle request ' || (t % 50)::VARCHAR
            WHEN s IN (1, 3, 5) THEN 'chat gpt-' || (t % 4)::VARCHAR
            ELSE 'step ' || s::VARCHAR END AS name,
       CASE WHEN s IN (1, 3, 5) THEN 'CLIENT' ELSE 'INTERNAL' END AS kind,
       'service-' || (t % 5)::VARCHAR AS service_name,
       'bench' AS scope_name, '1' AS scope_version,
       TIMESTAMP_NS '2026-01-01 00:00:00' + to_milliseconds(t * 1000 + s * 20) AS start_time,
       TIMESTAMP_NS '2026-01-01 00:00:00' + to_milliseconds(t * 1000 + s * 20 + 15) AS end_time,
       15000000 AS duration_ns,
       CASE WHEN s = 9 AND t % 100 = 0 THEN 'ERROR' ELSE 'UNSET' END AS status_code,
       '' AS status_message,
       CASE WHEN s IN (1, 3, 5) THEN json_object(
            'gen_ai.request.model', 'gpt-' || (t % 4)::VARCHAR,
            'gen_ai.input.messages', json_array(json_object('role', 'user', 'parts', json_array(
                json_object('type', 'text', 'content',
                    'Question ' || t::VARCHAR || ' about '
                    || CASE WHEN t % 1000 = 7 THEN 'zebras' ELSE 'tables' END
                    || ' and a longer body of text so that the message has a realistic size '
                    || repeat('x', 300))))),
            'gen_ai.output.messages', json_array(json_object('role', 'assistant', 'parts', json_array(
                json_object('type', 'text', 'content',
                    'An answer of moderate length ' || repeat('y', 400))))))
            ELSE json_object('step', s) END AS attributes,
       '{}' AS resource_attributes, '[]' AS events, '[]' AS links,
       CASE WHEN s IN (1, 3, 5) THEN 'chat' END AS operation,
       CASE WHEN s IN (1, 3, 5) THEN 'openai' END AS provider,
       CASE WHEN s IN (1, 3, 5) THEN 'gpt-' || (t % 4)::VARCHAR END AS request_model,
       CASE WHEN s IN (1, 3, 5) THEN 'gpt-' || (t % 4)::VARCHAR END AS response_model,
       CASE WHEN s IN (1, 3, 5) THEN 40 END AS input_tokens,
       CASE WHEN s IN (1, 3, 5) THEN 60 END AS output_tokens,
       CASE WHEN s IN (1, 3, 5) THEN ['stop'] END AS finish_reasons,
       'sess-' || (t % 20000)::VARCHAR AS session_id,
       NULL AS conversation_id,
       CASE WHEN s IN (1, 3, 5) THEN attributes->'gen_ai.input.messages' END AS input_messages,
       CASE WHEN s IN (1, 3, 5) THEN attributes->'gen_ai.output.messages' END AS output_messages,
       CASE WHEN s IN (1, 3, 5) THEN 0.00005 END AS cost_usd,
       now()::TIMESTAMP AS received_at
FROM t, s
ORDER BY start_time
"""
_NAIVE_LIST = """
SELECT trace_id, min(start_time) AS start_time, max(end_time) AS end_time,
       arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_name,
       count(operation) AS llm_calls, sum(input_tokens) + sum(output_tokens) AS tokens,
       count(*) FILTER (WHERE status_code = 'ERROR') AS errors
FROM spans GROUP BY trace_id ORDER BY start_time DESC, trace_id DESC LIMIT 50 OFFSET ?
"""


def build(path: Path, spans: int) -> int:
    traces = spans // SPANS_PER_TRACE
    con = connect(str(path))
    try:
        migrate(con)
        con.execute(_FILL, [traces])
        con.execute(TRACE_INDEX_FILL)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return traces


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm the buffer pool
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, help="reuse or create this file (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spanreel-bench-ui-") as tmp:
        path = args.db or Path(tmp) / "spans.duckdb"
        t0 = time.perf_counter()
        if not path.exists():
            build(path, args.spans)
        con = connect(str(path), read_only=True)
        stored = con.execute("SELECT count(*) FROM spans").fetchone()[0]  # type: ignore[index]
        traces = con.execute("SELECT count(*) FROM trace_index").fetchone()[0]  # type: ignore[index]
        took = time.perf_counter() - t0
        print(f"database: {stored:,} spans, {traces:,} traces ({took:.1f} s to build/open)")

        def query(sql: str, params: list[Any]) -> QueryResult:
            return execute_read_only(con, sql, params)

        depth = int(traces * 0.9) // 50 * 50
        row = con.execute(
            "SELECT start_time::VARCHAR, trace_id FROM trace_index ORDER BY start_time DESC, trace_id DESC "
            "LIMIT 1 OFFSET ?",
            [depth - 1],
        ).fetchone()
        assert row is not None
        deep_cursor = encode_cursor(str(row[0]).replace(" ", "T") + "Z", str(row[1]))
        runs = args.runs
        first = median_ms(lambda: list_traces(query, TraceFilters()), runs)
        deep = median_ms(lambda: list_traces(query, TraceFilters(), cursor=deep_cursor), runs)
        offset = median_ms(
            lambda: query(
                "SELECT * FROM trace_index ORDER BY start_time DESC, trace_id DESC LIMIT 50 OFFSET ?", [depth]
            ),
            runs,
        )
        naive_first = median_ms(lambda: query(_NAIVE_LIST, [0]), runs)
        print(f"\ntraces list, 50 per page (median of {runs}; ms)")
        print(f"  first page                      {first:9.1f}")
        print(f"  page at 90 % depth (keyset)     {deep:9.1f}")
        print(f"  baseline: OFFSET {depth:<,} over trace_index (rows only, no totals) {offset:9.1f}")
        print(f"  baseline: naive GROUP BY over spans, first page   {naive_first:9.1f}")
        print(f"  ratio naive/first page          {naive_first / first:9.1f}x")

        newest = con.execute("SELECT max(start_time) - INTERVAL 1 HOUR FROM trace_index").fetchone()
        last_hour = str(newest[0]).replace(" ", "T") if newest else None
        filters = {
            "service": TraceFilters(service="service-3"),
            "model": TraceFilters(model="gpt-2"),
            "session": TraceFilters(session="sess-1234"),
            "status=error": TraceFilters(status="error"),
            "status=ok": TraceFilters(status="ok"),
            "last hour of data": TraceFilters(since=last_hour),
            "text 'zebras' (0.1 % of traces)": TraceFilters(text="zebras"),
            "text with no match": TraceFilters(text="no such words anywhere"),
        }
        print("\nfiltered first page (ms)")
        for name, f in filters.items():
            ms = median_ms(lambda f=f: list_traces(query, f), runs)  # type: ignore[misc]
            print(f"  {name:34s} {ms:9.1f}")

        some = str(row[1])
        print("\none trace / session (ms)")
        print(f"  trace page data (10 spans)       {median_ms(lambda: trace_detail(query, some), runs):9.1f}")
        unbounded = median_ms(lambda: query("SELECT * FROM spans WHERE trace_id = ?", [some]), runs)
        print(f"  baseline: SELECT * FROM spans WHERE trace_id = ? {unbounded:9.1f}")
        session_ms = median_ms(lambda: session_detail(query, "sess-1234"), runs)
        print(f"  session page (5 traces)          {session_ms:9.1f}")
        con.close()
    print("\n(the machine may be shared: compare figures within one run)")


if __name__ == "__main__":
    main()
