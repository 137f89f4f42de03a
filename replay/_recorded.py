"""Recorded LLM exchanges: a span's request and response, rebuilt in the provider's wire format (pure).

A spanreel LLM span (docs/internals.md §1) holds the exact request (``spanreel.request.body``,
``.url``, ``.method``) and the response as GenAI semantic-convention attributes
(``gen_ai.output.messages`` with the message/parts schema, ``gen_ai.response.id`` / ``.model`` /
``.finish_reasons``, ``gen_ai.usage.*``). From these this module rebuilds what the provider sent:

- OpenAI Chat Completions (https://platform.openai.com/docs/api-reference/chat): the
  ``chat.completion`` object and the ``chat.completion.chunk`` stream (with the usage chunk when
  the request asks for ``stream_options.include_usage``);
- Anthropic Messages (https://docs.anthropic.com/en/api/messages and ``…/messages-streaming``):
  the ``message`` object and the SSE events ``message_start`` … ``message_stop``;
- a recorded failure: the HTTP status and the provider-shaped error body;
- a streamed call the provider answered with HTTP 200 and then failed with an error event in its
  stream (:attr:`RecordedError.in_stream`): the events recorded before it, then that error event.

What is exact and what is rebuilt: text, tool calls (id, name, arguments), Anthropic server tool
blocks (``server_tool_use``, ``mcp_tool_use``, ``…_tool_result``, from the ``server_tool_call`` /
``server_tool_call_response`` parts they were recorded as), finish reasons,
response id/model and token counts are the recorded values. Tool-call ``arguments`` are stored
parsed on the span; the exact string is taken from a later request of the same recording that
sent the call back (as apps do), else re-serialised (``json.dumps``, semantically equal).
Chunk boundaries of a stream are not recorded: text is re-chunked a few words per chunk, so a
streamed recording can be served as JSON and a JSON recording as a stream. ``created`` is the
span's end time in seconds. Fields the span does not carry (``system_fingerprint``, logprobs)
are ``null``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_STATUS_CODE
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from spanreel._attributes import (
    NO_FINISH_REASON,
    SPANREEL_CONTENT_TRUNCATED,
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_BODY_MODIFIED,
    SPANREEL_REQUEST_METHOD,
    SPANREEL_REQUEST_URL,
    SPANREEL_RESPONSE_ERROR_BODY,
)
from spanreel.instrumentation._call import INCOMPLETE_STREAM, MALFORMED_EVENT

from ._load import SpanRecord, parse_json
from ._messages import ApiShape, model_path, shape_of_path

__all__ = [
    "RecordedError",
    "RecordedExchange",
    "RecordedUsage",
    "UnservableCall",
    "anthropic_error_body",
    "anthropic_message",
    "anthropic_stream_events",
    "cut_off",
    "exchanges_from_spans",
    "openai_assistant_message",
    "openai_chat_chunks",
    "openai_chat_completion",
    "openai_error_body",
    "recorded_error_body",
]

_WORDS_PER_CHUNK = 3
_ARGS_PER_CHUNK = 16


@dataclass(frozen=True, slots=True)
class RecordedUsage:
    """Token counts as recorded (``gen_ai.usage.*``; ``input_tokens`` includes cached tokens, per
    the GenAI conventions). ``None`` when not recorded."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedError:
    """A recorded failure: HTTP ``status`` (best known error status; for an ``in_stream`` error,
    the one a request for JSON is answered with), ``type`` (``error.type``), ``message`` (the
    span's status message; ``None`` when none was recorded) and ``body``: the provider's error
    body as received (``spanreel.response.error_body``), ``None`` when not recorded.

    ``in_stream``: the provider answered the streamed request with HTTP 200 and sent the error as
    an event of its stream (Anthropic's ``event: error``, an OpenAI-compatible server's
    ``data: {"error": …}``), after the output recorded on the span, if any (see
    :func:`_failed_in_stream`)."""

    status: int
    type: str
    message: str | None
    body: Mapping[str, Any] | None = None
    in_stream: bool = False


