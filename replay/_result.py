"""What a replay returns: each original LLM call paired with its replay (data + pure builders)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import StatusCode
from opentelemetry.trace.span import format_span_id

from ._cost import call_cost
from ._edits import ReplayEdits
from ._load import SpanRecord, parse_json
from ._plan import truncated_attributes

__all__ = [
    "CallResult",
    "CallSide",
    "ExportStatus",
    "ReplayResult",
    "original_side",
    "output_text",
    "replay_side",
]


@dataclass(frozen=True, slots=True)
class CallSide:
    """One side of a call in the report.

    ``output``: the output text (text parts joined; tool calls as ``name(arguments)``; several
    choices separated by a ``---`` line), ``None`` when unknown. Tokens are counts, ``latency_ms``
    the time the call took in milliseconds — the recorded span's duration; for a replayed call
    sent more than once, from the first attempt's start to the last one's end, the waits between
    retries included (:func:`replay_side`) — ``cost_usd`` US dollars (recorded, else estimated from
    tokens; ``None`` when unknown). ``status``: ``"ok"`` or ``"error"`` (``error`` says why).
    """

    span_id: str | None
    model: str | None
    output: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    finish_reasons: tuple[str, ...]
    status: str
    error: str | None = None
    cost_usd: float | None = None
    #: the output was recorded but cut at record time (``spanreel.content.truncated``), so
    #: ``output`` is ``None`` though the call answered
    output_truncated: bool = False


@dataclass(frozen=True, slots=True)
class CallResult:
    """An original LLM call paired with its replay.

    ``replay`` is ``None`` when the call was not replayed; ``skip_reason`` then says why.
    ``url`` is where the replay was sent, ``http_status`` the replay's final HTTP status and
    ``attempts`` how many requests that took (retries of 429/5xx). ``path`` is the session path
    (span names from the trace root), ``trace_id`` the original trace. ``depends_on``: indexes
    of the calls whose new output was substituted into this request (cascade mode). ``edited``:
    whether the edits applied to this call (``--only``). ``divergences``: tool-call differences
    between recording and replay; ``notes``: other remarks (a source call that failed, a request
    rebuilt from another instrumentation's attributes, …).
    """

    index: int
    name: str
    original: CallSide
    replay: CallSide | None
    skip_reason: str | None = None
    url: str | None = None
    http_status: int | None = None
    path: str = ""
    trace_id: str = ""
    depends_on: tuple[int, ...] = ()
    edited: bool = False
    divergences: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    attempts: int = 0

    @property
    def status(self) -> str:
        """``"ok"``, ``"error"`` or ``"skipped"``."""
        return "skipped" if self.replay is None else self.replay.status

    @property
    def output_changed(self) -> bool | None:
        """Whether the replay's output text differs from the original's (``None`` if unknown)."""
        if self.replay is None or self.replay.output is None or self.original.output is None:
            return None
        return self.replay.output != self.original.output


@dataclass(frozen=True, slots=True)
class ExportStatus:
    """Where the replay trace was exported and whether every span got there."""

    endpoint: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of a replay.

    ``original_trace_id``: the (first) original trace; ``original_trace_ids`` all of them (a
    session has several); ``session_id`` when a session was replayed. ``replay_trace_id`` is
    ``None`` when nothing was replayable (no trace is created then). ``mode``: ``"verbatim"`` or
    ``"cascade"``. ``warnings`` are human-readable notes (export failure, missing spans) for stderr.
    """

    original_trace_id: str
    replay_trace_id: str | None
    root_name: str
    calls: tuple[CallResult, ...]
    edits: ReplayEdits
    base_url: str | None
    export: ExportStatus | None
    warnings: tuple[str, ...] = ()
    mode: str = "verbatim"
    original_trace_ids: tuple[str, ...] = ()
    session_id: str | None = None

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if c.status == "error")

    @property
    def ok(self) -> bool:
        """True when no replayed call errored."""
        return self.errors == 0


# --------------------------------------------------------------------------- builders


