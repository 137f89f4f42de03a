"""Anthropic Messages API (``POST …/v1/messages``) ↔ GenAI semantic conventions (pure functions).

Request: ``model``, ``messages`` (content blocks ``text``, ``image``/``document`` with a base64,
URL or file source, ``tool_use``, ``tool_result``, ``thinking``; server tools Anthropic runs itself,
``server_tool_use`` / ``mcp_tool_use`` and their ``…_tool_result`` blocks, as ``server_tool_call``
/ ``server_tool_call_response`` parts) → ``gen_ai.input.messages``;
``system`` → ``gen_ai.system_instructions``; ``tools`` (``name``, ``description``,
``input_schema``) → ``gen_ai.tool.definitions``; ``max_tokens``, ``temperature``, ``top_p``,
``top_k``, ``stop_sequences``, ``stream`` → ``gen_ai.request.*``.

Response: a ``message`` object, or the stream ``message_start`` (id, model, input usage) →
``content_block_start`` / ``content_block_delta`` (``text_delta``, ``input_json_delta``,
``thinking_delta``) → ``message_delta`` (``stop_reason``, output usage) → ``message_stop``.
``gen_ai.usage.input_tokens`` is the sum of ``input_tokens``, ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` (the conventions count cached input as input); the cache parts
are also given separately. Finish reasons are Anthropic's ``stop_reason`` values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from spanreel._attributes import SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS, SPANREEL_USAGE_WEB_SEARCHES

from ._common import (
    Api,
    Attributes,
    Content,
    Parsed,
    RequestParts,
    error_type_from_body,
    event_object,
    integer,
    json_or_text,
    server_tool_call_part,
    server_tool_call_response_part,
    set_integer,
    set_number,
    set_stop_sequences,
    string,
    text_part,
)

OPERATION_CHAT = ga.GenAiOperationNameValues.CHAT.value
PROVIDER = ga.GenAiProviderNameValues.ANTHROPIC.value


def _source_part(block: Mapping[str, Any], modality: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return {"type": "blob", "modality": modality}
    kind = source.get("type")
    if kind == "base64":
        return {
            "type": "blob",
            "modality": modality,
            "mime_type": source.get("media_type"),
            "content": source.get("data"),
        }
    if kind == "url":
        return {"type": "uri", "modality": modality, "uri": source.get("url")}
    if kind == "file":
        return {"type": "file", "modality": modality, "file_id": source.get("file_id")}
    if kind == "text":
        return text_part(str(source.get("data", "")))
    return {"type": "blob", "modality": modality, **{k: v for k, v in source.items() if k != "type"}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Anthropic content (a string or a list of blocks) → semconv parts."""
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, Mapping):
            continue
        btype = block.get("type")
        if btype == "text":
            parts.append(text_part(str(block.get("text", ""))))
        elif btype == "image":
            parts.append(_source_part(block, "image"))
        elif btype == "document":
            source = block.get("source")
            if isinstance(source, Mapping) and source.get("type") == "content":  # its own blocks
                parts.extend(_blocks(source.get("content")))
            else:
                parts.append(_source_part(block, "document"))
        elif btype == "server_tool_use":  # web_search, web_fetch, code_execution…: Anthropic runs it
            name = string(block.get("name")) or "server_tool"
            parts.append(server_tool_call_part(block.get("id"), name, name, arguments=block.get("input")))
        elif btype == "mcp_tool_use":  # MCP connector: Anthropic calls the remote MCP server
            parts.append(
                server_tool_call_part(
                    block.get("id"),
                    block.get("name"),
                    "mcp",
                    server_name=block.get("server_name"),
                    arguments=block.get("input"),
                )
            )
        elif isinstance(btype, str) and btype.endswith("_tool_result") and btype != "tool_result":
            # web_search_tool_result, code_execution_tool_result, mcp_tool_result…
            response = {k: v for k, v in block.items() if k not in ("type", "tool_use_id")}
            tool_type = "mcp" if btype == "mcp_tool_result" else btype.removesuffix("_tool_result")
            parts.append(server_tool_call_response_part(block.get("tool_use_id"), tool_type, **response))
        elif btype == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "arguments": block.get("input"),
                }
            )
        elif btype == "tool_result":
            result = block.get("content")
            if isinstance(result, list):
                result = "".join(p.get("content", "") for p in _blocks(result) if p["type"] == "text")
            parts.append({"type": "tool_call_response", "id": block.get("tool_use_id"), "response": result})
        elif btype == "thinking":
            parts.append({"type": "reasoning", "content": str(block.get("thinking", ""))})
        elif btype == "redacted_thinking":
            parts.append({"type": "reasoning", "content": ""})
        else:
            parts.append({**block, "type": str(btype)})
    return parts


