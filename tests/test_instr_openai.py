"""Instrumentation with the real ``openai`` SDK (httpx2) and raw httpx/httpx2 clients against the
fake LLM server, spans collected with an in-memory exporter."""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import httpx2
import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import SpanKind, StatusCode

import spanreel
from spanreel._attributes import (
    SESSION_ID,
    SPANREEL_REPLAY_ORIGINAL_SPAN_ID,
    SPANREEL_REPLAY_ORIGINAL_TRACE_ID,
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_URL,
)
from spanreel.fakellm import FakeLLMServer, generate_answer
from spanreel.instrumentation import Instrumentor, extract_output_text, replay_of, session
from spanreel.instrumentation._openai import CHAT, ChatStreamAccumulator

SECRET = "sk-TOPSECRET-4242"
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about tea."}]


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    inst = Instrumentor()
    if inst.is_instrumented_by_opentelemetry:  # another test module left it on
        inst.uninstrument()
    inst.instrument(tracer_provider=provider, capture_content=True)
    provider_holder["provider"] = provider
    yield exp
    inst.uninstrument()
    provider.shutdown()


provider_holder: dict[str, TracerProvider] = {}


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def client(server: FakeLLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0)


def genai(exp: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in exp.get_finished_spans()
        if s.instrumentation_scope
        and s.instrumentation_scope.name == "spanreel"
        and s.kind == SpanKind.CLIENT
    ]


def http_spans(exp: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in exp.get_finished_spans()
        if s.instrumentation_scope
        and s.instrumentation_scope.name.startswith("opentelemetry.instrumentation.httpx")
    ]


def only_genai(exp: InMemorySpanExporter) -> ReadableSpan:
    found = genai(exp)
    assert len(found) == 1, [s.name for s in exp.get_finished_spans()]
    return found[0]


def assert_no_secrets(exp: InMemorySpanExporter) -> None:
    for s in exp.get_finished_spans():
        for key, value in (s.attributes or {}).items():
            text = json.dumps(value) if not isinstance(value, str) else value
            assert SECRET not in text, (s.name, key)
            assert "Bearer" not in text, (s.name, key)
            assert "authorization" not in key.lower(), (s.name, key)


@contextmanager
def uninstrumented() -> Iterator[None]:
    inst = Instrumentor()
    inst.uninstrument()
    try:
        yield
    finally:
        inst.instrument(tracer_provider=provider_holder["provider"], capture_content=True)


