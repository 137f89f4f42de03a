"""The fake LLM server's other API shapes (pure functions): each request is translated to a Chat
Completions body, answered by the same deterministic :func:`spanreel.fakellm._complete`, and the
completion is rendered in the API's own response (or stream event) format.

- OpenAI Responses (``POST /v1/responses``): ``response`` objects; streams of ``response.created``,
  ``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
  ``response.output_text.delta`` / ``response.function_call_arguments.delta``, the matching
  ``….done`` events and ``response.completed`` (or ``response.incomplete``).
- OpenAI legacy Completions (``POST /v1/completions``): ``text_completion`` objects and chunks.
- OpenAI Embeddings (``POST /v1/embeddings``): deterministic unit vectors (``dimensions``,
  default 8) from a SHA-256 of model and input, ``float`` or ``base64`` (little-endian float32).
- Anthropic Messages (``POST /v1/messages``): ``message`` objects; streams of ``message_start``,
  ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta`` /
  ``input_json_delta``), ``content_block_stop``, ``message_delta`` (stop reason, output usage),
  ``message_stop``.
- Gemini (``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent``):
  ``GenerateContentResponse`` objects; a stream is SSE with ``?alt=sse`` (CRLF-separated
  events, as Google sends) and a JSON array otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterator, Mapping
from typing import Any

from spanreel.fakellm import _Completion, _split_chunks, count_words

# ---------------------------------------------------------------------------------------------
# OpenAI Responses
# ---------------------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def responses_to_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses request → the equivalent Chat Completions body (for the deterministic answer)."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))}
            )
        elif "role" in item:
            messages.append({"role": item["role"], "content": _text(item.get("content"))})
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for key in ("temperature", "top_p"):
        if key in body:
            chat[key] = body[key]
    if "max_output_tokens" in body:
        chat["max_tokens"] = body["max_output_tokens"]
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("type") == "function"]
    if tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {k: t[k] for k in ("name", "description", "parameters") if k in t},
            }
            for t in tools
        ]
    choice = body.get("tool_choice")
    if choice == "none" or (isinstance(choice, Mapping) and choice.get("name")):
        chat["tool_choice"] = (
            "none" if choice == "none" else {"type": "function", "function": {"name": choice["name"]}}
        )
    return chat


def _response_items(c: _Completion, *, done: bool) -> list[dict[str, Any]]:
    if c.tool_call is not None:
        fn = c.tool_call["function"]
        return [
            {
                "id": "fc_" + c.id[-24:],
                "type": "function_call",
                "status": "completed" if done else "in_progress",
                "call_id": c.tool_call["id"],
                "name": fn["name"],
                "arguments": fn["arguments"] if done else "",
            }
        ]
    content = [{"type": "output_text", "text": c.content or "", "annotations": []}] if done else []
    return [
        {
            "id": "msg_" + c.id[-24:],
            "type": "message",
            "status": "completed" if done else "in_progress",
            "role": "assistant",
            "content": content,
        }
    ]


def render_response(c: _Completion, body: Mapping[str, Any], *, done: bool = True) -> dict[str, Any]:
    """The ``response`` object for completion ``c`` (``done=False``: the in-progress shell)."""
    incomplete = done and c.finish_reason == "length"
    status = ("incomplete" if incomplete else "completed") if done else "in_progress"
    return {
        "id": "resp_" + c.id[-29:],
        "object": "response",
        "created_at": c.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "model": c.model,
        "output": _response_items(c, done=True) if done else [],
        "parallel_tool_calls": True,
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": c.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": c.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": c.prompt_tokens + c.completion_tokens,
        }
        if done
        else None,
        "metadata": {},
    }


def responses_stream(c: _Completion, body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Responses stream for ``c``: ``(event type, payload)`` pairs in order."""
    seq = 0

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        nonlocal seq
        seq += 1
        return kind, {"type": kind, "sequence_number": seq - 1, **fields}

    shell = render_response(c, body, done=False)
    yield event("response.created", response=shell)
    yield event("response.in_progress", response=shell)
    (item,) = _response_items(c, done=False)
    (final_item,) = _response_items(c, done=True)
    yield event("response.output_item.added", output_index=0, item=item)
    if c.tool_call is not None:
        args = c.tool_call["function"]["arguments"]
        for i in range(0, len(args), 12):
            yield event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=0,
                delta=args[i : i + 12],
            )
        yield event(
            "response.function_call_arguments.done", item_id=item["id"], output_index=0, arguments=args
        )
    else:
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event(
            "response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part
        )
        for piece in _split_chunks(c.content or ""):
            yield event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=0,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        yield event(
            "response.output_text.done",
            item_id=item["id"],
            output_index=0,
            content_index=0,
            text=c.content or "",
            logprobs=[],
        )
        yield event(
            "response.content_part.done",
            item_id=item["id"],
            output_index=0,
            content_index=0,
            part=final_item["content"][0],
        )
    yield event("response.output_item.done", output_index=0, item=final_item)
    final = render_response(c, body)
    yield event(
        "response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final
    )


