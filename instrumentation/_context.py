"""Sessions (``session.id`` through W3C baggage) and replay links (``replay_of``)."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from urllib.parse import quote_plus

from opentelemetry import baggage, context, trace
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_CONVERSATION_ID
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TracerProvider

from spanreel import __version__
from spanreel._attributes import SESSION_ID, SPANREEL_SESSION_NAME, SPANREEL_SESSION_PATH, USER_ID

from ._content import REDACTION_FAILED
from ._http import exception_credentials, mask_credentials, masked_exception

#: Baggage entries that describe a session; copied onto spanreel's GenAI spans (and onto every
#: span by the auto-setup's ``BaggageSpanProcessor``), with ``gen_ai.conversation.id``.
SESSION_BAGGAGE_KEYS: tuple[str, ...] = (SESSION_ID, USER_ID, SPANREEL_SESSION_NAME, SPANREEL_SESSION_PATH)

TRACER_NAME = "spanreel"

#: W3C baggage limits as OpenTelemetry's ``W3CBaggagePropagator`` enforces them when it injects
#: the ``baggage`` header: bytes of one encoded list-member (``key=value``, percent-encoded) and of
#: the whole header. An entry beyond them is dropped from outgoing requests (with a warning of
#: OpenTelemetry's that does not say which session it was).
BAGGAGE_ENTRY_MAX_BYTES: int = 4096
BAGGAGE_HEADER_MAX_BYTES: int = 8192
#: The :func:`session` argument each baggage entry comes from.
_ARGUMENT_OF_KEY: dict[str, str] = {
    SESSION_ID: "session_id",
    GEN_AI_CONVERSATION_ID: "session_id",
    USER_ID: "user_id",
    SPANREEL_SESSION_NAME: "name",
    SPANREEL_SESSION_PATH: "path",
}
_log = logging.getLogger("spanreel.instrumentation")
_warned_baggage: set[tuple[str, ...]] = set()

_REPLAY: ContextVar[SpanContext | None] = ContextVar("spanreel_replay_of", default=None)
_tracer_provider: TracerProvider | None = None
_redactor: Callable[[str], str] | None = None


def set_redactor(redactor: Callable[[str], str] | None) -> None:
    """The redaction the instrumentation applies to captured text (``None``: off), applied to the
    error text a session span records too. Set by the instrumentor."""
    global _redactor
    _redactor = redactor


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """The provider spanreel's own spans use (``None``: the global one). Set by the instrumentor."""
    global _tracer_provider
    _tracer_provider = provider


def get_tracer() -> trace.Tracer:
    """spanreel's tracer (scope ``spanreel``, version ``spanreel.__version__``)."""
    return trace.get_tracer(TRACER_NAME, __version__, tracer_provider=_tracer_provider)


def _encoded_entry(key: str, value: object) -> str:
    return quote_plus(str(key)) + "=" + quote_plus(str(value))


def _warn_if_not_propagated(session_entries: Mapping[str, str], all_entries: Mapping[str, object]) -> None:
    """Log one ``spanreel:`` warning (once per set of arguments) when a session's baggage entries
    are too long for W3C baggage, so OpenTelemetry would drop them from outgoing requests: an
    encoded entry over :data:`BAGGAGE_ENTRY_MAX_BYTES`, or the whole baggage (the app's entries
    included) over :data:`BAGGAGE_HEADER_MAX_BYTES`. Never raises: telemetry must not break the app."""
    try:
        too_long = sorted(
            {
                _ARGUMENT_OF_KEY[key]
                for key, value in session_entries.items()
                if len(_encoded_entry(key, value)) > BAGGAGE_ENTRY_MAX_BYTES
            }
        )
        header = sum(len(_encoded_entry(k, v)) + 1 for k, v in all_entries.items()) - 1
        too_big = not too_long and header > BAGGAGE_HEADER_MAX_BYTES
        if not too_long and not too_big:
            return
        key = (*too_long, "header") if too_big else tuple(too_long)
        if key in _warned_baggage:
            return
        _warned_baggage.add(key)
        if too_long:
            what = f"{' and '.join(too_long)} {'is' if len(too_long) == 1 else 'are'} longer than"
            limit = f"W3C baggage allows per entry ({BAGGAGE_ENTRY_MAX_BYTES} bytes, percent-encoded)"
        else:
            what = "the session's baggage entries make the baggage longer than"
            limit = f"W3C baggage allows in all ({BAGGAGE_HEADER_MAX_BYTES} bytes)"
        _log.warning(
            "spanreel: session %r: %s %s; OpenTelemetry drops such entries from outgoing requests, so "
            "downstream services will not see this session (its spans in this process still carry "
            "it); use shorter ids",
            str(session_entries.get(SPANREEL_SESSION_NAME, ""))[:64],
            what,
            limit,
        )
    except Exception:  # pragma: no cover - defensive: never into the app
        pass


