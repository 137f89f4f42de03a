"""Rebuild a replayable request from what other instrumentations recorded (pure).

spanreel's own spans carry the exact wire request (``spanreel.request.body``). Spans from other
instrumentations usually carry the conversation instead; when it is complete enough, an
equivalent request body is rebuilt, in this order of preference
(see shared/reference/peer-conventions.md):

1. the request body as the peer recorded it: OpenInference ``input.value`` with
   ``input.mime_type`` ``application/json`` (the SDK's JSON body), MLflow ``mlflow.spanInputs``
   of an ``openai`` / ``anthropic`` model call (the SDK method's arguments: the SDK's own request
   options ``extra_headers``, ``extra_query``, ``timeout`` are left out and ``extra_body`` merged
   in, as the SDK does; its "not given" sentinels are left out; a ``response_format`` /
   ``text_format`` MLflow could only record as a Python object's text cannot be rebuilt) — sent
   as it is, ``stream`` / ``stream_options`` removed (the answer is read whole), to the API its
   shape names (below);
2. the recorded input messages, read by the collector's
   :func:`spanreel.collector._normalise.normalise_messages` into the OpenTelemetry GenAI message
   schema whatever the instrumentation: ``gen_ai.input.messages`` (OpenLLMetry ≥ 0.55, OpenLIT,
   opentelemetry-instrumentation-openai-v2), OpenLLMetry ≤ 0.54 ``gen_ai.prompt.{i}.*``,
   OpenInference ``llm.input_messages.{i}.*``, MLflow ``mlflow.spanInputs``; plus
   ``gen_ai.system_instructions``, ``gen_ai.tool.definitions``, ``gen_ai.request.model`` and the
   ``gen_ai.request.*`` parameters.

The API follows the call's operation (the normalised ``operation`` column), never a chat body
for another kind of call:

- a recorded body goes to Anthropic Messages when the provider (or MLflow's message format) is
  ``anthropic``; else to Embeddings for an ``embeddings`` call, to Chat Completions with
  ``messages``, to legacy Completions with ``prompt`` for a completions call, to Responses with
  ``input`` for a chat call (:func:`_recorded_body_path`); a body of another API (an
  OpenInference span of ``images.generate`` or ``moderations.create``) is not sent;
- rebuilt from the messages: an ``embeddings`` call gets an Embeddings body (``input``: each
  recorded message is one input text, as OpenLLMetry records them; ``encoding_format`` and
  ``dimensions`` when recorded), a ``text_completion`` call a legacy Completions body
  (``prompt``: each message's text) with the OpenAI parameters, anything else an OpenAI Chat
  Completions body, or an Anthropic Messages body when the provider is ``anthropic`` (Anthropic
  has neither embeddings nor legacy completions to rebuild).

The request is sent to ``server.address``/``server.port`` (default: the provider's public API
host) at that API's path (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses``, Anthropic ``/v1/messages``; other providers get the OpenAI paths). Anything
that cannot be rebuilt faithfully (non-text input parts, a message recorded without its content,
an input that is not one text per message, unknown provider without a recorded server address)
gives a reason instead. What the recording lacks but the rest of the request does not depend on is
named in :attr:`RebuiltRequest.gaps` — the request is still sent, and the report says what it
lacks: tool definitions for a conversation that calls tools (opentelemetry-instrumentation-openai-v2
and the anthropic SDK's span do not record them), Anthropic's ``max_tokens`` when not recorded
(1024 is sent), the ``extra_headers`` / ``extra_query`` MLflow recorded (not re-sent). A ``--hook``
can add what is missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from ._load import parse_json

__all__ = ["RebuiltRequest", "rebuild_request", "recorded_body", "tool_response_text"]

_OPENAI = ga.GenAiProviderNameValues.OPENAI.value
_ANTHROPIC = ga.GenAiProviderNameValues.ANTHROPIC.value
_EMBEDDINGS = ga.GenAiOperationNameValues.EMBEDDINGS.value
_TEXT_COMPLETION = ga.GenAiOperationNameValues.TEXT_COMPLETION.value
#: provider → public API host
_HOSTS: Mapping[str, str] = {_OPENAI: "api.openai.com", _ANTHROPIC: "api.anthropic.com"}
_CHAT_PATH = "/v1/chat/completions"
_COMPLETIONS_PATH = "/v1/completions"
_EMBEDDINGS_PATH = "/v1/embeddings"
_RESPONSES_PATH = "/v1/responses"
_MESSAGES_PATH = "/v1/messages"
#: Anthropic requires ``max_tokens``; used when the recording has none.
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024

# OpenInference attribute names (openinference-semantic-conventions SpanAttributes).
_OI_INPUT_VALUE = "input.value"
_OI_INPUT_MIME = "input.mime_type"
#: ``mlflow.message.format`` values whose ``mlflow.spanInputs`` are an SDK call's arguments
#: (mlflow.openai / mlflow.anthropic autolog) that this module can send
_MLFLOW_SDK_FORMATS = ("openai", "anthropic")
#: The SDKs' own request options among a call's arguments: not body fields (``extra_body`` is
#: merged into the body, as the SDK does).
_SDK_REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
#: What MLflow's JSON encoder makes of the SDKs' "not given" sentinels (some wrappers pass them
#: explicitly): the SDK sends no such field.
_SDK_SENTINEL = re.compile(r"NOT_GIVEN|<(?:openai|anthropic)\.Omit object at 0x[0-9a-f]+>")
#: Arguments the SDK turns into body fields (a pydantic model → a JSON schema) that MLflow records
#: as the text of the Python object (``"<class 'app.Answer'>"``).
_CONVERTED_ARGUMENTS = ("response_format", "text_format")

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
    (which attributes it came from, for the report). ``gaps``: what the app's request had that the
    recording does not hold, so the rebuilt one lacks or guesses it (``"tool definitions"``),
    for the report's note; empty when the request is complete."""

    url: str
    body: dict[str, Any]
    source: str
    gaps: tuple[str, ...] = ()