# ---------------------------------------------------------------------------------------------
# OpenAI legacy completions and embeddings
# ---------------------------------------------------------------------------------------------


def completions_to_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """A legacy Completions request → the equivalent Chat Completions body."""
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt or [] if isinstance(p, str))
    chat = {k: body[k] for k in ("model", "temperature", "top_p", "max_tokens", "seed", "stop") if k in body}
    chat["messages"] = [{"role": "user", "content": text}]
    return chat


def render_text_completion(c: _Completion) -> dict[str, Any]:
    """The ``text_completion`` object for ``c``."""
    return {
        "id": "cmpl-" + c.id[-29:],
        "object": "text_completion",
        "created": c.created,
        "model": c.model,
        "choices": [
            {"text": c.content or "", "index": 0, "logprobs": None, "finish_reason": c.finish_reason}
        ],
        "usage": c.usage,
    }


def text_completion_chunks(c: _Completion, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The streamed ``text_completion`` chunks for ``c`` (then a usage chunk if asked)."""
    base = {"id": "cmpl-" + c.id[-29:], "object": "text_completion", "created": c.created, "model": c.model}
    pieces = _split_chunks(c.content or "")
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        choice = {
            "text": piece,
            "index": 0,
            "logprobs": None,
            "finish_reason": c.finish_reason if last else None,
        }
        yield {**base, "choices": [choice]}
    if include_usage:
        yield {**base, "choices": [], "usage": c.usage}


def _vector(model: str, text: str, dimensions: int) -> list[float]:
    seed = hashlib.sha256(f"{model}\0{text}".encode()).digest()
    raw = [((seed[i % 32] + 7 * i) % 256) / 255.0 - 0.5 for i in range(dimensions)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [round(x / norm, 6) for x in raw]


def render_embeddings(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Embeddings ``list`` for a request, or ``None`` when ``input`` is missing or malformed."""
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        return None
    texts = [x if isinstance(x, str) else json.dumps(x) for x in inputs]
    model = str(body.get("model") or "fake-embedding")
    dims = body.get("dimensions")
    dimensions = dims if isinstance(dims, int) and 0 < dims <= 4096 else 8
    data = []
    for i, text in enumerate(texts):
        vector = _vector(model, text, dimensions)
        value: Any = vector
        if body.get("encoding_format") == "base64":
            value = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(count_words(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# ---------------------------------------------------------------------------------------------
# Anthropic Messages
# ---------------------------------------------------------------------------------------------


def anthropic_to_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request → the equivalent Chat Completions body."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_result"]
        uses = [b for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_use"]
        if results:
            for block in results:
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id"),
                        "content": _text(block.get("content")),
                    }
                )
        elif uses:
            calls = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input"))},
                }
                for b in uses
            ]
            messages.append({"role": "assistant", "content": _text(content) or None, "tool_calls": calls})
        else:
            messages.append({"role": message.get("role"), "content": _text(content)})
    chat: dict[str, Any] = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": body.get("max_tokens"),
    }
    for key in ("temperature", "top_p"):
        if key in body:
            chat[key] = body[key]
    if "stop_sequences" in body:
        chat["stop"] = body["stop_sequences"]
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and "input_schema" in t]
    if tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description"),
                    "parameters": t["input_schema"],
                },
            }
            for t in tools
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        if choice.get("type") == "none":
            chat["tool_choice"] = "none"
        elif choice.get("type") == "tool":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    return chat


_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _anthropic_blocks(c: _Completion) -> list[dict[str, Any]]:
    if c.tool_call is not None:
        fn = c.tool_call["function"]
        return [
            {
                "type": "tool_use",
                "id": "toolu_" + c.tool_call["id"][5:],
                "name": fn["name"],
                "input": json.loads(fn["arguments"]),
            }
        ]
    return [{"type": "text", "text": c.content or ""}]


