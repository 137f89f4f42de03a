"""One instrumented LLM HTTP call: starts the GenAI span, watches the response body, ends the span
exactly once. Library-agnostic (httpx and httpx2 requests/responses are duck-typed) and shared by
the sync and async transport wrappers.

Every method that runs inside the application's request path is guarded: a failure in
spanreel's own code is logged once at debug level and the call continues uninstrumented.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer

from spanreel._attributes import (
    SESSION_ID,
    SPANREEL_REPLAY_ORIGINAL_SPAN_ID,
    SPANREEL_REPLAY_ORIGINAL_TRACE_ID,
)

from ._context import current_replay
from ._http import Decoder, default_port, make_decoder, provider_for_host, sanitize_url
from ._openai import (
    ChatStreamAccumulator,
    error_type_from_body,
    is_chat_completions,
    parse_chat_body,
    request_attributes,
    response_attributes,
)
from ._sse import SSEDecoder

_log = logging.getLogger("spanreel.instrumentation")
_logged: set[str] = set()

#: Non-streamed response bodies larger than this (decoded) are passed through but not parsed.
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024


def log_once(key: str, message: str, *args: object) -> None:
    """Log a debug message (with the current exception, if any) the first time ``key`` is seen."""
    if key in _logged:
        return
    _logged.add(key)
    _log.debug(message, *args, exc_info=True)


class LLMCall:
    """The GenAI span of one request and the parser of its response body.

    Lifecycle: :func:`start_call` → :meth:`on_response` (status and headers) → :meth:`feed` for
    every raw body chunk → :meth:`finish` (idempotent; thread-safe). Or :meth:`finish` with the
    transport exception when no response came.
    """

    __slots__ = (
        "_acc",
        "_buffer",
        "_capture",
        "_decoder",
        "_ended",
        "_error_status",
        "_first_chunk_seen",
        "_lock",
        "_parse_ok",
        "_size",
        "_span",
        "_sse",
        "_start",
    )

    def __init__(self, span: trace.Span, capture_content: bool) -> None:
        self._span = span
        self._capture = capture_content
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._ended = False
        self._parse_ok = False
        self._decoder: Decoder | None = None
        self._sse: SSEDecoder | None = None
        self._acc: ChatStreamAccumulator | None = None
        self._buffer: list[bytes] = []
        self._size = 0
        self._error_status = False
        self._first_chunk_seen = False

    @property
    def span(self) -> trace.Span:
        """The GenAI span."""
        return self._span

    @property
    def ended(self) -> bool:
        """Whether :meth:`finish` has run."""
        return self._ended

    def on_response(self, status_code: int, content_type: str, content_encoding: str) -> None:
        """Response head received: mark HTTP errors and choose the body parser."""
        try:
            if status_code >= 400:
                self._error_status = True
                self._span.set_attribute(ERROR_TYPE, str(status_code))
                self._span.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))
            self._decoder = make_decoder(content_encoding)
            if self._decoder is None:
                return  # an encoding we cannot decode: pass the body through unparsed
            if content_type.lower().startswith("text/event-stream"):
                self._sse = SSEDecoder()
                self._acc = ChatStreamAccumulator()
            self._parse_ok = True
        except Exception:
            self._parse_ok = False
            log_once("on_response", "spanreel: could not inspect the LLM response head")

    def feed(self, raw: bytes) -> None:
        """One raw (possibly compressed) body chunk, exactly as the app receives it."""
        if not self._parse_ok or self._ended:
            return
        try:
            assert self._decoder is not None
            data = self._decoder(raw)
            if self._sse is not None:
                acc = self._acc
                assert acc is not None
                for event in self._sse.feed(data):
                    if acc.add(event.data) and not self._first_chunk_seen:
                        self._first_chunk_seen = True
                        self._span.set_attribute(
                            GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time.monotonic() - self._start
                        )
            else:
                self._size += len(data)
                if self._size > MAX_JSON_BODY_BYTES:
                    self._parse_ok = False
                    self._buffer.clear()
                else:
                    self._buffer.append(data)
        except Exception:
            self._parse_ok = False
            log_once("feed", "spanreel: could not parse an LLM response body; passing it through")

    def finish(self, exc: BaseException | None = None) -> None:
        """End the span once: apply what the body said; ``exc`` (a transport or stream error,
        not ``GeneratorExit``) makes the span status ERROR with ``error.type`` = its class name."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        span = self._span
        try:
            if self._parse_ok:
                self._apply_body()
            if exc is not None and not isinstance(exc, GeneratorExit):
                span.record_exception(exc)
                span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception:
            log_once("finish", "spanreel: could not record the LLM response on the span")
        finally:
            self._buffer = []
            try:
                span.end()
            except Exception:
                log_once("end", "spanreel: could not end the GenAI span")

    def _apply_body(self) -> None:
        span = self._span
        if self._acc is not None:
            span.set_attributes(self._acc.attributes(capture_content=self._capture))
            if self._acc.error_type is not None:
                span.set_attribute(ERROR_TYPE, self._acc.error_type)
                span.set_status(Status(StatusCode.ERROR, self._acc.error_message or self._acc.error_type))
            return
        if not self._buffer:
            return
        try:
            body = json.loads(b"".join(self._buffer))
        except ValueError:
            return
        if self._error_status:
            error_type, message = error_type_from_body(body)
            if error_type is not None:
                span.set_attribute(ERROR_TYPE, error_type)
            if message:
                span.set_status(Status(StatusCode.ERROR, message[:1024]))
        else:
            span.set_attributes(response_attributes(body, capture_content=self._capture))


def start_call(request: Any, tracer: Tracer, capture_content: bool) -> tuple[LLMCall, Context] | None:
    """Start the GenAI span for an httpx/httpx2 ``Request`` if it is a Chat Completions call.

    Returns the call and the context to make current around the transport call (the span as
    current, so the HTTP client span nests under it), or ``None`` to pass the request through
    untouched. Cheap checks (method, path suffix) come before reading the body.
    """
    if request.method != "POST":
        return None
    url = request.url
    if not is_chat_completions("POST", url.path):
        return None
    if not is_instrumentation_enabled():
        return None
    try:
        content: bytes = request.content
    except Exception:  # a streamed request body that was not read: not ours to consume
        return None
    body = parse_chat_body(content)
    if body is None:
        return None
    host: str = url.host
    port = url.port or default_port(url.scheme)
    parsed = request_attributes(
        body,
        method="POST",
        url=sanitize_url(str(url)),
        host=host,
        port=port,
        provider=provider_for_host(host),
        raw_body=content.decode("utf-8", errors="replace") if capture_content else None,
        capture_content=capture_content,
    )
    attributes = parsed.attributes
    parent = context.get_current()
    for key in (SESSION_ID, GEN_AI_CONVERSATION_ID):
        value = baggage.get_baggage(key, parent)
        if isinstance(value, str) and value:
            attributes[key] = value
    links: list[Link] = []
    original = current_replay()
    if original is not None:
        trace_hex = format(original.trace_id, "032x")
        span_hex = format(original.span_id, "016x")
        attributes[SPANREEL_REPLAY_ORIGINAL_TRACE_ID] = trace_hex
        attributes[SPANREEL_REPLAY_ORIGINAL_SPAN_ID] = span_hex
        links.append(Link(original))
    span = tracer.start_span(
        parsed.span_name, context=parent, kind=SpanKind.CLIENT, attributes=attributes, links=links
    )
    return LLMCall(span, capture_content), trace.set_span_in_context(span, parent)