class _CannotRebuild(ValueError):
    pass


def _endpoint(attrs: Mapping[str, Any], provider: str, path: str) -> str:
    host = attrs.get(SERVER_ADDRESS)
    if not isinstance(host, str) or not host:
        default = _HOSTS.get(provider)
        if default is None:
            raise _CannotRebuild(
                f"no {SERVER_ADDRESS} recorded and provider {provider!r} has no known API host "
                "(pass --base-url to choose where to send it)"
            )
        return f"https://{default}{path}"
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


def _parts(message: Mapping[str, Any], where: str, role: str) -> list[Any]:
    """A recorded message's parts; a message recorded without any is a reason not to rebuild:
    its content was left out (opentelemetry-instrumentation-openai-v2 records only string
    content, so an image or a list of parts leaves ``"parts": []``), and sending it empty would
    ask the model something else."""
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _CannotRebuild(
            f"{where} ({role}) has no recorded content: the recording instrumentation left it out "
            "(some record only text, not images or lists of parts), so the request cannot be rebuilt"
        )
    return parts


def _semconv_to_openai(messages: list[Any], system: str | None, source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        parts = _parts(message, f"{source}[{i}]", role)
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
        where = f"{source}[{i}]"
        parts = _parts(message, where, role)
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


@dataclass(frozen=True, slots=True)
class _Recorded:
    """The recorded conversation in the OTel GenAI message schema: input ``messages``, the
    attributes they came from (``source``, for the report) and the output messages."""

    messages: list[Any]
    source: str
    outputs: list[Any]

    def uses_tools(self) -> bool:
        """Whether a tool was called or answered, in the history or the output."""
        return any(
            isinstance(part, Mapping) and part.get("type") in ("tool_call", "tool_call_response")
            for message in (*self.messages, *self.outputs)
            if isinstance(message, Mapping)
            for part in message.get("parts") or ()
        )


def _recorded_messages(attrs: Mapping[str, Any]) -> _Recorded | None:
    """The recorded messages, whatever the instrumentation
    (:func:`~spanreel.collector._normalise.normalise_messages`); ``None`` when no input messages
    were recorded."""
    from spanreel.collector import _peers as peers
    from spanreel.collector._normalise import normalise_messages

    inputs, outputs = (parse_json(m) for m in normalise_messages(attrs))
    if not isinstance(inputs, list) or not inputs:
        return None
    outputs = outputs if isinstance(outputs, list) else []
    # the first convention present, in normalise_messages' order of preference
    if ga.GEN_AI_INPUT_MESSAGES in attrs:
        return _Recorded(inputs, ga.GEN_AI_INPUT_MESSAGES, outputs)
    for prefix in (peers.LLMETRY_PROMPTS, peers.OI_INPUT_MESSAGES):
        if any(key.startswith(f"{prefix}.") for key in attrs):
            return _Recorded(inputs, f"{prefix}.*", outputs)
    return _Recorded(inputs, peers.MLFLOW_SPAN_INPUTS, outputs)


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


#: The SDK options that change the request outside its body, which a replay does not re-send.
_UNSENT_OPTIONS = (("extra_headers", "request headers"), ("extra_query", "query parameters"))


def _mlflow_arguments(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], str, tuple[str, ...]] | None:
    """An MLflow openai / anthropic model call's arguments as the request body the SDK sent, the
    wire format (``openai``, ``anthropic``) and the gaps (the SDK options given that are not
    re-sent); ``None`` for other spans."""
    from spanreel.collector import _peers as peers
    from spanreel.collector._normalise import attribute_view

    if peers.MLFLOW_SPAN_TYPE not in attrs:
        return None
    view = attribute_view(attrs)  # MLflow JSON-encodes every value
    if view.get(peers.MLFLOW_SPAN_TYPE) not in peers.MLFLOW_SPAN_TYPE_OPERATIONS:
        return None  # a chain, agent or tool span
    inputs, wire = view.get(peers.MLFLOW_SPAN_INPUTS), view.get(peers.MLFLOW_MESSAGE_FORMAT)
    if not isinstance(inputs, dict):
        return None
    if wire is None and isinstance(inputs.get("model"), str):
        wire = _OPENAI  # recorded before MLflow named the format
    if wire not in _MLFLOW_SDK_FORMATS:
        return None  # another framework's inputs (LangChain, LlamaIndex …), not a request body
    body = {
        key: value
        for key, value in inputs.items()
        if key not in _SDK_REQUEST_OPTIONS and not (isinstance(value, str) and _SDK_SENTINEL.fullmatch(value))
    }
    extra = inputs.get("extra_body")
    if isinstance(extra, Mapping):
        body.update(extra)
    gaps = tuple(f"{what} ({key})" for key, what in _UNSENT_OPTIONS if inputs.get(key))
    return body, str(wire), gaps


