"""Adopting another instrumentation's GenAI span (the coexistence rule in :mod:`._call`).

When the current span is already the GenAI span of this call, made by another instrumentation
(opentelemetry-instrumentation-openai-v2, the ``anthropic`` SDK's own call span, OpenLLMetry, or
OpenInference's instrumentation of a provider SDK: an ``INTERNAL`` span with
``openinference.span.kind`` ``LLM`` / ``EMBEDDING``), spanreel adds to it instead of starting a
second one. That span is its owner's to end, and the
owner may end it *before* spanreel has seen the end of the response body: a streaming wrapper
whose ``close()`` (an app's ``break``, an exception in its loop, garbage collection) ends the
span first and closes the body after. So :func:`finish_before_owner_ends` puts a stand-in for
the span's ``end`` method on that span object: it lets spanreel record what the body said so far
(output messages, usage, cost, truncation) while the span is still writable, records the GenAI
client metrics once for the whole owner's operation (not once per HTTP attempt of an SDK that
retries), then calls the owner's ``end`` unchanged. Spans that do not allow the stand-in (no
instance ``__dict__``) keep the old behaviour: spanreel records at the body's end, when it can.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.trace import SpanKind

from spanreel._attributes import MODEL_CALL_OPERATIONS

from ._context import TRACER_NAME

if TYPE_CHECKING:
    from ._call import LLMCall

#: OpenInference's instrumentations of provider SDKs (scope = module name): their ``LLM`` /
#: ``EMBEDDING`` span is the SDK call's span. Framework instrumentations (LangChain, LlamaIndex…)
#: are not listed: one of their LLM spans may cover several HTTP calls, each gets its own span.
OPENINFERENCE_SDK_SCOPES: Final = frozenset(
    f"openinference.instrumentation.{sdk}"
    for sdk in ("openai", "anthropic", "groq", "mistralai", "google_genai", "litellm")
)
_OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
_OPENINFERENCE_CALL_KINDS: Final = frozenset({"LLM", "EMBEDDING"})

#: Instrumentation scopes (and their sub-modules: OpenLLMetry's scope is e.g.
#: ``opentelemetry.instrumentation.openai.v1``) whose GenAI spans come with their own
#: ``gen_ai.client.*`` metrics: opentelemetry-instrumentation-openai-v2 (through
#: opentelemetry-util-genai's handler, or its own in older releases) and OpenLLMetry's openai /
#: anthropic instrumentations. The anthropic SDK's own call span and OpenInference record none.
METRICS_RECORDING_SCOPES: Final = frozenset(
    {
        "opentelemetry.util.genai.handler",
        "opentelemetry.instrumentation.openai_v2",
        "opentelemetry.instrumentation.openai",
        "opentelemetry.instrumentation.anthropic",
    }
)


def foreign_genai_span(ctx: Context) -> trace.Span | None:
    """The current span of ``ctx`` when it is another instrumentation's GenAI span of this call:
    recording, and either kind ``CLIENT`` with an inference ``gen_ai.operation.name`` and a scope
    other than spanreel's, or an OpenInference ``LLM`` / ``EMBEDDING`` span of a provider SDK
    (:data:`OPENINFERENCE_SDK_SCOPES`)."""
    span = trace.get_current_span(ctx)
    if not span.is_recording():
        return None
    attributes = getattr(span, "attributes", None)
    if not isinstance(attributes, Mapping):
        return None
    if (
        attributes.get(ga.GEN_AI_OPERATION_NAME) in MODEL_CALL_OPERATIONS
        and getattr(span, "kind", None) is SpanKind.CLIENT
        and scope_name(span) != TRACER_NAME
    ):
        return span
    # (An adopted OpenInference span has spanreel's gen_ai.operation.name from an earlier attempt
    # of the same SDK call: it is still matched here, not taken for an INTERNAL GenAI span.)
    if (
        attributes.get(_OPENINFERENCE_SPAN_KIND) in _OPENINFERENCE_CALL_KINDS
        and scope_name(span) in OPENINFERENCE_SDK_SCOPES
    ):
        return span
    return None


def records_metrics(span: trace.Span) -> bool:
    """Whether the span's instrumentation records the GenAI client metrics itself
    (:data:`METRICS_RECORDING_SCOPES`, or a sub-module of one)."""
    name = scope_name(span)
    if name is None:
        return False
    return name in METRICS_RECORDING_SCOPES or any(
        name.startswith(scope + ".") for scope in METRICS_RECORDING_SCOPES
    )


def scope_name(span: trace.Span) -> str | None:
    """The instrumentation scope name of an SDK span (``None`` for other span types)."""
    name = getattr(getattr(span, "instrumentation_scope", None), "name", None)
    return name if isinstance(name, str) else None


class _OwnerEnd:
    """Stands in for an adopted span's bound ``end``: finishes spanreel's latest call on the span
    (through its ``finisher``, which also parses the chunk the app holds), records that call's
    deferred metrics with the owner's duration (span start → end, seconds), then calls the
    owner's ``end`` with the same arguments. Never raises from spanreel's part."""

    __slots__ = ("call", "end", "span")

    def __init__(self, span: trace.Span, end: Callable[..., Any], call: LLMCall) -> None:
        self.span = span
        self.end = end
        self.call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = self.call
        try:
            # Off the span first: the stand-in and the bound ``end`` it keeps both refer to the
            # span, a reference cycle that would leave every adopted call to the garbage collector.
            # (Not looked up in ``vars()``: a proxy span's, e.g. OpenInference's, is the wrapped
            # span's dict, while the stand-in sits on the proxy, whose class defines ``end``.)
            if getattr(self.span, "end", None) is self:
                del self.span.end
            (call.finisher or call.finish)()
            start = getattr(self.span, "start_time", None)
            end_time = kwargs.get("end_time", args[0] if args else None)
            if isinstance(start, int):
                now = end_time if isinstance(end_time, int) else time.time_ns()
                call.record_deferred_metrics(max(0, now - start) / 1e9)
            else:
                call.record_deferred_metrics(None)
        except Exception:
            from ._call import log_once

            log_once("owner_end", "spanreel: could not record the call before its span ended")
        return self.end(*args, **kwargs)


def finish_before_owner_ends(span: trace.Span, call: LLMCall) -> bool:
    """Make the owner's ``span.end()`` finish ``call`` first (see the module doc). A retry's call
    replaces the previous attempt's on the same stand-in. Returns ``False`` when the span does
    not allow an instance attribute ``end`` (then nothing is changed)."""
    current = getattr(span, "end", None)
    if isinstance(current, _OwnerEnd):
        previous = current.call  # a previous attempt of the same SDK call: its body is done
        (previous.finisher or previous.finish)()
        current.call = call
        return True
    if current is None:
        return False
    try:
        span.end = _OwnerEnd(span, current, call)  # type: ignore[method-assign]
    except (AttributeError, TypeError):
        return False
    return True
