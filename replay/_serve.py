"""``spanreel serve-recorded``: answer OpenAI/Anthropic requests with recorded responses, offline.

Matching (pure, :class:`RecordingIndex`):

- A request matches a recorded one when both go to the same API (OpenAI Chat Completions
  ``…/chat/completions`` or Anthropic Messages ``…/messages``, also on Vertex AI and Amazon
  Bedrock, whose paths name the model: it is matched as the body's ``model``; the path prefix
  does not matter) and their JSON bodies are **semantically equal**: key order, whitespace and number spelling
  (``1`` vs ``1.0``) are irrelevant; every other field and value counts.
- ``stream`` and ``stream_options`` do **not** take part: they choose the transport, not the
  answer. The answer is rebuilt from the span in the form the *incoming* request asks for, so a
  streamed recording can be served as JSON and a JSON recording as SSE (see
  :mod:`spanreel.replay._recorded`); Bedrock's ``/invoke-with-response-stream`` gets an AWS
  event stream (:mod:`spanreel.replay._aws_events`).
- A body recorded with inline blobs replaced by placeholders (the default capture:
  ``data:image/png;base64,[spanreel: image/png base64 omitted, 3072 bytes]``,
  ``spanreel.request.body_modified``) matches a request whose blobs have the same media type and
  decoded size: the request's blobs are replaced exactly as the instrumentation replaced the
  recorded ones (:data:`BLOB_PLACEHOLDERS`) before it is compared with such a recording. Redacted
  or truncated bodies cannot match.
- Identical requests recorded several times are answered in recorded order; once they are used
  up, the last one repeats (a retry loop that recorded ``500, 500, 200`` replays exactly that).
- No match: HTTP 404 with the provider's error shape (OpenAI ``{"error": {"message", "type",
  "code": "spanreel_no_recorded_match", "closest": {...}}}``, Anthropic ``{"type": "error",
  "error": {...}}``) naming the closest recorded request of the same API by :func:`similarity`
  (JSON-aware: objects key by key, lists aligned, strings by ``difflib`` ratio) and the JSON paths
  where the two differ.

An answer recorded cut off (no finish reason: the app stopped reading the stream) is served as far
as it was recorded, without a finish reason (:func:`~spanreel.replay._recorded.cut_off`): the
stream ends without the finish chunk and ``[DONE]`` (Anthropic: ``message_delta`` /
``message_stop``), JSON has ``finish_reason`` / ``stop_reason`` ``null``.

A recorded failure (span status ERROR) is answered with its recorded HTTP status (the span's or its
HTTP child span's status code) and the provider's error body as recorded
(``spanreel.response.error_body``), else one rebuilt from ``error.type`` and the status message
(:func:`~spanreel.replay._recorded.recorded_error_body`). A streamed call that failed by an error
event in its stream (HTTP 200, :attr:`~spanreel.replay._recorded.RecordedError.in_stream`) is
served, when the request asks for a stream, as it came: HTTP 200, the events recorded before the
error (like a cut-off answer: no finish chunk, usage chunk or ``[DONE]``; Anthropic: no
``message_delta`` / ``message_stop``), then the error event in the provider's wire format
(Anthropic ``event: error`` with ``{"type": "error", "error": {...}}``, OpenAI
``data: {"error": {...}}``), where the stream ends; the SDK raises on it as it did when recording.
Asked for as JSON (or as a Bedrock event stream), it is answered as any recorded failure.

Serving (I/O, :class:`RecordedServer`): an aiohttp application on a background thread with its
own event loop, bound to ``host:port`` (``port=0`` picks a free port). OpenAI SDKs use
``{root}/v1`` as base URL, Anthropic SDKs the root itself.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spanreel._threaded_server import ThreadedAiohttpServer
from spanreel.instrumentation._content import ContentPolicy

from ._aws_events import bedrock_chunk
from ._messages import ApiShape, model_path, shape_of_path
from ._recorded import (
    RecordedExchange,
    anthropic_error_body,
    anthropic_message,
    anthropic_stream_events,
    cut_off,
    openai_chat_chunks,
    openai_chat_completion,
    openai_error_body,
    recorded_error_body,
)

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "BLOB_PLACEHOLDERS",
    "CLOSEST_CANDIDATES",
    "IGNORED_FIELDS",
    "NO_MATCH_CODE",
    "Closest",
    "RecordedServer",
    "RecordingIndex",
    "ServedRequest",
    "canonical_json",
    "json_differences",
    "similarity",
]

#: Request fields left out of matching: they choose how the answer is delivered, not what it is.
IGNORED_FIELDS: tuple[str, ...] = ("stream", "stream_options")
#: ``error.code`` of the 404 answer when no recorded request matches.
NO_MATCH_CODE = "spanreel_no_recorded_match"
_MAX_DIFFERENCES = 5
#: How many recorded requests, pre-ranked by shared ``key=value`` leaves, get the full similarity score.
CLOSEST_CANDIDATES = 16
_EXCERPT = 80
#: The instrumentation's blob replacement alone (no redaction, no size cap): applied to a request
#: before it is matched against recordings whose body was modified at capture.
BLOB_PLACEHOLDERS = ContentPolicy(max_bytes=0, keep_blobs=False, redactor=None)
#: What the 404 suggests when the closest recorded body was modified at capture.
_MODIFIED_HINT = (
    " (its body was modified at capture: blobs replaced by placeholders match a request's blobs of the"
    " same media type and size, but redacted or truncated text cannot match; record with"
    " SPANREEL_CAPTURE_BLOBS=true and without SPANREEL_REDACT to serve it)"
)


# ---------------------------------------------------------------------------------------------
# Matching (pure)
# ---------------------------------------------------------------------------------------------


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def canonical_json(body: Any) -> str:
    """The match key of a request body: compact JSON with sorted keys, integral floats written as
    integers, :data:`IGNORED_FIELDS` removed from a top-level object."""
    if isinstance(body, Mapping):
        body = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    return json.dumps(_normalise(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_WORDS = re.compile(r"\s+|[^\s]+")


def _text_ratio(a: str, b: str) -> float:
    """``difflib`` ratio of two strings: by character when short, by word when long (fast and
    still fine-grained for long message contents)."""
    if len(a) + len(b) <= 400:
        return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    return difflib.SequenceMatcher(None, _WORDS.findall(a), _WORDS.findall(b), autojunk=False).ratio()


def _size(value: Any) -> int:
    return len(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _matched(a: Any, b: Any) -> tuple[float, int]:
    """(matched weight, total weight) of two normalised JSON values; weights are text lengths."""
    if a == b and type(a) is type(b):
        size = 2 * _size(a)
        return size, size
    if isinstance(a, dict) and isinstance(b, dict):
        matched, total = 0.0, 0
        for key in a.keys() | b.keys():
            if key in a and key in b:
                m, t = _matched(a[key], b[key])
                matched, total = matched + 2 * len(key) + m, total + 2 * len(key) + t
            else:
                total += len(key) + _size(a[key] if key in a else b[key])
        return matched, total
    if isinstance(a, list) and isinstance(b, list):
        texts_a = [json.dumps(x, sort_keys=True, ensure_ascii=False) for x in a]
        texts_b = [json.dumps(x, sort_keys=True, ensure_ascii=False) for x in b]
        matched, total = 0.0, sum(map(len, texts_a)) + sum(map(len, texts_b))
        aligner = difflib.SequenceMatcher(None, texts_a, texts_b, autojunk=False)
        for op, i1, i2, j1, j2 in aligner.get_opcodes():
            if op == "equal":
                matched += sum(map(len, texts_a[i1:i2])) + sum(map(len, texts_b[j1:j2]))
            elif op == "replace":  # pair the replaced items in order and compare them
                for x, y in zip(a[i1:i2], b[j1:j2], strict=False):
                    matched += _matched(x, y)[0]
        return matched, total
    if isinstance(a, str) and isinstance(b, str):
        return _text_ratio(a, b) * (len(a) + len(b)), len(a) + len(b)
    return 0.0, _size(a) + _size(b)


def _without_ignored(body: Any) -> Any:
    if isinstance(body, Mapping):
        body = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    return _normalise(body)


def similarity(recorded: Any, received: Any) -> float:
    """How alike two request bodies are, 0.0–1.0, JSON-aware (top-level :data:`IGNORED_FIELDS`
    left out): objects are compared key by key, lists are aligned with ``difflib`` (so an inserted
    message shifts nothing), strings by their ``difflib`` ratio, other values by equality; each
    part is weighted by the length of its JSON text. 1.0 means semantically equal bodies."""
    matched, total = _matched(_without_ignored(recorded), _without_ignored(received))
    return matched / total if total else 1.0


def _fingerprint(body: Any) -> Counter[str]:
    """Position-free summary of a body for pre-ranking: ``key=value`` of every scalar leaf."""
    out: Counter[str] = Counter()

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for k, sub in value.items():
                walk(sub, str(k))
        elif isinstance(value, list) and value:
            for sub in value:
                walk(sub, key)
        else:
            out[key + "=" + json.dumps(value, sort_keys=True, ensure_ascii=False)] += 1

    walk(_without_ignored(body), "")
    return out


def _overlap(a: Counter[str], b: Counter[str]) -> float:
    """Share of the two fingerprints' text (by length) that they have in common, 0–1."""
    total = sum(len(k) * n for k, n in a.items()) + sum(len(k) * n for k, n in b.items())
    common = sum(len(k) * min(n, b[k]) for k, n in a.items() if k in b)
    return 2 * common / total if total else 1.0


