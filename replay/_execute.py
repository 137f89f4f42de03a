"""Replay execution: re-send recorded LLM requests and record the replay as a new, linked trace.

How a replay runs (:func:`replay_spans`; :func:`replay_trace` / :func:`replay_session` load first):

1. :func:`prepare_replay` (pure): rebuild each original trace's tree, plan the calls
   (:mod:`spanreel.replay._plan`) and, in cascade mode, find which call's output each later
   request contains (:mod:`spanreel.replay._cascade`). ``--dry-run`` stops here;
2. create a private :class:`~opentelemetry.sdk.trace.TracerProvider` (resource
   ``service.name=spanreel-replay``, always-on sampling) exporting over OTLP
   (:mod:`spanreel.replay._exporter`) and to memory, and instrument with
   :class:`spanreel.instrumentation.Instrumentor` on it, content capture on (an existing
   instrumentation is removed for the duration and restored after);
3. open a root span — ``replay {original root name}``, ``replay session {id}`` for a session —
   linked to each original trace's root, with ``spanreel.replay.original_trace_id`` (one trace) or
   ``spanreel.replay.original_session_id`` and ``spanreel.replay.mode``; the original trees are
   re-created under it (:mod:`spanreel.replay._structure`);
4. send the replayable calls — up to ``concurrency`` at a time; a call whose request contains
   earlier calls' outputs (cascade) waits for them and gets their *new* outputs substituted
   (:func:`spanreel.replay._messages.substitute_turn`) — each inside
   :func:`spanreel.instrumentation.replay_of`, so its GenAI span links to the original call. The
   body is the recorded text verbatim unless a substitution or an edit changed it. Hosts are
   checked and 429/5xx retried (:mod:`spanreel.replay._safety`). A call recorded with an output
   whose answer holds none (an HTML page, ``{}``: not an LLM answer) is a failed call;
5. force-flush; export failures become a warning on the result, never an exception.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
)
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.span import format_trace_id

from spanreel import __version__
from spanreel._attributes import (
    SPANREEL_REPLAY_MODE,
    SPANREEL_REPLAY_ORIGINAL_SESSION_ID,
    SPANREEL_REPLAY_ORIGINAL_SPAN_ID,
    SPANREEL_REPLAY_ORIGINAL_TRACE_ID,
    SPANREEL_SESSION_PATH,
)
from spanreel.instrumentation._http import sanitize_url

from ._cascade import Dependency, find_dependencies, recorded_outputs, request_shape
from ._edits import (
    EditError,
    ReplayEdits,
    call_operation,
    edit_body,
    edit_warnings,
    model_in_path,
    url_with_model,
)
from ._exporter import RecordingExporter, make_otlp_exporter, quiet_exporter_logs
from ._load import QueryFn, SpanRecord, load_session, load_trace
from ._messages import (
    ModelOutput,
    ToolCall,
    ToolResultFn,
    canonical_arguments,
    outputs_from_attribute,
    substitute_turn,
    tool_call_divergences,
)
from ._plan import PlannedCall, encode_body, plan_calls, rewrite_url
from ._result import CallResult, CallSide, ExportStatus, ReplayResult, original_side, output_text, replay_side
from ._safety import RetryPolicy, UnsafeHostError, check_url
from ._send import CREDENTIALS, SendOutcome, send_request
from ._structure import StructureBuilder, original_link
from ._tree import PLACEHOLDER_MISSING, TreeNode, build_tree

__all__ = [
    "CREDENTIALS",
    "REPLAY_SERVICE_NAME",
    "CallResult",
    "CallSide",
    "ExportStatus",
    "ReplayMode",
    "ReplayPlan",
    "ReplayResult",
    "output_text",
    "prepare_replay",
    "replay_session",
    "replay_spans",
    "replay_trace",
]

#: ``service.name`` of the replay trace.
REPLAY_SERVICE_NAME = "spanreel-replay"
#: Seconds a replayed request may take (connect/read/write/pool).
DEFAULT_HTTP_TIMEOUT = 120.0
#: Calls replayed at the same time by default.
DEFAULT_CONCURRENCY = 4

ReplayMode = Literal["verbatim", "cascade"]
#: ``(calls finished, calls to replay, the call that just finished)``.
ProgressFn = Callable[[int, int, CallResult], None]


# --------------------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay will do, computed without sending anything.

    ``forests``: ``(trace id, roots)`` per original trace, in start order. ``calls``: every LLM
    call, replayable or with a skip reason. ``dependencies``: call index → the earlier calls
    whose output its request contains (cascade mode only; empty in verbatim mode). ``label``:
    the replay root's name.
    """

    forests: tuple[tuple[str, tuple[TreeNode, ...]], ...]
    calls: tuple[PlannedCall, ...]
    dependencies: Mapping[int, tuple[Dependency, ...]]
    mode: ReplayMode
    edits: ReplayEdits
    label: str
    session_id: str | None = None

    @property
    def trace_ids(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.forests)

    def _selected(self, call: PlannedCall) -> bool:
        session_path = call.span.attributes.get(SPANREEL_SESSION_PATH)
        return self.edits.applies_to(
            call.span.name, call.path, session_path if isinstance(session_path, str) else None
        )

    @staticmethod
    def _operation(call: PlannedCall) -> str | None:
        return call_operation(call.span.operation, call.request.url if call.request is not None else None)

    def edits_for(self, call: PlannedCall) -> ReplayEdits:
        """The edits that change ``call``: those ``only`` selects it for that fit its operation
        (:meth:`ReplayEdits.for_operation`); empty when none."""
        if self.edits.empty or not self._selected(call):
            return ReplayEdits()
        return self.edits.for_operation(self._operation(call))

    def edited(self, call: PlannedCall) -> bool:
        """Whether an edit changes ``call``."""
        return not self.edits_for(call).empty

    def edit_warnings(self) -> list[str]:
        """Edits that change no replayable call (:func:`spanreel.replay._edits.edit_warnings`)."""
        selected = [self._operation(c) for c in self.calls if c.replayable and self._selected(c)]
        return edit_warnings(self.edits, selected)

    def hooked(self, call: PlannedCall) -> bool:
        """Whether a ``--hook`` edits ``call``'s body."""
        return self.edits.hook is not None and self.edited(call)

    def warnings(self) -> tuple[str, ...]:
        """What a reader of the report must know before trusting it: a trace that looks
        incomplete (spans whose parent is not stored: still being written, or spans lost),
        replayable calls whose recorded body spanreel modified at record time (placeholders,
        masked credentials, redaction) and requests rebuilt from a peer's recording without
        something it did not record (tool definitions), that no ``--hook`` edits — they are not
        replayed as the app sent them."""
        notes = [w for tid, roots in self.forests if (w := _incomplete(tid, roots)) is not None]
        unhooked = [
            c for c in self.calls if c.request is not None and c.request.modified and not self.hooked(c)
        ]
        at_record = [c for c in unhooked if c.request is not None and not c.request.rebuilt_from]
        rebuilt = [c for c in unhooked if c.request is not None and c.request.rebuilt_from]

        def which(calls: list[PlannedCall]) -> tuple[str, str]:
            kinds = sorted({m for c in calls if c.request for m in c.request.modifications})
            names = ("calls " if len(calls) > 1 else "call ") + ", ".join(str(c.index) for c in calls)
            return f"{len(calls)} of {len(self.calls)} calls ({names})", "; ".join(kinds)

        if at_record:
            calls, kinds = which(at_record)
            notes.append(
                f"{calls} are not replayed verbatim: spanreel modified their recorded request body "
                f"at record time ({kinds}), and the body is sent as recorded, so their output may "
                "differ; restore it with --hook MODULE:FUNCTION"
            )
        if rebuilt:
            calls, kinds = which(rebuilt)
            notes.append(
                f"{calls} are not replayed verbatim: their request was rebuilt without what the "
                f"recording instrumentation did not record ({kinds}), so their output may differ; "
                "add it with --hook MODULE:FUNCTION"
            )
        return tuple(notes)

    def sources(self, call: PlannedCall) -> tuple[int, ...]:
        """Indexes of the calls ``call`` waits for (sorted, unique)."""
        return tuple(sorted({d.source for d in self.dependencies.get(call.index, ())}))


