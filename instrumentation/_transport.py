"""Thin sync/async wrappers around ``HTTPTransport.handle_request`` /
``AsyncHTTPTransport.handle_async_request`` of httpx and httpx2, and the response-stream tee.

The wrapper starts the GenAI span (see :mod:`._call`), makes it current around the transport
call (so the opentelemetry-instrumentation-httpx span, wrapped inside ours, is its child), and
replaces ``response.stream`` with a tee that hands every chunk to the application unchanged and
immediately; the parser sees each chunk (stamped with its arrival time) when the application
asks for the next one, so parsing never delays a chunk. The span ends when the body is exhausted, closed,
fails, or the stream is garbage-collected unread.

A 307/308 redirect does not end the call: httpx sends the same POST to the new location next
(in the same context), and that hop continues the GenAI span (one GenAI span per call, one HTTP
span per hop). Should no such request follow (the client does not follow redirects, or gave up
after too many), the span ends with status ERROR and the redirect's status as ``error.type``, at
the next request made in that context or when the redirect response is garbage-collected.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from time import monotonic
from types import ModuleType
from typing import Any, NamedTuple, Protocol

from opentelemetry import context, trace
from opentelemetry.context import Context

from ._call import CallSettings, LLMCall, call_context, log_once, start_call


class Settings(Protocol):
    """What the wrappers read on each call (the instrumentor's live state)."""

    def call_settings(self) -> CallSettings | None:
        """The settings to record a call with, or ``None`` when not instrumenting."""
        ...


def _request_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("request")


#: Statuses after which httpx sends the same method and body to the ``Location`` (RFC 9110 §15.4).
_SAME_REQUEST_REDIRECTS = frozenset({307, 308})


class _Redirected(NamedTuple):
    """A call whose last hop was redirected, waiting for the request that continues it."""

    call: weakref.ref[LLMCall]
    #: where it was sent on to
    url: str
    #: its request body: httpx hands the same stream object to the redirected request, so an
    #: unrelated POST to that URL is not mistaken for it
    stream: Any
    #: ends the call when the redirect response is freed and nothing continued it
    finalizer: weakref.finalize[..., Any]


#: The call whose last hop was redirected in this context.
_redirected: ContextVar[_Redirected | None] = ContextVar("spanreel_redirected", default=None)


def _follow_redirect(parked: _Redirected, request: Any) -> tuple[LLMCall, Context] | None:
    """The redirected call ``request`` continues (httpx's rebuilt request: a POST to the target
    with the same body stream), or ``None``; a redirected call that this request does not
    continue is ended."""
    _redirected.set(None)
    call = parked.call()
    if call is None or call.ended:
        return None
    try:
        if request.method == "POST" and request.stream is parked.stream and str(request.url) == parked.url:
            parked.finalizer.detach()  # the response may go before this hop's body is read
            call.follow_redirect(request)
            return call, call_context(call, trace.set_span_in_context(call.span, context.get_current()))
    except Exception:
        log_once("redirect", "spanreel: could not follow the LLM call's redirect")
    call.finish()
    return None


def _safe_start(
    args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> tuple[LLMCall, Any] | None:
    parked = _redirected.get()
    if parked is not None:
        followed = _follow_redirect(parked, _request_of(args, kwargs))
        if followed is not None:
            return followed
    current = settings.call_settings()
    if current is None:
        return None
    try:
        return start_call(_request_of(args, kwargs), current)
    except Exception:
        log_once("start", "spanreel: could not start the GenAI span; request passed through")
        return None


class _TeeState:
    """What a tee shares with its finaliser: the call, and the chunk the application holds but the
    parser has not seen yet (fed before the span ends, however the stream ends)."""

    __slots__ = ("arrived", "call", "pending")

    def __init__(self, call: LLMCall) -> None:
        self.call = call
        self.pending: bytes | None = None
        self.arrived = 0.0

    # The tees' loops set ``pending`` / ``arrived`` as a chunk goes to the application and feed
    # it when the application asks for the next one (inline: two method calls fewer per chunk).

    def release(self) -> None:
        """The application asked for the next chunk: parse the one it holds."""
        chunk, self.pending = self.pending, None
        if chunk is not None:
            self.call.feed(chunk, self.arrived)

    def finish(self, exc: BaseException | None = None, exhausted: bool = False) -> None:
        """End the call, after parsing the chunk still held (an SDK that stops at ``[DONE]``
        closes the response while the last chunk, often the one with the usage, is held).
        ``exhausted``: the body was read to its end."""
        self.release()
        call = self.call
        call.finish(exc, exhausted=exhausted)
        call.finisher = None  # it was this method (adopted spans): break the cycle call ↔ state


class _SyncTee:
    """Mixin for the library's ``SyncByteStream``: pass chunks through, feed the call a copy."""

    def __init__(self, inner: Any, call: LLMCall) -> None:
        self._inner = inner
        self._state = state = _TeeState(call)
        weakref.finalize(self, state.finish)

    def __iter__(self) -> Iterator[bytes]:
        # Each chunk goes to the application first; the parser sees it when the application
        # asks for the next one (with its arrival time), so parsing never delays a chunk.
        state = self._state
        feed = state.call.feed
        try:
            for chunk in self._inner:
                # held while the application has it; parsed when it asks for the next one
                state.pending, state.arrived = chunk, monotonic()
                yield chunk
                if state.pending is not None:  # not already fed by finish()
                    state.pending = None
                    feed(chunk, state.arrived)
        except GeneratorExit:
            state.finish()
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        state.finish(exhausted=True)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._state.finish()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_inner", "_state"):
            raise AttributeError(name)
        return getattr(self._inner, name)


class _AsyncTee:
    """Mixin for the library's ``AsyncByteStream``: pass chunks through, feed the call a copy."""

    def __init__(self, inner: Any, call: LLMCall) -> None:
        self._inner = inner
        self._state = state = _TeeState(call)
        weakref.finalize(self, state.finish)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        state = self._state
        feed = state.call.feed
        iterator = self._inner.__aiter__()
        try:
            async for chunk in iterator:
                # held while the application has it; parsed when it asks for the next one
                state.pending, state.arrived = chunk, monotonic()
                yield chunk
                if state.pending is not None:  # not already fed by finish()
                    state.pending = None
                    feed(chunk, state.arrived)
        except GeneratorExit:
            state.finish()
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        finally:
            # Mirror httpx's own aiter_raw(): close the inner async generator explicitly.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        state.finish(exhausted=True)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._state.finish()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_inner", "_state"):
            raise AttributeError(name)
        return getattr(self._inner, name)


_tee_classes: dict[str, tuple[type[_SyncTee], type[_AsyncTee]]] = {}


def _tees(lib: ModuleType) -> tuple[type[_SyncTee], type[_AsyncTee]]:
    """Tee classes that are also instances of ``lib.SyncByteStream`` / ``lib.AsyncByteStream``
    (the Response checks ``isinstance`` before iterating or closing)."""
    found = _tee_classes.get(lib.__name__)
    if found is None:
        sync_cls = type("SpanreelSyncByteStream", (_SyncTee, lib.SyncByteStream), {"__module__": __name__})
        async_cls = type(
            "SpanreelAsyncByteStream", (_AsyncTee, lib.AsyncByteStream), {"__module__": __name__}
        )
        found = _tee_classes[lib.__name__] = (sync_cls, async_cls)
    return found


def _observe(response: Any, call: LLMCall, lib: ModuleType, is_async: bool, request: Any) -> None:
    try:
        headers = response.headers
        status = int(response.status_code)
        call.on_response(status, headers.get("content-type", ""), headers.get("content-encoding", ""))
        if status in _SAME_REQUEST_REDIRECTS and call.owned:
            location = headers.get("location")
            if location:
                # Not ended here: the client's next request continues it (see the module doc).
                call.await_redirect()
                target = str(request.url.join(location))
                finalizer = weakref.finalize(response, call.finish)
                _redirected.set(_Redirected(weakref.ref(call), target, request.stream, finalizer))
                return
        sync_cls, async_cls = _tees(lib)
        stream = response.stream
        tee: _SyncTee | _AsyncTee
        if is_async and isinstance(stream, lib.AsyncByteStream):
            response.stream = tee = async_cls(stream, call)
        elif not is_async and isinstance(stream, lib.SyncByteStream):
            response.stream = tee = sync_cls(stream, call)
        else:
            call.finish()
            return
        if not call.owned:  # its owner may end the span before the body is done (see _adopt)
            call.finisher = tee._state.finish
    except Exception:
        log_once("observe", "spanreel: could not observe the LLM response body")
        call.finish()


def sync_wrapper(
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    settings: Settings,
    lib: ModuleType,
) -> Any:
    """wrapt wrapper for ``HTTPTransport.handle_request`` (httpx or httpx2 ``lib``)."""
    started = _safe_start(args, kwargs, settings)
    if started is None:
        return wrapped(*args, **kwargs)
    call, ctx = started
    token = context.attach(ctx)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.finish(exc)
        raise
    finally:
        context.detach(token)
    _observe(response, call, lib, False, _request_of(args, kwargs))
    return response


async def async_wrapper(
    wrapped: Callable[..., Awaitable[Any]],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    settings: Settings,
    lib: ModuleType,
) -> Any:
    """wrapt wrapper for ``AsyncHTTPTransport.handle_async_request`` (httpx or httpx2 ``lib``)."""
    started = _safe_start(args, kwargs, settings)
    if started is None:
        return await wrapped(*args, **kwargs)
    call, ctx = started
    token = context.attach(ctx)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        call.finish(exc)
        raise
    finally:
        context.detach(token)
    _observe(response, call, lib, True, _request_of(args, kwargs))
    return response
