"""OpenAI Responses API (``POST …/responses``) ↔ GenAI semantic conventions (pure functions).

Request: ``model``, ``input`` (a string or a list of items: messages, ``function_call``,
``function_call_output``, ``reasoning``, other tool items as in the response …) →
``gen_ai.input.messages``; ``instructions`` →
``gen_ai.system_instructions``; ``tools`` → ``gen_ai.tool.definitions``; ``temperature``,
``top_p``, ``max_output_tokens``, ``stream``, ``text.format`` → ``gen_ai.request.*`` /
``gen_ai.output.type``. Operation ``chat`` (as in the GenAI conventions for OpenAI).

Response (a ``response`` object, or the final ``response.completed`` / ``.incomplete`` /
``.failed`` event of a stream): id, model, usage (cached and reasoning tokens too), the output
items as one assistant message (reasoning, text, refusal and ``tool_call`` parts, in order) with a
finish reason. Tools the application runs (``function_call``, ``custom_tool_call``,
``computer_call``, ``local_shell_call``) are ``tool_call`` parts; tools OpenAI runs itself
(``web_search_call``, ``file_search_call``, ``code_interpreter_call``, ``image_generation_call``,
``mcp_call``) are ``server_tool_call`` parts, each followed by a ``server_tool_call_response``
when the item holds its result. Finish reasons: ``stop`` (completed), ``tool_calls`` (completed
with calls the application must run), the
incomplete reason (``max_output_tokens`` → ``length``), or ``error`` (failed). A stream that
ends early, or whose final event has no output (failed mid-answer), is assembled from
``response.output_item.*`` and the text / arguments / reasoning ``….delta`` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes import openai_attributes as oa

from spanreel._attributes import SPANREEL_USAGE_WEB_SEARCHES

from ._common import (
    Api,
    Attributes,
    Content,
    Parsed,
    RequestParts,
    event_object,
    integer,
    json_or_text,
    server_tool_call_part,
    server_tool_call_response_part,
    set_number,
    string,
    text_part,
)
from ._openai import content_parts, file_part, set_openai_request_attributes, set_openai_response_attributes

OPERATION_CHAT = ga.GenAiOperationNameValues.CHAT.value

_INPUT_PART_TYPES = {"input_text": "text", "output_text": "text"}


def _response_parts(content: Any) -> list[dict[str, Any]]:
    """Responses content parts (``input_text``, ``input_image``, ``input_file``, …) → semconv."""
    if isinstance(content, str):
        return [text_part(content)]
    if not isinstance(content, list):
        return []
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        ptype = part.get("type")
        if ptype in _INPUT_PART_TYPES:
            parts.append(text_part(str(part.get("text", ""))))
        elif ptype == "refusal":
            parts.append(text_part(str(part.get("refusal", ""))))
        elif ptype == "input_image":
            if isinstance(part.get("image_url"), str):
                parts.extend(content_parts([{"type": "image_url", "image_url": {"url": part["image_url"]}}]))
            else:
                parts.append({"type": "file", "modality": "image", "file_id": part.get("file_id")})
        elif ptype == "input_file":
            if part.get("file_url"):
                parts.append({"type": "uri", "modality": "document", "uri": part["file_url"]})
            else:  # inline file_data → a blob part, an uploaded file_id → a file part (as in chat)
                parts.append(file_part(part))
        elif ptype == "input_audio":
            parts.extend(content_parts([part]))
        else:
            parts.append({**part, "type": str(ptype)})
    return parts


def _item_message(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """One ``input`` item → a semconv input message."""
    itype = item.get("type")
    if itype in (None, "message") and "role" in item:
        return {"role": str(item.get("role") or "user"), "parts": _response_parts(item.get("content"))}
    if itype == "function_call":
        return {"role": "assistant", "parts": [_tool_call(item)]}
    if itype == "function_call_output" or itype in _CLIENT_TOOL_OUTPUTS:
        output = item.get("output")
        if isinstance(output, list):
            output = "".join(p.get("content", "") for p in _response_parts(output) if p["type"] == "text")
        return {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": item.get("call_id"), "response": output}],
        }
    if itype == "reasoning":
        return {"role": "assistant", "parts": [_reasoning_part(item)]}
    if isinstance(itype, str):
        return {"role": "assistant", "parts": _output_item_parts(item, itype) or [{**item, "type": itype}]}
    return None


def _tool_call(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "id": item.get("call_id") or item.get("id"),
        "name": item.get("name"),
        "arguments": json_or_text(item.get("arguments")),
    }


#: Output items of tools OpenAI runs itself → (semconv server tool type, the item's result fields).
_SERVER_TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "web_search_call": ("web_search", ()),
    "file_search_call": ("file_search", ("results",)),
    "code_interpreter_call": ("code_interpreter", ("outputs",)),
    "image_generation_call": ("image_generation", ("result",)),
    "mcp_call": ("mcp", ("output", "error")),
}
#: Output items of tools the application runs, other than ``function_call`` → (tool name when the
#: item has none, the item's field holding the call's input).
_CLIENT_TOOLS: dict[str, tuple[str, str]] = {
    "custom_tool_call": ("custom", "input"),
    "computer_call": ("computer", "action"),
    "local_shell_call": ("local_shell", "action"),
}
_CLIENT_TOOL_OUTPUTS = frozenset(f"{itype}_output" for itype in _CLIENT_TOOLS)


def _output_item_parts(item: Mapping[str, Any], itype: str) -> list[dict[str, Any]]:
    """A tool-call output item other than ``function_call`` → semconv parts (``[]`` for other
    items): a ``tool_call`` for a tool the application runs; a ``server_tool_call``, followed by a
    ``server_tool_call_response`` when the item holds the result, for a tool OpenAI runs."""
    client = _CLIENT_TOOLS.get(itype)
    if client is not None:
        name, field = client
        return [
            {
                "type": "tool_call",
                "id": item.get("call_id") or item.get("id"),
                "name": string(item.get("name")) or name,
                "arguments": json_or_text(item.get(field)),
            }
        ]
    server = _SERVER_TOOLS.get(itype)
    if server is None:
        return []
    tool_type, result_keys = server
    call = {k: v for k, v in item.items() if k not in ("type", "id", "name", *result_keys)}
    if "arguments" in call:
        call["arguments"] = json_or_text(call["arguments"])
    parts = [server_tool_call_part(item.get("id"), item.get("name"), tool_type, **call)]
    result = {k: item[k] for k in result_keys if item.get(k) is not None}
    if result:
        parts.append(server_tool_call_response_part(item.get("id"), tool_type, **result))
    return parts


def _reasoning_part(item: Mapping[str, Any]) -> dict[str, Any]:
    summary = item.get("summary")
    texts = (
        [str(s.get("text", "")) for s in summary if isinstance(s, Mapping)]
        if isinstance(summary, list)
        else []
    )
    return {"type": "reasoning", "content": "\n".join(texts)}


def input_messages(value: Any) -> list[dict[str, Any]]:
    """Responses ``input`` (a string or a list of items) → semconv input messages."""
    if isinstance(value, str):
        return [{"role": "user", "parts": [text_part(value)]}]
    out: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping):
            message = _item_message(item)
            if message is not None:
                out.append(message)
    return out


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Responses ``tools`` (flat ``{"type": "function", "name", "description", "parameters"}``
    or built-in tools such as ``{"type": "web_search"}``) → ``gen_ai.tool.definitions``."""
    defs: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        entry: dict[str, Any] = {"type": str(tool.get("type") or "function")}
        for key in ("name", "description", "parameters"):
            if key in tool:
                entry[key] = tool[key]
        defs.append(entry)
    return defs


