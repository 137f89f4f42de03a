"""Rebuild a replayable request from what other instrumentations recorded (pure).

spanreel's own spans carry the exact wire request (``spanreel.request.body``). Spans from other
instrumentations usually carry the conversation instead; when it is complete enough, an
equivalent request body is rebuilt, in this order of preference
(see shared/reference/peer-conventions.md):

1. OpenInference ``input.value`` with ``input.mime_type`` ``application/json`` — the SDK call's
   keyword arguments, i.e. the request body (needs ``messages``);
2. the recorded input messages, read by the collector's
   :func:`spanreel.collector._normalise.normalise_messages` into the OpenTelemetry GenAI message
   schema whatever the instrumentation: ``gen_ai.input.messages`` (OpenLLMetry ≥ 0.55, OpenLIT,
   opentelemetry-instrumentation-openai-v2), OpenLLMetry ≤ 0.54 ``gen_ai.prompt.{i}.*``,
   OpenInference ``llm.input_messages.{i}.*``, MLflow ``mlflow.spanInputs``; plus
   ``gen_ai.system_instructions``, ``gen_ai.tool.definitions``, ``gen_ai.request.model`` and the
   ``gen_ai.request.*`` parameters.

The body is an OpenAI Chat Completions body, or an Anthropic Messages body when the provider is
``anthropic``; it is sent to ``server.address``/``server.port`` (default: the provider's public
API host) at the provider's chat path. Anything that cannot be rebuilt faithfully (non-text
input parts, unknown provider without a recorded server address) gives a reason instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from ._load import parse_json

__all__ = ["RebuiltRequest", "rebuild_request", "tool_response_text"]

_OPENAI = ga.GenAiProviderNameValues.OPENAI.value
_ANTHROPIC = ga.GenAiProviderNameValues.ANTHROPIC.value
#: provider → (default host, chat path)
_ENDPOINTS: Mapping[str, tuple[str, str]] = {
    _OPENAI: ("api.openai.com", "/v1/chat/completions"),
    _ANTHROPIC: ("api.anthropic.com", "/v1/messages"),
}
#: Anthropic requires ``max_tokens``; used when the recording has none.
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024

# OpenInference attribute names (openinference-semantic-conventions SpanAttributes).
_OI_INPUT_VALUE = "input.value"
_OI_INPUT_MIME = "input.mime_type"

#: ``gen_ai.request.*`` attribute → (OpenAI body key, Anthropic body key)
_PARAMS: tuple[tuple[str, str, str], ...] = (
    (ga.GEN_AI_REQUEST_TEMPERATURE, "temperature", "temperature"),
    (ga.GEN_AI_REQUEST_TOP_P, "top_p", "top_p"),
    (ga.GEN_AI_REQUEST_TOP_K, "", "top_k"),
    (ga.GEN_AI_REQUEST_MAX_TOKENS, "max_tokens", "max_tokens"),
    (ga.GEN_AI_REQUEST_STOP_SEQUENCES, "stop", "stop_sequences"),
    (ga.GEN_AI_REQUEST_FREQUENCY_PENALTY, "frequency_penalty", ""),
    (ga.GEN_AI_REQUEST_PRESENCE_PENALTY, "presence_penalty", ""),
    (ga.GEN_AI_REQUEST_SEED, "seed", ""),
)


@dataclass(frozen=True, slots=True)
class RebuiltRequest:
    """A request rebuilt from peer attributes: ``url``, ``body`` (a JSON object) and ``source``
    (which attributes it came from, for the report)."""

    url: str
    body: dict[str, Any]
    source: str


class _CannotRebuild(ValueError):
    pass


def _endpoint(attrs: Mapping[str, Any], provider: str) -> str:
    host = attrs.get(SERVER_ADDRESS)
    default = _ENDPOINTS.get(provider)
    path = default[1] if default else _ENDPOINTS[_OPENAI][1]
    if not isinstance(host, str) or not host:
        if default is None:
            raise _CannotRebuild(
                f"no {SERVER_ADDRESS} recorded and provider {provider!r} has no known API host "
                "(pass --base-url to choose where to send it)"
            )
        return f"https://{default[0]}{path}"
    port = attrs.get(SERVER_PORT)
    local = host in ("localhost", "127.0.0.1", "::1")
    scheme = "http" if local else "https"
    netloc = f"[{host}]" if ":" in host else host
    if isinstance(port, int) and port not in (80, 443):
        netloc += f":{port}"
    elif port == 80:
        scheme = "http"
    return f"{scheme}://{netloc}{path}"


def _text_parts(parts: Any, where: str) -> str:
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("content", "")))
        elif part.get("type") not in ("tool_call", "tool_call_response"):
            raise _CannotRebuild(f"{where} has a {part.get('type')!r} part, which cannot be rebuilt")
    return "".join(texts)


def _args_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


#: Block types an Anthropic ``tool_result`` may hold besides text, passed on as recorded.
_ANTHROPIC_RESULT_BLOCKS = frozenset({"image", "document", "search_result"})


def _text_blocks(response: Any) -> list[str] | None:
    """The texts of a tool result recorded as text blocks — Anthropic's ``{"type": "text",
    "text"}`` (the anthropic SDK's own span records every result so), OpenAI's content parts
    (the same shape) or GenAI parts ``{"type": "text", "content"}`` —; ``None`` for anything else."""
    if not isinstance(response, list) or not response:
        return None
    texts: list[str] = []
    for block in response:
        if not isinstance(block, Mapping) or block.get("type") != "text":
            return None
        text = block.get("text", block.get("content"))
        if not isinstance(text, str):
            return None
        texts.append(text)
    return texts


def tool_response_text(response: Any) -> str:
    """A ``tool_call_response`` part's ``response`` (any JSON value, per the GenAI conventions) as
    the text of an OpenAI tool message: a string as it is, text blocks joined, anything else as
    its JSON text."""
    if isinstance(response, str):
        return response
    texts = _text_blocks(response)
    if texts is not None:
        return "".join(texts)
    return json.dumps(response, ensure_ascii=False)


def _anthropic_result_content(response: Any) -> str | list[dict[str, Any]]:
    """A ``tool_call_response`` part's ``response`` as an Anthropic ``tool_result`` ``content``:
    a string, or blocks (text blocks, and image / document / search result blocks as recorded);
    anything else as its JSON text."""
    if isinstance(response, str):
        return response
    texts = _text_blocks(response)
    if texts is not None:
        return [{"type": "text", "text": text} for text in texts]
    if (
        isinstance(response, list)
        and response
        and all(
            isinstance(b, Mapping) and (b.get("type") == "text" or b.get("type") in _ANTHROPIC_RESULT_BLOCKS)
            for b in response
        )
    ):
        return [dict(b) for b in response]
    return json.dumps(response, ensure_ascii=False)


def _semconv_to_openai(messages: list[Any], system: str | None, source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        parts = message.get("parts") or []
        if role == "tool":
            for part in parts:
                if isinstance(part, Mapping) and part.get("type") == "tool_call_response":
                    out.append(
                        {
                            "role": "tool",
                            "tool_call_id": part.get("id"),
                            "content": tool_response_text(part.get("response")),
                        }
                    )
            continue
        entry: dict[str, Any] = {"role": role, "content": _text_parts(parts, f"{source}[{i}]")}
        calls = [p for p in parts if isinstance(p, Mapping) and p.get("type") == "tool_call"]
        if calls:
            entry["content"] = entry["content"] or None
            entry["tool_calls"] = [
                {
                    "id": c.get("id"),
                    "type": "function",
                    "function": {"name": c.get("name"), "arguments": _args_text(c.get("arguments"))},
                }
                for c in calls
            ]
        out.append(entry)
    return out


def _semconv_to_anthropic(messages: list[Any], source: str) -> tuple[list[dict[str, Any]], str | None]:
    out: list[dict[str, Any]] = []
    system: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        parts = message.get("parts") or []
        where = f"{source}[{i}]"
        if role == "system":
            system.append(_text_parts(parts, where))
            continue
        blocks: list[dict[str, Any]] = []
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                blocks.append({"type": "text", "text": str(part.get("content", ""))})
            elif kind == "tool_call":
                args = parse_json(part.get("arguments"))
                blocks.append(
                    {"type": "tool_use", "id": part.get("id"), "name": part.get("name"), "input": args}
                )
            elif kind == "tool_call_response":
                blocks.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": part.get("id"),
                        "content": _anthropic_result_content(part.get("response")),
                    }
                )
            else:
                raise _CannotRebuild(f"{where} has a {kind!r} part, which cannot be rebuilt")
        out.append({"role": "user" if role == "tool" else role, "content": blocks})
    return out, "\n".join(system) or None


def _system_instructions(attrs: Mapping[str, Any]) -> str | None:
    value = parse_json(attrs.get(ga.GEN_AI_SYSTEM_INSTRUCTIONS))
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        return _text_parts(value, ga.GEN_AI_SYSTEM_INSTRUCTIONS) or None
    return None


def _recorded_messages(attrs: Mapping[str, Any]) -> tuple[list[Any], str] | None:
    """The recorded input messages in the OTel GenAI message schema, whatever the instrumentation
    (:func:`~spanreel.collector._normalise.normalise_messages`), and the attributes they came
    from (for the report); ``None`` when none were recorded."""
    from spanreel.collector import _peers as peers
    from spanreel.collector._normalise import normalise_messages

    messages = parse_json(normalise_messages(attrs)[0])
    if not isinstance(messages, list) or not messages:
        return None
    # the first convention present, in normalise_messages' order of preference
    if ga.GEN_AI_INPUT_MESSAGES in attrs:
        return messages, ga.GEN_AI_INPUT_MESSAGES
    for prefix in (peers.LLMETRY_PROMPTS, peers.OI_INPUT_MESSAGES):
        if any(key.startswith(f"{prefix}.") for key in attrs):
            return messages, f"{prefix}.*"
    return messages, peers.MLFLOW_SPAN_INPUTS


def _params(attrs: Mapping[str, Any], anthropic: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, openai_key, anthropic_key in _PARAMS:
        key = anthropic_key if anthropic else openai_key
        if key and attrs.get(attr) is not None:
            out[key] = attrs[attr]
    return out


def _tools(attrs: Mapping[str, Any], anthropic: bool) -> list[dict[str, Any]] | None:
    defs = parse_json(attrs.get(ga.GEN_AI_TOOL_DEFINITIONS))
    if not isinstance(defs, list) or not defs:
        return None
    tools: list[dict[str, Any]] = []
    for d in defs:
        if not isinstance(d, Mapping):
            continue
        fn = d.get("function") if isinstance(d.get("function"), Mapping) else d
        assert isinstance(fn, Mapping)
        name, desc, params = fn.get("name"), fn.get("description"), fn.get("parameters")
        if anthropic:
            tools.append(
                {"name": name, "description": desc or "", "input_schema": params or {"type": "object"}}
            )
        else:
            spec: dict[str, Any] = {"name": name}
            if desc:
                spec["description"] = desc
            if params is not None:
                spec["parameters"] = params
            tools.append({"type": "function", "function": spec})
    return tools or None


def rebuild_request(
    attrs: Mapping[str, Any], provider: str | None, request_model: str | None
) -> RebuiltRequest | str:
    """A :class:`RebuiltRequest` from a peer instrumentation's span attributes, or the reason
    (one sentence) why the request cannot be rebuilt. ``provider``/``request_model``: the
    span's normalised ``provider`` / ``request_model`` columns."""
    from spanreel.collector._peers import OI_LLM_MODEL_NAME

    provider = (provider or _OPENAI).lower()
    anthropic = provider == _ANTHROPIC
    try:
        raw = parse_json(attrs.get(_OI_INPUT_VALUE))
        mime = str(attrs.get(_OI_INPUT_MIME) or "")
        model = request_model or attrs.get(OI_LLM_MODEL_NAME)
        if isinstance(raw, dict) and isinstance(raw.get("messages"), list) and "json" in mime:
            body = dict(raw)
            if model and "model" not in body:
                body["model"] = model
            body.pop("stream", None)  # peers record the kwargs; the response is read whole
            body.pop("stream_options", None)
            return RebuiltRequest(_endpoint(attrs, provider), body, f"{_OI_INPUT_VALUE} (OpenInference)")
        if not isinstance(model, str) or not model:
            return f"the model was not recorded ({ga.GEN_AI_REQUEST_MODEL})"
        recorded = _recorded_messages(attrs)
        if recorded is not None:
            messages, source = recorded
            system = _system_instructions(attrs)
            if anthropic:
                wire, inline_system = _semconv_to_anthropic(messages, source)
                system = "\n".join(s for s in (system, inline_system) if s) or None
                body = {"model": model, "messages": wire, **_params(attrs, True)}
                body.setdefault("max_tokens", ANTHROPIC_DEFAULT_MAX_TOKENS)
                if system:
                    body["system"] = system
            else:
                body = {
                    "model": model,
                    "messages": _semconv_to_openai(messages, system, source),
                    **_params(attrs, False),
                }
            tools = _tools(attrs, anthropic)
            if tools:
                body["tools"] = tools
            return RebuiltRequest(_endpoint(attrs, provider), body, source)
    except _CannotRebuild as exc:
        return str(exc)
    return (
        "the request was not recorded: no spanreel.request.body and no input messages "
        f"({ga.GEN_AI_INPUT_MESSAGES}, gen_ai.prompt.*, llm.input_messages.*, mlflow.spanInputs, "
        "input.value) — message content capture was probably off in the recording instrumentation"
    )
