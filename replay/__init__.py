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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Public names are imported on first use, so that importing one submodule (the pytest plugin,
# which pytest loads in every session of any project with spanreel installed; or the CLI) does
# not pull in httpx2, the replay engine and the OTel SDK.
_LAZY: dict[str, str] = {
    "AmbiguousTraceId": "_load",
    "CallResult": "_execute",
    "CallSide": "_execute",
    "EditError": "_edits",
    "ExportError": "_export",
    "ExportStatus": "_execute",
    "InvalidTraceId": "_load",
    "ModelOutput": "_messages",
    "PlannedCall": "_plan",
    "RecordedExchange": "_recorded",
    "RecordedServer": "_serve",
    "RecordingIndex": "_serve",
    "ReplayEdits": "_edits",
    "ReplayPlan": "_execute",
    "ReplayResult": "_execute",
    "RetryPolicy": "_safety",
    "SessionNotFound": "_load",
    "SpanRecord": "_load",
    "ToolCall": "_messages",
    "TraceFileError": "_load",
    "TraceLookupError": "_load",
    "TraceNotFound": "_load",
    "TreeNode": "_tree",
    "UnsafeHostError": "_safety",
    "Verdict": "_report",
    "build_tree": "_tree",
    "exchanges_from_spans": "_recorded",
    "export_text": "_export",
    "fetch_span_rows": "_export",
    "finetune_records": "_export",
    "judge": "_report",
    "load_session": "_load",
    "load_trace": "_load",
    "load_trace_file": "_load",
    "plan_calls": "_plan",
    "prepare_replay": "_execute",
    "render_report": "_report",
    "replay_session": "_execute",
    "replay_spans": "_execute",
    "replay_trace": "_execute",
    "report_to_json": "_report",
    "rewrite_url": "_plan",
    "spans_to_otlp_json": "_export",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
