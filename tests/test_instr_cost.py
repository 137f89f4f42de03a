"""Usage the providers bill apart from plain text tokens, and the cost priced from it: the real SDKs
(or httpx2 for Gemini's REST API) reach a canned server as their HTTP proxy, so the provider's own
host stays in the URL (the provider, hence the price list, is told by the host). Each expected cost
is worked out by hand from genai-prices' bundled data (rates in USD per million tokens)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from conftest import recording
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_instr_faults import Canned

from spanreel._attributes import (
    SPANREEL_COST_USD,
    SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS,
    SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS,
    SPANREEL_USAGE_INPUT_AUDIO_TOKENS,
    SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS,
)


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    with recording(capture_content=True) as rec:
        yield rec


@pytest.fixture
def spans(provider: tuple[TracerProvider, InMemorySpanExporter]) -> Iterator[InMemorySpanExporter]:
    provider[1].clear()
    yield provider[1]
    while _clients:  # closed before the server sees their connections reset
        _clients.pop().close()


@pytest.fixture(scope="module")
def canned() -> Iterator[Canned]:
    c = Canned()
    yield c
    c.httpd.shutdown()
    c.httpd.server_close()


_clients: list[httpx2.Client] = []


def proxied(canned: Canned) -> httpx2.Client:
    """An httpx2 client whose every request goes to ``canned`` as its HTTP proxy (closed when the
    test ends)."""
    client = httpx2.Client(proxy=f"http://127.0.0.1:{canned.httpd.server_address[1]}")
    _clients.append(client)
    return client


def one(exp: InMemorySpanExporter) -> dict[str, Any]:
    found = [
        s
        for s in exp.get_finished_spans()
        if s.instrumentation_scope and s.instrumentation_scope.name == "spanreel"
    ]
    assert len(found) == 1, [s.name for s in exp.get_finished_spans()]
    return dict(found[0].attributes or {})


def chat(canned: Canned, base_url: str, model: str, body: Any, **kw: Any) -> dict[str, Any]:
    """One non-streamed chat completion by the openai SDK to ``base_url`` (through ``canned``)."""
    canned.set([json.dumps(body).encode()])
    c = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, http_client=proxied(canned))
    c.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], **kw)
    return body


def completion(model: str, usage: dict[str, Any], message: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": message or {"role": "assistant", "content": "ok"}}],
        "usage": usage,
    }  # fmt: skip


# ------------------------------------------------------------------------------------ audio


def test_openai_audio_tokens_are_recorded_and_priced_at_the_audio_rates(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """gpt-audio bills audio input at ~13× and audio output at ~6× the text rates: audio tokens were
    priced as text (0.1025)."""
    audio = {"id": "audio_1", "data": "UklGRgAA", "expires_at": 1, "transcript": "hello"}
    message = {"role": "assistant", "content": None, "audio": audio}
    usage = {
        "prompt_tokens": 1000, "completion_tokens": 10000, "total_tokens": 11000,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 900, "text_tokens": 100},
        "completion_tokens_details": {"audio_tokens": 9000, "text_tokens": 1000, "reasoning_tokens": 0},
    }  # fmt: skip
    chat(
        canned,
        "http://api.openai.com/v1",
        "gpt-audio",
        completion("gpt-audio-2025-08-28", usage, message),
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
    )
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 1000 and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 10000
    assert a[SPANREEL_USAGE_INPUT_AUDIO_TOKENS] == 900 and a[SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS] == 9000
    # gpt-audio: text $2.5 in / $10 out, audio $32 in / $64 out:
    # 100×2.5 + 900×32 + 1000×10 + 9000×64 = 250 + 28,800 + 10,000 + 576,000 = 615,050 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.61505)


def test_openai_zero_audio_tokens_are_not_recorded(spans: InMemorySpanExporter, canned: Canned) -> None:
    usage = {
        "prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"audio_tokens": 0, "reasoning_tokens": 0},
    }  # fmt: skip
    chat(canned, "http://api.openai.com/v1", "gpt-4o-mini", completion("gpt-4o-mini", usage))
    a = one(spans)
    assert SPANREEL_USAGE_INPUT_AUDIO_TOKENS not in a and SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS not in a
    # gpt-4o-mini: $0.15 in, $0.6 out: 1000×0.15 + 100×0.6 = 210 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.00021)


def _gemini(canned: Canned, body: Any, stream: bool = False) -> None:
    canned.set(
        [f"data: {json.dumps(body)}\r\n\r\n".encode()] if stream else [json.dumps(body).encode()],
        "text/event-stream" if stream else "application/json",
    )
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    with proxied(canned) as client:
        client.post(
            f"http://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:{method}",
            json={"contents": [{"role": "user", "parts": [{"text": "transcribe"}]}]},
        ).raise_for_status()


def test_gemini_audio_input_is_recorded_and_priced_at_the_audio_rate(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 1000010, "candidatesTokenCount": 1000, "totalTokenCount": 1001010,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10},
                                    {"modality": "AUDIO", "tokenCount": 1000000}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}],
        },
        "modelVersion": "gemini-2.5-flash",
    }  # fmt: skip
    _gemini(canned, body)
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert a[SPANREEL_USAGE_INPUT_AUDIO_TOKENS] == 1_000_000
    assert SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS not in a and SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS not in a
    # gemini-2.5-flash: $0.3 text in, $1 audio in, $2.5 out:
    # 10×0.3 + 1,000,000×1 + 1000×2.5 = 3 + 1,000,000 + 2,500 µ$ (as text: 302,503 µ$)
    assert a[SPANREEL_COST_USD] == pytest.approx(1.002503)


def test_gemini_cached_audio_is_recorded_and_priced_at_the_audio_cache_rate(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """Streamed; 400k of the 1M audio tokens come from a cache (``cacheTokensDetails``)."""
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 1000010, "candidatesTokenCount": 1000, "totalTokenCount": 1001010,
            "cachedContentTokenCount": 400000,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10},
                                    {"modality": "AUDIO", "tokenCount": 1000000}],
            "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 400000}],
        },
        "modelVersion": "gemini-2.5-flash",
    }  # fmt: skip
    _gemini(canned, body, stream=True)
    a = one(spans)
    assert a[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400_000
    assert a[SPANREEL_USAGE_INPUT_AUDIO_TOKENS] == 1_000_000
    assert a[SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS] == 400_000
    # gemini-2.5-flash: $0.3 text in, $1 audio in, $0.1 cached audio, $2.5 out:
    # 10×0.3 + 600,000×1 + 400,000×0.1 + 1000×2.5 = 3 + 600,000 + 40,000 + 2,500 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.642503)


# ------------------------------------------------------------------------------- xAI reasoning


def _sse(events: list[Any]) -> list[bytes]:
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra,
    }  # fmt: skip


#: grok-3-mini's usage: total_tokens 135 = 32 prompt + 9 completion + 94 reasoning.
XAI_USAGE = {
    "prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
    "prompt_tokens_details": {"text_tokens": 32, "cached_tokens": 6},
    "completion_tokens_details": {"reasoning_tokens": 94},
}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True])
def test_xai_reasoning_tokens_are_output_tokens(
    spans: InMemorySpanExporter, canned: Canned, stream: bool
) -> None:
    """xAI's completion_tokens leaves out the reasoning: the output was 9 tokens (priced so) where
    103 were billed."""
    c = openai.OpenAI(base_url="http://api.x.ai/v1", api_key="k", max_retries=0, http_client=proxied(canned))
    messages: Any = [{"role": "user", "content": "x"}]
    if stream:
        events = [_chunk("grok-3-mini", {"role": "assistant", "content": "101"}),
                  _chunk("grok-3-mini", {}, "stop"),
                  {**_chunk("grok-3-mini", {}), "choices": [], "usage": XAI_USAGE}]  # fmt: skip
        canned.set(_sse(events), "text/event-stream")
        for _ in c.chat.completions.create(
            model="grok-3-mini", messages=messages, stream=True, stream_options={"include_usage": True}
        ):
            pass
    else:
        chat(canned, "http://api.x.ai/v1", "grok-3-mini", completion("grok-3-mini", XAI_USAGE))
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "x_ai"
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 32 and a[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 6
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 103 and a[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 94
    # grok-3-mini: $0.3 in, $0.075 cached in, $0.5 out: 26×0.3 + 6×0.075 + 103×0.5 = 59.75 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.00005975)


def test_openai_reasoning_tokens_stay_inside_the_output(spans: InMemorySpanExporter, canned: Canned) -> None:
    """OpenAI's completion_tokens includes the reasoning: not added twice."""
    usage = {"prompt_tokens": 100, "completion_tokens": 300, "total_tokens": 400,
             "completion_tokens_details": {"reasoning_tokens": 200}}  # fmt: skip
    chat(canned, "http://api.openai.com/v1", "o4-mini", completion("o4-mini", usage))
    a = one(spans)
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 300 and a[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 200


# ---------------------------------------------------------------------------------- Groq streams


def test_groq_stream_usage_from_x_groq(spans: InMemorySpanExporter, canned: Canned) -> None:
    """Groq sends a stream's usage in its last chunk's ``x_groq.usage`` (no top-level ``usage``,
    whatever ``stream_options``): the span had no usage and no cost."""
    groq_usage = {"queue_time": 0.01, "prompt_tokens": 100000, "prompt_time": 0.01,
                  "completion_tokens": 100000, "completion_time": 0.1,
                  "total_tokens": 200000, "total_time": 0.11}  # fmt: skip
    model = "llama-3.1-8b-instant"
    events = [_chunk(model, {"role": "assistant", "content": ""}, x_groq={"id": "req_1"}),
              _chunk(model, {"content": "Hi"}),
              _chunk(model, {}, "stop", x_groq={"id": "req_1", "usage": groq_usage})]  # fmt: skip
    canned.set(_sse(events), "text/event-stream")
    base = "http://api.groq.com/openai/v1"
    c = openai.OpenAI(base_url=base, api_key="k", max_retries=0, http_client=proxied(canned))
    for _ in c.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True):
        pass
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "groq" and a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 100000 and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 100000
    # llama-3.1-8b-instant on Groq: $0.05 in, $0.08 out: 100,000×0.05 + 100,000×0.08 = 13,000 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.013)