def recorded_body(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], str, bool, tuple[str, ...]] | None:
    """The request body as a peer recorded it (module docstring, 1.): ``(body, source, anthropic
    wire format, gaps)``; ``None`` when none was recorded."""
    from spanreel.collector._peers import MLFLOW_SPAN_INPUTS

    raw = parse_json(attrs.get(_OI_INPUT_VALUE))
    if isinstance(raw, dict) and "json" in str(attrs.get(_OI_INPUT_MIME) or ""):
        return dict(raw), f"{_OI_INPUT_VALUE} (OpenInference)", False, ()
    arguments = _mlflow_arguments(attrs)
    if arguments is not None:
        body, wire, gaps = arguments
        return body, f"{MLFLOW_SPAN_INPUTS} (MLflow)", wire == _ANTHROPIC, gaps
    return None


def _has_indexed(attrs: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(f"{prefix}.") for key in attrs)


def _recorded_body_path(
    attrs: Mapping[str, Any], body: Mapping[str, Any], operation: str | None, anthropic: bool
) -> str | None:
    """The API path a request body recorded as sent goes to (module docstring), or ``None`` when
    nothing says which API it was for. ``prompt`` and ``input`` bodies need the call's kind too,
    as OpenInference records every OpenAI request it sees as an LLM span (images, moderations…):
    a completions call (operation ``text_completion``, or OpenInference's ``llm.prompts.*``), a
    Responses call (an MLflow chat model span, or OpenInference's ``llm.input_messages.*``)."""
    from spanreel.collector import _peers as peers

    if anthropic:
        return _MESSAGES_PATH if isinstance(body.get("messages"), list) else None
    if operation == _EMBEDDINGS:
        return _EMBEDDINGS_PATH if "input" in body else None
    if isinstance(body.get("messages"), list):
        return _CHAT_PATH
    if "prompt" in body and (operation == _TEXT_COMPLETION or _has_indexed(attrs, peers.OI_PROMPTS)):
        return _COMPLETIONS_PATH
    if (
        "input" in body
        and operation == ga.GenAiOperationNameValues.CHAT.value
        and (peers.MLFLOW_SPAN_TYPE in attrs or _has_indexed(attrs, peers.OI_INPUT_MESSAGES))
    ):
        return _RESPONSES_PATH
    return None


def _single_texts(messages: list[Any], source: str, what: str) -> list[str]:
    """Each message's text, for an embeddings input or a completions prompt: a message with
    anything but text parts (or none) cannot be one."""
    texts: list[str] = []
    for i, message in enumerate(messages):
        parts = message.get("parts") if isinstance(message, Mapping) else None
        contents = [
            p["content"]
            for p in parts or ()
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("content"), str)
        ]
        if not parts or len(contents) != len(parts):
            raise _CannotRebuild(f"{source}[{i}] is not text, so the {what} cannot be rebuilt")
        texts.append("".join(contents))
    return texts


