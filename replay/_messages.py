"""Conversation content of recorded requests and outputs (pure; no I/O).

Two wire shapes are understood (:class:`ApiShape`), the ones cascade replay rewrites,
``serve-recorded`` answers and ``export`` converts:

- **OpenAI Chat Completions** (``POST …/chat/completions``): ``messages`` with ``role``
  ``assistant`` messages carrying ``content`` (a string or a list of ``{"type": "text"}`` parts)
  and ``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments": JSON
  text}}]``); tool results are ``{"role": "tool", "tool_call_id", "content"}`` messages.
  https://platform.openai.com/docs/api-reference/chat/create
- **Anthropic Messages** (``POST …/v1/messages``; on Vertex AI
  ``…/publishers/anthropic/models/{model}:rawPredict`` / ``:streamRawPredict``, on Amazon Bedrock
  ``…/model/{modelId}/invoke`` / ``/invoke-with-response-stream``, the model in the path — see
  :func:`model_path`): ``messages`` whose assistant ``content`` is a
  string or blocks ``{"type": "text", "text"}`` / ``{"type": "tool_use", "id", "name", "input"}``;
  tool results are ``{"type": "tool_result", "tool_use_id", "content"}`` blocks in the next user
  message. https://docs.anthropic.com/en/api/messages

Recorded *outputs* come from ``gen_ai.output.messages`` (OpenTelemetry GenAI semantic conventions,
message/parts schema: ``[{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call",
"id", "name", "arguments"}], "finish_reason"}]``), one message per choice.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from spanreel.instrumentation._anthropic import BEDROCK_MESSAGES, MESSAGES
from spanreel.instrumentation._apis import route

__all__ = [
    "ApiShape",
    "AssistantTurn",
    "ModelOutput",
    "Substitution",
    "ToolCall",
    "ToolResultFn",
    "assistant_turns",
    "canonical_arguments",
    "detect_shape",
    "model_path",
    "outputs_from_attribute",
    "same_arguments",
    "shape_of_path",
    "substitute_turn",
    "tool_call_divergences",
    "turn_matches",
]


class ApiShape(Enum):
    """The provider APIs (request body and response shapes) replay understands."""

    OPENAI_CHAT = "openai.chat_completions"
    ANTHROPIC_MESSAGES = "anthropic.messages"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call requested by a model: ``id`` (provider's call id, may be ``None``), tool
    ``name`` and ``arguments`` (parsed JSON when the recorded text was JSON, else the text)."""

    id: str | None
    name: str
    arguments: Any

    def label(self) -> str:
        """``name({...})`` with arguments as compact, key-sorted JSON."""
        return f"{self.name}({canonical_arguments(self.arguments)})"


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """One choice of a model's answer: ``text`` (text parts joined, ``None`` when there were none),
    ``tool_calls`` in order and the ``finish_reason``."""

    text: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.text or "").strip() and not self.tool_calls


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    """An assistant message inside a request body: its position in ``messages`` and its content."""

    message_index: int
    output: ModelOutput


#: ``(tool call the replayed model asked for, recorded result or None) -> result text``: supplies
#: tool results when the replayed output diverges from the recording (``--tool-hook``).
ToolResultFn = Callable[[ToolCall, "str | None"], str]


