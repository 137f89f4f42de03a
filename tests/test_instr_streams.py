"""Streamed answers as the real SDKs receive them from servers that send what the providers send
(canned event streams, the fake LLM server): assembled output, usage, finish reasons, errors."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import genai_prices
import httpx
import httpx2
import openai
import pytest
from conftest import recording
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import StatusCode
from test_instr_fastpaths import _library
from test_instr_faults import Canned

from spanreel._attributes import SPANREEL_COST_USD, SPANREEL_RESPONSE_ERROR_BODY, SPANREEL_USAGE_WEB_SEARCHES
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation._common import json_array_items
from spanreel.instrumentation._http import make_decoder
from spanreel.replay._aws_events import event_stream_message


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    with recording(capture_content=True) as rec:
        yield rec


@pytest.fixture(scope="module")
def canned() -> Iterator[Canned]:
    c = Canned()
    yield c
    c.httpd.shutdown()
    c.httpd.server_close()


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
    return dict(found[0].attributes or {})


def sse(event: str, payload: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


# ------------------------------------------------------------------------------ Anthropic


def _anthropic_thinking_tool_stream() -> list[bytes]:
    """Thinking, text, then a call of a tool that takes no arguments (Anthropic streams its input
    as one empty ``input_json_delta``); prompt-cache usage in ``message_start``, the output count
    in ``message_delta``."""
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 100}
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }

    def delta(index: int, d: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})

    def start(index: int, block: dict[str, Any]) -> bytes:
        return sse(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )

    def stop(index: int) -> bytes:
        return sse("content_block_stop", {"type": "content_block_stop", "index": index})

    return [
        sse("message_start", {"type": "message_start", "message": message}),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "The user wants the time."}),
        delta(0, {"type": "signature_delta", "signature": "c2ln"}),
        stop(0),
        start(1, {"type": "text", "text": ""}),
        delta(1, {"type": "text_delta", "text": "Let me check."}),
        stop(1),
        start(2, {"type": "tool_use", "id": "toolu_1", "name": "current_time", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": ""}),
        stop(2),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 42},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]


def _check_thinking_tool_span(a: dict[str, Any], final: Any) -> None:
    thinking, text, tool = final.content
    assert tool.type == "tool_use" and tool.input == {}
    (message,) = json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])
    assert message["parts"] == [
        {"type": "reasoning", "content": thinking.thinking},
        {"type": "text", "content": text.text},
        {"type": "tool_call", "id": "toolu_1", "name": "current_time", "arguments": {}},
    ]
    assert message["finish_reason"] == "tool_use"
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    usage = final.usage
    assert (
        a[ga.GEN_AI_USAGE_INPUT_TOKENS]
        == 113
        == (usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens)
    )
    assert a[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert a[ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 3
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 42 == usage.output_tokens


def test_anthropic_stream_thinking_and_tool_without_arguments(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    canned.set(_anthropic_thinking_tool_stream(), "text/event-stream")
    client = anthropic.Anthropic(base_url=canned.base_url[:-3], api_key="k", max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "Time?"}]
    ) as stream:
        final = stream.get_final_message()
    _check_thinking_tool_span(one(spans), final)


async def test_anthropic_stream_thinking_and_tool_without_arguments_async(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    canned.set(_anthropic_thinking_tool_stream(), "text/event-stream")
    client = anthropic.AsyncAnthropic(base_url=canned.base_url[:-3], api_key="k", max_retries=0)
    async with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "Time?"}]
    ) as stream:
        final = await stream.get_final_message()
    await client.close()
    _check_thinking_tool_span(one(spans), final)


def test_anthropic_stream_cut_by_an_error_event_has_no_placeholder_output_count(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """``message_start`` carries ``output_tokens: 1`` as a placeholder; the count comes with
    ``message_delta``. A stream cut by an ``error`` event before that has no output count (it used
    to record 1, and price it), but keeps its input usage, the text received and the error."""
    events = _anthropic_thinking_tool_stream()[:7]  # message_start … the text delta
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    canned.set([*events, sse("error", overloaded)], "text/event-stream")
    client = anthropic.Anthropic(base_url=canned.base_url[:-3], api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "Time?"}]
    with (  # the SDK raises the error event
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=messages) as stream,
    ):
        stream.get_final_message()
    (span,) = genai(spans)
    a = dict(span.attributes or {})
    assert span.status.status_code == StatusCode.ERROR and a["error.type"] == "overloaded_error"
    assert ga.GEN_AI_USAGE_OUTPUT_TOKENS not in a
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 113
    (message,) = json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])
    assert "Let me check." in json.dumps(message["parts"])
    # The schema requires a finish reason; the provider sent none: "error", as openai-v2 writes.
    assert message["finish_reason"] == "error" and ga.GEN_AI_RESPONSE_FINISH_REASONS not in a
    # The error event's data, as sent, for serve-recorded to send again (content captured).
    assert json.loads(a[SPANREEL_RESPONSE_ERROR_BODY]) == overloaded


# ------------------------------------------------------------------------------ HTTP errors


def _error_span(exp: InMemorySpanExporter) -> dict[str, Any]:
    (span,) = genai(exp)
    assert span.status.status_code == StatusCode.ERROR
    return dict(span.attributes or {})


def test_stream_refused_with_http_error_has_no_first_chunk(
    spans: InMemorySpanExporter, server: FakeLLMServer
) -> None:
    """A streamed request answered by an HTTP error (a JSON error body, no chunk at all): span
    ERROR with the provider's error code, and no ``time_to_first_chunk`` (an error body is not a
    chunk of the stream)."""
    c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(
            model="fake-error-429", messages=[{"role": "user", "content": "x"}], stream=True
        )
    a = _error_span(spans)
    assert a[ERROR_TYPE] == "fake_error_429" and a[ga.GEN_AI_REQUEST_STREAM] is True
    assert ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    spans.clear()
    with pytest.raises(openai.InternalServerError):
        c.responses.create(model="fake-error-500", input="x", stream=True)
    a = _error_span(spans)
    assert a[ERROR_TYPE] == "fake_error_500" and ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    spans.clear()
    a_client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{server.port}", api_key="k", max_retries=0)
    with (
        pytest.raises(anthropic.InternalServerError),
        a_client.messages.stream(
            model="fake-error-529", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    a = _error_span(spans)
    assert a[ERROR_TYPE] == "overloaded_error" and ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    spans.clear()
    r = httpx2.post(
        f"http://127.0.0.1:{server.port}/v1beta/models/fake-error-503:streamGenerateContent?alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
    )
    assert r.status_code == 503
    a = _error_span(spans)
    assert a[ERROR_TYPE] == "UNAVAILABLE" and ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a


async def test_stream_refused_with_http_error_has_no_first_chunk_async(
    spans: InMemorySpanExporter, server: FakeLLMServer
) -> None:
    c = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        await c.chat.completions.create(
            model="fake-error-429", messages=[{"role": "user", "content": "x"}], stream=True
        )
    await c.close()
    a = _error_span(spans)
    assert a[ERROR_TYPE] == "fake_error_429" and ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a


# ------------------------------------------------------------------------------ Gemini JSON array


GEMINI_BODY: Any = {"contents": [{"role": "user", "parts": [{"text": "Tea?"}]}]}


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_gemini_json_array_stream_read_in_part_keeps_what_arrived(
    spans: InMemorySpanExporter, lib: Any
) -> None:
    """``:streamGenerateContent`` without ``alt=sse`` streams one JSON array; an app that stops
    after the first network chunk still gets a span with the response id and the text so far."""
    with FakeLLMServer(chunk_delay=0.05) as server:  # one array element per network read
        url = f"http://127.0.0.1:{server.port}/v1beta/models/gemini-2.0-flash:streamGenerateContent"
        async with lib.AsyncClient() as c, c.stream("POST", url, json=GEMINI_BODY) as r:
            async for chunk in r.aiter_raw():
                first = chunk
                break
        with lib.Client() as c, c.stream("POST", url, json=GEMINI_BODY) as r:
            for chunk in r.iter_raw():
                assert chunk == first
                break
    text = first.decode()
    first_object, end = json.JSONDecoder().raw_decode(text, text.index("{"))
    assert text[end:].strip(",\r\n ") == ""  # the first chunk is the first element, whole
    for span in genai(spans):
        a = dict(span.attributes or {})
        assert span.status.status_code == StatusCode.UNSET
        assert a[ga.GEN_AI_RESPONSE_ID] == first_object["responseId"]
        (message,) = json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])
        assert message["parts"] == [
            {"type": "text", "content": first_object["candidates"][0]["content"]["parts"][0]["text"]}
        ]
    assert len(genai(spans)) == 2


def test_gemini_json_array_stream_error_element(spans: InMemorySpanExporter, canned: Canned) -> None:
    """After a 200 head, Google reports a failure as the array's last element: span ERROR with
    the error's status, the text received before it kept."""
    piece = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Green tea "}]}, "index": 0}],
        "modelVersion": "gemini-2.0-flash",
        "responseId": "r1",
    }
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    canned.set([b"[" + json.dumps(piece).encode(), b",\r\n" + json.dumps(error).encode() + b"]"])
    url = canned.base_url[:-3] + "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    r = httpx2.post(url, json=GEMINI_BODY)
    assert r.status_code == 200 and r.json()[1] == error
    (span,) = genai(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "The model is overloaded."
    a = dict(span.attributes or {})
    assert a[ERROR_TYPE] == "UNAVAILABLE"
    assert json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "Green tea "}]
    assert json.loads(a[SPANREEL_RESPONSE_ERROR_BODY]) == error