def _parse_hex(value: str, length: int, what: str) -> int:
    text = value.strip().lower()
    try:
        number = int(text, 16) if len(text) == length else 0
    except ValueError:
        number = 0
    if number == 0:
        raise ValueError(f"{what} must be {length} hex characters and not all zero, got {value!r}")
    return number


@contextmanager
def replay_of(trace_id_hex: str, span_id_hex: str) -> Iterator[SpanContext]:
    """Mark LLM calls made inside the block as replays of the recorded span ``span_id_hex`` in
    trace ``trace_id_hex`` (32 and 16 hex characters).

    Each GenAI span started inside gets a span link to the original span context and the
    attributes ``spanreel.replay.original_trace_id`` / ``spanreel.replay.original_span_id``.
    Context-local (``contextvars``): works across threads started with a copied context and in
    asyncio tasks. Yields the original :class:`~opentelemetry.trace.SpanContext`.

    Raises ``ValueError`` for malformed ids.
    """
    original = SpanContext(
        trace_id=_parse_hex(trace_id_hex, 32, "trace id"),
        span_id=_parse_hex(span_id_hex, 16, "span id"),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = _REPLAY.set(original)
    try:
        yield original
    finally:
        _REPLAY.reset(token)


def current_replay() -> SpanContext | None:
    """The original span context set by the innermost active :func:`replay_of`, if any."""
    return _REPLAY.get()


class Session:
    """A conversation session: ``with session("debate") as s: …`` (or ``async with``).

    On enter, the session is put into W3C baggage for the block — ``session.id`` and
    ``gen_ai.conversation.id`` (both :attr:`id`), ``user.id`` (:attr:`user_id`, if any),
    ``spanreel.session.name`` (:attr:`name`) and
    ``spanreel.session.path`` (:attr:`path`) — so every span started inside carries them
    (spanreel's GenAI spans copy them; other spans get them from the ``BaggageSpanProcessor``
    installed by the auto-setup) and outgoing HTTP requests propagate them to downstream
    services. Defaults come from the baggage already in the context — an enclosing session, or
    one that arrived from an upstream service — so one session may span several traces and
    services: ``session_id`` and ``user_id`` are inherited (a new ``uuid4().hex`` id when there
    is none), and ``path`` extends the enclosing path by ``/name`` (Helicone-style session paths:
    ``/debate``, ``/debate/round-2``).

    If no span is active, a root span named :attr:`name` (kind INTERNAL, with the session
    attributes) is started and made current, so all calls in the block share one trace; inside
    an existing span the calls share its trace and no span is created (:attr:`span` stays
    ``None``). An exception leaving the block is recorded on the root span (status ERROR,
    ``error.type``) and re-raised. Enter it once.

    Baggage is sent to every service the block calls: never use secrets as session or user ids.
    OpenTelemetry's W3C baggage propagator drops an entry longer than 4096 bytes (``key=value``,
    percent-encoded; the id travels twice, as ``session.id`` and ``gen_ai.conversation.id``) and
    entries past 8192 bytes in all: the session then still marks the spans of this process, but not
    downstream services'; one ``spanreel:`` warning is logged (never an exception).
    """

    def __init__(
        self, name: str, session_id: str | None = None, user_id: str | None = None, path: str | None = None
    ) -> None:
        self.name = name
        self._session_id = session_id
        self._user_id = user_id
        self._path = path
        self.id: str = session_id or ""
        self.user_id: str | None = user_id
        self.path: str = path or ""
        self.span: trace.Span | None = None
        self._token: object | None = None

    def __enter__(self) -> Session:
        if self._token is not None:
            raise RuntimeError("this session is already active; create a new one with session()")
        ctx = context.get_current()
        inherited = baggage.get_all(ctx)
        upstream_id = inherited.get(SESSION_ID)
        self.id = self._session_id or (upstream_id if isinstance(upstream_id, str) and upstream_id else "")
        self.id = self.id or uuid.uuid4().hex
        upstream_user = inherited.get(USER_ID)
        self.user_id = self._user_id or (
            upstream_user if isinstance(upstream_user, str) and upstream_user else None
        )
        parent_path = inherited.get(SPANREEL_SESSION_PATH)
        prefix = parent_path.rstrip("/") if isinstance(parent_path, str) else ""
        self.path = self._path or f"{prefix}/{self.name}"
        attributes = {
            SESSION_ID: self.id,
            # the semconv name for the same thing on GenAI spans ("a conversation (session, thread)")
            GEN_AI_CONVERSATION_ID: self.id,
            SPANREEL_SESSION_NAME: self.name,
            SPANREEL_SESSION_PATH: self.path,
        }
        if self.user_id:
            attributes[USER_ID] = self.user_id
        for key, value in attributes.items():
            ctx = baggage.set_baggage(key, value, ctx)
        _warn_if_not_propagated(attributes, baggage.get_all(ctx))
        if not trace.get_current_span(ctx).get_span_context().is_valid:
            self.span = get_tracer().start_span(
                self.name, context=ctx, kind=SpanKind.INTERNAL, attributes=attributes
            )
            ctx = trace.set_span_in_context(self.span, ctx)
        self._token = context.attach(ctx)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            context.detach(token)  # type: ignore[arg-type]
        span = self.span
        if span is not None and span.is_recording():
            if exc is not None:
                _record_error(span, exc)
            span.end()

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _record_error(span: trace.Span, exc: BaseException) -> None:
    # An SDK error may quote the key it was refused with: mask the credentials of the requests it
    # (and its causes) carry; then redact it as the GenAI span's error text is (a provider's
    # message may quote the prompt or an account's e-mail address).
    credentials = exception_credentials(exc)
    attributes = masked_exception(exc, credentials)
    text = mask_credentials(f"{type(exc).__name__}: {exc}", credentials)
    redactor = _redactor
    if redactor is not None:
        if attributes is None:
            attributes = {
                EXCEPTION_MESSAGE: str(exc),
                EXCEPTION_STACKTRACE: "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            }
        try:
            attributes = {key: redactor(str(value)) for key, value in attributes.items()}
            text = redactor(text)
        except Exception:  # fail closed: no text rather than unredacted text
            attributes = {EXCEPTION_MESSAGE: REDACTION_FAILED, EXCEPTION_STACKTRACE: REDACTION_FAILED}
            text = REDACTION_FAILED
    span.record_exception(exc, attributes=attributes)
    span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, text))


def session(
    name: str, session_id: str | None = None, user_id: str | None = None, path: str | None = None
) -> Session:
    """Start a session (``with`` or ``async with``): see :class:`Session`.

    ``session_id`` defaults to the one in the current baggage (an enclosing or upstream
    session), else a new ``uuid4().hex``; ``user_id`` likewise to the baggage's ``user.id``;
    ``path`` to the enclosing session's path plus ``/name``.
    """
    return Session(name, session_id, user_id, path)
