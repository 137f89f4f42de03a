"""Trace loading, tree building, replay and the query commands (``spanreel sql|traces|show|replay``).

- :func:`load_trace` reads one trace from the DuckDB store (through
  :func:`spanreel.collector.run_query`) as :class:`SpanRecord` objects; :func:`load_session` every
  trace of a session; :func:`load_trace_file` an OTLP JSON file (as exported by spanreel or any
  OTLP backend);
- :func:`build_tree` rebuilds the span tree (:class:`TreeNode`), keeping orphans under placeholders;
- :func:`replay_trace` / :func:`replay_session` / :func:`replay_spans` re-send the recorded LLM
  requests (verbatim or cascade, with :class:`ReplayEdits`), record the replay as a new trace
  linked to the original and return a :class:`ReplayResult` pairing each original call with its
  replay; :func:`prepare_replay` computes the :class:`ReplayPlan` without sending anything;
  :func:`judge` turns a result into a CI verdict (``--fail-on``).
- offline: :func:`exchanges_from_spans` + :class:`RecordedServer` answer OpenAI/Anthropic requests
  with recorded responses (``spanreel serve-recorded``, the ``spanreel`` pytest plugin);
  :func:`fetch_span_rows` + :func:`export_text` / :func:`finetune_records` /
  :func:`spans_to_otlp_json` export spans (``spanreel export``).

Contracts: docs/internals.md (§1 span attributes, §2 storage, §3 query access).
"""

from __future__ import annotations

from ._edits import EditError, ReplayEdits
from ._execute import (
    CallResult,
    CallSide,
    ExportStatus,
    ReplayPlan,
    ReplayResult,
    prepare_replay,
    replay_session,
    replay_spans,
    replay_trace,
)
from ._export import ExportError, export_text, fetch_span_rows, finetune_records, spans_to_otlp_json
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
from ._messages import ModelOutput, ToolCall
from ._plan import PlannedCall, plan_calls, rewrite_url
from ._recorded import RecordedExchange, exchanges_from_spans
from ._report import Verdict, judge, render_report, report_to_json
from ._safety import RetryPolicy, UnsafeHostError
from ._serve import RecordedServer, RecordingIndex
from ._tree import TreeNode, build_tree

__all__ = [
    "AmbiguousTraceId",
    "CallResult",
    "CallSide",
    "EditError",
    "ExportError",
    "ExportStatus",
    "InvalidTraceId",
    "ModelOutput",
    "PlannedCall",
    "RecordedExchange",
    "RecordedServer",
    "RecordingIndex",
    "ReplayEdits",
    "ReplayPlan",
    "ReplayResult",
    "RetryPolicy",
    "SessionNotFound",
    "SpanRecord",
    "ToolCall",
    "TraceFileError",
    "TraceLookupError",
    "TraceNotFound",
    "TreeNode",
    "UnsafeHostError",
    "Verdict",
    "build_tree",
    "exchanges_from_spans",
    "export_text",
    "fetch_span_rows",
    "finetune_records",
    "judge",
    "load_session",
    "load_trace",
    "load_trace_file",
    "plan_calls",
    "prepare_replay",
    "render_report",
    "replay_session",
    "replay_spans",
    "replay_trace",
    "report_to_json",
    "rewrite_url",
    "spans_to_otlp_json",
]