@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent?alt=sse"])
def test_gemini_blocked_prompt_is_an_error(spans: InMemorySpanExporter, canned: Canned, method: str) -> None:
    """A prompt Gemini refuses comes back 200 with ``promptFeedback.blockReason`` and no
    candidates: the span said UNSET with nothing to show why. Now ERROR with ``error.type``
    ``BLOCKED_<reason>``, as opentelemetry-instrumentation-google-genai records it."""
    answer = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
    }
    body = json.dumps(answer).encode()
    canned.set([b"data: " + body + b"\r\n\r\n"] if "sse" in method else [body],
               "text/event-stream" if "sse" in method else "application/json")  # fmt: skip
    r = httpx2.post(canned.base_url[:-3] + f"/v1beta/models/gemini-2.5-flash:{method}", json=GEMINI_BODY)
    assert r.status_code == 200
    (span,) = genai(spans)
    a = dict(span.attributes or {})
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "prompt blocked: SAFETY")
    assert a[ERROR_TYPE] == "BLOCKED_SAFETY" and a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 8


def test_gemini_tool_use_prompt_tokens_are_input(spans: InMemorySpanExporter, canned: Canned) -> None:
    """``toolUsePromptTokenCount`` (what Gemini's own tools, code execution or search, fed back to
    the model) counts as input, so input + output make ``totalTokenCount``; the code execution
    parts are ``server_tool_call`` / ``server_tool_call_response`` parts; a ``:generateContent``
    call records ``gen_ai.request.stream`` false (it was missing)."""
    usage = {
        "promptTokenCount": 10, "toolUsePromptTokenCount": 30, "candidatesTokenCount": 5,
        "thoughtsTokenCount": 2, "totalTokenCount": 47,
    }  # fmt: skip
    code = {"language": "PYTHON", "code": "print(6 * 7)"}
    result = {"outcome": "OUTCOME_OK", "output": "42\n"}
    parts = [{"executableCode": code}, {"codeExecutionResult": result}, {"text": "42"}]
    answer = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
    }
    canned.set([json.dumps(answer).encode()])
    r = httpx2.post(
        canned.base_url[:-3] + "/v1beta/models/gemini-2.5-flash:generateContent", json=GEMINI_BODY
    )
    assert r.json()["usageMetadata"] == usage
    a = one(spans)
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 40 and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 7
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] + a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["totalTokenCount"]
    assert a[ga.GEN_AI_REQUEST_STREAM] is False
    assert json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [
        {
            "type": "server_tool_call",
            "id": None,
            "name": "code_execution",
            "server_tool_call": {"type": "code_execution", **code},
        },
        {
            "type": "server_tool_call_response",
            "id": None,
            "server_tool_call_response": {"type": "code_execution", **result},
        },
        {"type": "text", "content": "42"},
    ]