def _anthropic_usage(c: _Completion, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": c.prompt_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def render_anthropic(c: _Completion) -> dict[str, Any]:
    """The Anthropic ``message`` object for ``c``."""
    return {
        "id": "msg_" + c.id[-24:],
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": _anthropic_blocks(c),
        "stop_reason": _STOP_REASONS[c.finish_reason],
        "stop_sequence": None,
        "usage": _anthropic_usage(c, c.completion_tokens),
    }


def anthropic_stream(c: _Completion) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Anthropic Messages stream for ``c``: ``(event name, payload)`` pairs in order."""
    message = {**render_anthropic(c), "content": [], "stop_reason": None, "usage": _anthropic_usage(c, 1)}
    yield "message_start", {"type": "message_start", "message": message}
    (block,) = _anthropic_blocks(c)
    if block["type"] == "tool_use":
        start = {**block, "input": {}}
        yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}
        yield "ping", {"type": "ping"}
        args = json.dumps(block["input"])
        for i in range(0, len(args), 12):
            delta = {"type": "input_json_delta", "partial_json": args[i : i + 12]}
            yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    else:
        start = {"type": "text", "text": ""}
        yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}
        yield "ping", {"type": "ping"}
        for piece in _split_chunks(block["text"]):
            delta = {"type": "text_delta", "text": piece}
            yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP_REASONS[c.finish_reason], "stop_sequence": None},
            "usage": {"output_tokens": c.completion_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def anthropic_error(message: str, type_: str) -> dict[str, Any]:
    """An Anthropic-shaped error body."""
    return {"type": "error", "error": {"type": type_, "message": message}}


# ---------------------------------------------------------------------------------------------
# Gemini
# ---------------------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def gemini_to_chat(model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``generateContent`` request for ``model`` → the equivalent Chat Completions body."""
    messages: list[dict[str, Any]] = []
    system = _get(body, "systemInstruction", "system_instruction")
    if isinstance(system, Mapping):
        messages.append({"role": "system", "content": _text(system.get("parts"))})
    for item in body.get("contents") or []:
        if not isinstance(item, Mapping):
            continue
        parts = [p for p in item.get("parts") or [] if isinstance(p, Mapping)]
        calls = [
            _get(p, "functionCall", "function_call")
            for p in parts
            if _get(p, "functionCall", "function_call")
        ]
        answers = [
            _get(p, "functionResponse", "function_response")
            for p in parts
            if _get(p, "functionResponse", "function_response")
        ]
        if answers:
            for a in answers:
                messages.append(
                    {"role": "tool", "tool_call_id": a.get("name"), "content": json.dumps(a.get("response"))}
                )
        elif calls:
            tool_calls = [
                {
                    "id": c.get("name"),
                    "type": "function",
                    "function": {"name": c.get("name"), "arguments": json.dumps(c.get("args") or {})},
                }
                for c in calls
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
        else:
            role = "assistant" if item.get("role") == "model" else "user"
            messages.append({"role": role, "content": _text(parts)})
    chat: dict[str, Any] = {"model": model, "messages": messages}
    config = _get(body, "generationConfig", "generation_config")
    if isinstance(config, Mapping):
        for camel, snake, key in (
            ("temperature", "temperature", "temperature"),
            ("topP", "top_p", "top_p"),
            ("maxOutputTokens", "max_output_tokens", "max_tokens"),
            ("stopSequences", "stop_sequences", "stop"),
            ("seed", "seed", "seed"),
        ):
            value = _get(config, camel, snake)
            if value is not None:
                chat[key] = value
    decls = [
        d
        for t in body.get("tools") or []
        if isinstance(t, Mapping)
        for d in _get(t, "functionDeclarations", "function_declarations") or []
        if isinstance(d, Mapping)
    ]
    if decls:
        chat["tools"] = [{"type": "function", "function": dict(d)} for d in decls]
    return chat


_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def _gemini_usage(c: _Completion, output_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": c.prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": c.prompt_tokens + output_tokens,
    }


def render_gemini(c: _Completion) -> dict[str, Any]:
    """The ``GenerateContentResponse`` for ``c``."""
    if c.tool_call is not None:
        fn = c.tool_call["function"]
        parts: list[dict[str, Any]] = [
            {"functionCall": {"name": fn["name"], "args": json.loads(fn["arguments"])}}
        ]
    else:
        parts = [{"text": c.content or ""}]
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": _FINISH[c.finish_reason],
                "index": 0,
            }
        ],
        "usageMetadata": _gemini_usage(c, c.completion_tokens),
        "modelVersion": c.model,
        "responseId": c.id[-24:],
    }


def gemini_stream(c: _Completion) -> Iterator[dict[str, Any]]:
    """The streamed ``GenerateContentResponse`` chunks for ``c`` (text in pieces; the last one
    carries the finish reason and the full usage)."""
    if c.tool_call is not None:
        yield render_gemini(c)
        return
    pieces = _split_chunks(c.content or "")
    words = 0
    for i, piece in enumerate(pieces):
        words += count_words(piece)
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        if i == len(pieces) - 1:
            candidate["finishReason"] = _FINISH[c.finish_reason]
        yield {
            "candidates": [candidate],
            "usageMetadata": _gemini_usage(c, words),
            "modelVersion": c.model,
            "responseId": c.id[-24:],
        }


def gemini_error(status: int, message: str) -> dict[str, Any]:
    """A Google-shaped error body."""
    names = {
        400: "INVALID_ARGUMENT",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }
    return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}