def _excerpt(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def json_differences(recorded: Any, received: Any, limit: int = _MAX_DIFFERENCES) -> list[str]:
    """Where two JSON values differ, as readable lines (at most ``limit``), depth first:
    ``messages[1].content: recorded "Tabs?" vs received "Spaces?"``, ``temperature: recorded 0.2,
    missing in the request``, ``messages: recorded 3 items, received 2``. :data:`IGNORED_FIELDS`
    at the top level are skipped."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(out) >= limit:
            return
        a, b = _normalise(a), _normalise(b)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if not path and key in IGNORED_FIELDS:
                    continue
                sub = f"{path}.{key}" if path else key
                if key not in b:
                    out.append(f"{sub}: recorded {_excerpt(a[key])}, missing in the request")
                elif key not in a:
                    out.append(f"{sub}: not in the recorded request, received {_excerpt(b[key])}")
                else:
                    walk(a[key], b[key], sub)
                if len(out) >= limit:
                    return
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                out.append(f"{path or '(body)'}: recorded {len(a)} items, received {len(b)}")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{path}[{i}]")
                if len(out) >= limit:
                    return
        elif a != b or type(a) is not type(b):
            out.append(f"{path or '(body)'}: recorded {_excerpt(a)} vs received {_excerpt(b)}")

    walk(recorded, received, "")
    return out[:limit]


def _floor3(score: float) -> str:
    """Three decimals, rounded down: only an exact match shows ``1.000``."""
    return f"{math.floor(score * 1000) / 1000:.3f}"


@dataclass(frozen=True, slots=True)
class Closest:
    """The recorded request most like an unmatched one: the exchange, the :func:`similarity`
    score (0–1) and :func:`json_differences` (recorded vs received)."""

    exchange: RecordedExchange
    similarity: float
    differences: list[str]

    def describe(self) -> str:
        """One line: ``closest recorded request: #2 chat gpt-4o-mini (span …), similarity 0.93;
        differs in: …``."""
        diffs = "; ".join(self.differences) or "only in fields that do not take part in matching"
        text = (
            f"closest recorded request: {self.exchange.label}, similarity {_floor3(self.similarity)}; "
            f"differs in: {diffs}"
        )
        if self.exchange.body_modified:
            text += _MODIFIED_HINT
        return text

    def to_json(self) -> dict[str, Any]:
        span = self.exchange.span
        return {
            "index": self.exchange.index,
            "name": span.name,
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "similarity": float(_floor3(self.similarity)),
            "differences": self.differences,
        }


def matched_body(path: str, body: Any) -> Any:
    """``body`` as requests are matched: with the ``model`` a Vertex AI or Bedrock path names
    (:func:`~spanreel.replay._messages.model_path`; their bodies have none), so calls that differ
    only by model do not answer each other."""
    on_path = model_path(path)
    if on_path is None or not isinstance(body, Mapping) or "model" in body:
        return body
    return {**body, "model": on_path.model}


class RecordingIndex:
    """Recorded exchanges by (API, :func:`canonical_json` of the body), answered in order.

    :meth:`answer` is stateful (it advances the position of repeated requests); use one index
    per server run. Not thread-safe: call it from one thread (the server's event loop).
    """

    def __init__(self, exchanges: Sequence[RecordedExchange]) -> None:
        self.exchanges = list(exchanges)
        self._by_key: dict[tuple[ApiShape, str], list[RecordedExchange]] = {}
        self._canonical: dict[int, str] = {}
        #: each exchange's body as requests are matched (:func:`matched_body`)
        self._bodies = {ex.index: matched_body(ex.path, ex.body) for ex in self.exchanges}
        for ex in self.exchanges:
            key = canonical_json(self._bodies[ex.index])
            self._canonical[ex.index] = key
            self._by_key.setdefault((ex.api, key), []).append(ex)
        #: whether any recorded body had its blobs replaced (then requests are also tried scrubbed)
        self._placeholders = any(ex.body_modified for ex in self.exchanges)
        self._used: dict[tuple[ApiShape, str], int] = {}
        self._fingerprints: dict[int, Counter[str]] = {}

    def _as_recorded(self, body: Any) -> Any:
        """``body`` with its inline blobs replaced by the placeholders a default capture records
        (the very same object when it has none, or no recording was modified)."""
        return BLOB_PLACEHOLDERS.scrub(body) if self._placeholders else body

    def answer(self, api: ApiShape, body: Any) -> RecordedExchange | None:
        """The recorded exchange that answers this request (``body`` as :func:`matched_body`
        gives it), or ``None`` when nothing matches. A request with inline blobs that matches no
        recording as sent is matched with its blobs replaced by placeholders, against the
        recordings whose body was modified at capture."""
        key = (api, canonical_json(body))
        candidates = self._by_key.get(key)
        if not candidates:
            scrubbed = self._as_recorded(body)
            if scrubbed is body:
                return None
            key = (api, canonical_json(scrubbed))
            candidates = [ex for ex in self._by_key.get(key, ()) if ex.body_modified]
            if not candidates:
                return None
        used = self._used.get(key, 0)
        self._used[key] = used + 1
        return candidates[min(used, len(candidates) - 1)]

    def closest(self, api: ApiShape, body: Any) -> Closest | None:
        """The recorded request of the same API most like ``body``; ``None`` if the recording
        has no request to this API.

        Candidates are pre-ranked by a cheap, position-free overlap of their ``key=value``
        leaves; the first :data:`CLOSEST_CANDIDATES` are scored with :func:`similarity` and the
        highest score wins (ties: the earlier recording)."""
        pool = [ex for ex in self.exchanges if ex.api is api]
        if not pool:
            return None
        scrubbed = self._as_recorded(body)  # compared with the bodies modified at capture

        def probe(ex: RecordedExchange) -> Any:
            return scrubbed if ex.body_modified else body

        if len(pool) > CLOSEST_CANDIDATES:
            wanted = {False: _fingerprint(body), True: _fingerprint(scrubbed)}
            ranked = []
            for ex in pool:
                fingerprint = self._fingerprints.get(ex.index)
                if fingerprint is None:
                    fingerprint = self._fingerprints[ex.index] = _fingerprint(self._bodies[ex.index])
                ranked.append((-_overlap(fingerprint, wanted[ex.body_modified]), ex.index, ex))
            ranked.sort(key=lambda r: r[:2])
            pool = [ex for _, _, ex in ranked[:CLOSEST_CANDIDATES]]
        scored = sorted(
            ((similarity(self._bodies[ex.index], probe(ex)), ex) for ex in pool),
            key=lambda s: (-s[0], s[1].index),
        )
        score, ex = scored[0]
        return Closest(ex, score, json_differences(self._bodies[ex.index], probe(ex)))


# ---------------------------------------------------------------------------------------------
# HTTP (aiohttp)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One request the server received: ``method``, ``path``, the ``exchange`` that answered it
    (``None`` → 404/400), the HTTP ``status`` sent, and ``closest`` for a 404."""

    method: str
    path: str
    exchange: RecordedExchange | None
    status: int
    closest: Closest | None = None


def _sse(data: Mapping[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data, ensure_ascii=False) + "\n\n").encode("utf-8")


def _json_response(data: Any, status: int, exchange: RecordedExchange | None = None) -> web.Response:
    from aiohttp import web

    headers = {"x-spanreel-recorded-span": exchange.span.span_id} if exchange else None
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda d: json.dumps(d, ensure_ascii=False)
    )


def _error_for(api: ApiShape | None, status: int, message: str, type_: str, **extra: Any) -> dict[str, Any]:
    if api is ApiShape.ANTHROPIC_MESSAGES:
        return anthropic_error_body(message, type_, **extra)
    return openai_error_body(message, type_, extra.pop("code", None), **extra)


class RecordedServer(ThreadedAiohttpServer):
    """Serve recorded exchanges over HTTP on a background thread (see the module docstring).

    ``RecordedServer(exchanges, host="127.0.0.1", port=0, on_request=None)``; :meth:`start`
    returns once the socket is bound (raises ``OSError`` when it cannot bind), :meth:`stop`
    shuts down (idempotent); also a context manager
    (:class:`spanreel._threaded_server.ThreadedAiohttpServer`). ``on_request`` is called (on the
    server thread) with each :class:`ServedRequest`; :attr:`served` lists them all in arrival order.
    """

    thread_name = "spanreel-serve-recorded"
    startup_failure = "the recorded-response server failed to start"

    def __init__(
        self,
        exchanges: Sequence[RecordedExchange],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: Callable[[ServedRequest], None] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.index = RecordingIndex(exchanges)
        self.served: list[ServedRequest] = []
        self._on_request = on_request

    # -- addresses -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (valid after :meth:`start`); the Anthropic SDK's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``http://HOST:PORT/v1``: the OpenAI SDK's base URL (``OPENAI_BASE_URL``)."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``http://HOST:PORT``: the Anthropic SDK's base URL (``ANTHROPIC_BASE_URL``)."""
        return self.base_url

    @property
    def unmatched(self) -> list[ServedRequest]:
        """The requests answered with 404 (no recorded match)."""
        return [r for r in self.served if r.status == 404]

    def _make_app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        for prefix in ("/v1", ""):
            app.router.add_get(prefix + "/models", self._models)
        app.router.add_post("/{path:.*}", self._handle)
        return app

    # -- handlers ------------------------------------------------------------------------------

    def _note(self, served: ServedRequest) -> None:
        self.served.append(served)
        if self._on_request is not None:
            with contextlib.suppress(Exception):  # a reporting callback never breaks serving
                self._on_request(served)

    async def _models(self, request: web.Request) -> web.Response:
        models = sorted({ex.model for ex in self.index.exchanges if ex.model})
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "spanreel-recorded"} for m in models]
        return _json_response({"object": "list", "data": data}, 200)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        api = shape_of_path(request.path)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if api is None or not isinstance(body, dict):
            what = "not a JSON object" if api is not None else "not an LLM endpoint spanreel serves"
            status = 400 if api is not None else 404
            self._note(ServedRequest(request.method, request.path, None, status))
            message = (
                f"spanreel serve-recorded: {request.method} {request.path}: {what} "
                "(served: POST …/chat/completions, POST …/messages, and Anthropic Messages on "
                "Vertex AI …:rawPredict / …:streamRawPredict and Amazon Bedrock …/invoke / "
                "…/invoke-with-response-stream)"
            )
            return _json_response(_error_for(api, status, message, "invalid_request_error"), status)
        on_path = model_path(request.path)
        matched = matched_body(request.path, body)
        exchange = self.index.answer(api, matched)
        if exchange is None:
            return self._no_match(request, api, matched)
        bedrock_stream = on_path is not None and on_path.aws_event_stream and on_path.stream
        sse = body.get("stream") is True and not bedrock_stream
        error = exchange.error
        # A stream that failed by an error event is served as a stream that carries that event.
        if error is not None and not (error.in_stream and sse):
            self._note(ServedRequest(request.method, request.path, exchange, error.status))
            return _json_response(recorded_error_body(exchange), error.status, exchange)
        self._note(ServedRequest(request.method, request.path, exchange, 200))
        if bedrock_stream:
            return await self._bedrock_stream(request, exchange)
        if sse:
            return await self._stream(request, api, exchange, body)
        answer = (
            anthropic_message(exchange)
            if api is ApiShape.ANTHROPIC_MESSAGES
            else openai_chat_completion(exchange)
        )
        return _json_response(answer, 200, exchange)

    def _no_match(self, request: web.Request, api: ApiShape, body: Any) -> web.Response:
        closest = self.index.closest(api, body)
        self._note(ServedRequest(request.method, request.path, None, 404, closest))
        message = (
            f"spanreel serve-recorded: no recorded request matches this {request.method} "
            f"{request.path} body; "
        )
        message += closest.describe() if closest else "the recording has no request to this API"
        extra = {"closest": closest.to_json() if closest else None}
        if api is ApiShape.ANTHROPIC_MESSAGES:
            return _json_response(
                anthropic_error_body(message, "not_found_error", code=NO_MATCH_CODE, **extra), 404
            )
        return _json_response(
            openai_error_body(message, "invalid_request_error", NO_MATCH_CODE, **extra), 404
        )

    async def _stream(
        self, request: web.Request, api: ApiShape, exchange: RecordedExchange, body: Mapping[str, Any]
    ) -> web.StreamResponse:
        from aiohttp import web

        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-spanreel-recorded-span": exchange.span.span_id,
            }
        )
        await response.prepare(request)
        for piece in self._stream_pieces(api, exchange, body):
            await response.write(piece)
        await response.write_eof()
        return response

    async def _bedrock_stream(self, request: web.Request, exchange: RecordedExchange) -> web.StreamResponse:
        from aiohttp import web

        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "x-spanreel-recorded-span": exchange.span.span_id,
            }
        )
        await response.prepare(request)
        for _, data in anthropic_stream_events(exchange):
            await response.write(bedrock_chunk(data))
        await response.write_eof()
        return response

    @staticmethod
    def _stream_pieces(api: ApiShape, exchange: RecordedExchange, body: Mapping[str, Any]) -> Iterator[bytes]:
        anthropic = api is ApiShape.ANTHROPIC_MESSAGES
        if anthropic:
            for event, data in anthropic_stream_events(exchange):
                yield _sse(data, event)
        else:
            options = body.get("stream_options")
            include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
            for chunk in openai_chat_chunks(exchange, include_usage=include_usage):
                yield _sse(chunk)
        if exchange.error is not None:  # failed in the stream: its error event ends it
            yield _sse(recorded_error_body(exchange), "error" if anthropic else None)
        elif not anthropic and not cut_off(exchange):  # a stream recorded cut off ends where it does
            yield b"data: [DONE]\n\n"