@dataclass(frozen=True, slots=True)
class RecordedExchange:
    """One servable recorded LLM call.

    ``index``: 1-based position in recording order (start time, then span id). ``body``: the
    parsed request body; ``path``: the recorded URL path; ``api``: its API (by the path).
    ``output_messages``: the semconv output messages (one per choice). ``created_s``: span end
    time in whole **seconds** since the epoch.
    ``tool_arguments``: tool-call id → the exact ``arguments`` string, when a later request sent
    the call back. ``error`` is set when the recorded call failed: then there is no output,
    unless the error came in the stream after some (:attr:`RecordedError.in_stream`).
    """

    index: int
    span: SpanRecord
    method: str
    url: str
    path: str
    api: ApiShape
    body: Any
    stream: bool
    output_messages: tuple[Mapping[str, Any], ...]
    response_id: str | None
    response_model: str | None
    finish_reasons: tuple[str, ...]
    usage: RecordedUsage
    created_s: int
    error: RecordedError | None = None
    tool_arguments: Mapping[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The response model if recorded, else the request's ``model`` (in the body, or the
        path on Vertex AI and Bedrock), else ``""``."""
        if self.response_model:
            return self.response_model
        model = self.body.get("model") if isinstance(self.body, Mapping) else None
        if isinstance(model, str):
            return model
        on_path = model_path(self.path)  # Vertex AI and Bedrock name it in the path
        return on_path.model if on_path is not None else ""

    @property
    def body_modified(self) -> bool:
        """Whether the recorded body differs from what was sent (``spanreel.request.body_modified``:
        blobs replaced by placeholders, redaction, truncation), so a real request cannot match it."""
        return self.span.attributes.get(SPANREEL_REQUEST_BODY_MODIFIED) is True

    @property
    def label(self) -> str:
        """Short human label: ``#2 chat gpt-4o-mini (span 5b8aa5a2d2c872e8)``."""
        return f"#{self.index} {self.span.name} (span {self.span.span_id})"


@dataclass(frozen=True, slots=True)
class UnservableCall:
    """A recorded LLM span that cannot be served, with the reason (one line)."""

    span: SpanRecord
    reason: str


# ---------------------------------------------------------------------------------------------
# spans → exchanges
# ---------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


#: Where an HTTP span records the response status: the stable HTTP semantic conventions, and the
#: older name that opentelemetry-instrumentation-httpx still writes by default.
_STATUS_ATTRIBUTES = (HTTP_RESPONSE_STATUS_CODE, HTTP_STATUS_CODE)


def _recorded_statuses(span: SpanRecord, children: Sequence[SpanRecord]) -> Iterator[int]:
    """The HTTP status codes recorded for a call, the most telling first: the one the span itself
    carries (an adopted span, such as the ``anthropic`` SDK's own), then its HTTP child spans'
    (the last attempt's first: ``http.response.status_code`` or the older ``http.status_code``)."""
    for holder in (span, *sorted(children, key=lambda c: (c.start_time_ns, c.span_id), reverse=True)):
        for name in _STATUS_ATTRIBUTES:
            status = _int(holder.attributes.get(name))
            if status is not None:
                yield status


def _error_status(span: SpanRecord, children: Sequence[SpanRecord]) -> int:
    """Best-known HTTP status of a failed call: the first error status (400 or more) of
    :func:`_recorded_statuses`, else a numeric ``error.type``, else ``HTTP NNN`` in the status
    message, else 500."""
    for status in _recorded_statuses(span, children):
        if status >= 400:
            return status
    for text in (str(span.attributes.get(ERROR_TYPE) or ""), span.status_message):
        found = re.search(r"\b([45]\d\d)\b", text)
        if found:
            return int(found.group(1))
    return 500


#: ``error.type`` values that name a failure on the client's side of a stream, not an error event
#: the provider sent: spanreel's own (the stream ended without its end event; an event was not
#: JSON) and those the ``anthropic`` SDK's call span gives a connection failure, a timeout and
#: another client-side error.
_CLIENT_SIDE_STREAM_ERRORS = frozenset(
    {INCOMPLETE_STREAM, MALFORMED_EVENT, "connection_error", "client_timeout_error", "client_error"}
)