def _incomplete(trace_id: str, roots: Sequence[TreeNode]) -> str | None:
    """A warning when ``roots`` (one trace's forest) holds spans whose parent is not in the trace
    (``missing parent`` placeholders, as ``spanreel show`` draws them); ``None`` otherwise."""
    missing = [r for r in roots if r.span is None and r.placeholder_reason == PLACEHOLDER_MISSING]
    if not missing:
        return None
    spans = sum(len(r.children) for r in missing)
    parents = ", ".join(str(r.parent_span_id) for r in missing[:3]) + (", …" if len(missing) > 3 else "")
    return (
        f"trace {trace_id} looks incomplete: {spans} span{'s' if spans != 1 else ''} "
        f"{'name' if spans != 1 else 'names'} a parent span that is not stored ({parents}) — it may "
        "still be being written (its root not exported yet) or spans were lost; the replay covers "
        "only the calls stored so far"
    )


def _root_of(roots: Sequence[TreeNode]) -> SpanRecord:
    for node in roots:
        if node.span is not None:
            return node.span
    # only placeholders: the earliest span stands in for the missing root
    return min((s for r in roots for s in r.spans()), key=lambda s: (s.start_time_ns, s.span_id))


def prepare_replay(
    spans: Sequence[SpanRecord],
    *,
    mode: ReplayMode = "verbatim",
    edits: ReplayEdits | None = None,
    session_id: str | None = None,
) -> ReplayPlan:
    """Plan a replay of ``spans`` (one or several traces, e.g. from :func:`load_session`).

    Pure. Raises :class:`ValueError` for an unknown ``mode`` or no spans.
    """
    if mode not in ("verbatim", "cascade"):
        raise ValueError(f"unknown replay mode {mode!r}: use 'verbatim' or 'cascade'")
    if not spans:
        raise ValueError("nothing to replay: no spans")
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    forests = tuple((tid, tuple(build_tree(group))) for tid, group in by_trace.items())
    all_roots = [r for _, roots in forests for r in roots]
    calls = tuple(plan_calls(all_roots))
    deps = find_dependencies(calls) if mode == "cascade" else {}
    if session_id is not None:
        label = f"replay session {session_id}"
    elif len(forests) == 1:
        label = f"replay {_root_of(forests[0][1]).name}"
    else:
        label = f"replay {len(forests)} traces"
    return ReplayPlan(forests, calls, deps, mode, edits or ReplayEdits(), label, session_id)


