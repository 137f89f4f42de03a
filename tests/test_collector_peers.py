"""Peer conventions → GenAI columns (pure normalisation), with attribute sets recorded from the
real peer packages (or, where a package cannot be installed beside spanreel, from its source).

The end-to-end tests with the live peer instrumentations are in test_collector_peers_real.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanreel.collector import _peers as peers
from spanreel.collector._normalise import (
    LOOKUP_TABLES,
    attribute_view,
    normalise_cost,
    normalise_messages,
    normalise_row,
)

# Recorded from opentelemetry-instrumentation-openai 0.54.0 (OpenLLMetry, the last release with
# indexed prompt/completion attributes; it cannot be installed beside 0.62 in one environment)
# wrapping openai 3.x against spanreel.fakellm, plus the session property traceloop-sdk adds.
OPENLLMETRY_0_54_CHAT: dict[str, Any] = {
    "llm.request.type": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.temperature": 0.5,
    "llm.headers": "None",
    "llm.is_streaming": False,
    "gen_ai.openai.api_base": "http://127.0.0.1:41969/v1/",
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "be brief",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "hi there",
    "llm.request.reasoning_effort": [],
    "gen_ai.response.model": "gpt-4o-mini",
    "gen_ai.response.id": "chatcmpl-b63acc12f2fae015668da13394b88",
    "gen_ai.openai.system_fingerprint": "fp_spanreel",
    "llm.usage.total_tokens": 53,
    "gen_ai.usage.output_tokens": 49,
    "gen_ai.usage.input_tokens": 4,
    "llm.usage.reasoning_tokens": 0,
    "gen_ai.completion.0.finish_reason": "stop",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "Here is my view.",
    "traceloop.association.properties.session_id": "sess-llmetry",
}

# OpenLLMetry < 0.48 spelled the token counts the deprecated OTel way, and tool calls are indexed
# (chat_wrappers._set_prompts / _set_completions in 0.54.0).
OPENLLMETRY_OLD_TOOL_CALL: dict[str, Any] = {
    "llm.request.type": "chat",
    "gen_ai.system": "Anthropic",
    "gen_ai.request.model": "claude-3-5-haiku",
    "gen_ai.usage.prompt_tokens": 12,
    "gen_ai.usage.completion_tokens": 7,
    "gen_ai.prompt.0.role": "user",
    "gen_ai.prompt.0.content": json.dumps([{"type": "text", "text": "weather in Paris?"}]),
    "gen_ai.prompt.1.role": "assistant",
    "gen_ai.prompt.1.tool_calls.0.id": "call_1",
    "gen_ai.prompt.1.tool_calls.0.name": "get_weather",
    "gen_ai.prompt.1.tool_calls.0.arguments": '{"city": "Paris"}',
    "gen_ai.prompt.2.role": "tool",
    "gen_ai.prompt.2.tool_call_id": "call_1",
    "gen_ai.prompt.2.content": "sunny",
    "gen_ai.completion.0.finish_reason": "tool_calls",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.tool_calls.0.id": "call_2",
    "gen_ai.completion.0.tool_calls.0.name": "get_time",
    "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}',
    "gen_ai.completion.1.finish_reason": "stop",
    "gen_ai.completion.1.content": "It is sunny.",
}

# From openlit's source (sdk/python/src/openlit/instrumentation/openai/utils.py, common_chat_logic,
# and openlit.semcov.SemanticConvention): openlit pins openai<3 and older OpenTelemetry
# packages, so it cannot be installed beside spanreel's test dependencies.
OPENLIT_CHAT: dict[str, Any] = {
    "telemetry.sdk.name": "openlit",
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "deployment.environment": "default",
    "service.name": "default",
    "gen_ai.request.is_stream": False,
    "gen_ai.sdk.version": "3.54.0",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.openai.api.type": "chat_completions",
    "gen_ai.request.seed": 0,
    "gen_ai.request.frequency_penalty": 0.0,
    "gen_ai.request.presence_penalty": 0.0,
    "gen_ai.request.temperature": 1.0,
    "gen_ai.request.top_p": 1.0,
    "gen_ai.request.user": "",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.output.type": "text",
    "gen_ai.usage.input_tokens": 21,
    "gen_ai.usage.output_tokens": 9,
    "gen_ai.client.token.usage": 30,
    "gen_ai.usage.cost": 0.0000315,
    "gen_ai.usage.cache_read.input_tokens": 0,
    "gen_ai.usage.cache_creation.input_tokens": 0,
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
    "gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}]
    ),
}

# Recorded from mlflow-tracing 3.17 (mlflow.openai.autolog(), OTLP export): every value is
# JSON-encoded. The cost and provider keys are written when MLflow knows the model's price /
# provider (mlflow.tracing.constant.SpanAttributeKey.LLM_COST / MODEL_PROVIDER).
MLFLOW_CHAT: dict[str, Any] = {
    "mlflow.traceRequestId": '"tr-fa55771cb8789c44e37022c7e0cfc303"',
    "mlflow.spanType": '"CHAT_MODEL"',
    "mlflow.spanInputs": json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
            "temperature": 0.5,
        }
    ),
    "model": '"gpt-4o-mini"',
    "temperature": "0.5",
    "mlflow.message.format": '"openai"',
    "mlflow.llm.model": '"gpt-4o-mini"',
    "mlflow.llm.provider": '"openai"',
    "mlflow.chat.tokenUsage": '{"input_tokens": 4, "output_tokens": 49, "total_tokens": 53}',
    "mlflow.llm.cost": '{"input_cost": 0.0000006, "output_cost": 0.0000294, "total_cost": 0.00003}',
    "mlflow.spanOutputs": json.dumps(
        {
            "id": "chatcmpl-1",
            "model": "gpt-4o-mini-2024-07-18",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Here is my view.", "tool_calls": None},
                }
            ],
        }
    ),
    "session.id": '"sess-mlflow"',
    "mlflow.spanLogLevel": "20",
}

# Recorded from openinference-instrumentation-openai 0.1.66 (plus a tool call and the cost
# attribute OpenInference defines as llm.cost.total).
OPENINFERENCE_CHAT: dict[str, Any] = {
    "llm.system": "openai",
    "llm.provider": "azure",
    "input.value": '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
    "input.mime_type": "application/json",
    "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.5}',
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "be brief",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.contents.0.message_content.type": "text",
    "llm.input_messages.1.message.contents.0.message_content.text": "hi there",
    "llm.model_name": "gpt-4o-mini-2024-07-18",
    "llm.token_count.total": 53,
    "llm.token_count.prompt": 4,
    "llm.token_count.completion": 49,
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_9",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"q": "x"}',
    "llm.finish_reason": "tool_calls",
    "llm.cost.total": 0.0012,
    "openinference.span.kind": "LLM",
    "session.id": "sess-oi",
}


def _normalised(attrs: dict[str, Any], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    original = json.loads(json.dumps(attrs))
    row = normalise_row({"attributes": attrs, "resource_attributes": resource or {}})
    assert row["attributes"] == original  # original attributes are kept, unchanged
    return row


_COLUMNS = (
    "operation",
    "provider",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "finish_reasons",
    "session_id",
)


def _columns(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in _COLUMNS)


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        pytest.param(
            OPENLLMETRY_0_54_CHAT,
            ("chat", "openai", "gpt-4o-mini", "gpt-4o-mini", 4, 49, ["stop"], "sess-llmetry"),
            id="openllmetry-0.54",
        ),
        pytest.param(
            OPENLLMETRY_OLD_TOOL_CALL,
            ("chat", "anthropic", "claude-3-5-haiku", None, 12, 7, ["tool_calls", "stop"], None),
            id="openllmetry-old-deprecated-names",
        ),
        pytest.param(
            OPENLIT_CHAT,
            ("chat", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 21, 9, ["stop"], None),
            id="openlit",
        ),
        pytest.param(
            MLFLOW_CHAT,
            ("chat", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 4, 49, ["stop"], "sess-mlflow"),
            id="mlflow-json-quoted",
        ),
        pytest.param(
            {
                "openinference.span.kind": "EMBEDDING",
                "embedding.model_name": "text-embedding-3-small",
                "llm.provider": "openai",
                "llm.token_count.prompt": 3,
            },
            ("embeddings", "openai", "text-embedding-3-small", "text-embedding-3-small", 3, None, None, None),
            id="openinference-embeddings",  # embedding.model_name is the response's model too
        ),
        pytest.param(
            OPENINFERENCE_CHAT,
            (
                "chat",
                "azure.ai.openai",
                "gpt-4o-mini-2024-07-18",
                "gpt-4o-mini-2024-07-18",
                4,
                49,
                ["tool_calls"],
                "sess-oi",
            ),
            id="openinference",
        ),
    ],
)
def test_peer_spans_fill_the_genai_columns(attrs: dict[str, Any], expected: tuple[Any, ...]) -> None:
    assert _columns(_normalised(dict(attrs))) == expected


def test_otel_names_win_over_peer_names() -> None:
    row = _normalised(
        {
            gen_ai.GEN_AI_OPERATION_NAME: "embeddings",
            "llm.request.type": "chat",
            "openinference.span.kind": "LLM",
            gen_ai.GEN_AI_PROVIDER_NAME: "openai",
            "llm.provider": "azure",
            gen_ai.GEN_AI_REQUEST_MODEL: "a",
            "llm.model_name": "b",
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 1,
            "llm.token_count.prompt": 2,
            "session.id": "s",
            "traceloop.association.properties.session_id": "t",
        }
    )
    assert (row["operation"], row["provider"], row["request_model"], row["input_tokens"]) == (
        "embeddings",
        "openai",
        "a",
        1,
    )
    assert row["session_id"] == "s"


@pytest.mark.parametrize(
    ("attrs", "operation"),
    [
        ({"openinference.span.kind": "EMBEDDING", "embedding.model_name": "e"}, "embeddings"),
        ({"openinference.span.kind": "LLM", "llm.prompts": ["once upon"]}, "text_completion"),
        ({"openinference.span.kind": "CHAIN"}, None),
        # semconv agent and tool spans are not model calls (an agent span may carry the run's usage)
        ({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 300}, None),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"}, None),
        ({"gen_ai.operation.name": "generate_content"}, "generate_content"),
        ({"openinference.span.kind": "TOOL"}, None),
        ({"llm.request.type": "completion"}, "text_completion"),
        ({"llm.request.type": "embedding"}, "embeddings"),
        ({"llm.request.type": "rerank"}, None),
        ({"traceloop.span.kind": "workflow"}, None),
        ({"mlflow.spanType": '"LLM"'}, "text_completion"),
        ({"mlflow.spanType": '"EMBEDDING"'}, "embeddings"),
        ({"mlflow.spanType": '"CHAIN"', "mlflow.spanOutputs": '{"model": "not-a-model-call"}'}, None),
    ],
)
def test_only_model_calls_get_an_operation(attrs: dict[str, Any], operation: str | None) -> None:
    row = _normalised(attrs)
    assert row["operation"] == operation
    if attrs.get("mlflow.spanType") == '"CHAIN"':
        assert row["response_model"] is None  # a chain's outputs are not read as a model response


@pytest.mark.parametrize(
    ("value", "provider"),
    [
        ("mistralai", "mistral_ai"),
        ("vertexai", "gcp.vertex_ai"),
        ("google", "gcp.gen_ai"),
        ("aws", "aws.bedrock"),
    ],
)
def test_openinference_provider_values_map_to_otel(value: str, provider: str) -> None:
    assert _normalised({"llm.provider": value})["provider"] == provider


def test_mlflow_values_that_are_not_json_are_used_as_is() -> None:
    row = _normalised(
        {"mlflow.spanType": "CHAT_MODEL", "mlflow.llm.model": "plain", "mlflow.chat.tokenUsage": "x"}
    )
    assert (row["operation"], row["request_model"], row["input_tokens"]) == ("chat", "plain", None)


def test_spans_without_genai_attributes_stay_empty() -> None:
    row = _normalised({"http.request.method": "POST", "url.full": "http://x/v1/chat/completions"})
    assert all(row[c] is None for c in _COLUMNS)


@pytest.mark.parametrize(
    "attrs",
    [
        OPENLLMETRY_0_54_CHAT,
        OPENLLMETRY_OLD_TOOL_CALL,
        OPENLIT_CHAT,
        MLFLOW_CHAT,
        OPENINFERENCE_CHAT,
        {gen_ai.GEN_AI_SYSTEM: "Anthropic", gen_ai.GEN_AI_USAGE_PROMPT_TOKENS: 3, "session.id": "s"},
        {"http.request.method": "GET"},
    ],
)
def test_fast_path_gives_the_same_columns_as_every_source(attrs: dict[str, Any]) -> None:
    """normalise_row skips the peer sources for spans with no peer attribute (PEER_KEYS): the
    result must equal trying every source of LOOKUP_TABLES in order."""
    resource = {"session.id": "from-resource"}
    view = attribute_view(attrs)
    expected = {}
    for column, sources in LOOKUP_TABLES.items():
        expected[column] = next((v for v in (s.read(view, resource) for s in sources) if v is not None), None)
    row = normalise_row({"attributes": dict(attrs), "resource_attributes": resource})
    assert {c: row[c] for c in LOOKUP_TABLES} == expected


# -- messages ------------------------------------------------------------------------------------


def _messages(attrs: dict[str, Any]) -> tuple[Any, Any]:
    inputs, outputs = normalise_messages(attrs)
    return (json.loads(inputs) if inputs else None, json.loads(outputs) if outputs else None)


_SEMCONV_IN = [
    {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
    {"role": "user", "parts": [{"type": "text", "content": "hi there"}]},
]


def test_messages_from_openllmetry_indexed_attributes() -> None:
    inputs, outputs = _messages(OPENLLMETRY_0_54_CHAT)
    assert inputs == _SEMCONV_IN
    assert outputs == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Here is my view."}],
            "finish_reason": "stop",
        }
    ]


def test_messages_with_tool_calls_from_openllmetry() -> None:
    inputs, outputs = _messages(OPENLLMETRY_OLD_TOOL_CALL)
    assert inputs == [
        {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
    ]
    assert outputs == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_2", "name": "get_time", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_calls",
        },
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It is sunny."}],
            "finish_reason": "stop",
        },
    ]


def test_messages_from_openinference() -> None:
    inputs, outputs = _messages(OPENINFERENCE_CHAT)
    assert inputs == _SEMCONV_IN
    assert outputs == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"q": "x"}}],
            "finish_reason": "tool_calls",
        }
    ]


def test_messages_from_mlflow() -> None:
    inputs, outputs = _messages(MLFLOW_CHAT)
    assert inputs == _SEMCONV_IN
    assert outputs == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Here is my view."}],
            "finish_reason": "stop",
        }
    ]


def test_semconv_messages_pass_through_compacted() -> None:
    inputs, outputs = _messages(OPENLIT_CHAT)
    assert inputs == json.loads(OPENLIT_CHAT["gen_ai.input.messages"])
    assert outputs is not None and outputs[0]["finish_reason"] == "stop"
    raw_in, _ = normalise_messages(OPENLIT_CHAT)
    assert raw_in is not None and ", " not in raw_in


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"gen_ai.input.messages": "not json", "gen_ai.output.messages": "{}"},
        {"gen_ai.prompt.0.role": 5},
        {"mlflow.spanType": '"CHAT_MODEL"', "mlflow.spanInputs": '{"messages": "nope"}'},
        {"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": 3},
    ],
)
def test_messages_of_odd_spans_never_raise(attrs: dict[str, Any]) -> None:
    inputs, outputs = normalise_messages(attrs)
    assert inputs is None or isinstance(json.loads(inputs), list)
    assert outputs is None


# -- cost ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "cost"),
    [
        ({"spanreel.cost.usd": 0.25, "llm.cost.total": 9.0}, 0.25),  # spanreel's own attribute first
        (OPENINFERENCE_CHAT, 0.0012),
        (OPENLIT_CHAT, 0.0000315),
        (MLFLOW_CHAT, 0.00003),
        ({"llm.cost.total": "0.5"}, 0.5),
        ({"gen_ai.usage.cost": -1.0}, None),
        ({"gen_ai.usage.cost": float("nan")}, None),
        ({"gen_ai.usage.cost": True}, None),
        ({"mlflow.spanType": '"LLM"', "mlflow.llm.cost": '{"input_cost": 1}'}, None),
        ({}, None),
    ],
)
def test_cost_in_usd(attrs: dict[str, Any], cost: float | None) -> None:
    assert normalise_cost(attrs) == (pytest.approx(cost) if cost is not None else None)


# -- the copied constants still match the peer packages ------------------------------------------


def test_openinference_names_match_the_package() -> None:
    trace = pytest.importorskip("openinference.semconv.trace")
    span, message, tool_call, content = (
        trace.SpanAttributes,
        trace.MessageAttributes,
        trace.ToolCallAttributes,
        trace.MessageContentAttributes,
    )
    assert (peers.OI_SPAN_KIND, peers.OI_LLM_PROVIDER, peers.OI_LLM_SYSTEM) == (
        span.OPENINFERENCE_SPAN_KIND,
        span.LLM_PROVIDER,
        span.LLM_SYSTEM,
    )
    assert (peers.OI_LLM_MODEL_NAME, peers.OI_LLM_REQUEST_MODEL_NAME, peers.OI_LLM_RESPONSE_MODEL_NAME) == (
        span.LLM_MODEL_NAME,
        span.LLM_REQUEST_MODEL_NAME,
        span.LLM_RESPONSE_MODEL_NAME,
    )
    assert (peers.OI_TOKEN_COUNT_PROMPT, peers.OI_TOKEN_COUNT_COMPLETION, peers.OI_COST_TOTAL) == (
        span.LLM_TOKEN_COUNT_PROMPT,
        span.LLM_TOKEN_COUNT_COMPLETION,
        span.LLM_COST_TOTAL,
    )
    assert (peers.OI_FINISH_REASON, peers.OI_EMBEDDING_MODEL_NAME, peers.OI_PROMPTS) == (
        span.LLM_FINISH_REASON,
        span.EMBEDDING_MODEL_NAME,
        span.LLM_PROMPTS,
    )
    assert (peers.OI_INPUT_MESSAGES, peers.OI_OUTPUT_MESSAGES) == (
        span.LLM_INPUT_MESSAGES,
        span.LLM_OUTPUT_MESSAGES,
    )
    assert (peers.OI_MESSAGE_ROLE, peers.OI_MESSAGE_CONTENT, peers.OI_MESSAGE_CONTENTS) == (
        message.MESSAGE_ROLE,
        message.MESSAGE_CONTENT,
        message.MESSAGE_CONTENTS,
    )
    assert (peers.OI_MESSAGE_TOOL_CALLS, peers.OI_MESSAGE_TOOL_CALL_ID) == (
        message.MESSAGE_TOOL_CALLS,
        message.MESSAGE_TOOL_CALL_ID,
    )
    assert (
        peers.OI_TOOL_CALL_ID,
        peers.OI_TOOL_CALL_FUNCTION_NAME,
        peers.OI_TOOL_CALL_FUNCTION_ARGUMENTS,
    ) == (
        tool_call.TOOL_CALL_ID,
        tool_call.TOOL_CALL_FUNCTION_NAME,
        tool_call.TOOL_CALL_FUNCTION_ARGUMENTS_JSON,
    )
    assert (peers.OI_MESSAGE_CONTENT_TYPE, peers.OI_MESSAGE_CONTENT_TEXT) == (
        content.MESSAGE_CONTENT_TYPE,
        content.MESSAGE_CONTENT_TEXT,
    )
    kinds = {v.value for v in trace.OpenInferenceSpanKindValues}
    assert set(peers.OI_KIND_OPERATIONS) <= kinds
    providers = {v.value for v in trace.OpenInferenceLLMProviderValues} | {
        v.value for v in trace.OpenInferenceLLMSystemValues
    }
    assert set(peers.OI_PROVIDER_ALIASES) <= providers


def test_openllmetry_names_match_the_package() -> None:
    semconv_ai = pytest.importorskip("opentelemetry.semconv_ai")
    attrs = semconv_ai.SpanAttributes
    assert (peers.LLMETRY_REQUEST_TYPE, peers.LLMETRY_PROMPTS, peers.LLMETRY_COMPLETIONS) == (
        attrs.LLM_REQUEST_TYPE,
        attrs.LLM_PROMPTS,
        attrs.LLM_COMPLETIONS,
    )
    assert peers.LLMETRY_SESSION_ID.startswith(attrs.TRACELOOP_ASSOCIATION_PROPERTIES + ".")
    assert set(peers.LLMETRY_REQUEST_TYPE_OPERATIONS) <= {v.value for v in semconv_ai.LLMRequestTypeValues}
    assert (attrs.LLM_USAGE_PROMPT_TOKENS, attrs.LLM_USAGE_COMPLETION_TOKENS) == (
        gen_ai.GEN_AI_USAGE_PROMPT_TOKENS,
        gen_ai.GEN_AI_USAGE_COMPLETION_TOKENS,
    )


def test_mlflow_names_match_the_package() -> None:
    constant = pytest.importorskip("mlflow.tracing.constant")
    key = constant.SpanAttributeKey
    assert (peers.MLFLOW_SPAN_TYPE, peers.MLFLOW_SPAN_INPUTS, peers.MLFLOW_SPAN_OUTPUTS) == (
        key.SPAN_TYPE,
        key.INPUTS,
        key.OUTPUTS,
    )
    assert (peers.MLFLOW_MODEL, peers.MLFLOW_PROVIDER, peers.MLFLOW_TOKEN_USAGE, peers.MLFLOW_COST) == (
        key.MODEL,
        key.MODEL_PROVIDER,
        key.CHAT_USAGE,
        key.LLM_COST,
    )
    assert peers.MLFLOW_TRACE_SESSION == constant.TraceMetadataKey.TRACE_SESSION
    assert (peers.MLFLOW_USAGE_INPUT_TOKENS, peers.MLFLOW_USAGE_OUTPUT_TOKENS, peers.MLFLOW_COST_TOTAL) == (
        constant.TokenUsageKey.INPUT_TOKENS,
        constant.TokenUsageKey.OUTPUT_TOKENS,
        constant.CostKey.TOTAL_COST,
    )
    span_type = pytest.importorskip("mlflow.entities").SpanType
    assert set(peers.MLFLOW_SPAN_TYPE_OPERATIONS) <= {
        getattr(span_type, name) for name in dir(span_type) if name.isupper()
    }