@pytest.mark.parametrize(
    ("raw", "items"),
    [
        (b' [{"a": 1},\r\n{"b": "]"}]', ['{"a": 1}', '{"b": "]"}']),
        (b'[{"a": 1},\r\n{"b": "cut ]', ['{"a": 1}']),
        (b"[", []),
        (b"[]", []),
        (b'{"error": {}}', None),
        (b"", None),
    ],
)
def test_json_array_items(raw: bytes, items: list[str] | None) -> None:
    assert json_array_items(raw) == items


# ------------------------------------------------------------------------------ embeddings


async def test_embeddings_sdk_default_base64_has_dimension_count(
    spans: InMemorySpanExporter, server: FakeLLMServer
) -> None:
    """The openai SDK asks for base64 vectors unless told otherwise (and decodes them): the
    dimension count comes from the base64 vector's length."""
    c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    r = c.embeddings.create(model="text-embedding-3-small", input="red tea")
    assert server.requests[-1].json["encoding_format"] == "base64"
    a = one(spans)
    assert a[ga.GEN_AI_REQUEST_ENCODING_FORMATS] == ("base64",)
    assert a[ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == len(r.data[0].embedding) > 0
    spans.clear()
    ac = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    r = await ac.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=5)
    await ac.close()
    a = one(spans)
    assert a[ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == len(r.data[0].embedding) == 5


# ------------------------------------------------------------------------------ compressed bodies


def _compressor(coding: str) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    """(compress a piece and flush it, finish) for a streaming ``br`` or ``zstd`` encoder."""
    if coding == "br":
        import brotli  # type: ignore[import-not-found,unused-ignore]

        br = brotli.Compressor()
        return (lambda data: br.process(data) + br.flush()), br.finish
    from backports import zstd  # type: ignore[import-not-found,unused-ignore]

    zc = zstd.ZstdCompressor()
    return (lambda data: zc.compress(data, zc.FLUSH_BLOCK)), (lambda: zc.flush(zc.FLUSH_FRAME))


class Compressing:
    """A local server answering each POST with ``pieces`` (JSON or SSE) compressed with the
    ``Content-Encoding`` the client accepts first among ``br`` and ``zstd`` — the way
    Cloudflare-fronted APIs (api.openai.com among them) answer clients that accept them — one
    flushed compressed block per piece, in chunked transfer encoding."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.content_type = "application/json"
        self.codings: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                accepted = [c.strip() for c in (self.headers.get("Accept-Encoding") or "").split(",")]
                coding = next(c for c in accepted if c in ("br", "zstd"))
                server.codings.append(coding)
                compress, finish = _compressor(coding)
                self.send_response(200)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Encoding", coding)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in [*(compress(p) for p in server.pieces), finish()]:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def compressing() -> Iterator[Compressing]:
    c = Compressing()
    yield c
    c.httpd.shutdown()
    c.httpd.server_close()


CHAT_ANSWER: Any = {
    "id": "chatcmpl-br",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Green tea."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_compressed_answers_are_read(
    spans: InMemorySpanExporter, compressing: Compressing, coding: str
) -> None:
    """With brotli / zstd installed (``httpx2[brotli,zstd]``) the SDKs accept ``br`` and
    ``zstd`` and providers use them: the span has the response attributes, streamed or not."""
    raw = json.dumps(CHAT_ANSWER).encode()
    compressing.pieces, compressing.content_type = [raw[:40], raw[40:]], "application/json"
    compressing.codings = []
    messages: Any = [{"role": "user", "content": "Tea?"}]
    c = openai.OpenAI(base_url=compressing.base_url, api_key="k", max_retries=0)
    if coding == "zstd":  # the client offers both; ask for zstd first
        c = c.with_options(default_headers={"Accept-Encoding": "zstd, br"})
    r = c.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert r.choices[0].message.content == "Green tea." and compressing.codings == [coding]
    a = one(spans)
    assert a[ga.GEN_AI_RESPONSE_ID] == "chatcmpl-br" and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    spans.clear()
    chunk: Any = {"id": "chatcmpl-br", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    compressing.content_type = "text/event-stream"
    compressing.pieces = [
        b"data: %s\n\n" % json.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": w}}]}).encode()
        for w in ("Green ", "tea.")
    ] + [
        b"data: %s\n\n"
        % json.dumps({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode(),
        b"data: [DONE]\n\n",
    ]
    ac = openai.AsyncOpenAI(base_url=compressing.base_url, api_key="k", max_retries=0)
    if coding == "zstd":
        ac = ac.with_options(default_headers={"Accept-Encoding": "zstd, br"})
    stream = await ac.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
    await ac.close()
    assert text == "Green tea." and compressing.codings == [coding, coding]
    a = one(spans)
    assert isinstance(a[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    assert json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": text}]
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


@pytest.mark.parametrize("coding", ["br", "zstd", "zstd, gzip"])
def test_decoder_any_split(coding: str) -> None:
    """Decoded piece by piece whatever the split: inside a block, at a zstd frame boundary
    (two frames back to back), across stacked encodings."""
    import gzip

    texts = [b'data: {"a": 1}\n\n', b'data: {"b": 2}\n\n']
    if coding == "br":
        import brotli  # type: ignore[import-not-found,unused-ignore]

        body = brotli.compress(b"".join(texts))
    else:
        from backports import zstd  # type: ignore[import-not-found,unused-ignore]

        body = b"".join(zstd.compress(t) for t in texts)  # two frames
        if "gzip" in coding:
            body = gzip.compress(body)
    for cut in range(1, len(body)):
        decode = make_decoder(coding)
        assert decode is not None
        assert decode(body[:cut]) + decode(body[cut:]) == b"".join(texts), cut


def test_zstd_decoded_with_zstandard_alone(
    spans: InMemorySpanExporter, compressing: Compressing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx decodes ``zstd`` with ``zstandard`` (``httpx[zstd]``): in an app that has only that
    module, a zstd answer is still read (the span had no response attributes), frame boundaries
    included."""
    import zstandard
    from backports import zstd  # type: ignore[import-not-found,unused-ignore]

    from spanreel.instrumentation import _http

    monkeypatch.setattr(_http, "_zstd", lambda: lambda: zstandard.ZstdDecompressor().decompressobj())
    texts = [b'data: {"a": 1}\n\n', b'data: {"b": 2}\n\n']
    body = b"".join(zstd.compress(t) for t in texts)  # two frames
    for cut in range(1, len(body)):
        decode = make_decoder("zstd")
        assert decode is not None
        assert decode(body[:cut]) + decode(body[cut:]) == b"".join(texts), cut

    compressing.pieces, compressing.content_type = [json.dumps(CHAT_ANSWER).encode()], "application/json"
    compressing.codings = []
    r = httpx.post(
        compressing.base_url + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tea?"}]},
        headers={"Accept-Encoding": "zstd"},
    )
    assert r.json() == CHAT_ANSWER and compressing.codings == ["zstd"]
    a = one(spans)
    assert a[ga.GEN_AI_RESPONSE_ID] == "chatcmpl-br" and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 3


def test_responses_stream_that_fails_keeps_the_text_streamed_before(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """A Responses stream whose final event is ``response.failed`` with an empty ``output`` (the
    server gave up mid-answer): the span keeps the text the app received through the deltas, the
    final event's id, usage and error, and finish reason ``error``."""
    item = {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    shell = {
        "id": "resp_1",
        "object": "response",
        "model": "gpt-4o-mini",
        "status": "in_progress",
        "output": [],
    }
    failed = {
        **shell,
        "status": "failed",
        "error": {"code": "server_error", "message": "The model stopped."},
        "usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
    }

    def event(kind: str, **fields: Any) -> bytes:
        return sse(kind, {"type": kind, **fields})

    canned.set(
        [
            event("response.created", response=shell, sequence_number=0),
            event("response.output_item.added", output_index=0, item=item, sequence_number=1),
            *(
                event(
                    "response.output_text.delta",
                    item_id="msg_1",
                    output_index=0,
                    content_index=0,
                    delta=piece,
                    sequence_number=2 + i,
                    logprobs=[],
                )
                for i, piece in enumerate(["Green tea ", "is "])
            ),
            event("response.failed", response=failed, sequence_number=4),
        ],
        "text/event-stream",
    )
    c = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    received = "".join(
        e.delta
        for e in c.responses.create(model="gpt-4o-mini", input="Tea?", stream=True)
        if e.type == "response.output_text.delta"
    )
    (span,) = genai(spans)
    a = dict(span.attributes or {})
    assert received == "Green tea is "
    assert span.status.status_code == StatusCode.ERROR and a[ERROR_TYPE] == "server_error"
    assert a[ga.GEN_AI_RESPONSE_ID] == "resp_1" and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    (message,) = json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])
    assert message["parts"] == [{"type": "text", "content": received}]
    assert message["finish_reason"] == "error"


def test_anthropic_thinking_tokens_are_reasoning_output_tokens(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """``usage.output_tokens_details.thinking_tokens`` (in the message, and in ``message_delta``
    when streamed) → ``gen_ai.usage.reasoning.output_tokens``, as the anthropic SDK's own span
    records it; they are part of ``output_tokens``, which stays the total."""
    client = anthropic.Anthropic(base_url=canned.base_url[:-3], api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "6 × 7?"}]
    usage = {"input_tokens": 12, "output_tokens": 300, "output_tokens_details": {"thinking_tokens": 250}}
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [
            {"type": "thinking", "thinking": "six sevens", "signature": "s"}, {"type": "text", "text": "42"}
        ],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": usage,
    }  # fmt: skip
    canned.set([json.dumps(message).encode()])
    answer = client.messages.create(model="claude-sonnet-4-6", max_tokens=1000, messages=messages)
    assert answer.usage.output_tokens_details is not None
    a = one(spans)
    assert a[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == answer.usage.output_tokens_details.thinking_tokens
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 300

    spans.clear()
    start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}
    text_block = {"type": "text", "text": ""}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": text_block},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "42"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage},
        {"type": "message_stop"},
    ]
    canned.set([sse(event["type"], event) for event in events], "text/event-stream")
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1000, messages=messages) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens_details is not None
    a = one(spans)
    assert (
        a[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == final.usage.output_tokens_details.thinking_tokens == 250
    )
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 300


def test_streamed_tool_calls_without_index_stay_separate(spans: InMemorySpanExporter, canned: Canned) -> None:
    """Gemini's OpenAI-compatible endpoint streams tool calls without ``index``: two calls, each
    with its own id, must stay two calls (they were merged into one, with the arguments of both
    run together); a later piece without id or index continues the latest call."""
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gemini-2.5-flash"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()

    def call(call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
        fn = {"arguments": arguments, **({"name": name} if name else {})}
        return {"tool_calls": [{**({"id": call_id} if call_id else {}), "type": "function", "function": fn}]}

    canned.set(
        [
            chunk({"role": "assistant", **call("call_a", "get_weather", '{"city":')}),
            chunk(call(None, None, ' "Sydney"}')),
            chunk(call("call_b", "get_time", '{"tz": "AEST"}')),
            chunk({}, "tool_calls"),
            b"data: [DONE]\n\n",
        ],
        "text/event-stream",
    )
    c = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "Weather and time in Sydney?"}]
    assert len(list(c.chat.completions.create(model="gemini-2.5-flash", messages=messages, stream=True))) == 4
    (message,) = json.loads(one(spans)[ga.GEN_AI_OUTPUT_MESSAGES])
    assert [(p["id"], p["name"], p["arguments"]) for p in message["parts"]] == [
        ("call_a", "get_weather", {"city": "Sydney"}),
        ("call_b", "get_time", {"tz": "AEST"}),
    ]