# ------------------------------------------------------------------------------ Azure OpenAI v1


@pytest.mark.parametrize("host", ["myres.openai.azure.com", "myres.cognitiveservices.azure.com"])
def test_azure_openai_v1_api_is_azure_on_both_resource_hosts(
    spans: InMemorySpanExporter, canned: Canned, host: str
) -> None:
    """The v1 API (``/openai/v1/…``, no ``api-version``) of an Azure AI Foundry resource
    (``*.cognitiveservices.azure.com``) was recorded as ``openai`` and priced from OpenAI's list."""
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    chat(canned, f"http://{host}/openai/v1/", "gpt-4o", completion("gpt-4o-2024-11-20", usage))
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    # gpt-4o on Azure (genai-prices' azure list): $2.5 in, $10 out: 10×2.5 + 2×10 = 45 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.000045)


# ------------------------------------------------------------------ Anthropic 1-hour cache writes


def _anthropic(canned: Canned) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url="http://api.anthropic.com", api_key="sk-ant-k", max_retries=0, http_client=proxied(canned)
    )


def test_anthropic_1h_cache_writes_are_recorded_and_priced_at_the_1h_rate(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """They were priced at the 5-minute rate (0.12551 here)."""
    split = {"ephemeral_5m_input_tokens": 40000, "ephemeral_1h_input_tokens": 60000}
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 100000, "cache_read_input_tokens": 0,
             "output_tokens": 100, "cache_creation": split}  # fmt: skip
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
               "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": usage}  # fmt: skip
    canned.set([json.dumps(message).encode()])
    system: Any = [{"type": "text", "text": "long doc", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    _anthropic(canned).messages.create(
        model="claude-haiku-4-5", max_tokens=10, system=system, messages=[{"role": "user", "content": "q"}]
    )
    a = one(spans)
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 100010
    assert a[ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 100000
    assert a[SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS] == 60000
    # claude-haiku-4-5: $1 in, $1.25 5-minute write, $2 1-hour write, $5 out:
    # 10×1 + 40,000×1.25 + 60,000×2 + 100×5 = 10 + 50,000 + 120,000 + 500 = 170,510 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.17051)


def test_anthropic_streamed_1h_cache_writes_priced_at_the_1h_rate(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """Streamed (the split comes in message_start), a model priced in tiers (no affine form)."""
    split = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 100000}
    start_usage = {"input_tokens": 0, "cache_creation_input_tokens": 100000, "cache_read_input_tokens": 0,
                   "output_tokens": 1, "cache_creation": split}  # fmt: skip
    model = "claude-sonnet-4-5-20250929"
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "ok"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 10}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    canned.set(
        [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events],
        "text/event-stream",
    )
    with _anthropic(canned).messages.stream(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "q"}]
    ) as stream:
        stream.get_final_message()
    a = one(spans)
    assert a[SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS] == 100000
    # claude-sonnet-4-5 (below its 200k tier): $6 1-hour write, $15 out: 100,000×6 + 10×15 = 600,150 µ$
    assert a[SPANREEL_COST_USD] == pytest.approx(0.60015)


