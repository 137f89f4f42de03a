"""Replay execution: re-send a trace's recorded LLM requests and record the replay as a new trace.

How a replay runs (:func:`replay_trace`):

1. load the original trace, rebuild its tree, plan the calls (:mod:`spanreel.replay._plan`);
2. create a private :class:`~opentelemetry.sdk.trace.TracerProvider` (resource
   ``service.name=spanreel-replay``, always-on sampling) with two processors: an OTLP exporter
   (see *Export* below) and an in-memory collector the report reads the new spans from;
3. instrument with :class:`spanreel.instrumentation.Instrumentor` on that provider with content
   capture on (an existing instrumentation is removed for the duration and restored after);
4. open a root span ``replay {original root name}`` — a new trace — linked to the original root
   span and carrying ``spanreel.replay.original_trace_id``; inside it, for each replayable call in
   start-time order, send the recorded request (method, URL — rewritten by ``base_url``, see
   :func:`spanreel.replay._plan.rewrite_url` — and JSON body, edited by ``--model``/``--system``)
   with an ``httpx2.Client`` inside :func:`spanreel.instrumentation.replay_of`, so the GenAI span
   carries a link and ``spanreel.replay.original_*`` attributes pointing at the original call;
5. force-flush; export failures become a warning on the result, never an exception.

Credentials come from the environment only, never from the trace (which holds none): see
:data:`CREDENTIALS`.

Export: to the collector running on the same DuckDB file (its discovery file
``<db>.collector.json``, OTLP/HTTP endpoint preferred, else gRPC); without one, the standard
``OTEL_EXPORTER_OTLP_*`` variables (``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` /
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` (default) or ``grpc``) and the SDK defaults.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GenAiProviderNameValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import format_span_id, format_trace_id

from spanreel import __version__
from spanreel._attributes import SPANREEL_REPLAY_ORIGINAL_SPAN_ID, SPANREEL_REPLAY_ORIGINAL_TRACE_ID

from ._load import QueryFn, SpanRecord, load_trace
from ._plan import EditError, PlannedCall, ReplayEdits, apply_edits, plan_calls, rewrite_url
from ._tree import TreeNode, build_tree

__all__ = [
    "CREDENTIALS",
    "REPLAY_SERVICE_NAME",
    "CallResult",
    "CallSide",
    "ExportStatus",
    "ReplayResult",
    "output_text",
    "replay_trace",
]

#: ``service.name`` of the replay trace.
REPLAY_SERVICE_NAME = "spanreel-replay"
#: Seconds a replayed request may take (connect/read/write/pool).
DEFAULT_HTTP_TIMEOUT = 120.0
#: Export timeout (s) when falling back to the SDK's default endpoint without any configuration.
_FALLBACK_EXPORT_TIMEOUT = 3.0

#: provider (``gen_ai.provider.name``) → (environment variable, header, value prefix).
#: Anything else, including OpenAI-compatible servers, uses the ``openai`` entry.
CREDENTIALS: Mapping[str, tuple[str, str, str]] = {
    GenAiProviderNameValues.OPENAI.value: ("OPENAI_API_KEY", "Authorization", "Bearer "),
    GenAiProviderNameValues.ANTHROPIC.value: ("ANTHROPIC_API_KEY", "x-api-key", ""),
    GenAiProviderNameValues.AZURE_AI_OPENAI.value: ("AZURE_OPENAI_API_KEY", "api-key", ""),
    GenAiProviderNameValues.GCP_GEMINI.value: ("GEMINI_API_KEY", "x-goog-api-key", ""),
}
#: Headers a provider requires besides the credential (never recorded: headers are not stored).
_EXTRA_HEADERS: Mapping[str, Mapping[str, str]] = {
    GenAiProviderNameValues.ANTHROPIC.value: {"anthropic-version": "2023-06-01"},
}

_OTLP_LOGGERS = ("opentelemetry.exporter", "opentelemetry.sdk.trace.export")


@dataclass(frozen=True, slots=True)
class CallSide:
    """One side of a call in the report.

    ``output``: the output text (text parts joined; tool calls as ``name(arguments)``; several
    choices separated by a ``---`` line), ``None`` when unknown. Tokens are counts, ``latency_ms``
    the span duration in milliseconds. ``status``: ``"ok"`` or ``"error"`` (``error`` says why).
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