@dataclass
class Substitution:
    """The outcome of :func:`substitute_turn`: ``applied`` is ``False`` when the recorded turn was
    kept (``divergences`` says why); ``divergences`` lists every difference that could matter."""

    applied: bool
    divergences: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def _parse_args(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def canonical_arguments(value: Any) -> str:
    """Tool-call arguments as compact, key-sorted JSON (text that is not JSON stays as is)."""
    parsed = _parse_args(value)
    if isinstance(parsed, str):
        return parsed
    return json.dumps(parsed, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def same_arguments(a: Any, b: Any) -> bool:
    """Whether two tool-call argument values are the same JSON (text or parsed, key order ignored)."""
    return canonical_arguments(a) == canonical_arguments(b)


def _norm_text(text: str | None) -> str:
    return " ".join((text or "").split())


class ModelPath(NamedTuple):
    """What an Anthropic Messages path on Vertex AI or Amazon Bedrock says besides the API."""

    #: the model (Vertex AI) or model id (Bedrock) the path names; the body has no ``model``
    model: str
    #: the path asks for a stream (``:streamRawPredict``, ``/invoke-with-response-stream``); on
    #: Bedrock the body has no ``stream``
    stream: bool
    #: streams come as an AWS event stream (Bedrock), not as server-sent events
    aws_event_stream: bool


def model_path(path: str) -> ModelPath | None:
    """The :class:`ModelPath` of a Vertex AI (``…/publishers/anthropic/models/{model}:rawPredict``
    / ``:streamRawPredict``) or Amazon Bedrock (``…/model/{modelId}/invoke`` /
    ``/invoke-with-response-stream``) Anthropic Messages path, as the instrumentation routes it;
    ``None`` for any other path."""
    found = route(path)
    if found is None or found.api.name != MESSAGES.name or not found.path_model:
        return None
    return ModelPath(unquote(found.path_model), found.path_stream, found.api is BEDROCK_MESSAGES)


def shape_of_path(path: str) -> ApiShape | None:
    """The API of a request by its URL path: ``…/chat/completions`` → OpenAI Chat Completions,
    ``…/messages`` and the Vertex AI and Bedrock paths of :func:`model_path` → Anthropic
    Messages, anything else ``None``.

    Any prefix works (``/v1``, Azure's ``/openai/deployments/NAME``, gateways)."""
    trimmed = path.rstrip("/")
    if trimmed.endswith("/chat/completions") or trimmed == "chat/completions":
        return ApiShape.OPENAI_CHAT
    if trimmed.endswith("/messages") and not trimmed.endswith("/batches/messages"):
        return ApiShape.ANTHROPIC_MESSAGES
    if model_path(trimmed) is not None:
        return ApiShape.ANTHROPIC_MESSAGES
    return None


def detect_shape(body: Any, url: str | None = None, provider: str | None = None) -> ApiShape | None:
    """The wire shape of a recorded request body, or ``None`` when it is neither (embeddings,
    Responses API, Gemini …).

    In order: the URL path (:func:`shape_of_path`; ``provider`` ``anthropic``, the
    ``gen_ai.provider.name``, counts as an Anthropic path), then the body: a top-level
    ``system`` or ``anthropic_version`` (Bedrock, Vertex AI) or a ``claude…`` model is Anthropic,
    anything else with ``messages`` OpenAI."""
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return None
    by_path = shape_of_path(urlsplit(url).path) if url else None
    if by_path is ApiShape.ANTHROPIC_MESSAGES or provider == "anthropic":
        return ApiShape.ANTHROPIC_MESSAGES
    if by_path is not None:
        return by_path
    model = body.get("model")
    claude = isinstance(model, str) and model.startswith("claude")
    if claude or "system" in body or "anthropic_version" in body:
        return ApiShape.ANTHROPIC_MESSAGES
    return ApiShape.OPENAI_CHAT


# --------------------------------------------------------------------------- outputs


def outputs_from_attribute(value: Any) -> list[ModelOutput]:
    """``gen_ai.output.messages`` (JSON text or parsed list) → one :class:`ModelOutput` per
    message (choice). Unreadable values give ``[]``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    outputs: list[ModelOutput] = []
    for message in value:
        if not isinstance(message, Mapping):
            continue
        texts: list[str] = []
        calls: list[ToolCall] = []
        for part in message.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                calls.append(
                    ToolCall(
                        id=str(part["id"]) if part.get("id") else None,
                        name=str(part.get("name") or ""),
                        arguments=_parse_args(part.get("arguments")),
                    )
                )
        finish = message.get("finish_reason")
        outputs.append(
            ModelOutput(
                text="\n".join(texts) if texts else None,
                tool_calls=tuple(calls),
                finish_reason=str(finish) if finish is not None else None,
            )
        )
    return outputs


# --------------------------------------------------------------------------- request bodies


def _openai_turn(message: Mapping[str, Any]) -> ModelOutput:
    content = message.get("content")
    text: str | None
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces = [
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        ]
        text = "".join(pieces) if pieces else None
    else:
        text = None
    calls: list[ToolCall] = []
    for call in message.get("tool_calls") or ():
        if not isinstance(call, Mapping):
            continue
        fn = call.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        calls.append(
            ToolCall(
                id=str(call["id"]) if call.get("id") else None,
                name=str(fn.get("name") or ""),
                arguments=_parse_args(fn.get("arguments")),
            )
        )
    return ModelOutput(text, tuple(calls))


def _anthropic_turn(message: Mapping[str, Any]) -> ModelOutput:
    content = message.get("content")
    if isinstance(content, str):
        return ModelOutput(content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                ToolCall(
                    id=str(block["id"]) if block.get("id") else None,
                    name=str(block.get("name") or ""),
                    arguments=block.get("input"),
                )
            )
    return ModelOutput("".join(texts) if texts else None, tuple(calls))


def assistant_turns(body: Any, shape: ApiShape) -> list[AssistantTurn]:
    """The assistant messages of a request body, in order (``[]`` when there are none)."""
    messages = body.get("messages") if isinstance(body, Mapping) else None
    turns: list[AssistantTurn] = []
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        output = _openai_turn(message) if shape is ApiShape.OPENAI_CHAT else _anthropic_turn(message)
        turns.append(AssistantTurn(i, output))
    return turns


def turn_matches(turn: ModelOutput, recorded: ModelOutput) -> bool:
    """Whether an assistant message in a later request is ``recorded`` (an earlier call's output):
    the same tool call ids, else the same tool calls (names and arguments), else the same non-empty
    text (whitespace-insensitive)."""
    if turn.tool_calls and recorded.tool_calls:
        turn_ids = {c.id for c in turn.tool_calls if c.id}
        if turn_ids and turn_ids & {c.id for c in recorded.tool_calls if c.id}:
            return True
        return len(turn.tool_calls) == len(recorded.tool_calls) and all(
            a.name == b.name and same_arguments(a.arguments, b.arguments)
            for a, b in zip(turn.tool_calls, recorded.tool_calls, strict=True)
        )
    if turn.tool_calls or recorded.tool_calls:
        return False
    text = _norm_text(turn.text)
    return bool(text) and text == _norm_text(recorded.text)


def tool_call_divergences(recorded: ModelOutput, new: ModelOutput) -> list[str]:
    """Human-readable differences between the tool calls of a recorded and a replayed output
    (``[]`` when the same tools were called with the same arguments; call ids are ignored)."""
    out: list[str] = []
    for k in range(max(len(recorded.tool_calls), len(new.tool_calls))):
        old = recorded.tool_calls[k] if k < len(recorded.tool_calls) else None
        cur = new.tool_calls[k] if k < len(new.tool_calls) else None
        if old is not None and cur is not None:
            if old.name != cur.name or not same_arguments(old.arguments, cur.arguments):
                out.append(
                    f"tool call {k + 1}: replay asked for {cur.label()}, the recording for {old.label()}"
                )
        elif old is not None:
            out.append(f"tool call {k + 1}: the recording called {old.label()}, the replay did not")
        elif cur is not None:
            out.append(
                f"tool call {k + 1}: the replay asked for {cur.label()}, which the recording did not call"
            )
    return out


# --------------------------------------------------------------------------- substitution


def _openai_message(original: Mapping[str, Any], new: ModelOutput) -> dict[str, Any]:
    message = {k: v for k, v in original.items() if k not in ("content", "tool_calls", "refusal")}
    message["role"] = "assistant"
    message["content"] = new.text
    if new.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in new.tool_calls
        ]
    return message


def _anthropic_message(original: Mapping[str, Any], new: ModelOutput) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    if new.text:
        blocks.append({"type": "text", "text": new.text})
    for call in new.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _parse_args(call.arguments)}
        )
    return {**original, "role": "assistant", "content": blocks}


def _result_text(content: Any) -> str | None:
    if content is None:
        return None
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False)


def _fallback_result(call: ToolCall) -> str:
    return json.dumps({"error": f"no recorded result for tool call {call.label()} (spanreel replay)"})


def substitute_turn(
    body: dict[str, Any],
    shape: ApiShape,
    message_index: int,
    recorded: ModelOutput,
    new: ModelOutput,
    tool_results: ToolResultFn | None = None,
) -> Substitution:
    """Replace, in ``body`` (mutated), the assistant message at ``message_index`` — which holds
    ``recorded`` — by the replayed output ``new``, and re-wire the tool results that follow it.

    Tool results: the k-th recorded result answers the k-th new tool call (its id is rewritten).
    When the replay asked for a different call (name/arguments) the recorded result is reused —
    or ``tool_results(call, recorded_result)`` supplies one — and the divergence is reported. A
    new call without a recorded result gets ``tool_results``' answer or an error JSON text; a
    recorded result without a new call is dropped. When the replay made no tool call where the
    recording made some, the recorded turn and its results are kept (``applied`` is ``False``).
    """
    messages: list[Any] = body["messages"]
    original = messages[message_index]
    result = Substitution(applied=False)
    if recorded.tool_calls and not new.tool_calls:
        names = ", ".join(c.label() for c in recorded.tool_calls)
        result.divergences.append(
            f"the replay answered without the tool call(s) the recording made ({names}); "
            "the recorded tool call and result were kept in the later request"
        )
        return result
    result.divergences.extend(tool_call_divergences(recorded, new))
    build = _openai_message if shape is ApiShape.OPENAI_CHAT else _anthropic_message
    messages[message_index] = build(original, new)
    result.applied = True
    if not recorded.tool_calls and not new.tool_calls:
        return result
    rewiring = _Rewiring([c.id for c in recorded.tool_calls], new, tool_results, result.divergences)
    if shape is ApiShape.OPENAI_CHAT:
        _rewire_openai(messages, message_index, rewiring)
    else:
        _rewire_anthropic(messages, message_index, rewiring)
    return result


@dataclass
class _Rewiring:
    """The tool results that follow a substituted assistant turn: the k-th recorded call's result
    (matched by call id) answers the k-th new call; see :func:`substitute_turn`."""

    old_ids: Sequence[str | None]
    new: ModelOutput
    tool_results: ToolResultFn | None
    divergences: list[str]
    seen: set[int] = field(default_factory=set)

    def _answer(self, k: int, recorded_text: str | None) -> str:
        call = self.new.tool_calls[k]
        if self.tool_results is not None:
            return self.tool_results(call, recorded_text)
        return recorded_text if recorded_text is not None else _fallback_result(call)

    def rewire(self, call_id: Any, content: Any) -> tuple[str | None, str] | bool:
        """What becomes of a tool result (its call id and content) after the turn: ``True`` keep
        it as is (it answers no recorded call of the turn), ``False`` drop it (the replay did not
        make that call), else the new ``(call id, content)``."""
        k = next((k for k, old in enumerate(self.old_ids) if old is not None and old == call_id), None)
        if k is None:
            return True
        if k >= len(self.new.tool_calls):
            self.divergences.append(
                f"dropped the recorded result of tool call {k + 1} (the replay did not call it)"
            )
            return False
        self.seen.add(k)
        return self.new.tool_calls[k].id, self._answer(k, _result_text(content))

    def missing(self) -> list[tuple[str | None, str]]:
        """``(call id, content)`` for each new call without a recorded result, in call order."""
        return [
            (call.id, self._answer(k, None))
            for k, call in enumerate(self.new.tool_calls)
            if k not in self.seen
        ]


def _rewire_openai(messages: list[Any], at: int, rewiring: _Rewiring) -> None:
    i = at + 1
    last = at
    while i < len(messages):
        message = messages[i]
        if not isinstance(message, Mapping) or message.get("role") != "tool":
            break
        fate = rewiring.rewire(message.get("tool_call_id"), message.get("content"))
        if fate is False:
            del messages[i]
            continue
        if fate is not True:
            replacement = copy.deepcopy(dict(message))
            replacement["tool_call_id"], replacement["content"] = fate
            messages[i] = replacement
        last = i
        i += 1
    for call_id, content in rewiring.missing():
        last += 1
        messages.insert(last, {"role": "tool", "tool_call_id": call_id, "content": content})


def _rewire_anthropic(messages: list[Any], at: int, rewiring: _Rewiring) -> None:
    nxt = at + 1
    blocks: list[Any] = []
    if nxt < len(messages) and isinstance(messages[nxt], Mapping) and messages[nxt].get("role") == "user":
        content = messages[nxt].get("content")
        blocks = list(content) if isinstance(content, list) else []
    else:
        messages.insert(nxt, {"role": "user", "content": []})
    out_blocks: list[Any] = []
    for block in blocks:
        if isinstance(block, Mapping) and block.get("type") == "tool_result":
            fate = rewiring.rewire(block.get("tool_use_id"), block.get("content"))
            if fate is False:
                continue
            if fate is not True:
                call_id, text = fate
                out_blocks.append({**block, "tool_use_id": call_id, "content": text})
                continue
        out_blocks.append(block)
    missing = [
        {"type": "tool_result", "tool_use_id": call_id, "content": text}
        for call_id, text in rewiring.missing()
    ]
    message = dict(messages[nxt])
    if not blocks and isinstance(message.get("content"), str):
        out_blocks.append({"type": "text", "text": message["content"]})
    seen = len(rewiring.seen)
    message["content"] = [*out_blocks[:seen], *missing, *out_blocks[seen:]] if missing else out_blocks
    messages[nxt] = message