def responses_request(body: Mapping[str, Any], path_model: str | None, capture_content: bool) -> RequestParts:
    """A Responses request body → :class:`RequestParts` (operation ``chat``)."""
    model = string(body.get("model")) or path_model
    attrs: Attributes = {}
    if model:
        attrs[ga.GEN_AI_REQUEST_MODEL] = model
    set_number(attrs, ga.GEN_AI_REQUEST_TEMPERATURE, body.get("temperature"))
    set_number(attrs, ga.GEN_AI_REQUEST_TOP_P, body.get("top_p"))
    max_tokens = integer(body.get("max_output_tokens"))
    if max_tokens is not None:
        attrs[ga.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    set_openai_request_attributes(attrs, body, oa.OpenaiApiTypeValues.RESPONSES.value)
    _set_conversation(attrs, body)
    stream = body.get("stream") is True
    attrs[ga.GEN_AI_REQUEST_STREAM] = stream
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(fmt, Mapping) and isinstance(fmt.get("type"), str):
        attrs[ga.GEN_AI_OUTPUT_TYPE] = "json" if fmt["type"].startswith("json") else fmt["type"]
    content: Content = {}
    if capture_content:
        content[ga.GEN_AI_INPUT_MESSAGES] = input_messages(body.get("input"))
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            content[ga.GEN_AI_SYSTEM_INSTRUCTIONS] = [text_part(instructions)]
        defs = tool_definitions(body.get("tools"))
        if defs:
            content[ga.GEN_AI_TOOL_DEFINITIONS] = defs
    return RequestParts(OPERATION_CHAT, model, stream, attrs, content)


def _set_conversation(attrs: Attributes, body: Mapping[str, Any]) -> None:
    """``gen_ai.conversation.id`` from a request's or response's ``conversation`` (an id, or an
    object with ``id``): the OpenAI conversation the call belongs to."""
    conversation = body.get("conversation")
    if isinstance(conversation, Mapping):
        conversation = conversation.get("id")
    if isinstance(conversation, str) and conversation:
        attrs[ga.GEN_AI_CONVERSATION_ID] = conversation


def _usage(usage: Any) -> Attributes:
    attrs: Attributes = {}
    if not isinstance(usage, Mapping):
        return attrs
    for key, attr in (
        ("input_tokens", ga.GEN_AI_USAGE_INPUT_TOKENS),
        ("output_tokens", ga.GEN_AI_USAGE_OUTPUT_TOKENS),
    ):
        value = integer(usage.get(key))
        if value is not None:
            attrs[attr] = value
    for details_key, key, attr in (
        ("input_tokens_details", "cached_tokens", ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        ("output_tokens_details", "reasoning_tokens", ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
    ):
        details = usage.get(details_key)
        value = integer(details.get(key)) if isinstance(details, Mapping) else None
        if value is not None:
            attrs[attr] = value
    return attrs


_INCOMPLETE = {"max_output_tokens": "length"}


def _finish_reason(response: Mapping[str, Any], has_tool_calls: bool) -> str | None:
    status = response.get("status")
    if status == "completed":
        return "tool_calls" if has_tool_calls else "stop"
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return _INCOMPLETE.get(str(reason), str(reason)) if reason else "length"
    if status in ("failed", "cancelled"):
        return "error" if status == "failed" else "cancelled"
    return None


def responses_response(body: Any, capture_content: bool) -> Parsed:
    """A ``response`` object → :class:`Parsed` (see the module docstring)."""
    if not isinstance(body, Mapping):
        return Parsed()
    attrs: Attributes = {}
    response_id = string(body.get("id"))
    if response_id:
        attrs[ga.GEN_AI_RESPONSE_ID] = response_id
    model = string(body.get("model"))
    if model:
        attrs[ga.GEN_AI_RESPONSE_MODEL] = model
    set_openai_response_attributes(attrs, body.get("service_tier"))
    _set_conversation(attrs, body)
    attrs.update(_usage(body.get("usage")))
    parts: list[dict[str, Any]] = []
    has_tool_calls = False
    web_searches = 0
    output = body.get("output")
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, Mapping):
            continue
        itype = item.get("type")
        web_searches += itype == "web_search_call"  # billed per call, beside the tokens
        if itype == "message":
            parts.extend(_response_parts(item.get("content")))
        elif itype == "function_call":
            has_tool_calls = True
            parts.append(_tool_call(item))
        elif itype == "reasoning":
            parts.append(_reasoning_part(item))
        elif isinstance(itype, str):
            tool_parts = _output_item_parts(item, itype)
            if itype in _CLIENT_TOOLS:
                has_tool_calls = True
            parts.extend(
                tool_parts
                or [{"type": itype, **{k: v for k, v in item.items() if k in ("id", "status", "name")}}]
            )
    if web_searches:
        attrs[SPANREEL_USAGE_WEB_SEARCHES] = web_searches
    reason = _finish_reason(body, has_tool_calls)
    if reason is not None:
        attrs[ga.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
    content: Content = {}
    if capture_content and (parts or reason is not None):
        message: dict[str, Any] = {"role": "assistant", "parts": parts}
        if reason is not None:
            message["finish_reason"] = reason
        content[ga.GEN_AI_OUTPUT_MESSAGES] = [message]
    return Parsed(attrs, content)


class ResponsesStreamAccumulator:
    """Assembles a streamed Responses API answer from its SSE events (see the module docstring).

    ``error`` and ``response.failed`` events set :attr:`error_type` / :attr:`error_message`.
    """

    __slots__ = (
        "_args",
        "_final",
        "_items",
        "_reasoning",
        "_response",
        "_texts",
        "error_event",
        "error_message",
        "error_type",
    )

    def __init__(self) -> None:
        self._response: dict[str, Any] = {}
        self._final: Mapping[str, Any] | None = None
        self._items: dict[int, dict[str, Any]] = {}
        self._texts: dict[int, list[str]] = {}
        self._args: dict[int, list[str]] = {}
        #: output index → summary (or reasoning content) part index → deltas
        self._reasoning: dict[int, dict[int, list[str]]] = {}
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.error_event: Any = None

    def add(self, data: str, event: str = "message") -> bool:
        """Add one SSE data payload; the event type is read from the payload's ``type``."""
        payload = event_object(data)
        if payload is None:
            return False
        etype = payload.get("type") or event
        response = payload.get("response")
        if isinstance(response, Mapping):
            if etype in ("response.completed", "response.incomplete", "response.failed"):
                self._final = response
                err = response.get("error")
                if isinstance(err, Mapping):
                    self.error_event = payload
                    self.error_type = string(err.get("code")) or "error"
                    self.error_message = string(err.get("message"))
            else:
                self._response.update(response)
            return True
        index = integer(payload.get("output_index"))
        if etype == "error":
            self.error_event = payload
            self.error_type = string(payload.get("code")) or "error"
            self.error_message = string(payload.get("message"))
            return True
        if index is None:
            return isinstance(etype, str) and etype.startswith("response.")
        delta = payload.get("delta")
        if etype in ("response.output_item.added", "response.output_item.done"):
            item = payload.get("item")
            if isinstance(item, Mapping):
                self._items[index] = dict(item)
                if etype.endswith(".done"):  # complete: the deltas are in it
                    self._texts.pop(index, None)
                    self._args.pop(index, None)
                    self._reasoning.pop(index, None)
        elif isinstance(delta, str):
            if etype in ("response.output_text.delta", "response.refusal.delta"):
                self._texts.setdefault(index, []).append(delta)
            elif etype in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
                self._args.setdefault(index, []).append(delta)
            elif etype.startswith("response.reasoning") and etype.endswith(".delta"):
                part = payload.get("summary_index", payload.get("content_index"))
                parts = self._reasoning.setdefault(index, {})
                parts.setdefault(part if isinstance(part, int) else 0, []).append(delta)
        return True

    def _assembled(self) -> dict[str, Any]:
        response = dict(self._response)  # status stays in_progress: no finish reason is invented
        output = []
        for index in sorted(set(self._items) | set(self._texts) | set(self._args) | set(self._reasoning)):
            item = dict(self._items.get(index) or {"type": "message"})
            if index in self._texts:
                item["content"] = [{"type": "output_text", "text": "".join(self._texts[index])}]
            if index in self._args:
                key = "input" if item.get("type") == "custom_tool_call" else "arguments"
                item[key] = "".join(self._args[index])
            if index in self._reasoning:
                parts = self._reasoning[index]
                item["summary"] = [{"text": "".join(parts[i])} for i in sorted(parts)]
            output.append(item)
        response["output"] = output
        return response

    def result(self, capture_content: bool) -> Parsed:
        """Span-end attributes: from the final response event, else assembled from the deltas.
        A final event without output (``response.failed`` mid-answer) gets the output assembled
        from the deltas, so the text the application received is kept."""
        final = self._final
        if final is None:
            return responses_response(self._assembled(), capture_content)
        if not final.get("output") and (self._items or self._texts or self._args or self._reasoning):
            final = {**final, "output": self._assembled()["output"]}
        return responses_response(final, capture_content)


RESPONSES = Api(
    name="openai.responses",
    accepts=lambda body: "input" in body or "model" in body,
    request=responses_request,
    response=responses_response,
    stream=ResponsesStreamAccumulator,
)
"""OpenAI Responses API (``POST …/responses``)."""