def test_openai_audio_output_is_a_blob_part_with_its_transcript(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """With ``modalities: ["text", "audio"]`` the answer is ``message.audio`` (streamed:
    ``delta.audio`` pieces), not text: it becomes a semconv ``blob`` part (modality ``audio``) with
    its ``transcript``; it was dropped, leaving an assistant message with no parts."""
    c = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    ask: Any = {
        "model": "gpt-4o-audio-preview",
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    audio = {"id": "audio_1", "data": "UklGRg==", "transcript": "Hello!", "expires_at": 1}
    message = {"role": "assistant", "content": None, "refusal": None, "audio": audio}
    body = {
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-audio-preview",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }  # fmt: skip
    canned.set([json.dumps(body).encode()])
    answer = c.chat.completions.create(**ask)
    assert answer.choices[0].message.audio is not None
    expected = {"type": "blob", "modality": "audio", "content": "UklGRg==", "transcript": "Hello!"}
    (out,) = json.loads(one(spans)[ga.GEN_AI_OUTPUT_MESSAGES])
    assert out["parts"] == [expected]

    spans.clear()
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-audio-preview"}
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "audio": {"id": "audio_1", "transcript": "Hel"}},
        {"audio": {"data": "UklGRg=="}},
        {"audio": {"transcript": "lo!"}},
    ]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    canned.set(
        [f"data: {json.dumps(ch)}\n\n".encode() for ch in chunks] + [b"data: [DONE]\n\n"], "text/event-stream"
    )
    assert len(list(c.chat.completions.create(**ask, stream=True))) == 4
    (out,) = json.loads(one(spans)[ga.GEN_AI_OUTPUT_MESSAGES])
    assert out["parts"] == [expected]


def _anthropic_yes(model: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An Anthropic answer "Yes." from ``model``: the message object, and its stream's events (the
    text in two deltas)."""
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "stop_sequence": None,
        "content": [{"type": "text", "text": "Yes."}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }  # fmt: skip
    start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Ye"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "s."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]
    return message, events


def _yes_span(spans: InMemorySpanExporter, provider: str, model: str, stream: bool) -> None:
    """The one GenAI span of an :func:`_anthropic_yes` answer, streamed or not."""
    (span,) = genai(spans)
    a = dict(span.attributes or {})
    assert (a[ga.GEN_AI_PROVIDER_NAME], a[ga.GEN_AI_REQUEST_MODEL]) == (provider, model)
    assert a[ga.GEN_AI_REQUEST_STREAM] is stream and span.status.status_code == StatusCode.UNSET
    assert json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "Yes."}]
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",) and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert (ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a) is stream


_ASK_TEA: Any = {"max_tokens": 50, "messages": [{"role": "user", "content": "Tea?"}]}


def test_anthropic_on_vertex_ai(spans: InMemorySpanExporter, canned: Canned) -> None:
    """``AnthropicVertex`` posts Messages bodies without ``model`` to
    ``…/publishers/anthropic/models/{model}:rawPredict`` (``:streamRawPredict`` for a stream): one
    GenAI span each, provider ``gcp.vertex_ai``, the model from the path. They had no span."""
    client = anthropic.AnthropicVertex(
        region="us-east5", project_id="p", access_token="t", base_url=canned.base_url, max_retries=0
    )
    model = "claude-sonnet-4@20250514"
    message, events = _anthropic_yes(model)
    canned.set([json.dumps(message).encode()])
    assert client.messages.create(model=model, **_ASK_TEA).content[0].text == "Yes."  # type: ignore[union-attr]
    assert canned.paths[-1].endswith(f"/publishers/anthropic/models/{model}:rawPredict")
    _yes_span(spans, "gcp.vertex_ai", model, stream=False)

    spans.clear()
    canned.set([sse(e["type"], e) for e in events], "text/event-stream")
    with client.messages.stream(model=model, **_ASK_TEA) as stream:
        assert "".join(stream.text_stream) == "Yes."
    assert canned.paths[-1].endswith(f"/publishers/anthropic/models/{model}:streamRawPredict")
    _yes_span(spans, "gcp.vertex_ai", model, stream=True)


def _bedrock_chunk(event: Any) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode(), "p": "abcd"})
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return event_stream_message(headers, payload.encode())


def test_anthropic_on_bedrock(spans: InMemorySpanExporter, canned: Canned) -> None:
    """``AnthropicBedrock`` posts Messages bodies (``anthropic_version``, no ``model``) to
    ``…/model/{modelId}/invoke``, and for a stream to ``…/invoke-with-response-stream``, whose
    answer is an AWS event stream (binary frames holding base64 event JSON): one GenAI span each,
    provider ``aws.bedrock``, the model from the path, the stream assembled; a
    ``throttlingException`` frame fails the span. They had no span."""
    client = anthropic.AnthropicBedrock(
        aws_access_key="AKIDEXAMPLE",
        aws_secret_key="secret",
        aws_region="us-east-1",
        base_url=canned.base_url,
        max_retries=0,
    )
    model = "anthropic.claude-sonnet-4-20250514-v1:0"
    message, events = _anthropic_yes("claude-sonnet-4-20250514")
    canned.set([json.dumps(message).encode()])
    assert client.messages.create(model=model, **_ASK_TEA).content[0].text == "Yes."  # type: ignore[union-attr]
    assert canned.paths[-1].endswith(f"/model/{model}/invoke")
    _yes_span(spans, "aws.bedrock", model, stream=False)

    spans.clear()
    frames = b"".join(_bedrock_chunk(e) for e in events)
    # split anywhere, frames cut in the middle included
    canned.set([frames[i : i + 37] for i in range(0, len(frames), 37)], "application/vnd.amazon.eventstream")
    with client.messages.stream(model=model, **_ASK_TEA) as stream:
        assert "".join(stream.text_stream) == "Yes."
    assert canned.paths[-1].endswith(f"/model/{model}/invoke-with-response-stream")
    _yes_span(spans, "aws.bedrock", model, stream=True)

    spans.clear()
    throttled = event_stream_message(
        {
            ":exception-type": "throttlingException",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        b'{"message": "Too many requests, please wait before trying again."}',
    )
    canned.set(
        [b"".join(_bedrock_chunk(e) for e in events[:3]), throttled], "application/vnd.amazon.eventstream"
    )
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(model=model, **_ASK_TEA) as stream:
        stream.get_final_message()
    (span,) = genai(spans)
    a = dict(span.attributes or {})
    assert span.status.status_code == StatusCode.ERROR and a[ERROR_TYPE] == "throttlingException"
    assert json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "Ye"}]


# ------------------------------------------------------------------------------ server tools

_SEARCH_RESULTS: Any = [
    {"type": "web_search_result", "url": "https://tea.example/prices", "title": "Tea",
     "encrypted_content": "e1", "page_age": None}
]  # fmt: skip
#: An Anthropic answer with a web search (a server tool), and the semconv parts it is recorded as
#: (replay serves those parts back as these blocks: tests/test_replay_serve.py).
WEB_SEARCH_BLOCKS: Any = [
    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "tea price"}},
    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": _SEARCH_RESULTS},
    {"type": "text", "text": "About 3 USD."},
]
WEB_SEARCH_PARTS: Any = [
    {
        "type": "server_tool_call",
        "id": "srvtoolu_1",
        "name": "web_search",
        "server_tool_call": {"type": "web_search", "arguments": {"query": "tea price"}},
    },
    {
        "type": "server_tool_call_response",
        "id": "srvtoolu_1",
        "server_tool_call_response": {"type": "web_search", "content": _SEARCH_RESULTS},
    },
    {"type": "text", "content": "About 3 USD."},
]


def test_anthropic_server_tools_are_server_tool_call_parts(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """Tools Anthropic runs itself (``server_tool_use`` web search, its ``web_search_tool_result``)
    are semconv ``server_tool_call`` / ``server_tool_call_response`` parts, streamed or not, in the
    answer and when sent back as history: they were ``tool_call`` parts, as if the application had
    to run them (and a replay served them as ``tool_use`` blocks)."""
    client = anthropic.Anthropic(base_url=canned.base_url[:-3], api_key="k", max_retries=0)
    blocks = WEB_SEARCH_BLOCKS
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": blocks, "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 9, "output_tokens": 7, "server_tool_use": {"web_search_requests": 1}},
    }  # fmt: skip
    expected = WEB_SEARCH_PARTS
    tools: Any = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]
    ask: Any = {"model": "claude-sonnet-4-6", "max_tokens": 100, "tools": tools}
    canned.set([json.dumps(message).encode()])
    answer = client.messages.create(**ask, messages=[{"role": "user", "content": "Tea price?"}])
    assert [b.type for b in answer.content] == ["server_tool_use", "web_search_tool_result", "text"]
    (out,) = json.loads(one(spans)[ga.GEN_AI_OUTPUT_MESSAGES])
    assert out["parts"] == expected
    _assert_web_searches_priced(one(spans), "anthropic", 1)

    spans.clear()
    start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 9, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {**blocks[0], "input": {}}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"query": "tea price"}'},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": blocks[1]},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "About 3 USD."}},
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 7, "server_tool_use": {"web_search_requests": 1}},
        },
        {"type": "message_stop"},
    ]
    canned.set([sse(event["type"], event) for event in events], "text/event-stream")
    history: Any = [
        {"role": "user", "content": "Tea price?"},
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": "And coffee?"},
    ]
    with client.messages.stream(**ask, messages=history) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["server_tool_use", "web_search_tool_result", "text"]
    a = one(spans)
    (out,) = json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])
    assert out["parts"] == expected
    inputs = json.loads(a[ga.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["user", "assistant", "user"]
    assert inputs[1]["parts"] == expected
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    _assert_web_searches_priced(a, "anthropic", 1)


def _assert_web_searches_priced(attributes: Any, provider_id: str, searches: int) -> None:
    """``spanreel.usage.web_searches`` is recorded and the cost is genai-prices' price of the tokens
    and the searches (web searches were not priced: a search costs about as much as the tokens)."""
    assert attributes[SPANREEL_USAGE_WEB_SEARCHES] == searches
    usage = genai_prices.Usage(
        input_tokens=attributes[ga.GEN_AI_USAGE_INPUT_TOKENS],
        output_tokens=attributes[ga.GEN_AI_USAGE_OUTPUT_TOKENS],
        web_searches=searches,
    )
    model = attributes[ga.GEN_AI_RESPONSE_MODEL]
    price = genai_prices.calc_price(usage, model_ref=model, provider_id=provider_id).total_price
    assert attributes[SPANREEL_COST_USD] == pytest.approx(float(price))
    assert price > Decimal("0.01") * searches  # the searches are in it


def test_responses_built_in_tools_are_server_tool_calls(spans: InMemorySpanExporter, canned: Canned) -> None:
    """Responses output items of tools OpenAI runs (web search, code interpreter, remote MCP) are
    ``server_tool_call`` parts, with a ``server_tool_call_response`` where the item holds the
    result; a ``custom_tool_call`` (the application runs it) is a ``tool_call`` with its input, and
    makes the finish reason ``tool_calls``. They used to keep only their type, id and status."""
    c = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    output: Any = [
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": "tea price"}},
        {"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "code": "print(3)",
         "container_id": "cntr_1", "outputs": [{"type": "logs", "logs": "3\n"}]},
        {"type": "mcp_call", "id": "mcp_1", "name": "lookup", "server_label": "shop",
         "arguments": '{"item": "tea"}', "output": "3 USD", "error": None},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_1", "name": "shell", "input": "ls -l"},
    ]  # fmt: skip
    body = {
        "id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "gpt-5",
        "output": output, "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14},
    }  # fmt: skip
    canned.set([json.dumps(body).encode()])
    answer = c.responses.create(model="gpt-5", input="Tea price?")
    assert [item.type for item in answer.output] == [i["type"] for i in output]
    a = one(spans)
    (out,) = json.loads(a[ga.GEN_AI_OUTPUT_MESSAGES])
    assert out["parts"] == [
        {
            "type": "server_tool_call",
            "id": "ws_1",
            "name": "web_search",
            "server_tool_call": {
                "type": "web_search",
                "status": "completed",
                "action": {"type": "search", "query": "tea price"},
            },
        },
        {
            "type": "server_tool_call",
            "id": "ci_1",
            "name": "code_interpreter",
            "server_tool_call": {
                "type": "code_interpreter",
                "status": "completed",
                "code": "print(3)",
                "container_id": "cntr_1",
            },
        },
        {
            "type": "server_tool_call_response",
            "id": "ci_1",
            "server_tool_call_response": {
                "type": "code_interpreter",
                "outputs": [{"type": "logs", "logs": "3\n"}],
            },
        },
        {
            "type": "server_tool_call",
            "id": "mcp_1",
            "name": "lookup",
            "server_tool_call": {"type": "mcp", "server_label": "shop", "arguments": {"item": "tea"}},
        },
        {
            "type": "server_tool_call_response",
            "id": "mcp_1",
            "server_tool_call_response": {"type": "mcp", "output": "3 USD"},
        },
        {"type": "tool_call", "id": "call_1", "name": "shell", "arguments": "ls -l"},
    ]
    assert out["finish_reason"] == "tool_calls" and a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    _assert_web_searches_priced(a, "openai", 1)

    spans.clear()
    canned.set([json.dumps({**body, "output": output[:1]}).encode()])
    items: Any = [
        {"role": "user", "content": "Tea price?"},
        *output,
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "total 0"},
    ]
    c.responses.create(model="gpt-5", input=items)
    a = one(spans)
    inputs = json.loads(a[ga.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["user", "assistant", "assistant", "assistant", "assistant", "tool"]
    assert [p["type"] for m in inputs[1:5] for p in m["parts"]] == [
        "server_tool_call", "server_tool_call", "server_tool_call_response", "server_tool_call",
        "server_tool_call_response", "tool_call",
    ]  # fmt: skip
    assert inputs[5]["parts"] == [{"type": "tool_call_response", "id": "call_1", "response": "total 0"}]
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_service_tier_is_recorded_and_priced(
    spans: InMemorySpanExporter, canned: Canned, stream: bool
) -> None:
    """A call on the flex tier: semconv's OpenAI attributes (``openai.request.service_tier``,
    ``openai.response.service_tier``, ``openai.response.system_fingerprint``, ``openai.api.type``)
    are recorded, and the cost is the flex price (it was the standard price: twice as much)."""
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-5",
        "service_tier": "flex",
        "system_fingerprint": "fp_1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Green."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 100_000, "completion_tokens": 100_000, "total_tokens": 200_000},
    }
    if stream:
        chunk = {k: answer[k] for k in ("id", "model", "service_tier", "system_fingerprint")}
        chunk["object"] = "chat.completion.chunk"
        canned.set(
            [
                b"data: %s\n\n"
                % json.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": "Green."}}]}).encode(),
                b"data: %s\n\n"
                % json.dumps(
                    {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                ).encode(),
                b"data: %s\n\n" % json.dumps({**chunk, "choices": [], "usage": answer["usage"]}).encode(),
                b"data: [DONE]\n\n",
            ],
            "text/event-stream",
        )
    else:
        canned.set([json.dumps(answer).encode()])
    c = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    kwargs: Any = {
        "model": "gpt-5",
        "messages": [{"role": "user", "content": "Tea?"}],
        "service_tier": "flex",
    }
    if stream:
        list(c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    else:
        c.chat.completions.create(**kwargs)
    a = one(spans)
    assert a["openai.api.type"] == "chat_completions"
    assert a["openai.request.service_tier"] == a["openai.response.service_tier"] == "flex"
    assert a["openai.response.system_fingerprint"] == "fp_1"
    usage = {"input_tokens": 100_000, "output_tokens": 100_000}
    assert a[SPANREEL_COST_USD] == pytest.approx(
        _library("openai", "gpt-5", usage, context={"service_tier": "flex"})
    )
    assert a[SPANREEL_COST_USD] < (_library("openai", "gpt-5", usage) or 0)


def test_responses_conversation_and_priority_tier(spans: InMemorySpanExporter, canned: Canned) -> None:
    """A Responses call in an OpenAI conversation on the priority tier: ``gen_ai.conversation.id``
    (conditionally required when available), the tier attributes, and the priority price; a
    request tier of ``auto`` is not recorded (semconv: only a tier other than auto)."""
    response = {
        "id": "resp_1",
        "object": "response",
        "model": "gpt-5",
        "status": "completed",
        "service_tier": "priority",
        "conversation": {"id": "conv_1"},
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Green.", "annotations": []}],
            }
        ],
        "usage": {"input_tokens": 100_000, "output_tokens": 100_000, "total_tokens": 200_000},
    }
    canned.set([json.dumps(response).encode()])
    c = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    c.responses.create(model="gpt-5", input="Tea?", conversation="conv_1", service_tier="auto")
    a = one(spans)
    assert a[ga.GEN_AI_CONVERSATION_ID] == "conv_1"
    assert a["openai.api.type"] == "responses" and "openai.request.service_tier" not in a
    assert a["openai.response.service_tier"] == "priority"
    usage = {"input_tokens": 100_000, "output_tokens": 100_000}
    assert a[SPANREEL_COST_USD] == pytest.approx(
        _library("openai", "gpt-5", usage, context={"service_tier": "priority"})
    )


def _chat_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}  # fmt: skip
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.mark.parametrize(
    ("ending", "read", "expected"),
    [
        # the server (or a proxy) closed the body cleanly before the end: a truncated answer
        ([], "all", ("ERROR", "incomplete_stream")),
        # [DONE] without a finish reason (some OpenAI-compatible servers): complete
        ([b"data: [DONE]\n\n"], "all", ("UNSET", None)),
        ([_chat_chunk({}, "stop"), b"data: [DONE]\n\n"], "all", ("UNSET", None)),
        # the application stopped reading: not the call's failure
        ([], "first", ("UNSET", None)),
    ],
)
def test_a_stream_read_to_its_end_without_the_end_event_is_an_error(
    spans: InMemorySpanExporter,
    canned: Canned,
    ending: list[bytes],
    read: str,
    expected: tuple[str, str | None],
) -> None:
    """A stream the server ended cleanly before the provider's end event was recorded as a
    success, while the app got a truncated answer (and the anthropic SDK's own span says ERROR)."""
    chunks = [_chat_chunk({"role": "assistant", "content": "Hel"}), _chat_chunk({"content": "lo"}), *ending]
    canned.set(chunks, "text/event-stream")
    client = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    if read == "all":
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hello"  # the app sees no error
    else:
        next(iter(stream))
        stream.close()
    (span,) = genai(spans)
    assert (span.status.status_code.name, (span.attributes or {}).get("error.type")) == expected


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_stream_event_the_sdk_cannot_decode_makes_the_call_an_error(
    spans: InMemorySpanExporter, canned: Canned, sdk: str
) -> None:
    """An event whose data is not JSON, mid-stream: the SDK raises it into the app, which then
    closes the stream. The span said UNSET (a success) while the app's call failed."""
    broken = b"data: {not json\n\n"
    if sdk == "openai":
        canned.set([_chat_chunk({"role": "assistant", "content": "Hel"}), broken], "text/event-stream")
        client = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
        stream: Any = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    else:
        message = {"id": "m1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                   "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}  # fmt: skip
        start = {"type": "message_start", "message": message}
        canned.set(
            [
                b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n",
                b"event: content_block_start\n" + broken,
            ],
            "text/event-stream",
        )
        anthropic_client = anthropic.Anthropic(
            base_url=canned.base_url.removesuffix("/v1"), api_key="k", max_retries=0
        )
        stream = anthropic_client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    with pytest.raises(ValueError), stream:  # json.JSONDecodeError, from the SDK
        for _ in stream:
            pass
    (span,) = genai(spans)
    assert (span.status.status_code.name, (span.attributes or {}).get("error.type")) == (
        "ERROR",
        "malformed_event",
    )


def test_each_sdk_attempt_is_a_span_numbered_by_resend_count(
    spans: InMemorySpanExporter, canned: Canned
) -> None:
    """A call the SDK retried is one GenAI span per HTTP attempt (each is a request the provider
    answered); ``http.request.resend_count`` (from the SDK's ``x-stainless-retry-count``) tells a
    retry from a new call."""
    canned.set([b'{"error": {"message": "overloaded", "type": "server_error"}}'], status=500)
    client = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=2)
    with pytest.raises(openai.InternalServerError):
        client.with_options(timeout=5).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    attempts = sorted(genai(spans), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {}).get("http.request.resend_count") for s in attempts] == [None, 1, 2]
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)


def test_responses_reasoning_summary_parts_assembled_from_deltas_are_lines() -> None:
    """Rebuilt from delta events (the app closed the stream early), summary parts were glued
    together (``two.**Checking``); from the final event they are joined by lines."""
    from spanreel.instrumentation._openai_responses import ResponsesStreamAccumulator

    acc = ResponsesStreamAccumulator()
    events = [
        {"type": "response.created", "response": {"id": "r1", "model": "o4-mini", "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs1"}},
    ]
    for summary_index, text in enumerate(["Two plus two.", "**Checking** Four."]):
        events.append({"type": "response.reasoning_summary_text.delta", "output_index": 0,
                       "summary_index": summary_index, "delta": text})  # fmt: skip
    for event in events:
        acc.add(json.dumps(event), event["type"])
    messages = acc.result(capture_content=True).content[ga.GEN_AI_OUTPUT_MESSAGES]
    (part,) = [p for m in messages for p in m["parts"] if p["type"] == "reasoning"]
    assert part["content"] == "Two plus two.\n**Checking** Four."