# --------------------------------------------------------------------------- execution


@contextmanager
def _instrumented(provider: TracerProvider) -> Iterator[None]:
    from spanreel.instrumentation import Instrumentor
    from spanreel.instrumentation._cost import load_now as load_prices

    instrumentor = Instrumentor()
    was_instrumented = bool(instrumentor.is_instrumented_by_opentelemetry)
    if was_instrumented:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    # The price library before the first call is timed: its ~0.2 s import on the first calls
    # made a verbatim replay of fast calls look several times slower than the recording.
    load_prices()
    try:
        yield
    finally:
        instrumentor.uninstrument()
        if was_instrumented:
            instrumentor.instrument()


class _ReplaySpans(SpanProcessor):
    """Remembers, per original span id, the last GenAI span of its replay (retries make several)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_original: dict[str, ReadableSpan] = {}

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes or {}
        original = attrs.get(SPANREEL_REPLAY_ORIGINAL_SPAN_ID)
        if isinstance(original, str) and GEN_AI_OPERATION_NAME in attrs:
            with self._lock:
                self._by_original[original] = span

    def get(self, original_span_id: str) -> ReadableSpan | None:
        with self._lock:
            return self._by_original.get(original_span_id)


@dataclass
class _Done:
    """A replayed call's outcome, as later calls and the report need it."""

    sent: SendOutcome
    url: str | None = None
    span: ReadableSpan | None = None
    outputs: list[ModelOutput] = field(default_factory=list)
    divergences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _same_output(a: ModelOutput, b: ModelOutput) -> bool:
    return a.text == b.text and a.tool_calls == b.tool_calls