def input_messages(messages: Any) -> list[dict[str, Any]]:
    """Anthropic ``messages`` → semconv input messages. A user message made only of
    ``tool_result`` blocks gets the role ``tool``."""
    out: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        parts = _blocks(message.get("content"))
        role = str(message.get("role") or "user")
        if role == "user" and parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"
        out.append({"role": role, "parts": parts})
    return out


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Anthropic ``tools`` → ``gen_ai.tool.definitions`` (``input_schema`` as ``parameters``;
    server tools such as ``web_search_20250305`` keep their type)."""
    defs: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        entry: dict[str, Any] = {"type": str(tool.get("type") or "function"), "name": tool.get("name")}
        if tool.get("type") in (None, "custom"):
            entry["type"] = "function"
        if "description" in tool:
            entry["description"] = tool["description"]
        if "input_schema" in tool:
            entry["parameters"] = tool["input_schema"]
        defs.append(entry)
    return defs


def messages_request(body: Mapping[str, Any], path_model: str | None, capture_content: bool) -> RequestParts:
    """A Messages request body → :class:`RequestParts` (operation ``chat``)."""
    model = string(body.get("model")) or path_model
    attrs: Attributes = {}
    if model:
        attrs[ga.GEN_AI_REQUEST_MODEL] = model
    set_integer(attrs, ga.GEN_AI_REQUEST_MAX_TOKENS, body.get("max_tokens"))
    set_number(attrs, ga.GEN_AI_REQUEST_TEMPERATURE, body.get("temperature"))
    set_number(attrs, ga.GEN_AI_REQUEST_TOP_P, body.get("top_p"))
    set_number(attrs, ga.GEN_AI_REQUEST_TOP_K, body.get("top_k"))
    set_stop_sequences(attrs, body.get("stop_sequences"))
    stream = body.get("stream") is True
    attrs[ga.GEN_AI_REQUEST_STREAM] = stream
    content: Content = {}
    if capture_content:
        content[ga.GEN_AI_INPUT_MESSAGES] = input_messages(body.get("messages"))
        system = body.get("system")
        if system:
            content[ga.GEN_AI_SYSTEM_INSTRUCTIONS] = _blocks(system)
        defs = tool_definitions(body.get("tools"))
        if defs:
            content[ga.GEN_AI_TOOL_DEFINITIONS] = defs
    return RequestParts(OPERATION_CHAT, model, stream, attrs, content)


def usage_attributes(usage: Any) -> Attributes:
    """Anthropic ``usage`` → ``gen_ai.usage.*`` (input includes the cache read and write parts;
    ``output_tokens_details.thinking_tokens`` → ``gen_ai.usage.reasoning.output_tokens``;
    ``cache_creation.ephemeral_1h_input_tokens`` → ``spanreel.usage.cache_creation_1h_tokens``;
    ``server_tool_use.web_search_requests`` → ``spanreel.usage.web_searches``)."""
    attrs: Attributes = {}
    if not isinstance(usage, Mapping):
        return attrs
    base = integer(usage.get("input_tokens"))
    read = integer(usage.get("cache_read_input_tokens"))
    write = integer(usage.get("cache_creation_input_tokens"))
    if base is not None:
        attrs[ga.GEN_AI_USAGE_INPUT_TOKENS] = base + (read or 0) + (write or 0)
    if read is not None:
        attrs[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = read
    if write is not None:
        attrs[ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = write
        split = usage.get("cache_creation")
        if write and isinstance(split, Mapping):  # 1-hour writes: billed at a higher rate
            hour = integer(split.get("ephemeral_1h_input_tokens"))
            if hour:
                attrs[SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS] = hour
    set_integer(attrs, ga.GEN_AI_USAGE_OUTPUT_TOKENS, usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    if isinstance(details, Mapping):  # thinking tokens: part of output_tokens, as the SDK's span has it
        set_integer(attrs, ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, details.get("thinking_tokens"))
    server_tools = usage.get("server_tool_use")
    if isinstance(server_tools, Mapping):  # billed per search, beside the tokens
        set_integer(attrs, SPANREEL_USAGE_WEB_SEARCHES, server_tools.get("web_search_requests"))
    return attrs


def _result(
    response_id: Any,
    model: Any,
    blocks: list[dict[str, Any]],
    reason: Any,
    usage: Attributes,
    capture_content: bool,
) -> Parsed:
    attrs: Attributes = {}
    if string(response_id):
        attrs[ga.GEN_AI_RESPONSE_ID] = response_id
    if string(model):
        attrs[ga.GEN_AI_RESPONSE_MODEL] = model
    if string(reason):
        attrs[ga.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
    attrs.update(usage)
    content: Content = {}
    if capture_content and (blocks or string(reason)):
        message: dict[str, Any] = {"role": "assistant", "parts": _blocks(blocks)}
        if string(reason):
            message["finish_reason"] = reason
        content[ga.GEN_AI_OUTPUT_MESSAGES] = [message]
    return Parsed(attrs, content)


def messages_response(body: Any, capture_content: bool) -> Parsed:
    """A ``message`` object → :class:`Parsed`."""
    if not isinstance(body, Mapping):
        return Parsed()
    content = body.get("content")
    blocks = [dict(b) for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
    return _result(
        body.get("id"),
        body.get("model"),
        blocks,
        body.get("stop_reason"),
        usage_attributes(body.get("usage")),
        capture_content,
    )


class MessagesStreamAccumulator:
    """Assembles a streamed Messages answer from its SSE events (``tool_use`` inputs from their
    ``input_json_delta`` pieces). An ``error`` event sets :attr:`error_type`."""

    __slots__ = (
        "_blocks",
        "_id",
        "_json",
        "_model",
        "_reason",
        "_usage",
        "error_event",
        "error_message",
        "error_type",
    )

    def __init__(self) -> None:
        self._id: Any = None
        self._model: Any = None
        self._reason: Any = None
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.error_event: Any = None

    def add(self, data: str, event: str = "message") -> bool:
        """Add one SSE event; the event type is read from the payload's ``type``."""
        payload = event_object(data)
        if payload is None:
            return False
        etype = payload.get("type") or event
        if etype == "message_start":
            message = payload.get("message")
            if isinstance(message, Mapping):
                self._id, self._model = message.get("id"), message.get("model")
                usage = message.get("usage")
                if isinstance(usage, Mapping):
                    # Its output_tokens is a placeholder (1): the count comes with message_delta,
                    # and a stream cut before that (an error event, the app stopping) has none.
                    self._usage.update({k: v for k, v in usage.items() if k != "output_tokens"})
        elif etype == "content_block_start":
            index, block = integer(payload.get("index")), payload.get("content_block")
            if index is not None and isinstance(block, Mapping):
                self._blocks[index] = dict(block)
        elif etype == "content_block_delta":
            self._delta(integer(payload.get("index")), payload.get("delta"))
        elif etype == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason"):
                self._reason = delta["stop_reason"]
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                self._usage.update({k: v for k, v in usage.items() if v is not None})
        elif etype == "error":
            self.error_event = payload
            self.error_type, self.error_message = error_type_from_body(payload)
            self.error_type = self.error_type or "error"
        elif etype not in ("content_block_stop", "message_stop"):
            return False  # ping and unknown events
        return True

    def _delta(self, index: int | None, delta: Any) -> None:
        if index is None or not isinstance(delta, Mapping):
            return
        block = self._blocks.setdefault(index, {"type": "text", "text": ""})
        dtype = delta.get("type")
        if dtype == "text_delta":
            block["text"] = str(block.get("text", "")) + str(delta.get("text", ""))
        elif dtype == "input_json_delta":
            self._json.setdefault(index, []).append(str(delta.get("partial_json", "")))
        elif dtype == "thinking_delta":
            block["thinking"] = str(block.get("thinking", "")) + str(delta.get("thinking", ""))

    def result(self, capture_content: bool) -> Parsed:
        """Span-end attributes for what has been received so far."""
        blocks = []
        for index in sorted(self._blocks):
            block = dict(self._blocks[index])
            pieces = self._json.get(index)
            if pieces and any(pieces):  # a tool without arguments streams one empty piece: keep {}
                block["input"] = json_or_text("".join(pieces))
            blocks.append(block)
        return _result(
            self._id,
            self._model,
            blocks,
            self._reason,
            usage_attributes(self._usage or None),
            capture_content,
        )


MESSAGES = Api(
    name="anthropic.messages",
    accepts=lambda body: isinstance(body.get("messages"), list),
    request=messages_request,
    response=messages_response,
    stream=MessagesStreamAccumulator,
    provider=PROVIDER,
)
"""Anthropic Messages (``POST …/v1/messages``), also Anthropic-compatible servers."""


BEDROCK_MESSAGES = dataclasses.replace(
    MESSAGES,
    # AnthropicBedrock always sends anthropic_version; other Bedrock models' bodies differ
    # (Amazon Nova's also has a messages list).
    accepts=lambda body: isinstance(body.get("messages"), list) and "anthropic_version" in body,
    provider=ga.GenAiProviderNameValues.AWS_BEDROCK.value,
)
"""Anthropic Messages on Amazon Bedrock (``…/model/{modelId}/invoke`` and
``…/invoke-with-response-stream``, an AWS event stream: :mod:`._eventstream`)."""