# ------------------------------------------------------------------------- DeepSeek cache hits


def test_deepseek_prompt_cache_hit_tokens_are_cache_reads(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """DeepSeek reports cached input as ``prompt_cache_hit_tokens`` (no ``prompt_tokens_details``):
    it was priced as uncached input."""
    usage = {"prompt_tokens": 1000000, "completion_tokens": 0, "total_tokens": 1000000,
             "prompt_cache_hit_tokens": 800000, "prompt_cache_miss_tokens": 200000}  # fmt: skip
    chat(canned, "http://api.deepseek.com", "deepseek-chat", completion("deepseek-chat", usage))
    a = one(spans)
    assert a[ga.GEN_AI_PROVIDER_NAME] == "deepseek"
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 1_000_000
    assert a[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 800_000
    # deepseek-chat has a standard and an off-peak price (by the time of day):
    # standard $0.27 in, $0.07 cached: 200,000×0.27 + 800,000×0.07 = 54,000 + 56,000 = 110,000 µ$;
    # off-peak $0.135 / $0.035: 55,000 µ$ (all as uncached input: 270,000 / 135,000 µ$)
    assert a[SPANREEL_COST_USD] in (pytest.approx(0.11), pytest.approx(0.055))


def test_cached_tokens_win_over_prompt_cache_hit_tokens(spans: InMemorySpanExporter, canned: Canned) -> None:
    """``prompt_tokens_details.cached_tokens``, what genai-prices' deepseek extractor reads, comes
    first when both are sent."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 0, "total_tokens": 1000,
             "prompt_tokens_details": {"cached_tokens": 300}, "prompt_cache_hit_tokens": 400}  # fmt: skip
    chat(canned, "http://api.deepseek.com", "deepseek-chat", completion("deepseek-chat", usage))
    assert one(spans)[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 300