def _embeddings_body(
    attrs: Mapping[str, Any], model: str, messages: list[Any], source: str
) -> dict[str, Any]:
    inputs = _single_texts(messages, source, "embeddings input")
    body: dict[str, Any] = {"model": model, "input": inputs[0] if len(inputs) == 1 else inputs}
    formats = attrs.get(ga.GEN_AI_REQUEST_ENCODING_FORMATS)
    if isinstance(formats, list | tuple) and len(formats) == 1:
        body["encoding_format"] = formats[0]
    dimensions = attrs.get(ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT)
    if isinstance(dimensions, int):
        body["dimensions"] = dimensions
    return body


def _completions_body(
    attrs: Mapping[str, Any], model: str, messages: list[Any], source: str
) -> dict[str, Any]:
    prompts = _single_texts(messages, source, "prompt")
    return {"model": model, "prompt": prompts[0] if len(prompts) == 1 else prompts, **_params(attrs, False)}


def rebuild_request(
    attrs: Mapping[str, Any],
    provider: str | None,
    request_model: str | None,
    operation: str | None = None,
) -> RebuiltRequest | str:
    """A :class:`RebuiltRequest` from a peer instrumentation's span attributes, or the reason
    (one sentence) why the request cannot be rebuilt. ``provider``/``request_model``/``operation``:
    the span's normalised ``provider`` / ``request_model`` / ``operation`` columns."""
    from spanreel.collector._peers import OI_LLM_MODEL_NAME

    provider = (provider or _OPENAI).lower()
    try:
        model = request_model or attrs.get(OI_LLM_MODEL_NAME)
        as_recorded = recorded_body(attrs)
        if as_recorded is not None:
            body, source, anthropic_wire, gaps = as_recorded
            if anthropic_wire:
                provider = _ANTHROPIC
            path = _recorded_body_path(attrs, body, operation, provider == _ANTHROPIC)
            if path is None and _recorded_messages(attrs) is None:
                return (
                    f"the recorded request ({source}) is not a chat, completions, embeddings or "
                    "Responses request, and no input messages were recorded"
                )
            if path is not None:
                for key in _CONVERTED_ARGUMENTS:
                    if isinstance(body.get(key), str):
                        raise _CannotRebuild(
                            f"{source} holds {key} as the text of a Python object "
                            f"({body[key][:80]!r}), not the JSON the SDK sent"
                        )
                if model and "model" not in body:
                    body["model"] = model
                body.pop("stream", None)  # the response is read whole
                body.pop("stream_options", None)
                return RebuiltRequest(_endpoint(attrs, provider, path), body, source, gaps)
        anthropic = provider == _ANTHROPIC
        if not isinstance(model, str) or not model:
            return f"the model was not recorded ({ga.GEN_AI_REQUEST_MODEL})"
        recorded = _recorded_messages(attrs)
        if recorded is not None:
            messages, source = recorded.messages, recorded.source
            if operation in (_EMBEDDINGS, _TEXT_COMPLETION):
                if anthropic:
                    raise _CannotRebuild(
                        f"an Anthropic {operation} call cannot be rebuilt (only Messages requests can)"
                    )
                if operation == _EMBEDDINGS:
                    body, path = _embeddings_body(attrs, model, messages, source), _EMBEDDINGS_PATH
                else:
                    body, path = _completions_body(attrs, model, messages, source), _COMPLETIONS_PATH
                return RebuiltRequest(_endpoint(attrs, provider, path), body, source)
            system = _system_instructions(attrs)
            missing: list[str] = []
            if anthropic:
                wire, inline_system = _semconv_to_anthropic(messages, source)
                system = "\n".join(s for s in (system, inline_system) if s) or None
                body = {"model": model, "messages": wire, **_params(attrs, True)}
                if "max_tokens" not in body:
                    body["max_tokens"] = ANTHROPIC_DEFAULT_MAX_TOKENS
                    missing.append(f"max_tokens ({ANTHROPIC_DEFAULT_MAX_TOKENS} sent: Anthropic needs one)")
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
            elif recorded.uses_tools():
                missing.insert(0, "tool definitions")
            return RebuiltRequest(
                _endpoint(attrs, provider, _MESSAGES_PATH if anthropic else _CHAT_PATH),
                body,
                source,
                tuple(missing),
            )
    except _CannotRebuild as exc:
        return str(exc)
    return (
        "the request was not recorded: no spanreel.request.body and no input messages "
        f"({ga.GEN_AI_INPUT_MESSAGES}, gen_ai.prompt.*, llm.input_messages.*, mlflow.spanInputs, "
        "input.value) — message content capture was probably off in the recording instrumentation"
    )
