"""The span processor spanreel adds to the SDK tracer provider it instruments with.

For every span started while instrumentation is on (whoever creates it) :class:`SpanreelProcessor`

- copies the session keys found in baggage (``session.id``, ``user.id``, ``spanreel.session.name``,
  ``spanreel.session.path``, ``gen_ai.conversation.id``) onto the span, with
  opentelemetry-processor-baggage's ``BaggageSpanProcessor`` (see :func:`spanreel.session`),
  except those the span was started with (its own value wins); on the HTTP span of an LLM call,
  whose context lacks them (they are not sent to the LLM provider:
  :func:`~spanreel.instrumentation._call.call_context`), the call's own;
- on the HTTP client span of an LLM call (opentelemetry-instrumentation-httpx's, a child of the
  GenAI span), masks the call's credentials out of the exception and status text it records (a
  transport error quotes the header it refused: an API key read with a trailing newline);
- masks the credential request headers an HTTP instrumentation records when the user opted in
  (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST``: ``http.request.header.authorization``,
  ``…x-api-key``, ``…api-key``, ``…x-goog-api-key``, ``…cookie``…) as ``[REDACTED:credential]``;
- removes credentials from the span's URL attributes (``url.full``, old-convention ``http.url``):
  user-info and credential query parameters such as Gemini's ``?key=`` (see
  :func:`~spanreel.instrumentation._http.sanitize_url`), and, with redaction on, redacts them
  (:func:`~spanreel.instrumentation._http.redact_url`). opentelemetry-instrumentation-httpx only
  redacts a few signature parameters, and under ``opentelemetry-instrument`` it is set up before
  spanreel, so its HTTP spans cannot be cleaned by a request hook of ours.

It works in ``on_start`` (the span is still writable; attributes given to ``start_span`` are
there), so every exporter and later processor sees the cleaned span. Added once per provider;
the SDK cannot remove a processor, so after ``uninstrument()`` it does nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry import baggage, context
from opentelemetry.context import Context
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_CONVERSATION_ID
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_URL
from opentelemetry.semconv.attributes.url_attributes import URL_FULL

from ._call import CALL_CONTEXT_KEY, LLMCall, log_once
from ._context import SESSION_BAGGAGE_KEYS
from ._errortext import mask_error_text
from ._http import (
    CREDENTIAL_HEADERS,
    CREDENTIAL_MASK,
    redact_url,
    sanitize_url,
)

#: Baggage keys copied onto every span.
BAGGAGE_SPAN_KEYS = frozenset({*SESSION_BAGGAGE_KEYS, GEN_AI_CONVERSATION_ID})

_URL_KEYS = (URL_FULL, HTTP_URL)
_URL_KEY_SET = frozenset(_URL_KEYS)
#: Request header attributes (``http.request.header.<name>``, recorded by an HTTP instrumentation
#: when ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST`` names them) that hold credentials.
#: (Names as the semantic conventions write them, lower case with ``_``; some instrumentations keep ``-``.)
_CREDENTIAL_HEADER_KEYS = frozenset(
    f"http.request.header.{spelling}"
    for name in (*CREDENTIAL_HEADERS, "cookie")
    for spelling in (name, name.replace("-", "_"))
)


class SpanreelProcessor(SpanProcessor):
    """See the module docstring. ``active`` switches it off without removing it; ``redactor``
    (``None``: redaction off) is applied to URLs."""

    def __init__(self) -> None:
        self.active = True
        self.redactor: Callable[[str], str] | None = None
        self._baggage = BaggageSpanProcessor(BAGGAGE_SPAN_KEYS.__contains__)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self.active:
            return
        try:
            call = context.get_value(CALL_CONTEXT_KEY, parent_context)
            attributes = span.attributes
            if isinstance(call, LLMCall) and call.span is not span:
                mask_error_text(span, call.credentials)
                held = call.held_baggage
                if held:  # held back from the request (see call_context), not from the span
                    started = attributes or {}
                    span.set_attributes({k: v for k, v in held.items() if k not in started})
            entries = baggage.get_all(parent_context)
            if entries:  # (none: nothing to copy, the common case)
                # A value the span was started with (a Responses call's own ``conversation``)
                # is the span's: baggage fills the keys it lacks, never overwrites one.
                started = attributes or {}
                own = {k: started[k] for k in BAGGAGE_SPAN_KEYS if k in entries and k in started}
                self._baggage.on_start(span, parent_context)
                if own:
                    span.set_attributes(own)
            # One pass over the keys (most spans have no URL): a missed get() raises inside the SDK.
            if not attributes or _URL_KEY_SET.isdisjoint(attributes):
                return
            if not _CREDENTIAL_HEADER_KEYS.isdisjoint(attributes):  # captured by the user's opt-in
                for key in _CREDENTIAL_HEADER_KEYS.intersection(attributes):
                    span.set_attribute(key, (CREDENTIAL_MASK,))
            for key in _URL_KEYS:
                url = attributes.get(key)
                if not isinstance(url, str):
                    continue
                clean = sanitize_url(url)
                if clean != url:  # credentials out first, whatever the redaction below does
                    span.set_attribute(key, clean)
                if self.redactor is not None:
                    redacted = redact_url(clean, self.redactor)
                    if redacted != clean:
                        span.set_attribute(key, redacted)
        except Exception:  # telemetry never breaks the app
            log_once("processor", "spanreel: could not apply the session baggage or URL clean-up")

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_added: weakref.WeakKeyDictionary[Any, SpanreelProcessor] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def ensure_processor(provider: Any, redactor: Callable[[str], str] | None = None) -> SpanreelProcessor | None:
    """Add (once) and switch on the :class:`SpanreelProcessor` of ``provider``, an SDK
    ``TracerProvider`` (anything with ``add_span_processor``), with ``redactor`` for URLs;
    ``None`` for other providers."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return None
    with _lock:
        processor = _added.get(provider)
        if processor is None:
            processor = _added[provider] = SpanreelProcessor()
            add(processor)
        processor.active = True
        processor.redactor = redactor
    return processor


def deactivate_processors() -> None:
    """Switch every added processor off (``uninstrument()``)."""
    with _lock:
        for processor in _added.values():
            processor.active = False