def test_sync_non_streaming(
    spans: InMemorySpanExporter, client: openai.OpenAI, server: FakeLLMServer
) -> None:
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, seed=3)
    span = only_genai(spans)
    a = span.attributes or {}
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert (
        span.instrumentation_scope is not None and span.instrumentation_scope.version == spanreel.__version__
    )
    assert a[ga.GEN_AI_OPERATION_NAME] == "chat"
    assert a[ga.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[ga.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[ga.GEN_AI_REQUEST_TEMPERATURE] == 0.2 and a[ga.GEN_AI_REQUEST_SEED] == 3
    assert a[ga.GEN_AI_REQUEST_STREAM] is False
    assert a[SERVER_ADDRESS] == "127.0.0.1" and a[SERVER_PORT] == server.port
    assert a[SPANREEL_REQUEST_URL] == server.base_url + "/chat/completions"
    assert json.loads(str(a[SPANREEL_REQUEST_BODY])) == server.requests[-1].json
    assert a[ga.GEN_AI_RESPONSE_ID] == result.id
    assert a[ga.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert result.usage is not None
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens
    assert json.loads(str(a[ga.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Tell me about tea."}]}
    ]
    assert extract_output_text(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == result.choices[0].message.content
    assert json.loads(str(a[ga.GEN_AI_OUTPUT_MESSAGES]))[0]["finish_reason"] == "stop"
    assert span.status.status_code == StatusCode.UNSET
    # The HTTP client span is a child of the GenAI span, in the same trace.
    (http,) = http_spans(spans)
    assert http.parent is not None and http.parent.span_id == span.context.span_id
    assert http.context.trace_id == span.context.trace_id
    assert span.parent is None
    # The request the server saw carries the HTTP span's context.
    traceparent = server.requests[-1].header("traceparent")
    assert traceparent is not None and format(span.context.trace_id, "032x") in traceparent
    assert_no_secrets(spans)


def test_sync_streaming_span_ends_after_stream_consumed(
    spans: InMemorySpanExporter, server: FakeLLMServer
) -> None:
    with FakeLLMServer(chunk_delay=0.01) as slow:
        c = openai.OpenAI(base_url=slow.base_url, api_key=SECRET, max_retries=0)
        stream = c.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        first = next(iter(stream))
        assert first.choices
        assert genai(spans) == []  # still open while the app reads the stream
        assert len(http_spans(spans)) == 1  # the HTTP span ends with the response head
        rest = list(stream)
    span = only_genai(spans)
    a = span.attributes or {}
    text = "".join(ch.choices[0].delta.content or "" for ch in [first, *rest] if ch.choices)
    assert extract_output_text(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == text
    assert a[ga.GEN_AI_REQUEST_STREAM] is True
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    usage = rest[-1].usage
    assert usage is not None
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == usage.completion_tokens
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert a[ga.GEN_AI_RESPONSE_ID] == first.id
    ttfc = a[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttfc, float)
    assert span.end_time is not None and span.start_time is not None
    assert 0 < ttfc < (span.end_time - span.start_time) / 1e9
    (http,) = http_spans(spans)
    assert http.parent is not None and http.parent.span_id == span.context.span_id
    assert http.end_time is not None and http.end_time < span.end_time


@pytest.mark.parametrize("coalesce_last", [2, 10**6], ids=["usage-and-done-together", "one-write"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_stream_whose_last_events_arrive_together_is_recorded_whole(
    spans: InMemorySpanExporter, coalesce_last: int, use_async: bool
) -> None:
    # A real server's final events (the usage chunk and [DONE]) often reach the client in one read;
    # the SDK then stops at [DONE] and closes the response while that last chunk is still the one
    # the application holds, so the span must parse it when the stream is closed.
    with FakeLLMServer(coalesce_last=coalesce_last) as srv:
        kwargs: Any = {
            "model": "gpt-4o-mini",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if use_async:

            async def run() -> list[Any]:
                c = openai.AsyncOpenAI(base_url=srv.base_url, api_key=SECRET, max_retries=0)
                return [chunk async for chunk in await c.chat.completions.create(**kwargs)]

            chunks = asyncio.run(run())
        else:
            c = openai.OpenAI(base_url=srv.base_url, api_key=SECRET, max_retries=0)
            chunks = list(c.chat.completions.create(**kwargs))
    usage = chunks[-1].usage
    assert usage is not None
    a = only_genai(spans).attributes or {}
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert extract_output_text(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == text
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == usage.completion_tokens
    assert a[ga.GEN_AI_RESPONSE_ID] == chunks[0].id
    assert isinstance(a[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_chunks_reach_the_app_as_the_server_sends_them(spans: InMemorySpanExporter, use_async: bool) -> None:
    # The server pauses 50 ms before each event; were the stream buffered anywhere on the way,
    # the chunks would all arrive together at the end.
    delay = 0.05
    with FakeLLMServer(chunk_delay=delay) as srv:
        kwargs: Any = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        if use_async:

            async def run() -> list[float]:
                c = openai.AsyncOpenAI(base_url=srv.base_url, api_key=SECRET, max_retries=0)
                return [time.monotonic() async for _ in await c.chat.completions.create(**kwargs)]

            arrivals = asyncio.run(run())
        else:
            c = openai.OpenAI(base_url=srv.base_url, api_key=SECRET, max_retries=0)
            arrivals = [time.monotonic() for _ in c.chat.completions.create(**kwargs)]
    assert len(arrivals) >= 8
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Each chunk waited for its own event (median and spread, robust to a stalled client reading
    # two events at once on a loaded machine).
    assert statistics.median(gaps) > delay * 0.5, gaps
    assert arrivals[-1] - arrivals[0] > delay * len(gaps) * 0.5, gaps
    assert only_genai(spans).end_time is not None


def test_stream_closed_early_ends_span(spans: InMemorySpanExporter, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for _ in stream:
        break
    assert genai(spans) == []
    stream.close()
    span = only_genai(spans)
    assert span.status.status_code == StatusCode.UNSET


def test_streaming_tool_call(spans: InMemorySpanExporter, client: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"days": {"type": "integer"}}},
            },
        }
    ]
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, tools=tools, stream=True))
    args = "".join(
        tc.function.arguments or ""
        for ch in chunks
        for tc in (ch.choices[0].delta.tool_calls or [])
        if tc.function is not None
    )
    a = only_genai(spans).attributes or {}
    (message,) = json.loads(str(a[ga.GEN_AI_OUTPUT_MESSAGES]))
    assert message["finish_reason"] == "tool_calls"
    (part,) = message["parts"]
    assert part["type"] == "tool_call" and part["name"] == "get_weather"
    assert part["arguments"] == json.loads(args)
    assert json.loads(str(a[ga.GEN_AI_TOOL_DEFINITIONS]))[0]["name"] == "get_weather"


async def test_async_non_streaming_and_streaming(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = openai.AsyncOpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0)
    r = await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_genai(spans)
    assert (span.attributes or {})[ga.GEN_AI_RESPONSE_ID] == r.id
    spans.clear()
    stream = await c.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text = ""
    async for ch in stream:
        if ch.choices:
            text += ch.choices[0].delta.content or ""
        assert genai(spans) == [] or ch.usage is not None
    await c.close()
    span = only_genai(spans)
    a = span.attributes or {}
    assert extract_output_text(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == text
    assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == len(text.split())
    (http,) = http_spans(spans)
    assert http.parent is not None and http.parent.span_id == span.context.span_id
    assert_no_secrets(spans)


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_raw_sync_client(spans: InMemorySpanExporter, server: FakeLLMServer, lib: Any) -> None:
    body = {"model": "raw-model", "messages": MESSAGES}
    with lib.Client() as c:
        r = c.post(
            server.base_url + f"/chat/completions?api-key={SECRET}&x=1",
            json=body,
            headers={"api-key": SECRET},
        )
    assert r.status_code == 200
    span = only_genai(spans)
    a = span.attributes or {}
    assert span.name == "chat raw-model"
    assert a[SPANREEL_REQUEST_URL] == server.base_url + "/chat/completions?x=1"
    assert a[ga.GEN_AI_RESPONSE_ID] == r.json()["id"]
    (http,) = http_spans(spans)
    assert http.parent is not None and http.parent.span_id == span.context.span_id
    assert_no_secrets(spans)


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_raw_async_streaming_client(
    spans: InMemorySpanExporter, server: FakeLLMServer, lib: Any
) -> None:
    body = {"model": "raw-model", "messages": MESSAGES, "stream": True}
    received = b""
    async with (
        lib.AsyncClient() as c,
        c.stream("POST", server.base_url + "/chat/completions", json=body) as r,
    ):
        async for part in r.aiter_raw():
            received += part
    assert b"data: [DONE]" in received
    a = only_genai(spans).attributes or {}
    assert extract_output_text(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == generate_answer(body)
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def test_non_llm_requests_have_no_genai_span(
    spans: InMemorySpanExporter, client: openai.OpenAI, server: FakeLLMServer
) -> None:
    client.models.list()
    httpx.post(server.base_url + "/chat/completions", content=b"{not json", timeout=5)
    httpx.post(server.base_url + "/chat/completions", json={"model": "m"}, timeout=5)
    assert genai(spans) == []
    assert len(http_spans(spans)) == 3


def test_http_500_error(spans: InMemorySpanExporter, client: openai.OpenAI) -> None:
    with uninstrumented(), pytest.raises(openai.APIStatusError) as plain:
        client.chat.completions.create(model="fake-error-500", messages=MESSAGES)
    spans.clear()
    with pytest.raises(openai.APIStatusError) as traced:
        client.chat.completions.create(model="fake-error-500", messages=MESSAGES)
    assert type(traced.value) is type(plain.value) is openai.InternalServerError
    assert traced.value.body == plain.value.body
    span = only_genai(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "fake_error_500"
    assert "Forced error 500" in (span.status.description or "")


def test_transport_exception_reraised_unchanged(spans: InMemorySpanExporter) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connection refused
    url = f"http://127.0.0.1:{port}/v1"
    c = openai.OpenAI(base_url=url, api_key=SECRET, max_retries=0)
    with uninstrumented(), pytest.raises(Exception) as plain:
        c.chat.completions.create(model="m", messages=MESSAGES)
    spans.clear()
    with pytest.raises(Exception) as traced:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert type(traced.value) is type(plain.value) is openai.APIConnectionError
    assert type(traced.value.__cause__) is type(plain.value.__cause__) is httpx2.ConnectError
    span = only_genai(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "ConnectError"

    with pytest.raises(httpx.ConnectError):
        httpx.post(url + "/chat/completions", json={"model": "m", "messages": MESSAGES})


def test_response_dropped_unread_is_ended_by_gc(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = httpx2.Client()
    req = c.build_request(
        "POST", server.base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES}
    )
    response = c.send(req, stream=True)
    assert response.status_code == 200
    assert genai(spans) == []
    del response
    gc.collect()
    assert len(genai(spans)) == 1
    c.close()


def test_session_and_parent_spans(spans: InMemorySpanExporter, client: openai.OpenAI) -> None:
    with spanreel.session("debate", session_id="sess-1") as s:
        assert s.id == "sess-1"
        client.chat.completions.create(model="a", messages=MESSAGES)
        client.chat.completions.create(model="b", messages=MESSAGES)
    calls = genai(spans)
    (root,) = [x for x in spans.get_finished_spans() if x.name == "debate"]
    assert root.kind == SpanKind.INTERNAL and root.parent is None
    assert (root.attributes or {})[SESSION_ID] == "sess-1"
    assert len(calls) == 2
    for call in calls:
        assert call.context.trace_id == root.context.trace_id
        assert call.parent is not None and call.parent.span_id == root.context.span_id
        assert (call.attributes or {})[SESSION_ID] == "sess-1"

    spans.clear()
    tracer = trace.get_tracer("app", tracer_provider=provider_holder["provider"])
    with tracer.start_as_current_span("request") as parent, session("inner") as inner:
        assert inner.span is None and len(inner.id) == 32
        client.chat.completions.create(model="c", messages=MESSAGES)
    call = only_genai(spans)
    assert call.parent is not None and call.parent.span_id == parent.get_span_context().span_id
    assert (call.attributes or {})[SESSION_ID] == inner.id
    assert [x.name for x in spans.get_finished_spans() if x.name == "inner"] == []


async def test_async_session(spans: InMemorySpanExporter, server: FakeLLMServer) -> None:
    c = openai.AsyncOpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0)
    async with session("async-debate") as s:
        await c.chat.completions.create(model="a", messages=MESSAGES)
    await c.close()
    assert (only_genai(spans).attributes or {})[SESSION_ID] == s.id
    assert any(x.name == "async-debate" for x in spans.get_finished_spans())


def test_replay_of_links_to_original(spans: InMemorySpanExporter, client: openai.OpenAI) -> None:
    trace_hex, span_hex = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    with replay_of(trace_hex, span_hex):
        client.chat.completions.create(model="m", messages=MESSAGES)
    client.chat.completions.create(model="m2", messages=MESSAGES)
    replayed, plain = sorted(genai(spans), key=lambda s: s.name)
    a = replayed.attributes or {}
    assert a[SPANREEL_REPLAY_ORIGINAL_TRACE_ID] == trace_hex
    assert a[SPANREEL_REPLAY_ORIGINAL_SPAN_ID] == span_hex
    (link,) = replayed.links
    assert (
        format(link.context.trace_id, "032x") == trace_hex
        and format(link.context.span_id, "016x") == span_hex
    )
    assert replayed.context.trace_id != int(trace_hex, 16)  # a new trace, linked
    assert not plain.links and SPANREEL_REPLAY_ORIGINAL_TRACE_ID not in (plain.attributes or {})
    with pytest.raises(ValueError), replay_of("xyz", span_hex):
        pass


def test_content_capture_off(spans: InMemorySpanExporter, client: openai.OpenAI) -> None:
    inst = Instrumentor()
    inst.uninstrument()
    inst.instrument(tracer_provider=provider_holder["provider"], capture_content=False)
    try:
        client.chat.completions.create(model="m", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        list(stream)
    finally:
        inst.uninstrument()
        inst.instrument(tracer_provider=provider_holder["provider"], capture_content=True)
    calls = genai(spans)
    assert len(calls) == 2
    for call in calls:
        a = call.attributes or {}
        for key in (ga.GEN_AI_INPUT_MESSAGES, ga.GEN_AI_OUTPUT_MESSAGES, SPANREEL_REQUEST_BODY):
            assert key not in a
        assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
        assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def test_uninstrument_removes_everything(spans: InMemorySpanExporter, client: openai.OpenAI) -> None:
    with uninstrumented():
        client.chat.completions.create(model="m", messages=MESSAGES)
        assert spans.get_finished_spans() == ()
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(genai(spans)) == 1 and len(http_spans(spans)) == 1


def test_telemetry_failure_never_breaks_the_app(
    spans: InMemorySpanExporter, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("spanreel bug")

    monkeypatch.setattr(CHAT, "request", boom)
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    assert r.choices[0].message.content == generate_answer({"model": "m", "messages": MESSAGES})
    assert genai(spans) == [] and len(http_spans(spans)) == 1
    monkeypatch.undo()

    spans.clear()

    monkeypatch.setattr(CHAT, "response", boom)
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    assert r.choices[0].message.content == generate_answer({"model": "m", "messages": MESSAGES})
    span = only_genai(spans)  # ended, without response attributes
    assert ga.GEN_AI_RESPONSE_ID not in (span.attributes or {})

    spans.clear()
    monkeypatch.setattr(ChatStreamAccumulator, "add", boom)
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == generate_answer({"model": "m", "messages": MESSAGES})
    span = only_genai(spans)  # still ended, just without response attributes
    assert ga.GEN_AI_OUTPUT_MESSAGES not in (span.attributes or {})


def test_gzip_encoded_response_is_parsed(spans: InMemorySpanExporter) -> None:
    """Real APIs may gzip JSON bodies: the app gets the decoded body, the span the parsed one."""
    payload = {
        "id": "chatcmpl-gz",
        "object": "chat.completion",
        "created": 0,
        "model": "gz-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "zipped"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    body = gzip.compress(json.dumps(payload).encode())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        c = openai.OpenAI(
            base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", api_key=SECRET, max_retries=0
        )
        r = c.chat.completions.create(model="gz-model", messages=MESSAGES)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.choices[0].message.content == "zipped"
    a = only_genai(spans).attributes or {}
    assert a[ga.GEN_AI_RESPONSE_ID] == "chatcmpl-gz"
    assert extract_output_text(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == "zipped"
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 2