def _failed_in_stream(span: SpanRecord, children: Sequence[SpanRecord], streamed: bool) -> bool:
    """Whether a failed streamed call failed by an error event in its stream: the provider
    answered it with a success status (the first of :func:`_recorded_statuses` is below 400; with
    none recorded, the span has ``gen_ai.response.time_to_first_chunk``: events came, so the stream
    was open), and nothing on the client's side ended the stream: no ``exception`` event on the
    span (a broken connection, a timeout) and no ``error.type`` of
    :data:`_CLIENT_SIDE_STREAM_ERRORS`. spanreel records no mark of the error event itself."""
    if not streamed or str(span.attributes.get(ERROR_TYPE) or "") in _CLIENT_SIDE_STREAM_ERRORS:
        return False
    if any(event.get("name") == "exception" for event in span.events):
        return False
    status = next(_recorded_statuses(span, children), None)
    if status is None:
        return ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    return status < 400


def _collect_tool_arguments(bodies: Sequence[Any]) -> dict[str, str]:
    """tool-call id → exact ``arguments`` string, from assistant messages in OpenAI request bodies."""
    found: dict[str, str] = {}
    for body in bodies:
        messages = body.get("messages") if isinstance(body, Mapping) else None
        for message in messages if isinstance(messages, list) else ():
            if not isinstance(message, Mapping) or message.get("role") != "assistant":
                continue
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if not isinstance(call, Mapping) or not isinstance(call.get("id"), str):
                    continue
                fn = call.get("function")
                if isinstance(fn, Mapping) and isinstance(fn.get("arguments"), str):
                    found.setdefault(call["id"], fn["arguments"])
    return found


def exchanges_from_spans(spans: Sequence[SpanRecord]) -> tuple[list[RecordedExchange], list[UnservableCall]]:
    """The servable LLM calls among ``spans`` (any number of traces), in recording order, and the
    LLM calls that cannot be served with the reason.

    A span is an LLM call when it carries ``spanreel.request.body`` or is a GenAI span (has a
    normalised ``operation``); wrapper spans without a body whose descendant has one (e.g. the
    ``anthropic`` SDK's own call span) are skipped silently. Servable: the body is JSON, the
    path is OpenAI Chat Completions or Anthropic Messages, and the span has
    ``gen_ai.output.messages`` or failed (status ERROR).
    """
    by_parent: dict[str, list[SpanRecord]] = {}
    for span in spans:
        if span.parent_span_id:
            by_parent.setdefault(span.parent_span_id, []).append(span)

    def has_recorded_descendant(span_id: str) -> bool:
        stack = list(by_parent.get(span_id, ()))
        seen: set[str] = set()
        while stack:
            child = stack.pop()
            if child.span_id in seen:
                continue
            seen.add(child.span_id)
            if SPANREEL_REQUEST_BODY in child.attributes:
                return True
            stack.extend(by_parent.get(child.span_id, ()))
        return False

    ordered = sorted(spans, key=lambda s: (s.start_time_ns, s.span_id))
    candidates: list[tuple[SpanRecord, Any]] = []
    unservable: list[UnservableCall] = []
    for span in ordered:
        raw = span.attributes.get(SPANREEL_REQUEST_BODY)
        if raw is None:
            if span.operation and not has_recorded_descendant(span.span_id):
                unservable.append(
                    UnservableCall(
                        span,
                        f"no request body recorded ({SPANREEL_REQUEST_BODY}): content capture was off "
                        f"or another instrumentation recorded it (scope {span.scope_name!r})",
                    )
                )
            continue
        body = parse_json(raw) if isinstance(raw, str) else None
        if not isinstance(body, Mapping):
            unservable.append(UnservableCall(span, f"{SPANREEL_REQUEST_BODY} is not a JSON object"))
            continue
        candidates.append((span, body))

    tool_arguments = _collect_tool_arguments([body for _, body in candidates])
    exchanges: list[RecordedExchange] = []
    for span, body in candidates:
        made = _exchange(len(exchanges) + 1, span, body, by_parent.get(span.span_id, ()), tool_arguments)
        if isinstance(made, str):
            unservable.append(UnservableCall(span, made))
        else:
            exchanges.append(made)
    return exchanges, unservable


