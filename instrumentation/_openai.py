"""OpenAI Chat Completions ↔ GenAI semantic conventions (pure functions, no I/O, no OTel SDK).

Request body → span-start attributes, response body (JSON or SSE chunks) → end attributes,
following the OpenTelemetry GenAI semantic conventions (v1.41: inference spans, message/parts
schema for ``gen_ai.input.messages`` / ``gen_ai.output.messages``) and docs/internals.md §1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes import openai_attributes as oa
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from spanreel._attributes import (
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_METHOD,
    SPANREEL_REQUEST_URL,
    SPANREEL_USAGE_INPUT_AUDIO_TOKENS,
    SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS,
)

from ._common import (
    Api,
    Attributes,
    Content,
    Parsed,
    RequestParts,
    error_type_from_body,
    loads,
    set_stop_sequences,
)
from ._common import dumps as _json
from ._common import integer as _integer
from ._common import json_or_text as _tool_arguments
from ._common import number as _number

__all__ = [
    "CHAT",
    "ChatStreamAccumulator",
    "error_type_from_body",
    "extract_output_text",
    "input_messages",
    "request_attributes",
    "response_attributes",
    "tool_definitions",
]

CHAT_PATH_SUFFIX = "/chat/completions"
OPERATION_CHAT = ga.GenAiOperationNameValues.CHAT.value


# ---------------------------------------------------------------------------------------------
# Messages → semconv parts
# ---------------------------------------------------------------------------------------------


def _data_url(url: str) -> tuple[str, str] | None:
    """``(mime type, base64 data)`` of a ``data:…;base64,…`` URL, else ``None``."""
    if url.startswith("data:") and ";base64," in url:
        mime, _, data = url[5:].partition(";base64,")
        return mime, data
    return None


def file_part(file: Any) -> dict[str, Any]:
    """A ``file`` content part: inline ``file_data`` (a ``data:`` URL) → a ``blob`` part, an
    uploaded ``file_id`` → a ``file`` part (semconv requires ``file_id`` there)."""
    entry: dict[str, Any] = {"modality": "document"}
    if not isinstance(file, Mapping):
        return {"type": "file", **entry}
    data = file.get("file_data")
    if isinstance(data, str) and data:
        inline = _data_url(data)
        entry.update(type="blob", content=data if inline is None else inline[1])
        if inline is not None and inline[0]:
            entry["mime_type"] = inline[0]
    else:
        entry.update(type="file", file_id=file.get("file_id"))
    if file.get("filename"):
        entry["filename"] = file["filename"]
    return entry


def content_parts(content: Any) -> list[dict[str, Any]]:
    """OpenAI message ``content`` (a string or a list of typed parts) → semconv parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list):
        return [{"type": "text", "content": _json(content)}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "content": part})
            continue
        if not isinstance(part, Mapping):
            continue
        ptype = part.get("type")
        if ptype == "text":
            parts.append({"type": "text", "content": part.get("text", "")})
        elif ptype == "refusal":
            parts.append({"type": "text", "content": part.get("refusal", "")})
        elif ptype == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            inline = _data_url(url) if isinstance(url, str) else None
            if inline is not None:
                parts.append(
                    {"type": "blob", "modality": "image", "mime_type": inline[0], "content": inline[1]}
                )
            else:
                parts.append({"type": "uri", "modality": "image", "uri": url})
        elif ptype == "input_audio":
            audio = part.get("input_audio")
            if isinstance(audio, Mapping):
                fmt = audio.get("format")
                parts.append(
                    {
                        "type": "blob",
                        "modality": "audio",
                        "mime_type": f"audio/{fmt}" if fmt else None,
                        "content": audio.get("data"),
                    }
                )
        elif ptype == "file":
            parts.append(file_part(part.get("file")))
        else:
            generic = {k: v for k, v in part.items()}
            generic["type"] = str(ptype)
            parts.append(generic)
    return parts


def _tool_call_parts(tool_calls: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if not isinstance(tool_calls, list):
        return parts
    for call in tool_calls:
        if not isinstance(call, Mapping):
            continue
        fn = call.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": fn.get("name"),
                "arguments": _tool_arguments(fn.get("arguments")),
            }
        )
    return parts


