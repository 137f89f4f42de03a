"""Trace loading, tree building, replay and the query commands (``spanreel sql|traces|show|replay``).

- :func:`load_trace` reads one trace from the DuckDB store (through
  :func:`spanreel.collector.run_query`) as :class:`SpanRecord` objects; :func:`load_session` every
  trace of a session; :func:`load_trace_file` an OTLP JSON file (as exported by spanreel or any
  OTLP backend);
- :func:`build_tree` rebuilds the span tree (:class:`TreeNode`), keeping orphans under placeholders;
- :func:`replay_trace` re-sends the recorded LLM requests, records the replay as a new trace linked
  to the original and returns a :class:`ReplayResult` pairing each original call with its replay.

Contracts: docs/internals.md (§1 span attributes, §2 storage, §3 query access).
"""

from __future__ import annotations

from ._execute import CallResult, CallSide, ExportStatus, ReplayResult, replay_trace
from ._load import (
    AmbiguousTraceId,
    InvalidTraceId,
    SessionNotFound,
    SpanRecord,
    TraceFileError,
    TraceLookupError,
    TraceNotFound,
    load_session,
    load_trace,
    load_trace_file,
)
from ._plan import PlannedCall, ReplayEdits, plan_calls, rewrite_url
from ._report import render_report, report_to_json
from ._tree import TreeNode, build_tree

__all__ = [
    "AmbiguousTraceId",
    "CallResult",
    "CallSide",
    "ExportStatus",
    "InvalidTraceId",
    "PlannedCall",
    "ReplayEdits",
    "ReplayResult",
    "SessionNotFound",
    "SpanRecord",
    "TraceFileError",
    "TraceLookupError",
    "TraceNotFound",
    "TreeNode",
    "build_tree",
    "load_session",
    "load_trace",
    "load_trace_file",
    "plan_calls",
    "render_report",
    "replay_trace",
    "report_to_json",
    "rewrite_url",
]
