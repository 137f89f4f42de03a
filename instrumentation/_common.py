"""Shared pieces of the API mappers (pure): result types, the mapper interface, JSON helpers.

Every API mapper (:mod:`._openai`, :mod:`._openai_responses`, :mod:`._openai_misc`,
:mod:`._anthropic`, :mod:`._gemini`) turns a parsed request body into :class:`RequestParts`, a
parsed response body into :class:`Parsed`, and streamed events into :class:`Parsed` through a
:class:`StreamAccumulator`. Content (messages, system instructions, tool definitions) is kept as
JSON-able structures in ``content`` so that the caller can apply the content policy (blob
placeholders, redaction, size cap — :mod:`._content`) before serialising it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.util.types import AttributeValue

Attributes = dict[str, AttributeValue]
#: Attribute name → JSON-able value, serialised (compact JSON) when put on the span.
Content = dict[str, Any]


#: The fallback encoder (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is (the format of all JSON-valued attributes).

    Written by orjson (several times faster than :mod:`json`; this runs on every captured call);
    what orjson refuses (integers beyond 64 bits, non-string keys) is written by :mod:`json` as
    before. Raises ``TypeError`` for a value that is not JSON-able. Non-finite floats are written
    as ``null`` (JSON has no ``NaN``); floats may be spelled differently (``1e16``, not
    ``1e+16``), never valued differently. A lone surrogate is written as its ``\\uXXXX`` escape,
    so the text is always valid UTF-8.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = _ENCODER.encode(value)
    # A lone surrogate (half an emoji cut by a client) is not UTF-8: an OTLP exporter drops the
    # attribute. Written as its JSON escape, the text is valid UTF-8 and means the same.
    return _SURROGATE.sub(_escape_surrogate, text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def map_list(items: list[Any], fn: Callable[[Any], Any]) -> list[Any]:
    """``items`` with ``fn`` applied to every element, copy-on-write: the very same list object
    comes back when ``fn`` returned every element itself (``is``), so callers can tell "unchanged"
    without comparing. Raises whatever ``fn`` raises."""
    out: list[Any] | None = None
    for i, item in enumerate(items):
        new = fn(item)
        if new is not item:
            if out is None:
                out = list(items)
            out[i] = new
    return items if out is None else out


def map_dict(mapping: dict[Any, Any], fn: Callable[[Any, Any], Any]) -> dict[Any, Any]:
    """``mapping`` with each value replaced by ``fn(key, value)``, copy-on-write like
    :func:`map_list`: the very same dict comes back when nothing changed. Raises whatever ``fn``
    raises."""
    out: dict[Any, Any] | None = None
    for key, item in mapping.items():
        new = fn(key, item)
        if new is not item:
            if out is None:
                out = dict(mapping)
            out[key] = new
    return mapping if out is None else out


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


_raw_decode = json.JSONDecoder().raw_decode
_JSON_WHITESPACE = " \t\n\r"


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``, faster (one per streamed event, two per call).

    orjson parses first; what it refuses is parsed by :mod:`json` as before, so the results and
    errors are ``json.loads``'s: JSON whitespace (RFC 8259: space, tab, LF, CR) may surround the
    value; ``bytes`` may be UTF-8, -16 or -32; ``NaN`` / ``Infinity`` and lone surrogate escapes
    are accepted; anything else raises ``ValueError`` (``json.JSONDecodeError``, or
    ``UnicodeDecodeError`` for bytes). One difference: an integer outside [-2**63, 2**64) becomes
    the nearest float, as orjson (and JavaScript) read it, where ``json`` keeps it exact (RFC 8259
    §6 leaves such numbers to the implementation; no LLM API sends them).
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    if not isinstance(text, str):
        return json.loads(text)
    if text[:1] in _JSON_WHITESPACE:
        text = text.lstrip(_JSON_WHITESPACE)
    value, end = _raw_decode(text)
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def json_array_items(raw: bytes) -> list[str] | None:
    """The complete elements of a JSON array, as JSON texts in order, also when the array is cut
    short (a stream such as Gemini's ``:streamGenerateContent`` without ``alt=sse``, read in
    part): the unfinished tail is left out. ``None`` when ``raw`` does not start a JSON array."""
    text = raw.decode("utf-8", errors="replace")
    pos = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    if text[pos : pos + 1] != "[":
        return None
    items: list[str] = []
    pos += 1
    size = len(text)
    while pos < size:
        char = text[pos]
        if char in _JSON_WHITESPACE or char == ",":
            pos += 1
            continue
        if char == "]":
            break
        try:
            _, end = _raw_decode(text, pos)
        except ValueError:  # the element the stream was cut in (or not JSON): stop here
            break
        items.append(text[pos:end])
        pos = end
    return items


def event_object(data: str) -> Mapping[str, Any] | None:
    """One SSE ``data`` payload parsed as a JSON object, or ``None`` when it is not JSON or not an
    object (such events are skipped by the stream accumulators)."""
    try:
        payload = loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, Mapping) else None


def number(value: Any) -> float | None:
    """``value`` as a float when it is a JSON number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    """``value`` when it is a JSON integer (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def string(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


def json_or_text(value: Any) -> Any:
    """Tool-call arguments: the parsed JSON value when ``value`` is a valid JSON string, else as is."""
    if isinstance(value, str):
        try:
            return loads(value)
        except ValueError:
            return value
    return value


def text_part(text: str) -> dict[str, Any]:
    """A semconv ``text`` part."""
    return {"type": "text", "content": text}


def server_tool_call_part(call_id: Any, name: Any, tool_type: str, **call: Any) -> dict[str, Any]:
    """A semconv ``server_tool_call`` part: a tool the provider runs itself (web search, code
    execution, a remote MCP server…), not one the application must run.
    ``{"type": "server_tool_call", "id", "name", "server_tool_call": {"type": tool_type, **call}}``
    (GenAI semantic conventions, ``ServerToolCallPart``)."""
    return {
        "type": "server_tool_call",
        "id": call_id,
        "name": name if isinstance(name, str) and name else tool_type,
        "server_tool_call": {"type": tool_type, **call},
    }


def server_tool_call_response_part(call_id: Any, tool_type: str, **response: Any) -> dict[str, Any]:
    """A semconv ``server_tool_call_response`` part: what a provider-run tool returned.
    ``{"type": "server_tool_call_response", "id", "server_tool_call_response": {"type": tool_type,
    **response}}`` (GenAI semantic conventions, ``ServerToolCallResponsePart``)."""
    return {
        "type": "server_tool_call_response",
        "id": call_id,
        "server_tool_call_response": {"type": tool_type, **response},
    }


def set_number(attrs: Attributes, key: str, value: Any) -> None:
    """Set ``attrs[key]`` to ``value`` as a float when it is a JSON number."""
    n = number(value)
    if n is not None:
        attrs[key] = n


def set_integer(attrs: Attributes, key: str, value: Any) -> None:
    """Set ``attrs[key]`` to ``value`` when it is a JSON integer."""
    n = integer(value)
    if n is not None:
        attrs[key] = n


def set_stop_sequences(attrs: Attributes, value: Any) -> None:
    """``gen_ai.request.stop_sequences`` from a string or a list of strings."""
    if isinstance(value, str):
        attrs[ga.GEN_AI_REQUEST_STOP_SEQUENCES] = [value]
    elif isinstance(value, list) and value and all(isinstance(s, str) for s in value):
        attrs[ga.GEN_AI_REQUEST_STOP_SEQUENCES] = list(value)


@dataclass(slots=True)
class Parsed:
    """What a response (or a finished stream) says: plain attributes and, with content capture
    on, the content attributes as JSON-able values (``gen_ai.output.messages``)."""

    attributes: Attributes = field(default_factory=dict)
    content: Content = field(default_factory=dict)
    #: an error a successful (HTTP 200) answer reports: ``error.type`` and the status message
    error_type: str | None = None
    error_message: str | None = None

    def flat(self) -> Attributes:
        """Attributes with the content serialised to JSON strings (no content policy applied)."""
        out = dict(self.attributes)
        for key, value in self.content.items():
            out[key] = dumps(value)
        return out


@dataclass(slots=True)
class RequestParts:
    """What a request says: the operation, the requested model (``None`` when not given), whether
    the response streams, span-start attributes, and (with content capture on) the content
    attributes as JSON-able values (input messages, system instructions, tool definitions)."""

    operation: str
    model: str | None
    stream: bool
    attributes: Attributes = field(default_factory=dict)
    content: Content = field(default_factory=dict)
    #: an error a successful (HTTP 200) answer reports: ``error.type`` and the status message
    error_type: str | None = None
    error_message: str | None = None


class StreamAccumulator(Protocol):
    """Assembles one streamed response from its Server-Sent Events (or JSON array elements)."""

    error_type: str | None
    error_message: str | None
    #: the data of the error event that set :attr:`error_type` (a parsed JSON object), recorded
    #: as ``spanreel.response.error_body`` with content capture on; ``None`` when there was none
    error_event: Any

    def add(self, data: str, event: str = "message") -> bool:
        """Add one event's ``data`` (``event`` is the SSE event name). ``True`` when it was a
        response chunk (it counts for ``gen_ai.response.time_to_first_chunk``)."""
        ...

    def result(self, capture_content: bool) -> Parsed:
        """What has been received so far, as span-end attributes."""
        ...


@dataclass(slots=True)
class Api:
    """One recognised LLM HTTP API.

    ``accepts(body)`` checks the JSON body's shape; ``request(body, path_model, capture)`` maps
    it (``path_model`` is the model or deployment named in the URL path, if any);
    ``response(body, capture)`` maps a non-streamed JSON response; ``stream()`` makes the
    accumulator for a streamed one. ``provider`` is the ``gen_ai.provider.name`` when the host
    does not tell a more precise one (``None``: the OpenAI-compatible default, ``openai``).
    ``provider_usage`` maps a ``gen_ai.provider.name`` to a function that corrects, in place, the
    response attributes of a provider whose usage means something else than the API's own.
    """

    name: str
    accepts: Callable[[Mapping[str, Any]], bool]
    request: Callable[[Mapping[str, Any], str | None, bool], RequestParts]
    response: Callable[[Any, bool], Parsed]
    stream: Callable[[], StreamAccumulator]
    provider: str | None = None
    provider_usage: Mapping[str, Callable[[Attributes], None]] | None = None


def error_type_from_body(body: Any) -> tuple[str | None, str | None]:
    """``(error.type, message)`` from an error JSON body.

    Shapes: OpenAI ``{"error": {"code", "type", "message"}}``, Anthropic
    ``{"type": "error", "error": {"type", "message"}}``, Google
    ``{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message"}}`` (also as the first
    element of a JSON array), Ollama ``{"error": "message"}``, older vLLM and FastChat
    ``{"object": "error", "message", "type", "code": 400}``, FastAPI ``{"detail": …}`` (a string,
    or a validation error list, as compact JSON). The error type is the first of: a string
    ``code``, ``type``, ``status``, an integer ``code``. ``(None, None)`` when the body has none.
    """
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, Mapping):
        return None, None
    err = body.get("error")
    if err is None:
        if body.get("object") == "error":
            err = body
        elif "detail" in body:
            detail = body["detail"]
            return None, detail if isinstance(detail, str) else dumps(detail)
    if isinstance(err, str):
        return None, err
    if not isinstance(err, Mapping):
        return None, None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    for key in ("code", "type", "status"):
        value = err.get(key)
        if isinstance(value, str) and value:
            return value, message
    code = integer(err.get("code"))
    if code is not None:
        return str(code), message
    return None, message