def input_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI ``messages`` → semconv input messages ``[{"role", "parts": [...]}, …]``.

    Text → ``text`` parts; assistant ``tool_calls`` → ``tool_call`` parts (``id``, ``name``,
    ``arguments`` parsed from JSON when valid); ``tool`` (and legacy ``function``) messages →
    ``tool_call_response`` parts; images/audio/files → ``uri``/``blob``/``file`` parts. System and
    developer messages stay in place (order matters for replay).
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        # Parsed JSON objects are dicts: checked as such first (cheaper than the Mapping ABC).
        if type(message) is not dict and not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        entry: dict[str, Any] = {"role": role}
        if isinstance(message.get("name"), str):
            entry["name"] = message["name"]
        if role in ("tool", "function"):
            content = message.get("content")
            response: Any = content
            if isinstance(content, list):
                response = "".join(
                    p.get("content", "") for p in content_parts(content) if p["type"] == "text"
                )
            call_id = message.get("tool_call_id") if role == "tool" else message.get("name")
            entry["parts"] = [{"type": "tool_call_response", "id": call_id, "response": response}]
        else:
            parts = content_parts(message.get("content"))
            if isinstance(message.get("refusal"), str):
                parts.append({"type": "text", "content": message["refusal"]})
            tool_calls = message.get("tool_calls")
            if tool_calls is not None:
                parts.extend(_tool_call_parts(tool_calls))
            fc = message.get("function_call")
            if fc is not None and isinstance(fc, Mapping):
                parts.extend(_tool_call_parts([{"id": None, "function": fc}]))
            entry["parts"] = parts
        out.append(entry)
    return out


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """OpenAI ``tools`` → semconv ``gen_ai.tool.definitions`` entries (``type``, ``name``,
    ``description``, ``parameters``)."""
    defs: list[dict[str, Any]] = []
    if not isinstance(tools, list):
        return defs
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        fn = tool.get("function")
        if isinstance(fn, Mapping):
            entry = {"type": str(tool.get("type") or "function"), "name": fn.get("name")}
            for key in ("description", "parameters"):
                if key in fn:
                    entry[key] = fn[key]
            defs.append(entry)
        else:
            defs.append(dict(tool))
    return defs


# ---------------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------------


def is_chat_completions(method: str, path: str) -> bool:
    """Cheap pre-check (before reading the body): ``POST …/chat/completions``."""
    return method == "POST" and path.rstrip("/").endswith(CHAT_PATH_SUFFIX)


def parse_chat_body(content: bytes) -> dict[str, Any] | None:
    """The request body as a dict when it is a Chat Completions request (a JSON object with a
    ``messages`` list), else ``None``."""
    if not content or content[:1] not in (b"{", b" ", b"\n", b"\r", b"\t"):
        return None
    try:
        body = loads(content)
    except ValueError:
        return None
    if isinstance(body, dict) and _accepts(body):
        return body
    return None


def _accepts(body: Mapping[str, Any]) -> bool:
    return isinstance(body.get("messages"), list)


