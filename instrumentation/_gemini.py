"""Gemini REST ``models/{model}:generateContent`` / ``:streamGenerateContent`` ↔ GenAI semantic
conventions (pure functions). Operation ``generate_content``; the model comes from the URL path.

Request: ``contents`` (parts ``text``, ``inlineData``, ``fileData``, ``functionCall``,
``functionResponse``; role ``model`` → ``assistant``) → ``gen_ai.input.messages``;
``systemInstruction`` → ``gen_ai.system_instructions``; ``tools[].functionDeclarations`` →
``gen_ai.tool.definitions``; ``generationConfig`` (``temperature``, ``topP``, ``topK``,
``maxOutputTokens``, ``stopSequences``, ``candidateCount``, ``seed``, ``presencePenalty``,
``frequencyPenalty``, ``responseMimeType``) → ``gen_ai.request.*``. The REST API accepts
camelCase and snake_case field names; both are read.

Response: ``candidates`` (one output message each, with its ``finishReason``; the code execution
tool's ``executableCode`` / ``codeExecutionResult`` parts, which Google runs, as
``server_tool_call`` / ``server_tool_call_response`` parts),
``usageMetadata`` (``promptTokenCount`` + ``toolUsePromptTokenCount`` → input, ``candidatesTokenCount`` +
``thoughtsTokenCount`` → output, ``cachedContentTokenCount``, ``thoughtsTokenCount``, the
``AUDIO`` entries of the ``…TokensDetails`` lists),
``modelVersion``, ``responseId``. A stream (``?alt=sse`` events, or a JSON array) is a sequence
of such responses whose candidate parts are concatenated; the last usage wins.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from spanreel._attributes import (
    SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS,
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
    integer,
    loads,
    server_tool_call_part,
    server_tool_call_response_part,
    set_integer,
    set_number,
    set_stop_sequences,
    string,
    text_part,
)

OPERATION = ga.GenAiOperationNameValues.GENERATE_CONTENT.value
PROVIDER = ga.GenAiProviderNameValues.GCP_GEMINI.value
_ROLES = {"model": "assistant", "function": "tool"}


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _media(data: Mapping[str, Any], uri: Any = None) -> dict[str, Any]:
    """``modality`` (the MIME type's top-level type, e.g. ``image``) and ``mime_type`` of an
    ``inlineData`` / ``fileData`` part (semconv requires ``modality`` on blob and uri parts). A
    ``fileData`` may omit ``mimeType``: the type is then guessed from its ``uri``'s extension,
    and ``modality`` is ``"unknown"`` when that fails too."""
    mime = _get(data, "mimeType", "mime_type")
    if not isinstance(mime, str) and isinstance(uri, str):
        mime = mimetypes.guess_type(uri, strict=False)[0]
    if not isinstance(mime, str) or not mime:
        return {"modality": "unknown"}
    return {"modality": mime.split("/", 1)[0], "mime_type": mime}


_CODE_EXECUTION = "code_execution"


def _parts(parts: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping):
            continue
        if isinstance(part.get("text"), str):
            if part.get("thought") is True:
                out.append({"type": "reasoning", "content": part["text"]})
            else:
                out.append(text_part(part["text"]))
            continue
        inline = _get(part, "inlineData", "inline_data")
        file_data = _get(part, "fileData", "file_data")
        call = _get(part, "functionCall", "function_call")
        response = _get(part, "functionResponse", "function_response")
        code = _get(part, "executableCode", "executable_code")
        result = _get(part, "codeExecutionResult", "code_execution_result")
        if isinstance(code, Mapping):  # Gemini's code execution tool: Google runs it
            fields = {k: v for k, v in code.items() if k != "id"}
            out.append(server_tool_call_part(code.get("id"), _CODE_EXECUTION, _CODE_EXECUTION, **fields))
        elif isinstance(result, Mapping):
            fields = {k: v for k, v in result.items() if k != "id"}
            out.append(server_tool_call_response_part(result.get("id"), _CODE_EXECUTION, **fields))
        elif isinstance(inline, Mapping):
            out.append({"type": "blob", **_media(inline), "content": inline.get("data")})
        elif isinstance(file_data, Mapping):
            uri = _get(file_data, "fileUri", "file_uri")
            out.append({"type": "uri", **_media(file_data, uri), "uri": uri})
        elif isinstance(call, Mapping):
            out.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": call.get("name"),
                    "arguments": call.get("args"),
                }
            )
        elif isinstance(response, Mapping):
            out.append(
                {
                    "type": "tool_call_response",
                    "id": response.get("id") or response.get("name"),
                    "response": response.get("response"),
                }
            )
        else:
            kind = next(iter(part), "unknown")
            out.append({"type": str(kind), "content": part.get(kind)})
    return out


def input_messages(contents: Any) -> list[dict[str, Any]]:
    """Gemini ``contents`` → semconv input messages (a user turn made only of
    ``functionResponse`` parts gets the role ``tool``)."""
    if isinstance(contents, Mapping):
        contents = [contents]
    out: list[dict[str, Any]] = []
    for item in contents if isinstance(contents, list) else []:
        if not isinstance(item, Mapping):
            continue
        parts = _parts(item.get("parts"))
        role = _ROLES.get(str(item.get("role") or "user"), str(item.get("role") or "user"))
        if role == "user" and parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"
        out.append({"role": role, "parts": parts})
    return out


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """``tools[].functionDeclarations`` → function definitions; other tools (``googleSearch``,
    ``codeExecution`` …) → ``{"type": name}``."""
    defs: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        for key, value in tool.items():
            if key in ("functionDeclarations", "function_declarations") and isinstance(value, list):
                for fn in value:
                    if isinstance(fn, Mapping):
                        entry: dict[str, Any] = {"type": "function", "name": fn.get("name")}
                        if "description" in fn:
                            entry["description"] = fn["description"]
                        params = fn.get("parameters") or _get(
                            fn, "parametersJsonSchema", "parameters_json_schema"
                        )
                        if params is not None:
                            entry["parameters"] = params
                        defs.append(entry)
            else:
                defs.append({"type": key})
    return defs


def generate_request(body: Mapping[str, Any], path_model: str | None, capture_content: bool) -> RequestParts:
    """A ``generateContent`` body → :class:`RequestParts`; ``path_model`` is the URL's model
    (``stream`` is decided by the URL too: the caller sets it for ``:streamGenerateContent``)."""
    model = path_model or string(body.get("model"))
    attrs: Attributes = {ga.GEN_AI_REQUEST_STREAM: False}
    if model:
        attrs[ga.GEN_AI_REQUEST_MODEL] = model
    config = _get(body, "generationConfig", "generation_config")
    if isinstance(config, Mapping):
        set_number(attrs, ga.GEN_AI_REQUEST_TEMPERATURE, config.get("temperature"))
        set_number(attrs, ga.GEN_AI_REQUEST_TOP_P, _get(config, "topP", "top_p"))
        set_number(attrs, ga.GEN_AI_REQUEST_TOP_K, _get(config, "topK", "top_k"))
        set_number(
            attrs, ga.GEN_AI_REQUEST_PRESENCE_PENALTY, _get(config, "presencePenalty", "presence_penalty")
        )
        set_number(
            attrs, ga.GEN_AI_REQUEST_FREQUENCY_PENALTY, _get(config, "frequencyPenalty", "frequency_penalty")
        )
        set_integer(attrs, ga.GEN_AI_REQUEST_MAX_TOKENS, _get(config, "maxOutputTokens", "max_output_tokens"))
        set_integer(attrs, ga.GEN_AI_REQUEST_SEED, config.get("seed"))
        set_stop_sequences(attrs, _get(config, "stopSequences", "stop_sequences"))
        count = integer(_get(config, "candidateCount", "candidate_count"))
        if count is not None and count != 1:
            attrs[ga.GEN_AI_REQUEST_CHOICE_COUNT] = count
        mime = _get(config, "responseMimeType", "response_mime_type")
        if isinstance(mime, str):
            attrs[ga.GEN_AI_OUTPUT_TYPE] = "json" if mime == "application/json" else "text"
    content: Content = {}
    if capture_content:
        content[ga.GEN_AI_INPUT_MESSAGES] = input_messages(body.get("contents"))
        system = _get(body, "systemInstruction", "system_instruction")
        if isinstance(system, Mapping):
            content[ga.GEN_AI_SYSTEM_INSTRUCTIONS] = _parts(system.get("parts"))
        elif isinstance(system, str):
            content[ga.GEN_AI_SYSTEM_INSTRUCTIONS] = [text_part(system)]
        defs = tool_definitions(body.get("tools"))
        if defs:
            content[ga.GEN_AI_TOOL_DEFINITIONS] = defs
    return RequestParts(OPERATION, model, False, attrs, content)


def usage_attributes(usage: Any) -> Attributes:
    """``usageMetadata`` → ``gen_ai.usage.*`` (input includes the tool-use prompt tokens, the
    results of tools Gemini ran such as code execution; output includes thinking tokens: the two
    add up to ``totalTokenCount``) and spanreel's audio token counts (input, output, cached; when
    above zero)."""
    attrs: Attributes = {}
    if not isinstance(usage, Mapping):
        return attrs
    prompt = integer(_get(usage, "promptTokenCount", "prompt_token_count"))
    tool_use = integer(_get(usage, "toolUsePromptTokenCount", "tool_use_prompt_token_count"))
    if prompt is not None or tool_use is not None:
        attrs[ga.GEN_AI_USAGE_INPUT_TOKENS] = (prompt or 0) + (tool_use or 0)
    candidates = integer(_get(usage, "candidatesTokenCount", "candidates_token_count"))
    thoughts = integer(_get(usage, "thoughtsTokenCount", "thoughts_token_count"))
    if candidates is not None or thoughts is not None:
        attrs[ga.GEN_AI_USAGE_OUTPUT_TOKENS] = (candidates or 0) + (thoughts or 0)
    if thoughts is not None:
        attrs[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = thoughts
    set_integer(
        attrs,
        ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        _get(usage, "cachedContentTokenCount", "cached_content_token_count"),
    )
    # Per-modality counts (lists of {modality, tokenCount}): audio is billed at its own rate.
    audio = _audio_tokens(_get(usage, "promptTokensDetails", "prompt_tokens_details")) + _audio_tokens(
        _get(usage, "toolUsePromptTokensDetails", "tool_use_prompt_tokens_details")
    )
    if audio:
        attrs[SPANREEL_USAGE_INPUT_AUDIO_TOKENS] = audio
    audio = _audio_tokens(_get(usage, "candidatesTokensDetails", "candidates_tokens_details"))
    if audio:
        attrs[SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS] = audio
    audio = _audio_tokens(_get(usage, "cacheTokensDetails", "cache_tokens_details"))
    if audio:
        attrs[SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS] = audio
    return attrs


def _audio_tokens(details: Any) -> int:
    """The ``AUDIO`` tokens of a ``ModalityTokenCount`` list (0 when there is none)."""
    total = 0
    if isinstance(details, list):
        for entry in details:
            if isinstance(entry, Mapping) and entry.get("modality") == "AUDIO":
                total += integer(_get(entry, "tokenCount", "token_count")) or 0
    return total


class GenerateStreamAccumulator:
    """Merges a sequence of ``GenerateContentResponse`` objects (a stream, or a non-streamed
    answer as a sequence of one) into span-end attributes."""

    __slots__ = ("_candidates", "_id", "_model", "_usage", "error_event", "error_message", "error_type")

    def __init__(self) -> None:
        self._id: Any = None
        self._model: Any = None
        self._usage: Any = None
        self._candidates: dict[int, dict[str, Any]] = {}
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.error_event: Any = None

    def add(self, data: str, event: str = "message") -> bool:
        """Add one SSE data payload (one JSON response object)."""
        try:
            chunk = loads(data)
        except ValueError:
            return False
        return self.add_object(chunk)

    def add_object(self, chunk: Any) -> bool:
        """Add one parsed response object; ``True`` when it was one."""
        if not isinstance(chunk, Mapping):
            return False
        if "error" in chunk:
            self.error_event = chunk
            self.error_type, self.error_message = error_type_from_body(chunk)
            self.error_type = self.error_type or "error"
            return True
        self._id = self._id or _get(chunk, "responseId", "response_id")
        self._model = _get(chunk, "modelVersion", "model_version") or self._model
        usage = _get(chunk, "usageMetadata", "usage_metadata")
        if isinstance(usage, Mapping):
            self._usage = usage
        feedback = _get(chunk, "promptFeedback", "prompt_feedback")
        block = _get(feedback, "blockReason", "block_reason") if isinstance(feedback, Mapping) else None
        if isinstance(block, str) and block and not chunk.get("candidates"):
            # The prompt was refused: no candidates. error.type as opentelemetry-instrumentation-
            # google-genai spells it (BLOCKED_<reason>), the message from the feedback.
            self.error_type = f"BLOCKED_{block.upper()}"
            message = _get(feedback, "blockReasonMessage", "block_reason_message")
            self.error_message = (
                message if isinstance(message, str) and message else f"prompt blocked: {block}"
            )
        candidates = chunk.get("candidates")
        for position, cand in enumerate(candidates if isinstance(candidates, list) else []):
            if not isinstance(cand, Mapping):
                continue
            index = integer(cand.get("index"))
            state = self._candidates.setdefault(
                position if index is None else index, {"parts": [], "role": "model"}
            )
            content = cand.get("content")
            if isinstance(content, Mapping):
                state["role"] = content.get("role") or state["role"]
                new = content.get("parts")
                for part in new if isinstance(new, list) else []:
                    if not isinstance(part, Mapping):
                        continue
                    last = state["parts"][-1] if state["parts"] else None
                    if (
                        isinstance(last, dict)
                        and isinstance(part.get("text"), str)
                        and isinstance(last.get("text"), str)
                        and bool(last.get("thought")) == bool(part.get("thought"))
                    ):
                        last["text"] += part["text"]  # streamed text pieces are concatenated
                    else:
                        state["parts"].append(dict(part))
            reason = _get(cand, "finishReason", "finish_reason")
            if isinstance(reason, str):
                state["finish_reason"] = reason
        return True

    def result(self, capture_content: bool) -> Parsed:
        """Span-end attributes for what has been received so far."""
        attrs: Attributes = {}
        if string(self._id):
            attrs[ga.GEN_AI_RESPONSE_ID] = self._id
        if string(self._model):
            attrs[ga.GEN_AI_RESPONSE_MODEL] = self._model
        ordered = [self._candidates[i] for i in sorted(self._candidates)]
        reasons = [c["finish_reason"] for c in ordered if "finish_reason" in c]
        if reasons:
            attrs[ga.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        attrs.update(usage_attributes(self._usage))
        content: Content = {}
        if capture_content and ordered:
            messages = []
            for cand in ordered:
                message: dict[str, Any] = {
                    "role": _ROLES.get(cand["role"], cand["role"]),
                    "parts": _parts(cand["parts"]),
                }
                if "finish_reason" in cand:
                    message["finish_reason"] = cand["finish_reason"]
                messages.append(message)
            content[ga.GEN_AI_OUTPUT_MESSAGES] = messages
        return Parsed(attrs, content)


def generate_response(body: Any, capture_content: bool) -> Parsed:
    """A ``GenerateContentResponse`` (or a JSON array of them, as ``:streamGenerateContent``
    without ``alt=sse`` sends) → :class:`Parsed` (with ``error_type`` ``BLOCKED_<reason>`` when
    the prompt was blocked)."""
    acc = GenerateStreamAccumulator()
    for chunk in body if isinstance(body, list) else [body]:
        acc.add_object(chunk)
    parsed = acc.result(capture_content)
    parsed.error_type, parsed.error_message = acc.error_type, acc.error_message
    return parsed


GENERATE_CONTENT = Api(
    name="gemini.generate_content",
    accepts=lambda body: "contents" in body,
    request=generate_request,
    response=generate_response,
    stream=GenerateStreamAccumulator,
    provider=PROVIDER,
)
"""Gemini ``…/models/{model}:generateContent`` and ``:streamGenerateContent``."""
