"""Helpers for the replay/query tests (no tests here): build SpanRecords and DuckDB files with the
documented storage schema (docs/internals.md §2) independently of the collector's writer, and a
``run_query`` stand-in with the documented value conventions (§3)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from spanreel.replay import SpanRecord

T0 = 1_795_308_420_000_000_000  # 2026-11-21T20:07:00Z in ns
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

_DDL = """
CREATE TABLE spans (
    trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, trace_state VARCHAR,
    name VARCHAR, kind VARCHAR, service_name VARCHAR, scope_name VARCHAR, scope_version VARCHAR,
    start_time TIMESTAMP_NS, end_time TIMESTAMP_NS, duration_ns BIGINT,
    status_code VARCHAR, status_message VARCHAR,
    attributes JSON, resource_attributes JSON, events JSON, links JSON,
    operation VARCHAR, provider VARCHAR, request_model VARCHAR, response_model VARCHAR,
    input_tokens BIGINT, output_tokens BIGINT, finish_reasons VARCHAR[],
    session_id VARCHAR, conversation_id VARCHAR, received_at TIMESTAMP,
    UNIQUE (trace_id, span_id)
);
CREATE TABLE trace_index (
    trace_id VARCHAR PRIMARY KEY, start_time TIMESTAMP_NS, end_time TIMESTAMP_NS,
    root_span_id VARCHAR, root_name VARCHAR, service_name VARCHAR, span_count BIGINT,
    llm_calls BIGINT, input_tokens BIGINT, output_tokens BIGINT, session_id VARCHAR
);
CREATE VIEW traces AS SELECT *, epoch_ns(end_time) - epoch_ns(start_time) AS duration_ns FROM trace_index;
"""


def rec(
    span_id: str,
    parent: str | None = None,
    *,
    name: str | None = None,
    start_ms: float = 0,
    dur_ms: float = 10,
    trace_id: str = TRACE,
    **kw: Any,
) -> SpanRecord:
    """A SpanRecord with readable defaults; span ids are padded to 16 hex chars."""
    start = T0 + int(start_ms * 1e6)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id.rjust(16, "0"),
        parent_span_id=parent.rjust(16, "0") if parent else None,
        name=name or f"span {span_id}",
        kind=kw.pop("kind", "INTERNAL"),
        service_name=kw.pop("service_name", "app"),
        start_time_ns=start,
        end_time_ns=start + int(dur_ms * 1e6),
        **kw,
    )


def write_db(path: Path, spans: Sequence[SpanRecord]) -> Path:
    """Create ``path`` with the documented schema and insert ``spans`` (+ their trace_index rows)."""
    con = duckdb.connect(str(path))
    try:
        con.execute(_DDL)
        for s in spans:
            con.execute(
                "INSERT INTO spans VALUES (?, ?, ?, '', ?, ?, ?, ?, '0.1.0', "
                "make_timestamp_ns(?), make_timestamp_ns(?), ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, NULL, now())",
                [
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id,
                    s.name,
                    s.kind,
                    s.service_name,
                    s.scope_name,
                    s.start_time_ns,
                    s.end_time_ns,
                    s.duration_ns,
                    s.status_code,
                    s.status_message,
                    json.dumps(dict(s.attributes)),
                    json.dumps(list(s.events)),
                    json.dumps(list(s.links)),
                    s.operation,
                    s.provider,
                    s.request_model,
                    s.response_model,
                    s.input_tokens,
                    s.output_tokens,
                    list(s.finish_reasons) or None,
                    s.session_id,
                ],
            )
        con.execute(
            """
            INSERT INTO trace_index
            SELECT trace_id, min(start_time), max(end_time),
                   arg_min(span_id, start_time) FILTER (WHERE parent_span_id IS NULL),
                   arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL),
                   arg_min(service_name, start_time), count(*),
                   count(operation), sum(input_tokens), sum(output_tokens), any_value(session_id)
            FROM spans GROUP BY trace_id
            """
        )
    finally:
        con.close()
    return path


@dataclass
class Result:
    columns: list[str]
    rows: list[list[Any]]


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC).isoformat() if value.tzinfo is None else value.isoformat()
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def direct_query(sql: str, db_path: Path, params: Sequence[Any] | None = None) -> Result:
    """A stand-in for ``spanreel.collector.run_query`` (direct, read-only path)."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        cur = con.execute(sql, list(params or []))
        columns = [d[0] for d in cur.description or []]
        rows = [[_json_safe(v) for v in row] for row in cur.fetchall()]
    finally:
        con.close()
    return Result(columns, rows)
