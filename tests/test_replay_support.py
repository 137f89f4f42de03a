"""Helpers for the replay/query tests (no tests here): build SpanRecords, store them in a DuckDB file
with the collector's own schema and writer (docs/internals.md §2), and a ``run_query`` stand-in
with the documented value conventions (§3)."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from spanreel.collector import run_query
from spanreel.collector._batch import add_llm_content
from spanreel.collector._schema import rows_to_arrow
from spanreel.collector._writer import SpanWriter, open_database
from spanreel.replay import SpanRecord

T0 = 1_795_308_420_000_000_000  # 2026-11-22T00:47:00Z in ns
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


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


def _row(s: SpanRecord) -> dict[str, Any]:
    """``s`` as a normalised span row (the input of :func:`rows_to_arrow`)."""
    return {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "trace_state": s.trace_state,
        "name": s.name,
        "kind": s.kind,
        "service_name": s.service_name,
        "scope_name": s.scope_name,
        "scope_version": s.scope_version,
        "start_time_unix_nano": s.start_time_ns,
        "end_time_unix_nano": s.end_time_ns,
        "duration_ns": s.duration_ns,
        "status_code": s.status_code,
        "status_message": s.status_message,
        "attributes": dict(s.attributes),
        "resource_attributes": dict(s.resource_attributes),
        "events": list(s.events),
        "links": list(s.links),
        "operation": s.operation,
        "provider": s.provider,
        "request_model": s.request_model,
        "response_model": s.response_model,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "finish_reasons": list(s.finish_reasons) or None,
        "session_id": s.session_id,
        "conversation_id": s.conversation_id,
    }


def write_db(path: Path, spans: Sequence[SpanRecord]) -> Path:
    """Create ``path`` and store ``spans`` (+ their trace_index rows) through the collector's writer,
    with the message and cost columns derived as the collector derives them."""
    writer = SpanWriter(open_database(path))
    try:
        writer.submit(rows_to_arrow(add_llm_content([_row(s) for s in spans]))).result(timeout=30)
    finally:
        writer.close()
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


def otlp_dict(spans: Sequence[ReadableSpan], *, hex_ids: bool = False) -> dict[str, Any]:
    """SDK spans as an ``ExportTraceServiceRequest`` in protobuf's JSON mapping: ids in base64
    (what Tempo and Jaeger v3 write), or as hex (the OTLP/JSON spelling) with ``hex_ids``."""
    doc: dict[str, Any] = json_format.MessageToDict(encode_spans(spans))
    return to_hex_ids(doc) if hex_ids else doc


def to_hex_ids(doc: Any) -> Any:
    """Protobuf JSON (base64 ``traceId`` / ``spanId`` / ``parentSpanId``) → OTLP/JSON (hex ids)."""
    if isinstance(doc, dict):
        return {
            k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else to_hex_ids(v)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [to_hex_ids(v) for v in doc]
    return doc


def wait_for(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``predicate`` every 0.1 s until it returns a truthy value (returned); fail after
    ``timeout`` seconds. For effects that happen in another process (collector ingest)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def wait_for_failed_calls(db: Path, session: str, count: int) -> None:
    """Wait until ``count`` failed LLM calls (status ERROR) of ``session`` are stored in ``db`` (a
    collector's database: it stores what it receives in its own time)."""
    sql = "SELECT count(*) FROM llm_calls WHERE session_id = ? AND status_code = 'ERROR'"
    wait_for(lambda: run_query(sql, db, [session]).rows[0][0] >= count, what=f"the failed calls of {session}")
