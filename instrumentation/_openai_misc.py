"""OpenAI legacy Completions (``text_completion``) and Embeddings (``embeddings``) ↔ GenAI
semantic conventions (pure functions).

Legacy completions (``POST …/completions`` with a ``prompt``): the prompt becomes one user input
message per prompt string; choices' ``text`` the output messages; streamed chunks carry
``choices[].text``. Embeddings (``POST …/embeddings`` with an ``input``): request model,
``gen_ai.request.encoding_formats``, ``gen_ai.embeddings.dimension_count`` (requested, else the
length of the first returned vector, also a base64 one), ``gen_ai.usage.input_tokens``; vectors are
never recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from ._common import Api, Attributes, Content, Parsed, RequestParts, integer, string, text_part
from ._openai import ChatStreamAccumulator, choices_response, set_sampling_attributes, usage_attributes

OPERATION_TEXT_COMPLETION = ga.GenAiOperationNameValues.TEXT_COMPLETION.value
OPERATION_EMBEDDINGS = ga.GenAiOperationNameValues.EMBEDDINGS.value


def _prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    if isinstance(prompt, str):
        return [{"role": "user", "parts": [text_part(prompt)]}]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return [{"role": "user", "parts": [text_part(p)]} for p in prompt]
    # token ids (a list of ints, or a list of such lists): kept as sent
    return [{"role": "user", "parts": [{"type": "tokens", "content": prompt}]}]


def completions_request(
    body: Mapping[str, Any], path_model: str | None, capture_content: bool
) -> RequestParts:
    """A legacy Completions request → :class:`RequestParts` (operation ``text_completion``)."""
    model = string(body.get("model")) or path_model
    attrs: Attributes = {}
    if model:
        attrs[ga.GEN_AI_REQUEST_MODEL] = model
    set_sampling_attributes(attrs, body)
    stream = body.get("stream") is True
    attrs[ga.GEN_AI_REQUEST_STREAM] = stream
    content: Content = {}
    if capture_content:
        content[ga.GEN_AI_INPUT_MESSAGES] = _prompt_messages(body.get("prompt"))
    return RequestParts(OPERATION_TEXT_COMPLETION, model, stream, attrs, content)


def embeddings_request(
    body: Mapping[str, Any], path_model: str | None, capture_content: bool
) -> RequestParts:
    """An Embeddings request → :class:`RequestParts` (operation ``embeddings``). The input texts
    are not put in GenAI attributes (the spec defines none); with content capture on they are
    in ``spanreel.request.body``."""
    model = string(body.get("model")) or path_model
    attrs: Attributes = {}
    if model:
        attrs[ga.GEN_AI_REQUEST_MODEL] = model
    fmt = string(body.get("encoding_format"))
    attrs[ga.GEN_AI_REQUEST_ENCODING_FORMATS] = [fmt or "float"]
    dims = integer(body.get("dimensions"))
    if dims is not None:
        attrs[ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
    return RequestParts(OPERATION_EMBEDDINGS, model, False, attrs, {})


def embeddings_response(body: Any, capture_content: bool) -> Parsed:
    """An Embeddings ``list`` response → model, input tokens, dimension count."""
    if not isinstance(body, Mapping):
        return Parsed()
    attrs: Attributes = {}
    model = string(body.get("model"))
    if model:
        attrs[ga.GEN_AI_RESPONSE_MODEL] = model
    usage = body.get("usage")
    if isinstance(usage, Mapping):
        tokens = integer(usage.get("prompt_tokens"))
        if tokens is None:
            tokens = integer(usage.get("input_tokens"))
        if tokens is not None:
            attrs[ga.GEN_AI_USAGE_INPUT_TOKENS] = tokens
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        vector = data[0].get("embedding")
        if isinstance(vector, list):
            attrs[ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(vector)
        elif isinstance(vector, str) and vector:
            # encoding_format "base64" (the openai SDK's default): little-endian float32 values
            attrs[ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(vector.rstrip("=")) * 3 // 4 // 4
    return Parsed(attrs)


class _NoStream:
    """Embeddings never stream; an SSE answer is passed through unparsed."""

    __slots__ = ("error_event", "error_message", "error_type")

    def __init__(self) -> None:
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.error_event: Any = None

    def add(self, data: str, event: str = "message") -> bool:
        return False

    def result(self, capture_content: bool) -> Parsed:
        return Parsed()


COMPLETIONS = Api(
    name="openai.completions",
    accepts=lambda body: "prompt" in body,
    request=completions_request,
    response=choices_response,
    stream=ChatStreamAccumulator,
)
"""OpenAI legacy Completions (``POST …/completions``)."""

EMBEDDINGS = Api(
    name="openai.embeddings",
    accepts=lambda body: "input" in body,
    request=embeddings_request,
    response=embeddings_response,
    stream=_NoStream,
)
"""OpenAI Embeddings (``POST …/embeddings``)."""

__all__ = ["COMPLETIONS", "EMBEDDINGS", "usage_attributes"]