def _exchange(
    index: int,
    span: SpanRecord,
    body: Mapping[str, Any],
    children: Sequence[SpanRecord],
    tool_arguments: Mapping[str, str],
) -> RecordedExchange | str:
    attrs = span.attributes
    url = str(attrs.get(SPANREEL_REQUEST_URL) or "")
    path = urlsplit(url).path if url else ""
    api = shape_of_path(path) if url else None
    on_path = model_path(path)
    if api is None:
        return f"only OpenAI Chat Completions and Anthropic Messages can be served (recorded URL {url!r})"
    truncated = attrs.get(SPANREEL_CONTENT_TRUNCATED)
    if isinstance(truncated, list) and ga.GEN_AI_OUTPUT_MESSAGES in truncated:
        return f"the recorded output was truncated at capture ({SPANREEL_CONTENT_TRUNCATED})"
    outputs = parse_json(attrs.get(ga.GEN_AI_OUTPUT_MESSAGES))
    output_messages = tuple(m for m in outputs if isinstance(m, Mapping)) if isinstance(outputs, list) else ()
    stream = body.get("stream") is True or (on_path is not None and on_path.stream)
    error: RecordedError | None = None
    in_stream = span.status_code == "ERROR" and _failed_in_stream(span, children, stream)
    if span.status_code == "ERROR" and (in_stream or not output_messages):
        recorded_body = parse_json(attrs.get(SPANREEL_RESPONSE_ERROR_BODY))
        error = RecordedError(
            status=_error_status(span, children),
            type=str(attrs.get(ERROR_TYPE) or "error"),
            message=span.status_message or None,
            body=recorded_body if isinstance(recorded_body, Mapping) else None,
            in_stream=in_stream,
        )
    elif not output_messages:
        return f"no response recorded ({ga.GEN_AI_OUTPUT_MESSAGES} is missing)"
    reasons = attrs.get(ga.GEN_AI_RESPONSE_FINISH_REASONS)
    if not isinstance(reasons, list):
        reasons = list(span.finish_reasons)
    response_id = attrs.get(ga.GEN_AI_RESPONSE_ID)
    return RecordedExchange(
        index=index,
        span=span,
        method=str(attrs.get(SPANREEL_REQUEST_METHOD) or "POST").upper(),
        url=url,
        path=path,
        api=api,
        body=body,
        stream=stream,
        output_messages=output_messages,
        response_id=response_id if isinstance(response_id, str) and response_id else None,
        response_model=span.response_model or _str_or_none(attrs.get(ga.GEN_AI_RESPONSE_MODEL)),
        finish_reasons=tuple(str(r) for r in reasons),
        usage=RecordedUsage(
            input_tokens=_int(attrs.get(ga.GEN_AI_USAGE_INPUT_TOKENS)),
            output_tokens=_int(attrs.get(ga.GEN_AI_USAGE_OUTPUT_TOKENS)),
            cache_read_input_tokens=_int(attrs.get(ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
            cache_creation_input_tokens=_int(attrs.get(ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
            reasoning_output_tokens=_int(attrs.get(ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        ),
        created_s=span.end_time_ns // 1_000_000_000,
        error=error,
        tool_arguments=tool_arguments,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------------
# semconv parts → wire pieces
# ---------------------------------------------------------------------------------------------


def _parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    parts = message.get("parts")
    return [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []


def _text_of(message: Mapping[str, Any]) -> str | None:
    """Concatenated ``text`` parts, or ``None`` when the message has no text part."""
    texts = [str(p.get("content") or "") for p in _parts(message) if p.get("type") == "text"]
    return "".join(texts) if texts else None


def _reasoning_of(message: Mapping[str, Any]) -> str | None:
    texts = [str(p.get("content") or "") for p in _parts(message) if p.get("type") == "reasoning"]
    return "".join(texts) if texts else None


def _tool_calls_of(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in _parts(message) if p.get("type") == "tool_call"]


def _arguments_text(call: Mapping[str, Any], exact: Mapping[str, str]) -> str:
    call_id = call.get("id")
    if isinstance(call_id, str) and call_id in exact:
        return exact[call_id]
    args = call.get("arguments")
    if isinstance(args, str):
        return args
    return json.dumps({} if args is None else args, ensure_ascii=False)


def _arguments_object(call: Mapping[str, Any]) -> Any:
    args = call.get("arguments")
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return {}
    return {} if args is None else args


def openai_assistant_message(
    message: Mapping[str, Any], tool_arguments: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A semconv output (or assistant input) message → an OpenAI assistant message:
    ``{"role": "assistant", "content": str | None, "tool_calls": [{"id", "type": "function",
    "function": {"name", "arguments": str}}]}`` (``tool_calls`` only when there are any)."""
    out: dict[str, Any] = {"role": "assistant", "content": _text_of(message)}
    calls = [
        {
            "id": call.get("id"),
            "type": "function",
            "function": {"name": call.get("name"), "arguments": _arguments_text(call, tool_arguments or {})},
        }
        for call in _tool_calls_of(message)
    ]
    if calls:
        out["tool_calls"] = calls
    return out


#: semconv / other providers' finish reasons → OpenAI's (identity for OpenAI recordings).
_TO_OPENAI_FINISH = {
    "tool_call": "tool_calls",
    "tool_use": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
}
#: semconv / OpenAI finish reasons → Anthropic ``stop_reason`` (identity for Anthropic recordings).
_TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_call": "tool_use",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _finish_reason(ex: RecordedExchange, choice: int, message: Mapping[str, Any]) -> str | None:
    recorded = ex.finish_reasons[choice] if choice < len(ex.finish_reasons) else None
    reason = message.get("finish_reason")
    if not isinstance(reason, str) or not reason or (reason == NO_FINISH_REASON and not recorded):
        # NO_FINISH_REASON without a recorded gen_ai.response.finish_reasons stands for none
        # (a stream cut off): served as none.
        return recorded or None
    return reason


def cut_off(ex: RecordedExchange) -> bool:
    """Whether the recorded answer stops part-way: a choice has no finish reason (a stream the app
    stopped reading, recorded with the output message's required ``finish_reason`` as ``error``,
    :data:`~spanreel._attributes.NO_FINISH_REASON`, and no ``gen_ai.response.finish_reasons``).
    It is served as far as it was recorded: as JSON with ``finish_reason`` / ``stop_reason``
    ``null``; as a stream without the finish chunk, the usage chunk and ``[DONE]`` (Anthropic:
    without ``message_delta`` and ``message_stop``)."""
    return any(
        m.get("finish_reason") == NO_FINISH_REASON and _finish_reason(ex, i, m) is None
        for i, m in enumerate(ex.output_messages)
    )


def _openai_usage(usage: RecordedUsage) -> dict[str, Any] | None:
    if usage.input_tokens is None and usage.output_tokens is None:
        return None
    prompt = usage.input_tokens or 0
    completion = usage.output_tokens or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cache_read_input_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_input_tokens}
    if usage.reasoning_output_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_output_tokens}
    return out


def _response_id(ex: RecordedExchange, prefix: str) -> str:
    return ex.response_id or f"{prefix}{ex.span.span_id}"


# ---------------------------------------------------------------------------------------------
# OpenAI Chat Completions
# ---------------------------------------------------------------------------------------------


def openai_chat_completion(ex: RecordedExchange) -> dict[str, Any]:
    """The ``chat.completion`` JSON object for a recorded (successful) exchange."""
    choices = []
    for i, message in enumerate(ex.output_messages):
        wire = openai_assistant_message(message, ex.tool_arguments)
        wire["refusal"] = None
        reasoning = _reasoning_of(message)
        if reasoning is not None:
            wire["reasoning_content"] = reasoning
        reason = _finish_reason(ex, i, message)
        choices.append(
            {
                "index": i,
                "message": wire,
                "logprobs": None,
                "finish_reason": _TO_OPENAI_FINISH.get(reason, reason) if reason else None,
            }
        )
    out: dict[str, Any] = {
        "id": _response_id(ex, "chatcmpl-"),
        "object": "chat.completion",
        "created": ex.created_s,
        "model": ex.model,
        "system_fingerprint": None,
        "choices": choices,
    }
    usage = _openai_usage(ex.usage)
    if usage is not None:
        out["usage"] = usage
    return out


def _split_text(text: str, words: int = _WORDS_PER_CHUNK) -> list[str]:
    """Pieces of a few words whose concatenation is exactly ``text``."""
    tokens = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def openai_chat_chunks(ex: RecordedExchange, *, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of the recorded answer (each sent as one SSE
    ``data:`` line, followed by ``data: [DONE]``). ``include_usage``: the request's
    ``stream_options.include_usage`` — adds ``"usage": null`` to every chunk and a final chunk
    with empty ``choices`` and the usage, as OpenAI does."""
    rid, model = _response_id(ex, "chatcmpl-"), ex.model

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": ex.created_s,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    for i, message in enumerate(ex.output_messages):
        text = _text_of(message)
        calls = _tool_calls_of(message)
        yield chunk(i, {"role": "assistant", "content": "" if text is not None or not calls else None})
        reasoning = _reasoning_of(message)
        if reasoning:
            for piece in _split_text(reasoning):
                yield chunk(i, {"reasoning_content": piece})
        for piece in _split_text(text or ""):
            yield chunk(i, {"content": piece})
        for position, call in enumerate(calls):
            args = _arguments_text(call, ex.tool_arguments)
            head = {"index": position, "id": call.get("id"), "type": "function"}
            yield chunk(
                i, {"tool_calls": [{**head, "function": {"name": call.get("name"), "arguments": ""}}]}
            )
            for start in range(0, len(args), _ARGS_PER_CHUNK):
                piece = args[start : start + _ARGS_PER_CHUNK]
                yield chunk(i, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
        reason = _finish_reason(ex, i, message)
        if reason or message.get("finish_reason") != NO_FINISH_REASON:
            yield chunk(i, {}, _TO_OPENAI_FINISH.get(reason, reason) if reason else "stop")
        # else the answer was cut off (see cut_off): so is the stream served
    usage = _openai_usage(ex.usage)
    if include_usage and usage is not None and not cut_off(ex):
        final = chunk(0, {})
        final["choices"] = []
        final["usage"] = usage
        yield final


def openai_error_body(message: str, type_: str, code: str | None, **extra: Any) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param": null, "code", **extra}}``."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code, **extra}}


# ---------------------------------------------------------------------------------------------
# Anthropic Messages
# ---------------------------------------------------------------------------------------------


def _anthropic_usage(usage: RecordedUsage, *, output_tokens: int | None = None) -> dict[str, Any]:
    cache_read = usage.cache_read_input_tokens or 0
    cache_creation = usage.cache_creation_input_tokens or 0
    # gen_ai.usage.input_tokens includes cached tokens; Anthropic's input_tokens does not.
    uncached = max(0, (usage.input_tokens or 0) - cache_read - cache_creation)
    out: dict[str, Any] = {
        "input_tokens": uncached,
        "output_tokens": (usage.output_tokens or 0) if output_tokens is None else output_tokens,
    }
    if usage.cache_read_input_tokens is not None:
        out["cache_read_input_tokens"] = cache_read
    if usage.cache_creation_input_tokens is not None:
        out["cache_creation_input_tokens"] = cache_creation
    return out


def _anthropic_blocks(ex: RecordedExchange, message: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in _parts(message):
        kind = part.get("type")
        if kind == "reasoning":
            blocks.append({"type": "thinking", "thinking": str(part.get("content") or ""), "signature": ""})
        elif kind == "text":
            blocks.append({"type": "text", "text": str(part.get("content") or "")})
        elif kind == "tool_call":
            blocks.append(
                {
                    "type": "tool_use",
                    "id": part.get("id"),
                    "name": part.get("name"),
                    "input": _arguments_object(part),
                }
            )
        elif ex.api is ApiShape.ANTHROPIC_MESSAGES and kind in (
            "server_tool_call",
            "server_tool_call_response",
        ):
            block = _anthropic_server_block(part, str(kind))
            if block is not None:
                blocks.append(block)
    return blocks


def _anthropic_server_block(part: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """A ``server_tool_call`` / ``…_response`` part recorded from an Anthropic answer → the block it
    came from: ``server_tool_use`` / ``mcp_tool_use``, or ``{tool}_tool_result`` /
    ``mcp_tool_result`` (the inverse of the instrumentation's mapping)."""
    payload = part.get(kind)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("type"), str):
        return None
    tool_type = payload["type"]
    if kind == "server_tool_call":
        args = payload.get("arguments")
        block: dict[str, Any] = {"type": "server_tool_use", "id": part.get("id"), "name": part.get("name")}
        if tool_type == "mcp":
            block.update(type="mcp_tool_use", server_name=payload.get("server_name"))
        block["input"] = args if isinstance(args, Mapping) else {}
        return block
    rest = {k: v for k, v in payload.items() if k != "type"}
    return {"type": f"{tool_type}_tool_result", "tool_use_id": part.get("id"), **rest}


def _anthropic_stop_reason(ex: RecordedExchange) -> str | None:
    message = ex.output_messages[0] if ex.output_messages else {}
    reason = _finish_reason(ex, 0, message)
    return _TO_ANTHROPIC_STOP.get(reason, reason) if reason else None


def anthropic_message(ex: RecordedExchange) -> dict[str, Any]:
    """The Messages API ``message`` object for a recorded (successful) exchange (first choice)."""
    message = ex.output_messages[0] if ex.output_messages else {}
    return {
        "id": _response_id(ex, "msg_"),
        "type": "message",
        "role": "assistant",
        "model": ex.model,
        "content": _anthropic_blocks(ex, message),
        "stop_reason": _anthropic_stop_reason(ex),
        "stop_sequence": None,
        "usage": _anthropic_usage(ex.usage),
    }


def anthropic_stream_events(ex: RecordedExchange) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` pairs of the Messages streaming protocol: ``message_start``,
    per block ``content_block_start`` / ``…_delta`` (``text_delta``, ``thinking_delta``,
    ``input_json_delta``) / ``content_block_stop``, ``message_delta`` (stop reason, output
    tokens), ``message_stop``.

    An answer recorded :func:`cut_off` or failed by an error event in its stream
    (:attr:`RecordedError.in_stream`, whose ``error`` event the caller sends next) ends after
    its last block, without ``message_delta`` and ``message_stop``; the latter also without
    ``message_start`` when neither a response id nor any output was recorded (the error was the
    stream's first event)."""
    full = anthropic_message(ex)
    if ex.error is None or ex.response_id is not None or ex.output_messages:
        start = {
            **full,
            "content": [],
            "stop_reason": None,
            "usage": _anthropic_usage(ex.usage, output_tokens=1),
        }
        yield "message_start", {"type": "message_start", "message": start}
    message = ex.output_messages[0] if ex.output_messages else {}
    for index, block in enumerate(_anthropic_blocks(ex, message)):
        kind = block["type"]
        empty: dict[str, Any]
        deltas: list[dict[str, Any]]
        if kind == "text":
            empty = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _split_text(block["text"])]
        elif kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _split_text(block["thinking"])]
        elif kind.endswith("_tool_result"):  # a server tool's result comes whole
            empty, deltas = block, []
        else:
            empty = {**block, "input": {}}
            args = json.dumps(block["input"], ensure_ascii=False)
            deltas = [
                {"type": "input_json_delta", "partial_json": args[i : i + _ARGS_PER_CHUNK]}
                for i in range(0, len(args), _ARGS_PER_CHUNK)
            ]
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": empty}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    if cut_off(ex) or ex.error is not None:  # the stream broke off here when recorded
        return
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": full["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": ex.usage.output_tokens or 0},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def anthropic_error_body(message: str, type_: str, **extra: Any) -> dict[str, Any]:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message", **extra}}``."""
    return {"type": "error", "error": {"type": type_, "message": message, **extra}}


# ---------------------------------------------------------------------------------------------
# A recorded failure
# ---------------------------------------------------------------------------------------------


def recorded_error_body(ex: RecordedExchange) -> dict[str, Any]:
    """The error body to answer a recorded failure with (``ex.error`` must be set), also the data
    of the error event that ends a stream that failed :attr:`~RecordedError.in_stream`: the
    provider's body as recorded (``spanreel.response.error_body``, recorded with content capture
    for an HTTP error; an error event's data is not recorded), else one rebuilt in the API's shape
    from ``error.type`` and the span's status message.

    Rebuilt, OpenAI's ``error.type`` is the error's ``code`` when it had one, else its ``type``
    (see the instrumentation): a value ending in ``_error`` is taken as the ``type``, another as
    the ``code`` with the ``type`` OpenAI gives the status (``invalid_request_error`` /
    ``server_error``); ``param`` is ``null``. Anthropic's ``error.type`` is the error's ``type``."""
    err = ex.error
    assert err is not None
    if err.body is not None:
        return dict(err.body)
    how = "with an error event in its stream" if err.in_stream else f"with HTTP {err.status}"
    message = err.message or (
        f"the recorded call failed {how} ({err.type}); its error message was not recorded"
    )
    if ex.api is ApiShape.ANTHROPIC_MESSAGES:
        return anthropic_error_body(message, err.type)
    if err.type.endswith("_error"):
        return openai_error_body(message, err.type, None)
    return openai_error_body(
        message, "server_error" if err.status >= 500 else "invalid_request_error", err.type
    )