@dataclass(frozen=True, slots=True)
class CallResult:
    """An original LLM call paired with its replay.

    ``replay`` is ``None`` when the call was not replayed; ``skip_reason`` then says why.
    ``url`` is where the replay was sent, ``http_status`` the replay's HTTP status.
    """

    index: int
    name: str
    original: CallSide
    replay: CallSide | None
    skip_reason: str | None = None
    url: str | None = None
    http_status: int | None = None

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
    """The outcome of :func:`replay_trace`.

    ``replay_trace_id`` is ``None`` when nothing was replayable (no trace is created then).
    ``warnings`` are human-readable notes (export failure, missing spans) for stderr.
    """

    original_trace_id: str
    replay_trace_id: str | None
    root_name: str
    calls: tuple[CallResult, ...]
    edits: ReplayEdits
    base_url: str | None
    export: ExportStatus | None
    warnings: tuple[str, ...] = ()

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if c.status == "error")

    @property
    def ok(self) -> bool:
        """True when no replayed call errored (the CLI's exit code 0)."""
        return self.errors == 0


# --------------------------------------------------------------------------- output extraction


def _parse_json_attr(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def output_text(messages_attr: Any) -> str | None:
    """Text of a ``gen_ai.output.messages`` value (JSON string or parsed list, semconv
    message/parts schema). Text parts are joined by newlines, tool calls shown as
    ``name(arguments)``, several messages (choices) separated by ``\\n---\\n``. ``None`` when
    absent or unreadable."""
    messages = _parse_json_attr(messages_attr)
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


def _original_side(span: SpanRecord) -> CallSide:
    attrs = span.attributes
    error = None
    if span.is_error:
        error = span.status_message or str(attrs.get(ERROR_TYPE) or "error")
    return CallSide(
        span_id=span.span_id,
        model=span.model,
        output=output_text(attrs.get(GEN_AI_OUTPUT_MESSAGES)),
        input_tokens=span.input_tokens
        if span.input_tokens is not None
        else _opt_int(attrs.get(GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=span.output_tokens
        if span.output_tokens is not None
        else _opt_int(attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS)),
        latency_ms=span.duration_ms,
        finish_reasons=tuple(span.finish_reasons) or _str_tuple(attrs.get(GEN_AI_RESPONSE_FINISH_REASONS)),
        status="error" if span.is_error else "ok",
        error=error,
    )


def _replay_side(span: ReadableSpan | None, fallback_ms: float, error: str | None) -> CallSide:
    if span is None:
        return CallSide(None, None, None, None, None, fallback_ms, (), "error" if error else "ok", error)
    attrs = span.attributes or {}
    latency = fallback_ms
    if span.start_time is not None and span.end_time is not None:
        latency = (span.end_time - span.start_time) / 1e6
    if error is None and span.status.status_code is StatusCode.ERROR:
        error = span.status.description or str(attrs.get(ERROR_TYPE) or "error")
    finish = _str_tuple(attrs.get(GEN_AI_RESPONSE_FINISH_REASONS))
    model = attrs.get(GEN_AI_RESPONSE_MODEL) or attrs.get(GEN_AI_REQUEST_MODEL)
    return CallSide(
        span_id=format_span_id(span.context.span_id) if span.context else None,
        model=str(model) if model is not None else None,
        output=output_text(attrs.get(GEN_AI_OUTPUT_MESSAGES)),
        input_tokens=_opt_int(attrs.get(GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=_opt_int(attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS)),
        latency_ms=latency,
        finish_reasons=finish,
        status="error" if error else "ok",
        error=error,
    )


# --------------------------------------------------------------------------- export


class _RecordingExporter(SpanExporter):
    """Wraps the OTLP exporter and remembers whether any batch failed."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self.failed_spans = 0
        self.exported_spans = 0
        self.last_error: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # an exporter must not raise; be safe anyway
            self.last_error = f"{type(exc).__name__}: {exc}"
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported_spans += len(spans)
        else:
            self.failed_spans += len(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _LastError(logging.Handler):
    """Keeps the exporter's last error log line instead of printing a traceback to the user."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or self.message is None:
            self.message = record.getMessage()


@contextmanager
def _quiet_exporter_logs() -> Iterator[_LastError]:
    handler = _LastError()
    saved: list[tuple[logging.Logger, bool]] = []
    for name in _OTLP_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate


def _endpoint_value(info: Any, key: str) -> str | None:
    value = info.get(key) if isinstance(info, Mapping) else getattr(info, key, None)
    return str(value) if value else None


def _running_collector_info(db_path: Path) -> Any:
    """The running collector's :class:`~spanreel.collector.CollectorInfo` for ``db_path``, or ``None``."""
    from spanreel.collector import running_collector

    try:
        return running_collector(db_path)
    except Exception:  # discovery problems must not stop a replay; fall back to OTEL_* variables
        return None


def _with_scheme(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"http://{endpoint}"


def make_otlp_exporter(db_path: Path) -> tuple[SpanExporter, str]:
    """The OTLP exporter for the replay trace and a description of where it sends (see module
    docstring, *Export*)."""
    info = _running_collector_info(db_path)
    if info is not None:
        http_ep = _endpoint_value(info, "http_endpoint")
        if http_ep:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HTTPExporter,
            )

            url = _with_scheme(http_ep).rstrip("/") + "/v1/traces"
            return HTTPExporter(endpoint=url), url
        grpc_ep = _endpoint_value(info, "grpc_endpoint")
        if grpc_ep:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GRPCExporter,
            )

            return GRPCExporter(endpoint=grpc_ep, insecure=True), f"grpc://{grpc_ep}"

    env = os.environ
    configured = any(k in env for k in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))
    timeout_set = any(k in env for k in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"))
    timeout = None if (configured or timeout_set) else _FALLBACK_EXPORT_TIMEOUT
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if (protocol or "http/protobuf").strip() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GRPCExporter,
        )

        return GRPCExporter(timeout=timeout), endpoint or "localhost:4317 (gRPC default)"
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter

    exporter = HTTPExporter(timeout=timeout)
    return exporter, endpoint or "http://localhost:4318/v1/traces (default)"


# --------------------------------------------------------------------------- execution


@contextmanager
def _instrumented(provider: TracerProvider) -> Iterator[None]:
    from spanreel.instrumentation import Instrumentor

    instrumentor = Instrumentor()
    was_instrumented = bool(instrumentor.is_instrumented_by_opentelemetry)
    if was_instrumented:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    try:
        yield
    finally:
        instrumentor.uninstrument()
        if was_instrumented:
            instrumentor.instrument()


def _auth_headers(provider: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    key = (
        provider if provider is not None and provider in CREDENTIALS else GenAiProviderNameValues.OPENAI.value
    )
    env_var, header, prefix = CREDENTIALS[key]
    headers = dict(_EXTRA_HEADERS.get(key, {}))
    secret = environ.get(env_var)
    if secret:
        headers[header] = prefix + secret
    return headers


def _http_error_text(response: httpx2.Response) -> str:
    detail = ""
    try:
        payload = response.json()
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(err, Mapping):
            detail = str(err.get("message") or "")
        elif isinstance(err, str):
            detail = err
    except ValueError:
        detail = response.text[:200]
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


def _root_of(roots: Sequence[TreeNode]) -> SpanRecord:
    for node in roots:
        if node.span is not None:
            return node.span
    # only placeholders: the earliest span stands in for the missing root
    return min((s for r in roots for s in r.spans()), key=lambda s: (s.start_time_ns, s.span_id))


def _find_replay_span(spans: Sequence[ReadableSpan], original_span_id: str) -> ReadableSpan | None:
    found = None
    for span in spans:
        attrs = span.attributes or {}
        if attrs.get(SPANREEL_REPLAY_ORIGINAL_SPAN_ID) == original_span_id and GEN_AI_OPERATION_NAME in attrs:
            found = span
    return found


@dataclass
class _Sent:
    url: str | None = None
    http_status: int | None = None
    error: str | None = None
    elapsed_ms: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _send(
    client: httpx2.Client,
    call: PlannedCall,
    edits: ReplayEdits,
    base_url: str | None,
    environ: Mapping[str, str],
) -> _Sent:
    assert call.request is not None
    sent = _Sent()
    try:
        body = apply_edits(call.request, edits, call.span.provider)
        sent.url = rewrite_url(call.request.url, base_url)
    except (EditError, ValueError) as exc:
        sent.error = str(exc)
        return sent
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "user-agent": f"spanreel-replay/{__version__}",
        **_auth_headers(call.span.provider, environ),
    }
    start = time.perf_counter()
    try:
        response = client.request(call.request.method, sent.url, content=body, headers=headers)
    except httpx2.HTTPError as exc:
        sent.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        sent.http_status = response.status_code
        if response.status_code >= 400:
            sent.error = _http_error_text(response)
    sent.elapsed_ms = (time.perf_counter() - start) * 1000
    return sent


def replay_trace(
    trace_id: str,
    db_path: str | Path,
    *,
    base_url: str | None = None,
    model: str | None = None,
    system: str | None = None,
    query: QueryFn | None = None,
    span_exporter: SpanExporter | None = None,
    http_timeout: float = DEFAULT_HTTP_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> ReplayResult:
    """Replay the LLM calls of a stored trace (verbatim mode) and pair each with the original.

    ``trace_id``: 32 hex chars or a unique prefix ≥ 8. ``db_path``: the DuckDB file holding it.
    ``base_url``: send to this origin/prefix instead of the recorded host (rule in
    :func:`spanreel.replay._plan.rewrite_url`). ``model`` / ``system``: edits applied to every
    request body (:class:`~spanreel.replay._plan.ReplayEdits`). ``span_exporter``: export the
    replay trace there instead of the OTLP exporter chosen from the running collector / OTEL_*
    variables. ``http_timeout``: seconds per request. ``environ``: where credentials are read
    (default ``os.environ``).

    Raises what :func:`spanreel.replay.load_trace` raises, and :class:`ValueError` for a bad
    ``base_url``. Failed calls do not raise: they are ``"error"`` in the result.
    """
    path = Path(db_path)
    env = os.environ if environ is None else environ
    if base_url is not None:
        rewrite_url("http://h/", base_url)  # validate early: ValueError
    edits = ReplayEdits(model=model, system=system)
    spans = load_trace(trace_id, path, query=query)
    original_trace_id = spans[0].trace_id
    roots = build_tree(spans)
    root = _root_of(roots)
    plan = plan_calls(roots)

    if not any(c.replayable for c in plan):
        calls = tuple(
            CallResult(c.index, c.span.name, _original_side(c.span), None, c.skip_reason) for c in plan
        )
        note = "no replayable LLM calls in this trace" if plan else "no LLM calls in this trace"
        return ReplayResult(original_trace_id, None, root.name, calls, edits, base_url, None, (note,))

    memory = InMemorySpanExporter()
    with _quiet_exporter_logs() as log_errors:
        if span_exporter is None:
            otlp, endpoint = make_otlp_exporter(path)
        else:
            otlp, endpoint = span_exporter, type(span_exporter).__name__
        recording = _RecordingExporter(otlp)
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: REPLAY_SERVICE_NAME}), sampler=ALWAYS_ON
        )
        provider.add_span_processor(SimpleSpanProcessor(memory))
        provider.add_span_processor(BatchSpanProcessor(recording))
        tracer = provider.get_tracer("spanreel.replay", __version__)
        original_root_ctx = SpanContext(
            trace_id=int(original_trace_id, 16),
            span_id=int(root.span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        link_attrs = {
            SPANREEL_REPLAY_ORIGINAL_TRACE_ID: original_trace_id,
            SPANREEL_REPLAY_ORIGINAL_SPAN_ID: root.span_id,
        }
        sent_by_index: dict[int, _Sent] = {}
        try:
            from spanreel.instrumentation import replay_of

            with (
                _instrumented(provider),
                httpx2.Client(timeout=http_timeout, follow_redirects=False) as client,
                tracer.start_as_current_span(
                    f"replay {root.name}",
                    context=otel_context.Context(),
                    kind=SpanKind.INTERNAL,
                    links=[Link(original_root_ctx, link_attrs)],
                    attributes={SPANREEL_REPLAY_ORIGINAL_TRACE_ID: original_trace_id},
                ) as root_span,
            ):
                replay_trace_id = format_trace_id(root_span.get_span_context().trace_id)
                for call in plan:
                    if not call.replayable:
                        continue
                    with replay_of(original_trace_id, call.span.span_id):
                        sent_by_index[call.index] = _send(client, call, edits, base_url, env)
                    if sent_by_index[call.index].error:
                        root_span.set_status(StatusCode.ERROR, "a replayed call failed")
            flushed = provider.force_flush()
        finally:
            provider.shutdown()

    warnings: list[str] = []
    new_spans = memory.get_finished_spans()
    results: list[CallResult] = []
    for call in plan:
        original = _original_side(call.span)
        if not call.replayable:
            results.append(CallResult(call.index, call.span.name, original, None, call.skip_reason))
            continue
        sent = sent_by_index[call.index]
        new_span = _find_replay_span(new_spans, call.span.span_id)
        if new_span is None and sent.http_status is not None:
            warnings.append(
                f"call {call.index} ({call.span.name}): the instrumentation recorded no GenAI span "
                "for the replayed request; output and tokens are unknown"
            )
        side = _replay_side(new_span, sent.elapsed_ms, sent.error)
        results.append(
            CallResult(call.index, call.span.name, original, side, None, sent.url, sent.http_status)
        )

    if recording.failed_spans or not flushed:
        error = recording.last_error or log_errors.message or "export did not finish in time"
        export = ExportStatus(endpoint, False, error)
        warnings.append(
            f"the replay trace {replay_trace_id} could not be exported to {endpoint}: {error} "
            "(is a collector running for this database? `spanreel collector --db ...`)"
        )
    else:
        export = ExportStatus(endpoint, True)
    return ReplayResult(
        original_trace_id,
        replay_trace_id,
        root.name,
        tuple(results),
        edits,
        base_url,
        export,
        tuple(warnings),
    )
