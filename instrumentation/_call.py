"""One instrumented LLM HTTP call: starts (or adopts) the GenAI span, watches the response body
as the application reads it, ends the span exactly once. Library-agnostic (httpx and httpx2
requests are duck-typed) and shared by the sync and async transport wrappers.

Every method that runs inside the application's request path is guarded: a failure in
spanreel's own code is logged once at debug level and the call continues uninstrumented.

**Coexistence rule — one GenAI span per call.** When the current span is already the GenAI span
of this call, made by another instrumentation (a recording ``CLIENT`` span with an inference
``gen_ai.operation.name``, e.g. opentelemetry-instrumentation-openai-v2's ``chat …`` or the
``anthropic`` SDK's own ``anthropic.messages.create`` call span), spanreel starts no span of its
own: it *adopts* that span and adds what it knows to it — request attributes the span lacks,
the exact request body, content, response attributes, cost. It never ends, renames or sets the
status of an adopted span (its owner does), so retries inside one SDK call all land on it. When
the owner ends the span before the body is done (a stream left early), spanreel records first:
see :mod:`._adopt`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes.openai_attributes import OPENAI_REQUEST_SERVICE_TIER
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_RESEND_COUNT
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer

from spanreel._attributes import (
    MAX_ERROR_BODY_BYTES,
    NO_FINISH_REASON,
    SPANREEL_CONTENT_TRUNCATED,
    SPANREEL_COST_USD,
    SPANREEL_REPLAY_ORIGINAL_SPAN_ID,
    SPANREEL_REPLAY_ORIGINAL_TRACE_ID,
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_BODY_MODIFIED,
    SPANREEL_REQUEST_METHOD,
    SPANREEL_REQUEST_URL,
    SPANREEL_RESPONSE_ERROR_BODY,
)

from ._adopt import finish_before_owner_ends, foreign_genai_span, records_metrics
from ._apis import provider_for, route
from ._common import (
    Api,
    Attributes,
    Content,
    Parsed,
    StreamAccumulator,
    dumps,
    error_type_from_body,
    json_array_items,
    loads,
)
from ._content import ContentPolicy, mask_request_content
from ._context import SESSION_BAGGAGE_KEYS, current_replay
from ._cost import cost_usd, warm_up
from ._errortext import mask_error_text
from ._eventstream import CONTENT_TYPE as EVENT_STREAM
from ._eventstream import EventStreamDecoder, make_event_stream_decoder
from ._http import (
    Decoder,
    default_port,
    make_decoder,
    mask_body_credentials,
    mask_credentials,
    masked_exception,
    redact_url,
    request_credentials,
    sanitize_url,
)
from ._metrics import GenAIMetrics
from ._sse import SSEDecoder

_log = logging.getLogger("spanreel.instrumentation")
_logged: set[str] = set()

#: Non-streamed response bodies larger than this (decoded) are passed through but not parsed.
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024
#: After a stream's first chunk, its raw chunks are parsed in batches of about this many bytes.
STREAM_BATCH_BYTES = 64 * 1024

#: Baggage entries copied onto spanreel's GenAI spans (and onto every span by the auto-setup's
#: ``BaggageSpanProcessor``).
BAGGAGE_KEYS: tuple[str, ...] = (*SESSION_BAGGAGE_KEYS, ga.GEN_AI_CONVERSATION_ID)
_JSON_START = (b"{", b" ", b"\n", b"\r", b"\t")


def log_once(key: str, message: str, *args: object) -> None:
    """Log a debug message (with the current exception, if any) the first time ``key`` is seen."""
    if key in _logged:
        return
    _logged.add(key)
    _log.debug(message, *args, exc_info=True)


@dataclass(frozen=True, slots=True)
class CallSettings:
    """What one call is recorded with (a snapshot of the instrumentor's settings)."""

    tracer: Tracer
    capture_content: bool
    policy: ContentPolicy
    metrics: GenAIMetrics | None
    cost: bool = True


class LLMCall:
    """The GenAI span of one request and the parser of its response body.

    Lifecycle: :func:`start_call` → :meth:`on_response` (status and headers) → :meth:`feed` for
    every raw body chunk → :meth:`finish` (idempotent; thread-safe). Or :meth:`finish` with the
    transport exception when no response came.
    """

    __slots__ = (
        "__weakref__",
        "_acc",
        "_api",
        "_buffer",
        "_decoder",
        "_ended",
        "_error_body",
        "_error_status",
        "_first_chunk_seen",
        "_lock",
        "_malformed",
        "_metrics",
        "_outcome",
        "_owned",
        "_parse_ok",
        "_pending",
        "_pending_size",
        "_request",
        "_settings",
        "_size",
        "_span",
        "_sse",
        "_start",
        "_start_attrs",
        "_status_code",
        "_stream",
        "_truncated",
        "_ttfc",
        "defer_metrics",
        "finisher",
        "held_baggage",
    )

    def __init__(
        self,
        span: trace.Span,
        api: Api,
        settings: CallSettings,
        start_attrs: Attributes,
        *,
        owned: bool = True,
        stream: bool = False,
        truncated: tuple[str, ...] = (),
        record_metrics: bool = True,
        request: Any = None,
    ) -> None:
        self._span = span
        self._metrics = settings.metrics if record_metrics else None
        self._api = api
        self._settings = settings
        self._start_attrs = start_attrs
        self._owned = owned
        self._stream = stream
        self._truncated = truncated
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._ended = False
        self._parse_ok = False
        self._decoder: Decoder | None = None
        self._sse: SSEDecoder | EventStreamDecoder | None = None
        self._acc: StreamAccumulator | None = None
        #: an event whose data is not JSON came in the stream (the SDKs raise on it)
        self._malformed = False
        self._buffer: list[bytes] = []
        self._size = 0
        self._error_status = False
        #: the JSON error body of an HTTP error response (recorded with content capture)
        self._error_body: bytes | None = None
        self._status_code = 0
        self._first_chunk_seen = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._ttfc: float | None = None
        self._request = request  # its credentials are masked out of error text
        #: Keep the metrics of :meth:`finish` for :meth:`record_deferred_metrics` (adopted spans).
        self.defer_metrics = False
        self._outcome: tuple[Attributes, float, str | None] | None = None
        #: What ends the call when an adopted span's owner ends it first: the response tee's
        #: finish (which also parses the chunk the application holds) while the body is being
        #: read; ``None``: :meth:`finish`. (Never ``self.finish`` itself: a bound method kept on
        #: its own object is a reference cycle, and every call's span, request and response
        #: would then wait for the garbage collector.)
        self.finisher: Callable[[], None] | None = None
        #: The session baggage entries (:data:`BAGGAGE_KEYS`) of the app's context, held back from
        #: the request sent to the LLM provider (see :func:`call_context`); ``None``: none.
        self.held_baggage: dict[str, str] | None = None

    @property
    def span(self) -> trace.Span:
        """The GenAI span (spanreel's own, or the adopted one of another instrumentation)."""
        return self._span

    @property
    def owned(self) -> bool:
        """``False`` when the span was adopted from another instrumentation (see the module doc)."""
        return self._owned

    @property
    def ended(self) -> bool:
        """Whether :meth:`finish` has run."""
        return self._ended

    def await_redirect(self) -> None:
        """The response was a 307/308 redirect: the call goes on in the next request
        (:meth:`follow_redirect`). Should it end here instead (the client did not follow, or
        gave up: ``TooManyRedirects``), it failed with that status as ``error.type``."""
        self._error_status = True

    def follow_redirect(self, request: Any) -> None:
        """Continue this call on the request a redirect led to (307/308: the same POST, sent to
        ``request.url``): the response state is reset for the new hop and
        ``spanreel.request.url`` / ``server.*`` name where the call was answered. The span, its
        start and its request attributes stay: one GenAI span per call, one HTTP span per hop."""
        self._request = request
        self._decoder = self._sse = self._acc = None
        self._buffer, self._size, self._pending, self._pending_size = [], 0, [], 0
        self._error_status, self._status_code, self._parse_ok = False, 0, False
        self._error_body = None
        self._malformed = False
        self._span.set_attributes(_endpoint_attributes(request.url, self._settings.policy))

    def _request_content(self) -> bytes:
        """The request body's bytes (read before the call started), ``b""`` when unknown."""
        try:
            content = getattr(self._request, "content", b"")
        except Exception:  # a streamed body not read (not a call spanreel records)
            return b""
        return content if isinstance(content, bytes) else b""

    def credentials(self) -> list[str]:
        """The request's credential values (headers, query), for masking error text; computed
        when asked (only when there is error text to mask)."""
        request = self._request
        if request is None:
            return []
        return request_credentials(getattr(request, "headers", None), str(getattr(request, "url", "")))

    def on_response(self, status_code: int, content_type: str, content_encoding: str) -> None:
        """Response head received: mark HTTP errors and choose the body parser."""
        try:
            self._status_code = status_code
            if status_code >= 400:
                self._error_status = True
            self._decoder = make_decoder(content_encoding)
            if self._decoder is None:
                return  # an encoding we cannot decode: pass the body through unparsed
            if content_type[:17].lower() == "text/event-stream":
                self._sse = SSEDecoder()
                self._acc = self._api.stream()
            elif content_type[: len(EVENT_STREAM)].lower() == EVENT_STREAM:  # Amazon Bedrock
                self._sse = make_event_stream_decoder()
                if self._sse is None:
                    return  # botocore is not installed: pass the body through unparsed
                self._acc = self._api.stream()
            self._parse_ok = True
        except Exception:
            self._parse_ok = False
            log_once("on_response", "spanreel: could not inspect the LLM response head")

    def feed(self, raw: bytes, arrived: float | None = None) -> None:
        """One raw (possibly compressed) body chunk, exactly as the app receives it;
        ``arrived`` is its ``time.monotonic()`` arrival time (default: now). Once an SSE stream's
        first chunk has been seen (and timed), chunks are held and parsed in batches of
        :data:`STREAM_BATCH_BYTES` and at :meth:`finish`; the application is never delayed."""
        if not self._parse_ok or self._ended:
            return
        if self._first_chunk_seen and self._sse is not None:
            # Past the first chunk nothing is timed: parse in batches (less work per chunk).
            self._pending.append(raw)
            self._pending_size += len(raw)
            if self._pending_size < STREAM_BATCH_BYTES:
                return
            raw = self._take_pending()
        self._parse_chunk(raw, arrived)

    def _take_pending(self) -> bytes:
        raw = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        return raw

    def _parse_chunk(self, raw: bytes, arrived: float | None) -> None:
        try:
            assert self._decoder is not None
            data = self._decoder(raw)
            self._size += len(data)
            if self._sse is not None:
                acc = self._acc
                assert acc is not None
                for event in self._sse.feed(data):
                    if acc.add(event.data, event.event):
                        if not self._first_chunk_seen:
                            self._first_chunk(arrived)
                    elif not self._malformed and _malformed_event(event.data):
                        self._malformed = True
            else:
                if self._stream and data and not self._first_chunk_seen and not self._error_status:
                    self._first_chunk(arrived)
                if self._size > MAX_JSON_BODY_BYTES:
                    self._parse_ok = False
                    self._buffer.clear()
                else:
                    self._buffer.append(data)
        except Exception:
            self._parse_ok = False
            log_once("feed", "spanreel: could not parse an LLM response body; passing it through")

    def _first_chunk(self, arrived: float | None) -> None:
        self._first_chunk_seen = True
        at = time.monotonic() if arrived is None else arrived
        ttfc = max(0.0, at - self._start)
        if self._owned:
            # Set with the end attributes, first (the span's attribute order is unchanged): one
            # SDK call fewer. An adopted span is its owner's to end, maybe before finish().
            self._ttfc = ttfc
        else:
            self._span.set_attribute(ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttfc)

    def finish(self, exc: BaseException | None = None, *, exhausted: bool = False) -> None:
        """End the span once: apply what the body said; ``exc`` (a transport or stream error,
        not ``GeneratorExit``) makes the span status ERROR with ``error.type`` = its class name.
        ``exhausted``: the body was read to its end (not closed early by the application); a
        stream read to its end without the provider's end event (no finish reason, no ``[DONE]``)
        is then ERROR with ``error.type`` :data:`INCOMPLETE_STREAM`."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        span = self._span
        try:
            self._record(exc, exhausted)
        except Exception:
            log_once("finish", "spanreel: could not record the LLM response on the span")
            if self._ttfc is not None:
                try:
                    span.set_attribute(ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, self._ttfc)
                except Exception:
                    log_once("ttfc", "spanreel: could not record the time to first chunk")
        finally:
            self._buffer = []
            if self._owned:
                try:
                    span.end()
                except Exception:
                    log_once("end", "spanreel: could not end the GenAI span")

    def _parse(self) -> tuple[Parsed | None, str | None, str | None]:
        """(response attributes, error type, error message) from the body received."""
        capture = self._settings.capture_content
        acc = self._acc
        if acc is not None:
            if self._pending:
                self._parse_chunk(self._take_pending(), None)
            self._keep_error_event(acc)
            return acc.result(capture), acc.error_type, acc.error_message
        if not self._buffer:
            return None, None, None
        raw = b"".join(self._buffer)
        if self._stream and not self._error_status:
            # A stream sent as one JSON array (Gemini without alt=sse): its elements, even when
            # the app stopped reading part-way, and an error element after a 200 head.
            items = json_array_items(raw)
            if items is not None:
                acc = self._api.stream()
                for item in items:
                    acc.add(item)
                self._keep_error_event(acc)
                return acc.result(capture), acc.error_type, acc.error_message
        try:
            body = loads(raw)
        except ValueError:
            return None, None, None
        if self._error_status:
            error_type, message = error_type_from_body(body)
            if self._status_code >= 400:
                self._error_body = raw
            return None, error_type, message
        parsed = self._api.response(body, capture)
        return parsed, parsed.error_type, parsed.error_message

    def _keep_error_event(self, acc: StreamAccumulator) -> None:
        """A stream's error event (answered 200) is kept as the error body, so serve-recorded can
        send the event the provider sent (recorded only with content capture on)."""
        if acc.error_event is not None and self._settings.capture_content:
            self._error_body = dumps(acc.error_event).encode()

    def _record(self, exc: BaseException | None, exhausted: bool = False) -> None:
        span = self._span
        settings = self._settings
        parsed, error_type, message = self._parse() if self._parse_ok else (None, None, None)
        redactor = settings.policy.redactor
        if message:
            # The provider's error text may quote the request, even the key it refused.
            message = mask_credentials(message, self.credentials())
            if not settings.capture_content:  # the message may quote the prompt it refused
                message = mask_request_content(message, self._request_content())
            if redactor is not None:
                message = redactor(message)
        attrs: Attributes = {}
        error_body = self._error_body
        if error_body is not None and settings.capture_content and len(error_body) <= MAX_ERROR_BODY_BYTES:
            # What the app's SDK raised from: served again by serve-recorded (credentials masked).
            text = mask_credentials(error_body.decode("utf-8", errors="replace"), self.credentials())
            attrs[SPANREEL_RESPONSE_ERROR_BODY] = redactor(text) if redactor is not None else text
        if self._ttfc is not None:  # the first chunk came before the body was parsed
            attrs[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._ttfc
        truncated = list(self._truncated)
        if parsed is not None:
            attrs.update(parsed.attributes)
            fixes = self._api.provider_usage
            if fixes is not None:  # a provider whose usage means something else (xAI's chat)
                provider = self._start_attrs.get(ga.GEN_AI_PROVIDER_NAME)
                fix = fixes.get(provider) if isinstance(provider, str) else None
                if fix is not None:
                    fix(attrs)
            if parsed.content:
                _require_finish_reasons(parsed.content)
                policy = settings.policy
                _put_content(attrs, parsed.content, policy, truncated)
        if truncated:
            attrs[SPANREEL_CONTENT_TRUNCATED] = truncated
        if settings.cost and (
            ga.GEN_AI_USAGE_INPUT_TOKENS in attrs or ga.GEN_AI_USAGE_OUTPUT_TOKENS in attrs
        ):
            model = attrs.get(ga.GEN_AI_RESPONSE_MODEL) or self._start_attrs.get(ga.GEN_AI_REQUEST_MODEL)
            provider = self._start_attrs.get(ga.GEN_AI_PROVIDER_NAME)
            tier = self._start_attrs.get(OPENAI_REQUEST_SERVICE_TIER)  # when the response names none
            cost = cost_usd(
                provider if isinstance(provider, str) else None,
                model if isinstance(model, str) else None,
                attrs,
                service_tier=tier if isinstance(tier, str) else None,
            )
            if cost is not None:
                attrs[SPANREEL_COST_USD] = cost
        if isinstance(exc, asyncio.CancelledError) and parsed is not None and _finished(parsed):
            # Reading was cancelled after the model finished: the rest of the body, drained by
            # the client (openai's async streams give up on it after 100 ms), not a failed call.
            exc = None
        status: Status | None = None
        if exc is not None and not isinstance(exc, GeneratorExit):
            error_type = type(exc).__qualname__
            text = f"{type(exc).__name__}: {exc}"
            credentials = self.credentials()
            status = Status(StatusCode.ERROR, mask_credentials(text, credentials))
            if self._owned:
                span.record_exception(exc, attributes=masked_exception(exc, credentials))
        elif self._error_status:
            error_type = error_type or str(self._status_code)
            status = Status(StatusCode.ERROR, (message or f"HTTP {self._status_code}")[:1024])
        elif error_type is not None:  # an error event inside a stream
            status = Status(StatusCode.ERROR, (message or error_type)[:1024])
        elif self._malformed and parsed is not None and self._stream_incomplete(parsed):
            # The SDK raised on the event while the app read the stream, which it then closed.
            error_type = MALFORMED_EVENT
            status = Status(StatusCode.ERROR, "the stream held an event whose data is not valid JSON")
        elif exhausted and parsed is not None and self._stream_incomplete(parsed):
            error_type = INCOMPLETE_STREAM
            status = Status(StatusCode.ERROR, "the stream ended before the provider's end event")
        if self._owned and error_type is not None:
            attrs[ERROR_TYPE] = error_type
        if attrs:
            span.set_attributes(attrs)
        self._ttfc = None
        if self._owned and status is not None:
            span.set_status(status)
        metrics = self._metrics
        if metrics is not None:
            outcome = {**self._start_attrs, **attrs}, time.monotonic() - self._start, error_type
            if self.defer_metrics:
                self._outcome = outcome
            else:
                metrics.record(*outcome)

    def _stream_incomplete(self, parsed: Parsed) -> bool:
        """Whether an event stream lacks its end: no finish reasons and no ``[DONE]`` (which some
        OpenAI-compatible servers send without finish reasons)."""
        return self._sse is not None and not _finished(parsed) and not getattr(self._acc, "done", False)

    def record_deferred_metrics(self, duration_s: float | None) -> None:
        """Record the metrics :meth:`finish` kept (``defer_metrics``), once, with the owner's
        operation duration in seconds (``None``: this call's own)."""
        outcome, self._outcome = self._outcome, None
        if outcome is not None and self._metrics is not None:
            attrs, own, error_type = outcome
            self._metrics.record(attrs, own if duration_s is None else duration_s, error_type)


#: ``error.type`` of a stream read to its end without the provider's end event (the server or a
#: proxy closed it early): the app got a truncated answer without an exception.
INCOMPLETE_STREAM = "incomplete_stream"


#: ``error.type`` of a stream that held an event whose data is not JSON and then ended without the
#: provider's end event: the OpenAI and Anthropic SDKs raise on such an event (the app's read
#: failed), so the call did not complete. (One skipped by a client that then read the stream to
#: its proper end leaves the call's status alone.)
MALFORMED_EVENT = "malformed_event"


def _malformed_event(data: str) -> bool:
    """Whether an SSE ``data`` payload the accumulator did not take is not JSON (``[DONE]`` and
    empty data are not malformed)."""
    text = data.strip()
    if not text or text == "[DONE]":
        return False
    try:
        loads(text)
    except ValueError:
        return True
    return False


def _finished(parsed: Parsed) -> bool:
    """Whether the response had finished: the provider sent its finish reasons."""
    return bool(parsed.attributes.get(ga.GEN_AI_RESPONSE_FINISH_REASONS))


def _require_finish_reasons(content: Content) -> None:
    messages = content.get(ga.GEN_AI_OUTPUT_MESSAGES)
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and not message.get("finish_reason"):
                message["finish_reason"] = NO_FINISH_REASON


def _put_content(
    attrs: Attributes, content: Content, policy: ContentPolicy, truncated: list[str], *, scrub: bool = True
) -> None:
    """Serialise ``content`` into ``attrs`` through ``policy``: blob placeholders and redaction
    (unless ``scrub`` is false: already done), the size cap always (names of cut attributes are
    appended to ``truncated``). The walk runs only when the serialised text says it can matter."""
    redact = scrub and policy.redactor is not None
    for key, value in content.items():
        text = dumps(policy.scrub(value) if redact else value)
        if scrub and not redact and policy.needs_scrub(text):
            scrubbed = policy.scrub(value)
            if scrubbed is not value:
                text = dumps(scrubbed)
        cut = policy.cap(text)
        if cut is not None:
            text = cut
            truncated.append(key)
        attrs[key] = text


def _endpoint_attributes(url: Any, policy: ContentPolicy) -> Attributes:
    """``server.address``, ``server.port`` (when known) and ``spanreel.request.url`` of an
    httpx/httpx2 URL; the URL without credentials in its query, then with the redaction hook
    applied."""
    clean = sanitize_url(str(url))
    if policy.redactor is not None:
        clean = redact_url(clean, policy.redactor)
    attrs: Attributes = {SERVER_ADDRESS: url.host, SPANREEL_REQUEST_URL: clean}
    port = url.port or default_port(url.scheme)
    if port is not None:
        attrs[SERVER_PORT] = port
    return attrs


#: The attempt number the openai and anthropic SDKs send with each request (0: the first); replay
#: sends it with its own retries too (:func:`spanreel.replay._send.send_request`).
RETRY_COUNT_HEADER = "x-stainless-retry-count"


def _resend_count(request: Any) -> int:
    """How many times the SDK had sent this request before (``x-stainless-retry-count``), else 0:
    each attempt is its own HTTP request and GenAI span, ``http.request.resend_count`` tells them
    apart (not set on an adopted span, which all the attempts share)."""
    value = request.headers.get(RETRY_COUNT_HEADER)
    return int(value) if value and value.isdigit() else 0


def _request_content(request: Any) -> bytes:
    """The request body: ``request.content``, or for a request httpx rebuilt around an unread
    in-memory body (it does so for a 307/308 redirect) the bytes of that ``ByteStream``, read
    without consuming anything. Raises for a streamed body that is not ours to consume."""
    try:
        content: bytes = request.content
    except Exception:
        stream = request.stream
        if type(stream).__name__ != "ByteStream":
            raise
        return b"".join(stream)
    return content


def _parse_body(content: bytes, api: Api) -> dict[str, Any] | None:
    if not content or content[:1] not in _JSON_START:
        return None
    try:
        body = loads(content)
    except ValueError:  # also invalid UTF-8
        return None
    if isinstance(body, dict) and api.accepts(body):
        return body
    return None


def start_call(request: Any, settings: CallSettings) -> tuple[LLMCall, Context] | None:
    """Start (or adopt) the GenAI span for an httpx/httpx2 ``Request`` of a known LLM API.

    Returns the call and the context to make current around the transport call (the GenAI span
    as current, so the HTTP client span nests under it), or ``None`` to pass the request
    through untouched. Cheap checks (method, path suffix) come before reading the body.
    """
    if request.method != "POST":
        return None
    url = request.url
    path: str = url.path
    found = route(path)
    if found is None or not is_instrumentation_enabled():
        return None
    try:
        content = _request_content(request)
    except Exception:  # a streamed request body that was not read: not ours to consume
        return None
    api = found.api
    body = _parse_body(content, api)
    if body is None:
        return None
    warm_up()
    capture = settings.capture_content
    policy = settings.policy
    host: str = url.host
    scrubbed: Any = body
    if capture:
        if policy.needs_scrub(content):
            scrubbed = policy.scrub(body)
        scrubbed = mask_body_credentials(scrubbed)  # an MCP server's token, a data source's key
    parts = api.request(scrubbed, found.path_model, capture)
    stream = parts.stream or found.path_stream
    attrs: Attributes = {
        ga.GEN_AI_OPERATION_NAME: parts.operation,
        ga.GEN_AI_PROVIDER_NAME: provider_for(api, host, path, url.query),
        SPANREEL_REQUEST_METHOD: "POST",
        **_endpoint_attributes(url, policy),
    }
    attrs.update(parts.attributes)
    if found.path_stream:
        attrs[ga.GEN_AI_REQUEST_STREAM] = True
    resend = _resend_count(request)
    if resend:
        attrs[HTTP_REQUEST_RESEND_COUNT] = resend
    truncated: list[str] = []
    if capture:
        _put_content(attrs, parts.content, policy, truncated, scrub=False)  # the body was scrubbed
        modified = scrubbed is not body
        text = dumps(scrubbed) if modified else content.decode("utf-8", errors="replace")
        cut = policy.cap(text)
        if cut is not None:
            text, modified = cut, True
            truncated.append(SPANREEL_REQUEST_BODY)
        attrs[SPANREEL_REQUEST_BODY] = text
        if modified:
            attrs[SPANREEL_REQUEST_BODY_MODIFIED] = True
    parent = context.get_current()
    entries = baggage.get_all(parent)
    held: dict[str, str] | None = None
    if entries:
        for key in BAGGAGE_KEYS:
            if key not in entries:
                continue
            value = entries[key]
            if held is None:
                held = {}
            held[key] = value if isinstance(value, str) else str(value)
            if isinstance(value, str) and value and key not in attrs:  # the request's own wins
                attrs[key] = value
    original = current_replay()
    links: list[Link] = []
    if original is not None:
        attrs[SPANREEL_REPLAY_ORIGINAL_TRACE_ID] = format(original.trace_id, "032x")
        attrs[SPANREEL_REPLAY_ORIGINAL_SPAN_ID] = format(original.span_id, "016x")
        links.append(Link(original))
    foreign = foreign_genai_span(parent)
    if foreign is not None:
        existing = getattr(foreign, "attributes", None) or {}
        # Not http.request.resend_count: the SDK's attempts share the adopted span, one span per
        # SDK call, never a retry of an earlier one (the count marks a retry's span; the viewer
        # and replay take a span carrying it for a retry of the call before, and merge them).
        foreign.set_attributes(
            {k: v for k, v in attrs.items() if k not in existing and k != HTTP_REQUEST_RESEND_COUNT}
        )
        for link in links:
            foreign.add_link(link.context)
        # The owner may record the GenAI client metrics itself: then spanreel does not count the
        # call a second time.
        call = LLMCall(
            foreign,
            api,
            settings,
            attrs,
            owned=False,
            stream=stream,
            truncated=tuple(truncated),
            record_metrics=not records_metrics(foreign),
            request=request,
        )
        # Metrics once per owner's operation, recorded when it ends (not per HTTP attempt).
        call.held_baggage = held
        call.defer_metrics = finish_before_owner_ends(foreign, call)
        # The owner records the SDK's error ("Incorrect API key provided: sk-…") on its span: mask
        # the request's credentials out of it (computed now: the span must not hold the call).
        mask_error_text(foreign, call.credentials().copy)
        return call, call_context(call, parent)
    name = f"{parts.operation} {parts.model}" if parts.model else parts.operation
    span = settings.tracer.start_span(
        name, context=parent, kind=SpanKind.CLIENT, attributes=attrs, links=links
    )
    call = LLMCall(span, api, settings, attrs, stream=stream, truncated=tuple(truncated), request=request)
    call.held_baggage = held
    return call, call_context(call, trace.set_span_in_context(span, parent))


#: The context key under which the current LLM call is found (by the span processor, which masks
#: its credentials out of the error text its HTTP child span records).
CALL_CONTEXT_KEY: Final = context.create_key("spanreel-llm-call")


def call_context(call: LLMCall, ctx: Context) -> Context:
    """``ctx`` with ``call`` as the current LLM call (see :data:`CALL_CONTEXT_KEY`), without the
    session baggage entries (:attr:`LLMCall.held_baggage`): the HTTP instrumentation would send
    them to the LLM provider in the request's ``baggage`` header — ``user.id`` (often an e-mail
    address), ``session.id``, the session name and path, which are for the app's own downstream
    services (W3C Baggage, "Security considerations"). The request keeps ``traceparent``; the
    HTTP span still gets the session attributes (:class:`~._processor.SpanreelProcessor`)."""
    held = call.held_baggage
    if held:
        for key in held:
            ctx = baggage.remove_baggage(key, ctx)
    return context.set_value(CALL_CONTEXT_KEY, call, ctx)
