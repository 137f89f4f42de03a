"""Attribute names and values of other GenAI instrumentations ("peers"), in one place.

spanreel normalises their spans into the same GenAI columns as its own (see
:mod:`spanreel.collector._normalise` and ``shared/reference/peer-conventions.md``). The OTel GenAI
names come from ``opentelemetry.semconv``; the peer names below are copied from each project's
own constants (the runtime does not depend on the peer packages) and
``tests/test_collector_peers.py`` checks them against those packages where they are installed:

- OpenInference (Arize): ``openinference.semconv.trace`` (``SpanAttributes``, ``MessageAttributes``,
  ``ToolCallAttributes``, ``MessageContentAttributes``, ``OpenInferenceSpanKindValues``,
  ``OpenInferenceLLMProviderValues``, ``OpenInferenceLLMSystemValues``).
- OpenLLMetry (Traceloop): ``opentelemetry.semconv_ai.SpanAttributes``. Up to 0.54 it writes
  indexed ``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*`` and ``llm.request.type``; from
  0.55 the OTel names (``gen_ai.input.messages`` …).
- OpenLIT: ``openlit.semcov.SemanticConvention`` (OTel names since 1.36.9, plus
  ``gen_ai.usage.cost``).
- MLflow tracing: ``mlflow.tracing.constant`` (``SpanAttributeKey``, ``TokenUsageKey``,
  ``CostKey``, ``SpanType``). MLflow JSON-encodes every attribute value (a string arrives as
  ``"\\"LLM\\""``).
- The ``anthropic`` SDK's own call span (``anthropic._tracing.SPAN_ATTRIBUTES``, scope
  ``com.anthropic.sdk.python``): OTel names, plus the stop reason under an ``anthropic.*`` name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

_OP = GenAiOperationNameValues
_PROVIDER = GenAiProviderNameValues

# -- OpenInference ---------------------------------------------------------------------------
OI_SPAN_KIND: Final = "openinference.span.kind"
OI_LLM_PROVIDER: Final = "llm.provider"
OI_LLM_SYSTEM: Final = "llm.system"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_REQUEST_MODEL_NAME: Final = "llm.request.model_name"
OI_LLM_RESPONSE_MODEL_NAME: Final = "llm.response.model_name"
OI_EMBEDDING_MODEL_NAME: Final = "embedding.model_name"
OI_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OI_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OI_FINISH_REASON: Final = "llm.finish_reason"
OI_COST_TOTAL: Final = "llm.cost.total"
OI_INPUT_MESSAGES: Final = "llm.input_messages"
OI_OUTPUT_MESSAGES: Final = "llm.output_messages"
OI_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"
OI_EMBEDDING_INVOCATION_PARAMETERS: Final = "embedding.invocation_parameters"
#: legacy Completions: indexed ``llm.prompts.{i}.prompt.text`` / ``llm.choices.{i}.completion.text``
#: (releases before the indexed form wrote ``llm.prompts`` as a list of strings)
OI_PROMPTS: Final = "llm.prompts"
OI_CHOICES: Final = "llm.choices"
OI_PROMPT_TEXT: Final = "prompt.text"
OI_COMPLETION_TEXT: Final = "completion.text"
# relative keys inside one indexed message: llm.input_messages.{i}.<key>
OI_MESSAGE_ROLE: Final = "message.role"
OI_MESSAGE_CONTENT: Final = "message.content"
OI_MESSAGE_CONTENTS: Final = "message.contents"
OI_MESSAGE_NAME: Final = "message.name"
OI_MESSAGE_TOOL_CALLS: Final = "message.tool_calls"
OI_MESSAGE_TOOL_CALL_ID: Final = "message.tool_call_id"
OI_MESSAGE_CONTENT_TYPE: Final = "message_content.type"
OI_MESSAGE_CONTENT_TEXT: Final = "message_content.text"
OI_MESSAGE_CONTENT_IMAGE_URL: Final = "message_content.image.image.url"
OI_TOOL_CALL_ID: Final = "tool_call.id"
OI_TOOL_CALL_FUNCTION_NAME: Final = "tool_call.function.name"
OI_TOOL_CALL_FUNCTION_ARGUMENTS: Final = "tool_call.function.arguments"

#: ``openinference.span.kind`` values that are model calls → ``gen_ai.operation.name``.
#: (LLM is refined to text_completion when the span carries ``llm.prompts`` instead of messages.)
OI_KIND_OPERATIONS: Final[Mapping[str, str]] = {
    "LLM": _OP.CHAT.value,
    "EMBEDDING": _OP.EMBEDDINGS.value,
}

#: ``llm.provider`` / ``llm.system`` values whose OTel ``gen_ai.provider.name`` is spelled differently.
OI_PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "azure": _PROVIDER.AZURE_AI_OPENAI.value,
    "aws": _PROVIDER.AWS_BEDROCK.value,
    "google": _PROVIDER.GCP_GEN_AI.value,
    "vertexai": _PROVIDER.GCP_VERTEX_AI.value,
    "mistralai": _PROVIDER.MISTRAL_AI.value,
    "xai": _PROVIDER.X_AI.value,
}

# -- OpenLLMetry (Traceloop) ----------------------------------------------------------------
LLMETRY_REQUEST_TYPE: Final = "llm.request.type"
LLMETRY_PROMPTS: Final = "gen_ai.prompt"
LLMETRY_COMPLETIONS: Final = "gen_ai.completion"
LLMETRY_SESSION_ID: Final = "traceloop.association.properties.session_id"
# relative keys inside one indexed message: gen_ai.prompt.{i}.<key>
LLMETRY_ROLE: Final = "role"
LLMETRY_CONTENT: Final = "content"
LLMETRY_FINISH_REASON: Final = "finish_reason"
LLMETRY_TOOL_CALL_ID_OF_MESSAGE: Final = "tool_call_id"
LLMETRY_TOOL_CALLS: Final = "tool_calls"
LLMETRY_TOOL_CALL_ID: Final = "id"
LLMETRY_TOOL_CALL_NAME: Final = "name"
LLMETRY_TOOL_CALL_ARGUMENTS: Final = "arguments"

#: ``llm.request.type`` values (OpenLLMetry's ``LLMRequestTypeValues``) → ``gen_ai.operation.name``.
LLMETRY_REQUEST_TYPE_OPERATIONS: Final[Mapping[str, str]] = {
    "chat": _OP.CHAT.value,
    "completion": _OP.TEXT_COMPLETION.value,
    "embedding": _OP.EMBEDDINGS.value,
}

# -- OpenLIT ---------------------------------------------------------------------------------
OPENLIT_USAGE_COST: Final = "gen_ai.usage.cost"

# -- MLflow ----------------------------------------------------------------------------------
MLFLOW_SPAN_TYPE: Final = "mlflow.spanType"
MLFLOW_SPAN_INPUTS: Final = "mlflow.spanInputs"
MLFLOW_SPAN_OUTPUTS: Final = "mlflow.spanOutputs"
MLFLOW_MODEL: Final = "mlflow.llm.model"
MLFLOW_PROVIDER: Final = "mlflow.llm.provider"
MLFLOW_TOKEN_USAGE: Final = "mlflow.chat.tokenUsage"
MLFLOW_COST: Final = "mlflow.llm.cost"
MLFLOW_MESSAGE_FORMAT: Final = "mlflow.message.format"
MLFLOW_TRACE_SESSION: Final = "mlflow.trace.session"
# keys inside the JSON values
MLFLOW_USAGE_INPUT_TOKENS: Final = "input_tokens"
MLFLOW_USAGE_OUTPUT_TOKENS: Final = "output_tokens"
MLFLOW_COST_TOTAL: Final = "total_cost"

#: ``mlflow.message.format`` values (the autolog flavour that wrote the span) naming a provider SDK;
#: a last resort for ``provider`` when MLflow recorded no ``mlflow.llm.provider``. Framework
#: flavours (langchain, dspy …) say nothing about the provider and are not listed.
MLFLOW_MESSAGE_FORMAT_PROVIDERS: Final[Mapping[str, str]] = {
    "openai": _PROVIDER.OPENAI.value,
    "anthropic": _PROVIDER.ANTHROPIC.value,
    "gemini": _PROVIDER.GCP_GEMINI.value,
    "bedrock": _PROVIDER.AWS_BEDROCK.value,
    "groq": _PROVIDER.GROQ.value,
    "mistral": _PROVIDER.MISTRAL_AI.value,
}

#: ``mlflow.spanType`` values (``mlflow.entities.SpanType``) that are model calls.
MLFLOW_SPAN_TYPE_OPERATIONS: Final[Mapping[str, str]] = {
    "CHAT_MODEL": _OP.CHAT.value,
    "LLM": _OP.TEXT_COMPLETION.value,
    "EMBEDDING": _OP.EMBEDDINGS.value,
}

# -- the anthropic SDK's own call span (anthropic.messages.create) ----------------------------
#: Anthropic's ``stop_reason`` as the SDK's span records it (no ``gen_ai.response.finish_reasons``).
ANTHROPIC_STOP_REASON: Final = "anthropic.message.stop_reason"

__all__ = [name for name in dir() if name.isupper() and not name.startswith("_")]