@dataclass
class _Runner:
    plan: ReplayPlan
    client: httpx2.Client
    structure: StructureBuilder
    spans: _ReplaySpans
    base_url: str | None
    environ: Mapping[str, str]
    retry: RetryPolicy
    allowed_hosts: Collection[str]
    tool_results: ToolResultFn | None
    done: dict[int, _Done] = field(default_factory=dict)
    _checked: dict[tuple[str, int | None], str | None] = field(default_factory=dict)
    _check_lock: threading.Lock = field(default_factory=threading.Lock)
    _tool_memo: dict[tuple[str | None, str, str], str] = field(default_factory=dict)

    def tool_result(self, call: ToolCall, recorded: str | None) -> str:
        """The tool hook's answer for a replayed tool call, asked once per call: every later
        request that carries the same tool call gets the same result. Raises :class:`EditError`
        when the hook raises (its exception chained) or returns something else than a ``str``."""
        hook = self.tool_results
        assert hook is not None
        key = (call.id, call.name, canonical_arguments(call.arguments))
        with self._check_lock:
            if key in self._tool_memo:
                return self._tool_memo[key]
        module, qualname = getattr(hook, "__module__", None), getattr(hook, "__qualname__", None)
        name = f"{module}:{qualname}" if module and qualname else repr(hook)
        try:
            answer: object = hook(call, recorded)
        except Exception as exc:
            raise EditError(
                f"tool hook {name} failed for {call.label()}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(answer, str):
            raise EditError(
                f"tool hook {name} returned {type(answer).__name__} for {call.label()}, expected the "
                "tool result text (a str: json.dumps a structured result)"
            )
        with self._check_lock:
            return self._tool_memo.setdefault(key, answer)

    def check(self, url: str, allowed: Collection[str]) -> None:
        """:func:`~spanreel.replay._safety.check_url`, resolving each host and port once per replay."""
        parts = urlsplit(url)
        key = (parts.hostname or "", parts.port)
        with self._check_lock:
            if key not in self._checked:
                try:
                    check_url(url, allowed)
                    self._checked[key] = None
                except UnsafeHostError as exc:
                    self._checked[key] = str(exc)
            problem = self._checked[key]
        if problem is not None:
            raise UnsafeHostError(problem)

    def body_for(self, call: PlannedCall, state: _Done) -> bytes:
        """The bytes to send: substitutions (cascade) and edits applied, else the recorded text."""
        request = call.request
        assert request is not None
        body: Any = None
        shape = request_shape(call)
        for dep in self.plan.dependencies.get(call.index, ()):
            source = self.done.get(dep.source)
            recorded = recorded_outputs(self.plan.calls[dep.source - 1])
            if source is None or source.sent.error or dep.choice >= len(source.outputs):
                state.notes.append(
                    f"call {dep.source} has no replayed output; its recorded output was kept "
                    f"in message {dep.message_index}"
                )
                continue
            new = source.outputs[dep.choice]
            if _same_output(new, recorded[dep.choice]) or shape is None:
                continue
            if body is None:
                body = json.loads(request.body)
            hook = self.tool_result if self.tool_results is not None else None
            sub = substitute_turn(body, shape, dep.message_index, recorded[dep.choice], new, hook)
            state.divergences.extend(
                f"message {dep.message_index} (call {dep.source}): {d}" for d in sub.divergences
            )
        edits = self.plan.edits_for(call)
        if not edits.empty:
            if body is None:
                if not isinstance(request.json_body, dict):
                    raise EditError("cannot edit the request: the recorded body is not a JSON object")
                body = json.loads(request.body)
            body = edit_body(body, edits, call.span.provider, model_in_path=model_in_path(request.url))
        return request.body.encode("utf-8") if body is None else encode_body(body)

    def run_call(self, call: PlannedCall) -> _Done:
        from spanreel.instrumentation import replay_of

        assert call.request is not None
        state = _Done(SendOutcome())
        if call.request.rebuilt_from:
            state.notes.append(f"request rebuilt from {call.request.rebuilt_from}")
        modified = call.request.modified_note(hooked=self.plan.hooked(call))
        if modified is not None:
            state.notes.append(modified)
        parent = self.structure.enter(call.span)
        token = otel_context.attach(trace.set_span_in_context(parent, otel_context.Context()))
        try:
            try:
                body = self.body_for(call, state)
                state.url = rewrite_url(call.request.url, self.base_url)
                model = self.plan.edits_for(call).model
                if model is not None:
                    state.url = url_with_model(state.url, model)
            except (EditError, ValueError) as exc:
                state.sent.error = str(exc)
                return state
            with replay_of(call.span.trace_id, call.span.span_id):
                state.sent = send_request(
                    self.client,
                    call.request.method,
                    state.url,
                    body,
                    provider=call.span.provider,
                    environ=self.environ,
                    retry=self.retry,
                    allowed_hosts=self.allowed_hosts,
                    check=self.check,
                )
            state.span = self.spans.get(call.span.span_id)
            if state.span is not None:
                new_messages = (state.span.attributes or {}).get(GEN_AI_OUTPUT_MESSAGES)
                state.outputs = outputs_from_attribute(new_messages)
                if state.sent.error is None and output_text(new_messages) is None:
                    state.sent.error = _no_output_error(call, state.sent, state.url or call.request.url)
            recorded = recorded_outputs(call)
            if recorded and state.outputs:
                state.divergences.extend(
                    f"output: {d}" for d in tool_call_divergences(recorded[0], state.outputs[0])
                )
            return state
        finally:
            otel_context.detach(token)
            self.structure.leave(call.span)


def _no_output_error(call: PlannedCall, sent: SendOutcome, url: str) -> str | None:
    """Why a successful HTTP exchange is a failed replay: the call was recorded with an output but
    its answer holds none the instrumentation could read (an HTML page, ``{}``, another API's
    answer — a wrong ``--base-url``, a proxy's error page). ``None`` when the recording had no
    output either (nothing to compare)."""
    if output_text(call.span.attributes.get(GEN_AI_OUTPUT_MESSAGES)) is None:
        return None
    kind = (sent.content_type or "no content type").split(";")[0].strip()
    return (
        f"the answer holds no model output (HTTP {sent.http_status}, {kind}; "
        f"{call.request.method if call.request else 'POST'} {sanitize_url(url)})"
    )


def _call_result(plan: ReplayPlan, call: PlannedCall, done: _Done | None) -> CallResult:
    original = original_side(call.span, call.started_ns)
    common: dict[str, Any] = {
        "path": call.path,
        "trace_id": call.span.trace_id,
        "depends_on": plan.sources(call),
        "edited": plan.edited(call),
    }
    if done is None:
        return CallResult(call.index, call.span.name, original, None, call.skip_reason, **common)
    side = replay_side(done.span, done.sent.elapsed_ms, done.sent.error, done.sent.attempts)
    return CallResult(
        call.index,
        call.span.name,
        original,
        side,
        None,
        done.url,
        done.sent.http_status,
        divergences=tuple(done.divergences),
        notes=tuple(done.notes),
        attempts=done.sent.attempts,
        **common,
    )


def _schedule(runner: _Runner, plan: ReplayPlan, concurrency: int, progress: ProgressFn | None) -> None:
    """Run the replayable calls: dependencies first, at most ``concurrency`` at a time, and
    otherwise in plan order."""
    pending = [c for c in plan.calls if c.replayable]
    total = len(pending)
    waiting = {c.index: set(plan.sources(c)) & {p.index for p in pending} for c in pending}
    finished: set[int] = set()
    running: dict[Future[_Done], PlannedCall] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="spanreel-replay") as pool:
        while pending or running:
            for call in list(pending):
                if len(running) >= concurrency:
                    break
                if waiting[call.index] <= finished:
                    pending.remove(call)
                    ctx = otel_context.get_current()
                    running[pool.submit(_in_context, ctx, runner.run_call, call)] = call
            completed, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in completed:
                call = running.pop(future)
                try:
                    runner.done[call.index] = future.result()
                except Exception as exc:  # a bug must not lose the other calls' results
                    runner.done[call.index] = _Done(
                        SendOutcome(error=f"internal error: {type(exc).__name__}: {exc}")
                    )
                finished.add(call.index)
                if progress is not None:
                    progress(len(finished), total, _call_result(plan, call, runner.done[call.index]))


