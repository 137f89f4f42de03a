"""Per-trace summary of a span batch (the ``trace_index`` row it contributes), computed where the
batch is decoded.

The writer is the collector's one serial stage; summarising a batch there with SQL cost about as
much as storing it. :func:`trace_rows` computes the same summary in the decode worker (in parallel,
one pass over a few Arrow columns), and the writer uses it whenever the batches of a group share no
trace (:meth:`~spanreel.collector._writer.SpanWriter.submit`). It must equal the writer's SQL
``_AGGREGATE`` (tests/test_collector_trace_rows.py checks it against that query on generated
batches); where several roots or session ids tie on start time either may be chosen, as in SQL.
"""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

__all__ = ["TRACE_ROWS_SCHEMA", "trace_rows"]

#: One row per trace: the columns of ``trace_index`` (docs/schema.md) plus ``distinct_spans``
#: (distinct span ids; less than ``span_count`` when a span is in the batch twice).
TRACE_ROWS_SCHEMA: Final = pa.schema(
    [
        ("trace_id", pa.string()),
        ("start_time", pa.timestamp("ns")),
        ("end_time", pa.timestamp("ns")),
        ("root_span_id", pa.string()),
        ("root_name", pa.string()),
        ("service_name", pa.string()),
        ("span_count", pa.int64()),
        ("llm_calls", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("session_id", pa.string()),
        ("cost_usd", pa.float64()),
        ("span_ids", pa.list_(pa.uint64())),
        ("distinct_spans", pa.int64()),
    ]
)

_INPUT_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "service_name",
    "operation",
    "input_tokens",
    "output_tokens",
    "session_id",
    "cost_usd",
)


class _Trace:
    """Running summary of one trace's spans (the aggregates of the writer's ``_AGGREGATE``)."""

    __slots__ = (
        "cost",
        "end",
        "input_tokens",
        "llm_calls",
        "output_tokens",
        "root_name",
        "root_service",
        "root_service_start",
        "root_span_id",
        "root_start",
        "service",
        "service_start",
        "session",
        "session_start",
        "span_count",
        "span_ids",
        "start",
    )

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.root_start: int | None = None
        self.root_span_id: str | None = None
        self.root_name: str | None = None
        self.root_service: str | None = None
        self.root_service_start: int | None = None
        self.service_start: int | None = None
        self.service: str | None = None
        self.session_start: int | None = None
        self.session: str | None = None
        self.span_count = 0
        self.llm_calls = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cost: float | None = None
        self.span_ids: list[int] = []


def _add(total: Any, value: Any) -> Any:
    """SQL ``sum`` step: NULLs ignored, NULL while nothing was added."""
    if value is None:
        return total
    return value if total is None else total + value


def trace_rows(spans: pa.Table) -> pa.Table:
    """Summarise ``spans`` (a :data:`~spanreel.collector._schema.SPANS_SCHEMA` table) per trace.

    Returns a :data:`TRACE_ROWS_SCHEMA` table, one row per distinct ``trace_id``: start/end times
    (ns, the spans' min start and max end), the root span (``parent_span_id`` NULL) that starts
    first with its name, the service (the first root's that has one, else the first span's that has
    one), span and LLM
    call counts (LLM calls: ``operation`` not NULL), token and cost (USD) sums over the LLM calls
    (NULL when none reported), the first session id, the span ids as unsigned 64-bit integers and
    the number of distinct span ids. Pure; raises ``ValueError`` for a span id that is not hex.
    """
    columns = [spans.column(name) for name in _INPUT_COLUMNS]
    values = [column.to_pylist() for column in columns]
    starts = spans.column("start_time").cast(pa.int64()).to_pylist()
    ends = spans.column("end_time").cast(pa.int64()).to_pylist()
    traces: dict[str, _Trace] = {}
    for trace_id, span_id, parent, name, service, operation, tin, tout, session, cost, start, end in zip(
        *values, starts, ends, strict=True
    ):
        trace = traces.get(trace_id)
        if trace is None:
            trace = traces[trace_id] = _Trace(start, end)
        else:
            if start < trace.start:
                trace.start = start
            if end > trace.end:
                trace.end = end
        trace.span_count += 1
        trace.span_ids.append(int(span_id, 16))
        if parent is None and (trace.root_start is None or start < trace.root_start):
            trace.root_start = start
            trace.root_span_id = span_id
            trace.root_name = name
        if service is not None:
            if trace.service_start is None or start < trace.service_start:
                trace.service_start = start
                trace.service = service
            if parent is None and (trace.root_service_start is None or start < trace.root_service_start):
                trace.root_service_start = start
                trace.root_service = service
        if session is not None and (trace.session_start is None or start < trace.session_start):
            trace.session_start = start
            trace.session = session
        if operation is not None:
            trace.llm_calls += 1
            trace.input_tokens = _add(trace.input_tokens, tin)
            trace.output_tokens = _add(trace.output_tokens, tout)
            trace.cost = _add(trace.cost, cost)
    rows = traces.values()
    return pa.Table.from_arrays(
        [
            pa.array(list(traces), pa.string()),
            pa.array([t.start for t in rows], pa.timestamp("ns")),
            pa.array([t.end for t in rows], pa.timestamp("ns")),
            pa.array([t.root_span_id for t in rows], pa.string()),
            pa.array([t.root_name for t in rows], pa.string()),
            pa.array(
                [t.root_service if t.root_service is not None else t.service for t in rows], pa.string()
            ),
            pa.array([t.span_count for t in rows], pa.int64()),
            pa.array([t.llm_calls for t in rows], pa.int64()),
            pa.array([t.input_tokens for t in rows], pa.int64()),
            pa.array([t.output_tokens for t in rows], pa.int64()),
            pa.array([t.session for t in rows], pa.string()),
            pa.array([t.cost for t in rows], pa.float64()),
            pa.array([t.span_ids for t in rows], pa.list_(pa.uint64())),
            pa.array([len(set(t.span_ids)) for t in rows], pa.int64()),
        ],
        schema=TRACE_ROWS_SCHEMA,
    )