#: OpenAI request parameter → ``gen_ai.request.*`` attribute (JSON numbers, recorded as floats).
_NUMBER_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("temperature", ga.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", ga.GEN_AI_REQUEST_TOP_P),
    ("frequency_penalty", ga.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", ga.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("top_k", ga.GEN_AI_REQUEST_TOP_K),
)


def set_sampling_attributes(attrs: Attributes, body: Mapping[str, Any]) -> None:
    """The OpenAI sampling parameters shared by chat and legacy completions → ``gen_ai.request.*``."""
    for key, attr in _NUMBER_PARAMETERS:
        if key in body:
            value = _number(body[key])
            if value is not None:
                attrs[attr] = value
    max_tokens = _integer(body.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = _integer(body.get("max_tokens"))
    if max_tokens is not None:
        attrs[ga.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    seed = _integer(body.get("seed"))
    if seed is not None:
        attrs[ga.GEN_AI_REQUEST_SEED] = seed
    choices = _integer(body.get("n"))
    if choices is not None and choices != 1:
        attrs[ga.GEN_AI_REQUEST_CHOICE_COUNT] = choices
    set_stop_sequences(attrs, body.get("stop"))


def set_openai_request_attributes(attrs: Attributes, body: Mapping[str, Any], api_type: str) -> None:
    """``openai.api.type`` (``chat_completions`` / ``responses``) and ``openai.request.service_tier``
    (when the request names a tier other than ``auto``: semconv's OpenAI page, v1.41)."""
    attrs[oa.OPENAI_API_TYPE] = api_type
    tier = body.get("service_tier")
    if isinstance(tier, str) and tier and tier != "auto":
        attrs[oa.OPENAI_REQUEST_SERVICE_TIER] = tier


def set_openai_response_attributes(
    attrs: Attributes, service_tier: Any, system_fingerprint: Any = None
) -> None:
    """``openai.response.service_tier`` and ``openai.response.system_fingerprint`` when the
    response carries them (strings)."""
    if isinstance(service_tier, str) and service_tier:
        attrs[oa.OPENAI_RESPONSE_SERVICE_TIER] = service_tier
    if isinstance(system_fingerprint, str) and system_fingerprint:
        attrs[oa.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = system_fingerprint


def chat_request(body: Mapping[str, Any], path_model: str | None, capture_content: bool) -> RequestParts:
    """A Chat Completions request body → :class:`RequestParts` (operation ``chat``).

    ``path_model`` (an Azure deployment name) stands in for a missing ``model``. With content
    capture on, ``gen_ai.input.messages`` (system/developer messages stay in place: they are
    part of the chat history) and ``gen_ai.tool.definitions``. Parameters that are absent or of
    the wrong JSON type are left out.
    """
    model = body.get("model")
    model_name = model if isinstance(model, str) and model else path_model
    attrs: Attributes = {}
    if model_name:
        attrs[ga.GEN_AI_REQUEST_MODEL] = model_name
    set_sampling_attributes(attrs, body)
    set_openai_request_attributes(attrs, body, oa.OpenaiApiTypeValues.CHAT_COMPLETIONS.value)
    stream = body.get("stream") is True
    attrs[ga.GEN_AI_REQUEST_STREAM] = stream
    response_format = body.get("response_format")
    if (
        response_format is not None
        and isinstance(response_format, Mapping)
        and isinstance(response_format.get("type"), str)
    ):
        fmt = response_format["type"]
        attrs[ga.GEN_AI_OUTPUT_TYPE] = "json" if fmt.startswith("json") else fmt
    content: Content = {}
    if capture_content:
        content[ga.GEN_AI_INPUT_MESSAGES] = input_messages(body.get("messages") or [])
        defs = tool_definitions(body.get("tools"))
        if defs:
            content[ga.GEN_AI_TOOL_DEFINITIONS] = defs
    return RequestParts(OPERATION_CHAT, model_name, stream, attrs, content)


@dataclass(frozen=True)
class ChatRequest:
    """What the span needs from one request: name, start attributes, and whether it streams."""

    span_name: str
    attributes: Attributes
    stream: bool


def request_attributes(
    body: Mapping[str, Any],
    *,
    method: str,
    url: str,
    host: str,
    port: int | None,
    provider: str,
    raw_body: str | None,
    capture_content: bool,
) -> ChatRequest:
    """Span name and all span-start attributes for a Chat Completions request, content
    serialised as is (no content policy): :func:`chat_request` plus operation, provider,
    ``server.*`` and the ``spanreel.request.*`` attributes.

    ``url`` must already be sanitised (no credentials). ``raw_body`` is the exact request body
    text, recorded as ``spanreel.request.body`` only when ``capture_content`` is true.
    """
    parts = chat_request(body, None, capture_content)
    attrs: Attributes = {
        ga.GEN_AI_OPERATION_NAME: OPERATION_CHAT,
        ga.GEN_AI_PROVIDER_NAME: provider,
        SERVER_ADDRESS: host,
        SPANREEL_REQUEST_METHOD: method,
        SPANREEL_REQUEST_URL: url,
    }
    if port is not None:
        attrs[SERVER_PORT] = port
    attrs.update(parts.attributes)
    for key, value in parts.content.items():
        attrs[key] = _json(value)
    if capture_content and raw_body is not None:
        attrs[SPANREEL_REQUEST_BODY] = raw_body
    name = f"{OPERATION_CHAT} {parts.model}" if parts.model else OPERATION_CHAT
    return ChatRequest(name, attrs, parts.stream)


# ---------------------------------------------------------------------------------------------
# Response
# ---------------------------------------------------------------------------------------------


@dataclass
class _ToolCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Choice:
    """One choice, normalised from a JSON ``message`` or assembled from stream ``delta``s."""

    index: int
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    has_content: bool = False
    audio: list[str] | None = None
    transcript: list[str] = field(default_factory=list)

    def output_message(self) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if self.reasoning:
            parts.append({"type": "reasoning", "content": "".join(self.reasoning)})
        if self.has_content:
            parts.append({"type": "text", "content": "".join(self.content)})
        if self.refusal:
            parts.append({"type": "text", "content": "".join(self.refusal)})
        if self.audio is not None:  # spoken output: semconv BlobPart with its transcript
            audio, transcript = "".join(self.audio), "".join(self.transcript)
            parts.append({"type": "blob", "modality": "audio", "content": audio, "transcript": transcript})
        for _, call in sorted(self.tool_calls.items()):
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.id,
                    "name": call.name,
                    "arguments": _tool_arguments("".join(call.arguments)),
                }
            )
        message: dict[str, Any] = {"role": self.role, "parts": parts}
        if self.finish_reason is not None:
            message["finish_reason"] = self.finish_reason
        return message


def usage_attributes(usage: Any) -> Attributes:
    """OpenAI ``usage`` → ``gen_ai.usage.*`` (input/output tokens, cached input tokens — else
    DeepSeek's ``prompt_cache_hit_tokens`` —, reasoning output tokens) and spanreel's audio
    input/output token counts (when above zero)."""
    attrs: Attributes = {}
    if type(usage) is not dict and not isinstance(usage, Mapping):
        return attrs
    prompt = _integer(usage.get("prompt_tokens"))
    completion = _integer(usage.get("completion_tokens"))
    if prompt is not None:
        attrs[ga.GEN_AI_USAGE_INPUT_TOKENS] = prompt
    if completion is not None:
        attrs[ga.GEN_AI_USAGE_OUTPUT_TOKENS] = completion
    details = usage.get("prompt_tokens_details")
    if details is not None and isinstance(details, Mapping):
        cached = _integer(details.get("cached_tokens"))
        if cached is not None:
            attrs[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
        audio = _integer(details.get("audio_tokens"))
        if audio:  # gpt-audio, gpt-4o-audio-preview: billed at the audio rate
            attrs[SPANREEL_USAGE_INPUT_AUDIO_TOKENS] = audio
    if ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS not in attrs:
        hit = _integer(usage.get("prompt_cache_hit_tokens"))  # DeepSeek's own name for them
        if hit is not None:
            attrs[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = hit
    details = usage.get("completion_tokens_details")
    if details is not None and isinstance(details, Mapping):
        reasoning = _integer(details.get("reasoning_tokens"))
        if reasoning is not None:
            attrs[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
        audio = _integer(details.get("audio_tokens"))
        if audio:
            attrs[SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS] = audio
    return attrs


def result_parts(
    response_id: Any,
    model: Any,
    choices: list[_Choice],
    usage: Any,
    capture_content: bool,
    *,
    service_tier: Any = None,
    system_fingerprint: Any = None,
) -> Parsed:
    """Span-end attributes from assembled choices (shared by chat and legacy completions)."""
    attrs: Attributes = {}
    if isinstance(response_id, str) and response_id:
        attrs[ga.GEN_AI_RESPONSE_ID] = response_id
    if isinstance(model, str) and model:
        attrs[ga.GEN_AI_RESPONSE_MODEL] = model
    if service_tier is not None or system_fingerprint is not None:
        set_openai_response_attributes(attrs, service_tier, system_fingerprint)
    ordered = sorted(choices, key=lambda c: c.index) if len(choices) > 1 else choices
    reasons = [c.finish_reason for c in ordered if c.finish_reason is not None]
    if reasons:
        attrs[ga.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    attrs.update(usage_attributes(usage))
    content: Content = {}
    if capture_content and ordered:
        content[ga.GEN_AI_OUTPUT_MESSAGES] = [c.output_message() for c in ordered]
    return Parsed(attrs, content)


def choices_response(body: Any, capture_content: bool) -> Parsed:
    """A non-streamed ``chat.completion`` (or legacy ``text_completion``) JSON object →
    :class:`Parsed`: response id and model, finish reasons (one per choice, in choice order),
    usage, and (with content capture) ``gen_ai.output.messages`` with ``finish_reason``.
    Anything unrecognised gives an empty result."""
    if type(body) is not dict and not isinstance(body, Mapping):
        return Parsed()
    choices: list[_Choice] = []
    raw_choices = body.get("choices")
    for i, raw in enumerate(raw_choices if isinstance(raw_choices, list) else []):
        if type(raw) is not dict and not isinstance(raw, Mapping):
            continue
        index = _integer(raw.get("index"))
        choice = _Choice(index=i if index is None else index)
        reason = raw.get("finish_reason")
        choice.finish_reason = reason if isinstance(reason, str) else None
        message = raw.get("message")
        if type(message) is dict or (message is not None and isinstance(message, Mapping)):
            _apply_delta(choice, message)
        elif isinstance(raw.get("text"), str):
            _apply_delta(choice, raw)
        choices.append(choice)
    return result_parts(
        body.get("id"),
        body.get("model"),
        choices,
        body.get("usage"),
        capture_content,
        service_tier=body.get("service_tier"),
        system_fingerprint=body.get("system_fingerprint"),
    )


def response_attributes(body: Any, *, capture_content: bool) -> Attributes:
    """:func:`choices_response` with the content serialised as is (no content policy)."""
    return choices_response(body, capture_content).flat()


def _call_key(calls: dict[int, _ToolCall], call_id: Any, position: int) -> int:
    """The key of a tool call sent without ``index`` (Gemini's OpenAI-compatible endpoint streams
    them so): the call with the same ``id``, else a new call when it has an id, else (a further
    piece of arguments) the latest call; ``position`` in the list when there is none yet."""
    if not calls:
        return position
    if isinstance(call_id, str) and call_id:
        for key, call in calls.items():
            if call.id == call_id:
                return key
        return max(calls) + 1
    return next(reversed(calls))


def _apply_delta(choice: _Choice, delta: Mapping[str, Any]) -> None:
    """Merge a stream ``delta`` (or a whole ``message``) into ``choice``."""
    role = delta.get("role")
    if isinstance(role, str) and role:
        choice.role = role
    content = delta.get("content")
    if not isinstance(content, str | list):
        content = delta.get("text")  # legacy completions
    if isinstance(content, str):
        choice.content.append(content)
        choice.has_content = True
    elif isinstance(content, list):  # some compatible servers return content parts
        for part in content_parts(content):
            if part.get("type") == "text":
                choice.content.append(str(part.get("content", "")))
                choice.has_content = True
    for reasoning_key in ("reasoning_content", "reasoning"):
        reasoning = delta.get(reasoning_key)
        if isinstance(reasoning, str) and reasoning:
            choice.reasoning.append(reasoning)
            break
    refusal = delta.get("refusal")
    if isinstance(refusal, str) and refusal:
        choice.refusal.append(refusal)
    audio = delta.get("audio")
    # ``modalities: ["text", "audio"]``: base64 data and transcript
    if audio is not None and isinstance(audio, Mapping):
        if choice.audio is None:
            choice.audio = []
        for audio_key, pieces in (("data", choice.audio), ("transcript", choice.transcript)):
            piece = audio.get(audio_key)
            if isinstance(piece, str):
                pieces.append(piece)
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for position, raw in enumerate(calls):
            if not isinstance(raw, Mapping):
                continue
            index = _integer(raw.get("index"))
            key = _call_key(choice.tool_calls, raw.get("id"), position) if index is None else index
            call = choice.tool_calls.setdefault(key, _ToolCall())
            if isinstance(raw.get("id"), str):
                call.id = raw["id"]
            fn = raw.get("function")
            if isinstance(fn, Mapping):
                if isinstance(fn.get("name"), str) and fn["name"]:
                    call.name = fn["name"]
                if isinstance(fn.get("arguments"), str):
                    call.arguments.append(fn["arguments"])
    fc = delta.get("function_call")
    if fc is not None and isinstance(fc, Mapping):
        call = choice.tool_calls.setdefault(0, _ToolCall())
        if isinstance(fc.get("name"), str):
            call.name = fc["name"]
        if isinstance(fc.get("arguments"), str):
            call.arguments.append(fc["arguments"])


class ChatStreamAccumulator:
    """Assembles a streamed Chat Completions response from its SSE ``data`` payloads.

    :meth:`add` takes one event's data (a ``chat.completion.chunk`` JSON text, or ``[DONE]``)
    and returns ``True`` when it was a chunk. :meth:`attributes` gives the span-end attributes:
    response id/model, finish reasons, usage (from the final chunk sent with
    ``stream_options.include_usage``, or Groq's ``x_groq.usage`` in its last chunk), and
    ``gen_ai.output.messages`` with the assembled text and tool calls. An ``{"error": …}`` event
    is kept as :attr:`error_type` / :attr:`error_message`.
    """

    __slots__ = (
        "_choices",
        "_fingerprint",
        "_id",
        "_model",
        "_tier",
        "_usage",
        "done",
        "error_event",
        "error_message",
        "error_type",
    )

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._tier: Any = None
        self._fingerprint: Any = None
        self._id: Any = None
        self._model: Any = None
        self._usage: Any = None
        self.done = False
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.error_event: Any = None

    def add(self, data: str, event: str = "message") -> bool:
        """Add one SSE data payload (the event name is not used). Invalid JSON is ignored
        (returns ``False``)."""
        if data.strip() == "[DONE]":
            self.done = True
            return False
        try:
            chunk = loads(data)
        except ValueError:
            return False
        # Parsed JSON: objects are dicts (checked as such: cheaper than the Mapping ABC, per event).
        if not isinstance(chunk, dict):
            return False
        if chunk.get("error"):
            self.error_event = chunk
            self.error_type, self.error_message = error_type_from_body(chunk)
            if self.error_type is None:
                self.error_type = "error"
            return True
        if self._id is None:  # the first chunk (Azure's first may be a content-filter chunk)
            self._id = chunk.get("id") or None
            self._tier = chunk.get("service_tier") or self._tier
            self._fingerprint = chunk.get("system_fingerprint") or self._fingerprint
        model = chunk.get("model")
        if model:
            self._model = model
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        elif "x_groq" in chunk:  # Groq streams the usage in the last chunk's x_groq
            extra = chunk["x_groq"]
            if isinstance(extra, dict) and extra.get("usage"):
                self._usage = extra["usage"]
        raw_choices = chunk.get("choices")
        if not isinstance(raw_choices, list):
            return True
        for position, raw in enumerate(raw_choices):
            if not isinstance(raw, dict):
                continue
            index = raw.get("index")
            key = index if type(index) is int else position
            choice = self._choices.get(key)
            if choice is None:
                choice = self._choices[key] = _Choice(index=key)
            delta = raw.get("delta")
            if type(delta) is dict:
                text = delta.get("content")
                if type(text) is str and len(delta) == 1:  # most chunks: just some text
                    choice.content.append(text)
                    choice.has_content = True
                else:
                    _apply_delta(choice, delta)
            elif isinstance(raw.get("text"), str):  # a legacy completions chunk
                _apply_delta(choice, raw)
            reason = raw.get("finish_reason")
            if reason and isinstance(reason, str):
                choice.finish_reason = reason
        return True

    def result(self, capture_content: bool) -> Parsed:
        """Span-end attributes for what has been received so far."""
        return result_parts(
            self._id,
            self._model,
            list(self._choices.values()),
            self._usage,
            capture_content,
            service_tier=self._tier,
            system_fingerprint=self._fingerprint,
        )

    def attributes(self, *, capture_content: bool) -> Attributes:
        """:meth:`result` with the content serialised as is (no content policy)."""
        return self.result(capture_content).flat()


def extract_output_text(output_messages_json: str | None) -> str:
    """The assistant's text from a ``gen_ai.output.messages`` JSON string.

    Concatenates the ``text`` parts of each output message; several messages (choices) are
    joined with a blank line. Returns ``""`` for ``None``, invalid JSON or no text parts.
    """
    if not output_messages_json:
        return ""
    try:
        messages = json.loads(output_messages_json)
    except ValueError:
        return ""
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        parts = message.get("parts")
        text = "".join(
            str(p.get("content", ""))
            for p in (parts if isinstance(parts, list) else [])
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
        if text:
            texts.append(text)
    return "\n\n".join(texts)


def _reasoning_beside_completion(attrs: Attributes) -> None:
    """xAI's chat usage: ``completion_tokens`` leaves out the reasoning tokens (``total_tokens`` =
    prompt + completion + reasoning), which are billed as output: the output is both, as
    genai-prices' x-ai ``chat`` usage extractor has it."""
    output = attrs.get(ga.GEN_AI_USAGE_OUTPUT_TOKENS)
    reasoning = attrs.get(ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
    if type(output) is int and type(reasoning) is int:
        attrs[ga.GEN_AI_USAGE_OUTPUT_TOKENS] = output + reasoning


CHAT = Api(
    name="openai.chat_completions",
    accepts=_accepts,
    request=chat_request,
    response=choices_response,
    stream=ChatStreamAccumulator,
    provider_usage={ga.GenAiProviderNameValues.X_AI.value: _reasoning_beside_completion},
)
"""OpenAI Chat Completions (``POST …/chat/completions``), also any OpenAI-compatible server."""