def _in_context(ctx: otel_context.Context, fn: Callable[[PlannedCall], _Done], call: PlannedCall) -> _Done:
    token = otel_context.attach(ctx)
    try:
        return fn(call)
    finally:
        otel_context.detach(token)


def replay_spans(
    spans: Sequence[SpanRecord],
    *,
    db_path: str | Path | None = None,
    mode: ReplayMode = "verbatim",
    edits: ReplayEdits | None = None,
    base_url: str | None = None,
    session_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    retry: RetryPolicy | None = None,
    allowed_hosts: Collection[str] = (),
    tool_results: ToolResultFn | None = None,
    span_exporter: SpanExporter | None = None,
    http_timeout: float = DEFAULT_HTTP_TIMEOUT,
    environ: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> ReplayResult:
    """Replay the LLM calls among ``spans`` and pair each with the original (steps in the
    module docstring).

    ``spans``: one or more traces (:func:`load_trace`, :func:`load_session`,
    :func:`load_trace_file`). ``db_path``: where the replay trace goes (the collector running on
    that file; without one, the ``OTEL_EXPORTER_OTLP_*`` variables). ``mode``: ``"verbatim"`` or
    ``"cascade"``. ``edits``: :class:`ReplayEdits`. ``base_url``: send there instead of the
    recorded host (rule: :func:`spanreel.replay._plan.rewrite_url`). ``concurrency``: calls in
    flight at once (≥ 1). ``retry``: :class:`RetryPolicy` for 429/5xx. ``allowed_hosts``: hosts
    exempt from the link-local/metadata refusal. ``tool_results``: supplies tool results when a
    replayed output asks for a different tool call (cascade); it returns a ``str`` (else, or when
    it raises, the call that needed it is an error naming the hook). ``span_exporter``: export the
    replay trace there instead. ``http_timeout``: seconds per request. ``environ``: where
    credentials are read (default ``os.environ``). ``progress``: called after each call.

    Raises :class:`ValueError` for a bad ``base_url``/``mode``/``concurrency``. Failed calls do
    not raise: they are ``"error"`` in the result.
    """
    if base_url is not None:
        rewrite_url("http://h/", base_url)  # validate early: ValueError
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    plan = prepare_replay(spans, mode=mode, edits=edits, session_id=session_id)
    return execute_plan(
        plan,
        db_path=db_path,
        base_url=base_url,
        concurrency=concurrency,
        retry=retry or RetryPolicy(),
        allowed_hosts=allowed_hosts,
        tool_results=tool_results,
        span_exporter=span_exporter,
        http_timeout=http_timeout,
        environ=os.environ if environ is None else environ,
        progress=progress,
    )


def execute_plan(
    plan: ReplayPlan,
    *,
    db_path: str | Path | None,
    base_url: str | None,
    concurrency: int,
    retry: RetryPolicy,
    allowed_hosts: Collection[str],
    tool_results: ToolResultFn | None,
    span_exporter: SpanExporter | None,
    http_timeout: float,
    environ: Mapping[str, str],
    progress: ProgressFn | None,
) -> ReplayResult:
    """Run a prepared :class:`ReplayPlan` (arguments as in :func:`replay_spans`)."""
    first_trace = plan.trace_ids[0]
    result_fields: dict[str, Any] = {
        "mode": plan.mode,
        "original_trace_ids": plan.trace_ids,
        "session_id": plan.session_id,
    }
    if not any(c.replayable for c in plan.calls):
        calls = tuple(_call_result(plan, c, None) for c in plan.calls)
        note = "no replayable LLM calls" if plan.calls else "no LLM calls"
        where = "in this session" if plan.session_id else "in this trace"
        return ReplayResult(
            first_trace,
            None,
            plan.label,
            calls,
            plan.edits,
            base_url,
            None,
            (*plan.warnings(), f"{note} {where}"),
            **result_fields,
        )

    replay_spans_seen = _ReplaySpans()
    with quiet_exporter_logs() as log_errors:
        if span_exporter is None:
            otlp, endpoint = make_otlp_exporter(
                Path(db_path) if db_path is not None else Path("spanreel.duckdb")
            )
        else:
            otlp, endpoint = span_exporter, type(span_exporter).__name__
        recording = RecordingExporter(otlp)
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: REPLAY_SERVICE_NAME}), sampler=ALWAYS_ON
        )
        provider.add_span_processor(replay_spans_seen)
        provider.add_span_processor(BatchSpanProcessor(recording))
        tracer = provider.get_tracer("spanreel.replay", __version__)
        root_attrs: dict[str, Any] = {SPANREEL_REPLAY_MODE: plan.mode}
        if len(plan.forests) == 1:
            root_attrs[SPANREEL_REPLAY_ORIGINAL_TRACE_ID] = first_trace
        if plan.session_id is not None:
            root_attrs[SPANREEL_REPLAY_ORIGINAL_SESSION_ID] = plan.session_id
        links = [original_link(_root_of(roots)) for _, roots in plan.forests]
        replayed = frozenset((c.span.trace_id, c.span.span_id) for c in plan.calls if c.replayable)
        try:
            with (
                _instrumented(provider),
                httpx2.Client(timeout=http_timeout, follow_redirects=False) as client,
                tracer.start_as_current_span(
                    plan.label,
                    context=otel_context.Context(),
                    kind=SpanKind.INTERNAL,
                    links=links,
                    attributes=root_attrs,
                ) as root_span,
            ):
                replay_trace_id = format_trace_id(root_span.get_span_context().trace_id)
                structure = StructureBuilder(
                    tracer, root_span, [roots for _, roots in plan.forests], replayed
                )
                runner = _Runner(
                    plan,
                    client,
                    structure,
                    replay_spans_seen,
                    base_url,
                    environ,
                    retry,
                    allowed_hosts,
                    tool_results,
                )
                try:
                    structure.begin()
                    _schedule(runner, plan, concurrency, progress)
                finally:
                    structure.finish()
                if any(d.sent.error for d in runner.done.values()):
                    root_span.set_status(StatusCode.ERROR, "a replayed call failed")
            flushed = provider.force_flush()
        finally:
            provider.shutdown()

    warnings: list[str] = [*plan.edit_warnings(), *plan.warnings()]
    results: list[CallResult] = []
    for call in plan.calls:
        done = runner.done.get(call.index) if call.replayable else None
        if call.replayable and done is None:
            done = _Done(SendOutcome(error="not run (the replay was interrupted)"))
        if done is not None and done.span is None and done.sent.http_status is not None:
            warnings.append(
                f"call {call.index} ({call.span.name}): the instrumentation recorded no GenAI span "
                "for the replayed request; output and tokens are unknown"
            )
        results.append(_call_result(plan, call, done))

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
        first_trace,
        replay_trace_id,
        plan.label,
        tuple(results),
        plan.edits,
        base_url,
        export,
        tuple(warnings),
        **result_fields,
    )