def output_text(messages_attr: Any) -> str | None:
    """Text of a ``gen_ai.output.messages`` value (JSON string or parsed list, semconv
    message/parts schema). Text parts are joined by newlines, tool calls shown as
    ``name(arguments)``, several messages (choices) separated by ``\\n---\\n``. ``None`` when
    absent or unreadable."""
    messages = parse_json(messages_attr)
    if not isinstance(messages, list):
        return None
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        parts_out: list[str] = []
        for part in message.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                parts_out.append(str(part.get("content", "")))
            elif kind == "tool_call":
                args = part.get("arguments")
                if not isinstance(args, str):
                    args = json.dumps(args, ensure_ascii=False, sort_keys=True)
                parts_out.append(f"{part.get('name', '?')}({args})")
        texts.append("\n".join(parts_out))
    return "\n---\n".join(texts)


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _str_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(str(v) for v in value)
    return (str(value),)


def original_side(span: SpanRecord, started_ns: int | None = None) -> CallSide:
    """The recorded call as a :class:`CallSide`; ``started_ns`` (ns since the epoch): the first
    attempt's start when ``span`` is the last attempt of a call the app's client retried, so the
    latency covers every attempt, as the replay's does."""
    attrs = span.attributes
    error = None
    if span.is_error:
        error = span.status_message or str(attrs.get(ERROR_TYPE) or "error")
    inp = (
        span.input_tokens if span.input_tokens is not None else _opt_int(attrs.get(GEN_AI_USAGE_INPUT_TOKENS))
    )
    out = (
        span.output_tokens
        if span.output_tokens is not None
        else _opt_int(attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS))
    )
    return CallSide(
        span_id=span.span_id,
        model=span.model,
        output=output_text(attrs.get(GEN_AI_OUTPUT_MESSAGES)),
        input_tokens=inp,
        output_tokens=out,
        latency_ms=span.duration_ms if started_ns is None else max(0, span.end_time_ns - started_ns) / 1e6,
        finish_reasons=tuple(span.finish_reasons) or _str_tuple(attrs.get(GEN_AI_RESPONSE_FINISH_REASONS)),
        status="error" if span.is_error else "ok",
        error=error,
        cost_usd=call_cost(attrs, span.model, span.provider, inp, out),
        output_truncated=GEN_AI_OUTPUT_MESSAGES in truncated_attributes(attrs),
    )


def replay_side(
    span: ReadableSpan | None, elapsed_ms: float, error: str | None, attempts: int = 1
) -> CallSide:
    """The replayed call from the GenAI span of its last attempt (``None``: no span was recorded
    for it). ``elapsed_ms``: wall time of the whole call in milliseconds, every attempt and the
    waits between them included. ``latency_ms`` is the span's duration when the call took one
    attempt, else (or without a span) ``elapsed_ms``: a retried call's last attempt alone would
    hide the time its retries took."""
    if span is None:
        return CallSide(None, None, None, None, None, elapsed_ms, (), "error" if error else "ok", error)
    attrs = span.attributes or {}
    latency = elapsed_ms
    if attempts <= 1 and span.start_time is not None and span.end_time is not None:
        latency = (span.end_time - span.start_time) / 1e6
    if error is None and span.status.status_code is StatusCode.ERROR:
        error = span.status.description or str(attrs.get(ERROR_TYPE) or "error")
    model_value = attrs.get(GEN_AI_RESPONSE_MODEL) or attrs.get(GEN_AI_REQUEST_MODEL)
    model = str(model_value) if model_value is not None else None
    provider = attrs.get(GEN_AI_PROVIDER_NAME)
    inp = _opt_int(attrs.get(GEN_AI_USAGE_INPUT_TOKENS))
    out = _opt_int(attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS))
    return CallSide(
        span_id=format_span_id(span.context.span_id) if span.context else None,
        model=model,
        output=output_text(attrs.get(GEN_AI_OUTPUT_MESSAGES)),
        input_tokens=inp,
        output_tokens=out,
        latency_ms=latency,
        finish_reasons=_str_tuple(attrs.get(GEN_AI_RESPONSE_FINISH_REASONS)),
        status="error" if error else "ok",
        error=error,
        cost_usd=call_cost(attrs, model, str(provider) if provider else None, inp, out),
    )
