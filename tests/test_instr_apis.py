"""Every recognised LLM API at the wire, with the real ``openai`` / ``anthropic`` SDKs (httpx2) and
raw httpx/httpx2 clients against the fake LLM server; spans collected in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from conftest import recording
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, StatusCode

from spanreel._attributes import SPANREEL_COST_USD, SPANREEL_REQUEST_URL
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import extract_output_text
from spanreel.instrumentation._apis import provider_for, route

TOOLS_OPENAI: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
TOOLS_ANTHROPIC: Any = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    with recording(capture_content=True) as rec:
        yield rec


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def genai(exp: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in exp.get_finished_spans()
        if s.instrumentation_scope and s.instrumentation_scope.name == "spanreel"
    ]


def one(exp: InMemorySpanExporter) -> dict[str, Any]:
    found = genai(exp)
    assert len(found) == 1, [s.name for s in exp.get_finished_spans()]
    assert found[0].kind == SpanKind.CLIENT
    return dict(found[0].attributes or {})


def output_parts(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    (message,) = json.loads(attrs[ga.GEN_AI_OUTPUT_MESSAGES])
    parts: list[dict[str, Any]] = message["parts"]
    return parts


# ------------------------------------------------------------------------------ OpenAI Responses


def test_responses_non_streaming(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    r = c.responses.create(
        model="gpt-4o-mini", input="Tea or coffee?", instructions="Be brief.", temperature=0.5
    )
    a = one(spans)
    assert genai(spans)[0].name == "chat gpt-4o-mini"
    assert a[ga.GEN_AI_OPERATION_NAME] == "chat" and a[ga.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[ga.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert json.loads(a[ga.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(a[ga.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == "Tea or coffee?"
    assert a[ga.GEN_AI_RESPONSE_ID] == r.id
    assert r.usage is not None and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == r.usage.output_tokens
    assert extract_output_text(a[ga.GEN_AI_OUTPUT_MESSAGES]) == r.output_text
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[SPANREEL_REQUEST_URL] == server.base_url + "/responses"


async def test_responses_streaming_tool_call_async(
    spans: InMemorySpanExporter, server: FakeLLMServer
) -> None:
    c = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    stream = await c.responses.create(
        model="gpt-4o-mini", input="Weather in Paris?", tools=TOOLS_OPENAI, stream=True
    )
    args = ""
    async for event in stream:
        assert genai(spans) == [] or event.type == "response.completed"
        if event.type == "response.function_call_arguments.delta":
            args += event.delta
    await c.close()
    a = one(spans)
    assert a[ga.GEN_AI_REQUEST_STREAM] is True
    assert isinstance(a[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    (part,) = output_parts(a)
    assert part["type"] == "tool_call" and part["name"] == "get_weather"
    assert part["arguments"] == json.loads(args)
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert json.loads(a[ga.GEN_AI_TOOL_DEFINITIONS])[0]["name"] == "get_weather"


def test_responses_tool_result_in_inputs(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    c.responses.create(
        model="gpt-4o-mini",
        tools=TOOLS_OPENAI,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        ],
    )
    messages = json.loads(one(spans)[ga.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["parts"][0] == {
        "type": "tool_call",
        "id": "call_1",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert messages[2]["parts"][0] == {"type": "tool_call_response", "id": "call_1", "response": "18C"}


# ------------------------------------------------------------------ legacy completions, embeddings


def test_legacy_completions_streamed_and_not(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    r = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say something", max_tokens=5)
    a = one(spans)
    assert genai(spans)[0].name == "text_completion gpt-3.5-turbo-instruct"
    assert a[ga.GEN_AI_OPERATION_NAME] == "text_completion"
    assert extract_output_text(a[ga.GEN_AI_OUTPUT_MESSAGES]) == r.choices[0].text
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",) and a[ga.GEN_AI_REQUEST_MAX_TOKENS] == 5
    spans.clear()
    chunks = list(
        c.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say something",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    a = one(spans)
    assert extract_output_text(a[ga.GEN_AI_OUTPUT_MESSAGES]) == "".join(
        ch.choices[0].text for ch in chunks if ch.choices
    )
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens  # type: ignore[union-attr]


def test_embeddings(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    r = c.embeddings.create(model="text-embedding-3-small", input=["red tea", "green"], dimensions=16)
    a = one(spans)
    assert genai(spans)[0].name == "embeddings text-embedding-3-small"
    assert a[ga.GEN_AI_OPERATION_NAME] == "embeddings"
    assert a[ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 16 == len(r.data[0].embedding)
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == r.usage.prompt_tokens == 3
    assert ga.GEN_AI_OUTPUT_MESSAGES not in a
    assert a[SPANREEL_COST_USD] > 0  # a model genai-prices knows


# ------------------------------------------------------------------------------ Anthropic


def _anthropic(server: FakeLLMServer, tp: TracerProvider | None = None) -> anthropic.Anthropic:
    telemetry: Any = {"traces": False} if tp is None else {"tracer_provider": tp}
    return anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{server.port}",
        api_key="sk-ant-test",
        max_retries=0,
        open_telemetry=telemetry,
    )


def test_anthropic_messages_with_system_and_cost(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    m = _anthropic(server).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        system="Be brief.",
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "Tea?"}],
    )
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "anthropic" and a[ga.GEN_AI_OPERATION_NAME] == "chat"
    assert json.loads(a[ga.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert a[ga.GEN_AI_REQUEST_MAX_TOKENS] == 200 and a[ga.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert a[ga.GEN_AI_RESPONSE_ID] == m.id and a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == m.usage.input_tokens
    assert extract_output_text(a[ga.GEN_AI_OUTPUT_MESSAGES]) == m.content[0].text  # type: ignore[union-attr]
    # Claude Sonnet 4.6: $3 / MTok in, $15 / MTok out (genai-prices' bundled data)
    expected = (m.usage.input_tokens * 3 + m.usage.output_tokens * 15) / 1e6
    assert a[SPANREEL_COST_USD] == pytest.approx(expected)


def test_anthropic_streamed_tool_use_assembled(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    with _anthropic(server).messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=200,
        tools=TOOLS_ANTHROPIC,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    a = one(spans)
    (part,) = output_parts(a)
    block = final.content[0]
    assert block.type == "tool_use"
    assert part == {"type": "tool_call", "id": block.id, "name": "get_weather", "arguments": block.input}
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert json.loads(a[ga.GEN_AI_TOOL_DEFINITIONS])[0]["parameters"] == TOOLS_ANTHROPIC[0]["input_schema"]


async def test_anthropic_async_tool_result_input(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{server.port}", api_key="k", max_retries=0)
    await c.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        tools=TOOLS_ANTHROPIC,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}],
            },
        ],
    )
    await c.close()
    messages = json.loads(one(spans)[ga.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[2]["parts"] == [{"type": "tool_call_response", "id": "toolu_1", "response": "18C"}]


def test_anthropic_error_type_from_body(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    with pytest.raises(anthropic.RateLimitError):
        _anthropic(server).messages.create(
            model="fake-error-429", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    (span,) = genai(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "rate_limit_error"


# ------------------------------------------------------------------------------ Azure, Gemini


def test_azure_deployment(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    az = openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{server.port}",
        api_key="az-key",
        api_version="2024-10-21",
        max_retries=0,
    )
    az.chat.completions.create(model="prod-gpt4o", messages=[{"role": "user", "content": "hi"}])
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert a[ga.GEN_AI_REQUEST_MODEL] == "prod-gpt4o"
    assert "api-version=2024-10-21" in a[SPANREEL_REQUEST_URL]
    assert SPANREEL_COST_USD not in a  # a deployment name genai-prices cannot know: no guess


def test_azure_responses_behind_a_custom_domain(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    """Azure's Responses API has no deployment in its path (``/openai/responses?api-version=…``):
    ``api-version`` marks it as Azure on a host spanreel cannot recognise."""
    az = openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{server.port}",
        api_key="az-key",
        api_version="2025-04-01-preview",
        max_retries=0,
    )
    az.responses.create(model="gpt-4o-mini", input="hi")
    a = one(spans)
    assert "/openai/responses?api-version=" in a[SPANREEL_REQUEST_URL]
    assert a[ga.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"


@pytest.mark.parametrize("alt", ["?alt=sse", ""], ids=["sse", "json-array"])
@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_gemini_stream_generate_content(
    spans: InMemorySpanExporter, server: FakeLLMServer, alt: str, lib: Any
) -> None:
    url = f"http://127.0.0.1:{server.port}/v1beta/models/gemini-2.0-flash:streamGenerateContent{alt}"
    body = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "Tea?"}]}],
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 500},
    }
    async with lib.AsyncClient() as c:
        r = await c.post(url, json=body)
    chunks = [json.loads(line[6:]) for line in r.text.split("\r\n\r\n") if line] if alt else r.json()
    text = "".join(ch["candidates"][0]["content"]["parts"][0]["text"] for ch in chunks)
    a = one(spans)
    assert genai(spans)[0].name == "generate_content gemini-2.0-flash"
    assert a[ga.GEN_AI_PROVIDER_NAME] == "gcp.gemini" and a[ga.GEN_AI_REQUEST_STREAM] is True
    assert a[ga.GEN_AI_REQUEST_MAX_TOKENS] == 500
    assert extract_output_text(a[ga.GEN_AI_OUTPUT_MESSAGES]) == text
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1]["usageMetadata"]["candidatesTokenCount"]
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("STOP",)
    assert json.loads(a[ga.GEN_AI_SYSTEM_INSTRUCTIONS])[0]["content"] == "Be brief."


def test_gemini_function_call_non_streamed(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Weather?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object"}}]}],
    }
    r = httpx2.post(
        f"http://127.0.0.1:{server.port}/v1beta/models/gemini-2.0-flash:generateContent", json=body
    )
    call = r.json()["candidates"][0]["content"]["parts"][0]["functionCall"]
    a = one(spans)
    assert output_parts(a) == [
        {"type": "tool_call", "id": None, "name": call["name"], "arguments": call["args"]}
    ]
    assert json.loads(a[ga.GEN_AI_TOOL_DEFINITIONS]) == [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    ]


# ------------------------------------------------------------------------------ detection (pure)


@pytest.mark.parametrize(
    ("host", "path", "api", "provider", "model"),
    [
        ("localhost", "/v1/chat/completions", "openai.chat_completions", "openai", None),  # vLLM, Ollama /v1
        ("api.groq.com", "/openai/v1/chat/completions", "openai.chat_completions", "groq", None),
        ("openrouter.ai", "/api/v1/chat/completions", "openai.chat_completions", "openrouter", None),
        ("api.together.xyz", "/v1/completions", "openai.completions", "together_ai", None),
        ("litellm.internal", "/embeddings", "openai.embeddings", "openai", None),
        (
            "r.openai.azure.com",
            "/openai/deployments/d1/chat/completions",
            "openai.chat_completions",
            "azure.ai.openai",
            "d1",
        ),
        ("proxy", "/openai/deployments/d2/embeddings", "openai.embeddings", "azure.ai.openai", "d2"),
        ("api.anthropic.com", "/v1/messages", "anthropic.messages", "anthropic", None),
        ("my-claude-proxy", "/v1/messages", "anthropic.messages", "anthropic", None),
        (
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "gemini.generate_content",
            "gcp.gemini",
            "gemini-2.0-flash",
        ),
        (
            "us-central1-aiplatform.googleapis.com",
            "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
            "gemini.generate_content",
            "gcp.vertex_ai",
            "gemini-2.5-pro",
        ),
        ("api.openai.com", "/v1/responses", "openai.responses", "openai", None),
        # Azure's non-deployment paths behind a custom domain: marked by api-version
        (
            "gw.corp",
            "/openai/responses?api-version=2025-04-01-preview",
            "openai.responses",
            "azure.ai.openai",
            None,
        ),
        (
            "gw.corp",
            "/openai/v1/chat/completions?api-version=preview",
            "openai.chat_completions",
            "azure.ai.openai",
            None,
        ),
        # …and not without it (Cloudflare's AI gateway puts /openai/ in its paths too)
        (
            "gateway.ai.cloudflare.com",
            "/v1/acct/gw/openai/chat/completions",
            "openai.chat_completions",
            "openai",
            None,
        ),
        ("proxy", "/openai/v1/chat/completions", "openai.chat_completions", "openai", None),
        # Anthropic on Vertex AI (AnthropicVertex): the model in the path, any Vertex endpoint
        (
            "aiplatform.googleapis.com",
            "/v1/projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict",
            "anthropic.messages",
            "gcp.vertex_ai",
            "claude-sonnet-4@20250514",
        ),
        (
            "vertex-proxy.corp",
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5:streamRawPredict",
            "anthropic.messages",
            "gcp.vertex_ai",
            "claude-haiku-4-5",
        ),
        # Anthropic on Amazon Bedrock (AnthropicBedrock): the model id in the path
        (
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/model/anthropic.claude-sonnet-4-20250514-v1:0/invoke",
            "anthropic.messages",
            "aws.bedrock",
            "anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        (
            "bedrock-runtime.eu-west-1.amazonaws.com",
            "/model/eu.anthropic.claude-haiku-4-5-20251001-v1:0/invoke-with-response-stream",
            "anthropic.messages",
            "aws.bedrock",
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        ),
    ],
)
def test_route_and_provider(host: str, path: str, api: str, provider: str, model: str | None) -> None:
    path, _, query = path.partition("?")
    found = route(path)
    assert found is not None and found.api.name == api and found.path_model == model
    assert provider_for(found.api, host, path, query.encode()) == provider


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models",
        "/v1/messages/count_tokens",
        "/v1/files",
        "/v1beta/models/x:countTokens",
        "/",
        "/v1/projects/p/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict",
        "/v1/projects/p/locations/us-east5/publishers/meta/models/llama-4:rawPredict",
    ],
)
def test_route_ignores_other_paths(path: str) -> None:
    assert route(path) is None


def test_bedrock_takes_only_anthropic_bodies() -> None:
    """Bedrock's invoke paths serve every model; only Anthropic's bodies (``anthropic_version``)
    are Anthropic Messages: Amazon Nova's, which also has a ``messages`` list, is passed through."""
    found = route("/model/amazon.nova-pro-v1:0/invoke")
    assert found is not None
    nova = {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    claude = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9, "messages": nova["messages"]}
    assert not found.api.accepts(nova) and found.api.accepts(claude)
    assert route("/model/invoke") is None


def test_assistants_thread_messages_are_not_anthropic(
    spans: InMemorySpanExporter, server: FakeLLMServer
) -> None:
    # OpenAI Assistants' POST /threads/{id}/messages has no "messages" list: passed through untouched.
    r = httpx.post(
        f"http://127.0.0.1:{server.port}/v1/threads/t1/messages", json={"role": "user", "content": "x"}
    )
    assert r.status_code == 404
    assert genai(spans) == []