def replay_trace(
    trace_id: str,
    db_path: str | Path,
    *,
    base_url: str | None = None,
    model: str | None = None,
    system: str | None = None,
    edits: ReplayEdits | None = None,
    query: QueryFn | None = None,
    **options: Any,
) -> ReplayResult:
    """Replay the LLM calls of a stored trace (see :func:`replay_spans` for ``options``).

    ``trace_id``: 32 hex chars or a unique prefix ≥ 8. ``db_path``: the DuckDB file holding it
    (the replay trace is exported to the collector running on it). ``model`` / ``system``:
    shorthands for ``edits=ReplayEdits(model=…, system=…)``, when ``edits`` is not given.

    Raises :class:`TypeError` when ``model`` or ``system`` is given together with ``edits`` (put
    them in the :class:`ReplayEdits`), what :func:`spanreel.replay.load_trace` raises, and
    :class:`ValueError` for a bad ``base_url``. Failed calls do not raise: they are ``"error"``
    in the result.
    """
    if edits is None:
        edits = ReplayEdits(model=model, system=system)
    elif model is not None or system is not None:
        names = [n for n, v in (("model", model), ("system", system)) if v is not None]
        raise TypeError(
            f"replay_trace() got edits and {' and '.join(names)}: put them in the ReplayEdits "
            f"(edits=ReplayEdits({', '.join(n + '=…' for n in names)}, …))"
        )
    if base_url is not None:
        rewrite_url("http://h/", base_url)
    spans = load_trace(trace_id, db_path, query=query)
    return replay_spans(spans, db_path=db_path, base_url=base_url, edits=edits, **options)


def replay_session(
    session_id: str,
    db_path: str | Path,
    *,
    query: QueryFn | None = None,
    **options: Any,
) -> ReplayResult:
    """Replay every trace of a session, in time order, as one replay trace (see
    :func:`replay_spans` for ``options``). Raises what :func:`load_session` raises."""
    spans = load_session(session_id, db_path, query=query)
    return replay_spans(spans, db_path=db_path, session_id=session_id, **options)
