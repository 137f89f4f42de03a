"""Faults never reach the app: our parser raising, malformed JSON/SSE, non-UTF-8 bytes, a 10 MB
body, a stream cut mid-way, the exporter's endpoint down. Plus the size cap and blob placeholders."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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

from spanreel._attributes import (
    SPANREEL_CONTENT_TRUNCATED,
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_BODY_MODIFIED,
)
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor
from spanreel.instrumentation._anthropic import MESSAGES
from spanreel.instrumentation._openai import CHAT
from spanreel.instrumentation._openai_responses import RESPONSES

MESSAGES_BODY: Any = [{"role": "user", "content": "Tea?"}]


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    with recording(capture_content=True, max_content_bytes=64 * 1024) as rec:
        yield rec


def genai(exp: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in exp.get_finished_spans()
        if s.instrumentation_scope and s.instrumentation_scope.name == "spanreel"
    ]


def plain_then_traced(provider: tuple[TracerProvider, InMemorySpanExporter], fn: Any) -> tuple[Any, Any]:
    """``fn()``'s outcome (result or exception) without instrumentation, then with it."""
    tp = provider[0]
    inst = Instrumentor()

    def outcome() -> Any:
        try:
            return fn()
        except Exception as exc:
            return (type(exc), str(exc))

    inst.uninstrument()
    try:
        plain = outcome()
    finally:
        inst.instrument(tracer_provider=tp, capture_content=True, max_content_bytes=64 * 1024)
    provider[1].clear()
    return plain, outcome()


class Canned:
    """A local HTTP server answering every POST with ``status``, ``content_type`` and ``chunks``
    (sent with chunked transfer encoding; ``cut`` drops the connection after the chunks;
    ``end_delay`` seconds pass before the body's end)."""

    def __init__(self) -> None:
        self.status, self.content_type, self.chunks, self.cut = 200, "application/json", [b"{}"], False
        self.end_delay = 0.0
        self.paths: list[str] = []  # the path (with query) of each POST received
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                canned.paths.append(self.path)
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in canned.chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if canned.cut:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                time.sleep(canned.end_delay)
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def set(
        self,
        chunks: list[bytes],
        content_type: str = "application/json",
        status: int = 200,
        cut: bool = False,
        end_delay: float = 0.0,
    ) -> None:
        self.chunks, self.content_type, self.status, self.cut = chunks, content_type, status, cut
        self.end_delay = end_delay


@pytest.fixture(scope="module")
def canned() -> Iterator[Canned]:
    c = Canned()
    yield c
    c.httpd.shutdown()
    c.httpd.server_close()


def _raw(url: str, body: Any) -> tuple[int, bytes]:
    """Status and body bytes (``created`` timestamps blanked: they tick between two runs)."""
    with httpx2.Client() as c:
        r = c.post(url, json=body)
        return r.status_code, re.sub(rb'"created(_at)?": \d+', b'"created": 0', r.content)


@pytest.mark.parametrize(
    ("chunks", "content_type"),
    [
        ([b'{"id": "x", "choices": ['], "application/json"),  # malformed JSON
        ([b"\xff\xfe\x00garbage\x80"], "application/json"),  # not UTF-8
        (
            [b"data: {broken\n\n", b"event: x\ndata: \xff\xfe\n\n", b": comment\n", b"data: [DONE]\n\n"],
            "text/event-stream",
        ),
        (
            [b"data: " + json.dumps({"choices": [{"delta": {"content": 5}}]}).encode() + b"\n\n"],
            "text/event-stream",
        ),
        ([b'{"choices": "not a list", "usage": {"prompt_tokens": "x"}}'], "application/json"),
    ],
    ids=["bad-json", "non-utf8", "bad-sse", "wrong-types-sse", "wrong-types-json"],
)
def test_malformed_responses_pass_through(
    provider: Any, spans: InMemorySpanExporter, canned: Canned, chunks: list[bytes], content_type: str
) -> None:
    canned.set(chunks, content_type)
    body = {"model": "m", "messages": MESSAGES_BODY, "stream": content_type == "text/event-stream"}
    plain, traced = plain_then_traced(provider, lambda: _raw(canned.base_url + "/chat/completions", body))
    assert traced == plain == (200, re.sub(rb'"created(_at)?": \\d+', b'"created": 0', b"".join(chunks)))
    (span,) = genai(spans)  # ended, without inventing anything
    assert ga.GEN_AI_OUTPUT_MESSAGES not in (span.attributes or {}) or content_type == "text/event-stream"


def test_malformed_json_through_the_sdk_same_exception(
    provider: Any, spans: InMemorySpanExporter, canned: Canned
) -> None:
    canned.set([b'{"id": "x", "choices": ['])
    client = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    plain, traced = plain_then_traced(
        provider, lambda: client.chat.completions.create(model="m", messages=MESSAGES_BODY)
    )
    assert traced == plain and isinstance(plain, tuple)
    assert len(genai(spans)) == 1


def test_ten_megabyte_body_is_identical_and_capped(
    provider: Any, spans: InMemorySpanExporter, canned: Canned
) -> None:
    text = "tea " * (10 * 1024 * 1024 // 4)
    payload = {
        "id": "big",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    raw = json.dumps(payload).encode()
    canned.set([raw[i : i + (1 << 20)] for i in range(0, len(raw), 1 << 20)])
    client = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
    plain, traced = plain_then_traced(
        provider,
        lambda: client.chat.completions.create(model="m", messages=MESSAGES_BODY).choices[0].message.content,
    )
    assert traced == plain == text
    (span,) = genai(spans)
    a = span.attributes or {}
    out = str(a[ga.GEN_AI_OUTPUT_MESSAGES])
    assert len(out.encode()) < 64 * 1024 + 100
    full = [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}]
    assert out.endswith(f"…[spanreel: truncated, {len(json.dumps(full, separators=(',', ':')))} bytes]")
    assert a[SPANREEL_CONTENT_TRUNCATED] == (ga.GEN_AI_OUTPUT_MESSAGES,)
    assert a[ga.GEN_AI_RESPONSE_ID] == "big"


def test_large_request_body_is_capped_and_marked(provider: Any, spans: InMemorySpanExporter) -> None:
    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "word " * 30000}])
    a = genai(spans)[0].attributes or {}
    assert str(a[SPANREEL_REQUEST_BODY]).endswith("bytes]") and a[SPANREEL_REQUEST_BODY_MODIFIED] is True
    assert set(a[SPANREEL_CONTENT_TRUNCATED]) == {ga.GEN_AI_INPUT_MESSAGES, SPANREEL_REQUEST_BODY}  # type: ignore[arg-type]


def test_inline_image_becomes_placeholder(provider: Any, spans: InMemorySpanExporter) -> None:
    image = "iVBORw0KGgo" + "A" * 4000 + "=="
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
    ]
    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
        sent = server.requests[-1].json
    assert sent["messages"][0]["content"][1]["image_url"]["url"].endswith(
        image
    )  # the app's request is untouched
    a = genai(spans)[0].attributes or {}
    (message,) = json.loads(str(a[ga.GEN_AI_INPUT_MESSAGES]))
    blob = message["parts"][1]
    assert blob["type"] == "blob" and blob["mime_type"] == "image/png"
    assert blob["content"] == f"[spanreel: image/png base64 omitted, {len(image) * 3 // 4 - 2} bytes]"
    recorded = json.loads(str(a[SPANREEL_REQUEST_BODY]))
    assert image not in a[SPANREEL_REQUEST_BODY]  # type: ignore[operator]
    assert "omitted" in recorded["messages"][0]["content"][1]["image_url"]["url"]
    assert a[SPANREEL_REQUEST_BODY_MODIFIED] is True


@pytest.mark.parametrize("api", [CHAT, RESPONSES, MESSAGES], ids=lambda a: a.name)
def test_parser_raising_never_reaches_the_app(
    provider: Any, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, api: Any
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("spanreel bug")

    with FakeLLMServer() as server:
        monkeypatch.setattr(api, "response", boom)
        monkeypatch.setattr(api, "stream", boom)
        if api is MESSAGES:
            path, body = (
                "/messages",
                {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": MESSAGES_BODY},
            )
        elif api is RESPONSES:
            path, body = "/responses", {"model": "gpt-4o-mini", "input": "Tea?"}
        else:
            path, body = "/chat/completions", {"model": "m", "messages": MESSAGES_BODY}
        for stream in (False, True):
            plain, traced = plain_then_traced(
                provider, lambda s=stream: _raw(server.base_url + path, {**body, "stream": s})
            )
            assert traced == plain and traced[0] == 200
            (span,) = genai(spans)
            assert span.end_time is not None


def test_stream_cut_midway_reraises_same_error(
    provider: Any, spans: InMemorySpanExporter, canned: Canned
) -> None:
    chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "half "}}]}
    canned.set([b"data: " + json.dumps(chunk).encode() + b"\n\n"], "text/event-stream", cut=True)

    def read() -> str:
        with (
            httpx.Client() as c,
            c.stream(
                "POST",
                canned.base_url + "/chat/completions",
                json={"model": "m", "messages": MESSAGES_BODY, "stream": True},
            ) as r,
        ):
            return b"".join(r.iter_raw()).decode()

    plain, traced = plain_then_traced(provider, read)
    assert traced == plain and isinstance(plain, tuple) and plain[0] is httpx.RemoteProtocolError
    (span,) = genai(spans)
    assert span.status.status_code == StatusCode.ERROR
    a = span.attributes or {}
    assert a[ERROR_TYPE] == "RemoteProtocolError"
    assert "half" in str(a[ga.GEN_AI_OUTPUT_MESSAGES])  # what arrived before the cut is kept


def test_async_stream_drained_after_done_is_not_an_error(
    provider: Any, spans: InMemorySpanExporter, canned: Canned
) -> None:
    """openai's async stream, after ``[DONE]``, drains the rest of the body for at most 100 ms and
    then cancels the read. A server (or proxy) slower than that to end the body made a complete
    call's span ERROR ``CancelledError``, though the app got its answer and no exception."""
    chunk = {
        "id": "c",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
    }
    events = [b"data: " + json.dumps(chunk).encode() + b"\n\n", b"data: [DONE]\n\n"]
    canned.set(events, "text/event-stream", end_delay=0.3)

    async def read() -> str:
        client = openai.AsyncOpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES_BODY, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(read()) == "hi"
    (span,) = genai(spans)
    assert span.status.status_code == StatusCode.UNSET
    a = span.attributes or {}
    assert ERROR_TYPE not in a and a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def test_exporter_endpoint_down_changes_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    app = textwrap.dedent(
        """
        import openai
        c = openai.OpenAI(max_retries=0)
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Tea?"}])
        s = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Tea?"}], stream=True)
        print(r.choices[0].message.content, "".join(x.choices[0].delta.content or "" for x in s if x.choices))
        """
    )
    script = tmp_path / "app.py"
    script.write_text(app)
    with FakeLLMServer() as server:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANREEL_", "OPENAI_"))}
        base.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="k")
        runs = []
        for extra in (
            {},
            {
                "SPANREEL_ENABLED": "1",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            },
        ):
            runs.append(
                subprocess.run(
                    [sys.executable, str(script)],
                    env={**base, **extra},
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            )
    plain, traced = runs
    assert plain.returncode == traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout and plain.stdout.strip()
    assert "Traceback" not in traced.stderr


class _Redirector:
    """A local HTTP server answering every POST with ``status`` and ``Location: target + path``."""

    def __init__(self, target: str, status: int = 308) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(status)
                self.send_header("Location", target + self.path.removeprefix("/old"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/old"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_redirected_call_is_one_span_with_the_answer(
    spans: InMemorySpanExporter, status: int, stream: bool, use_async: bool
) -> None:
    """The SDKs follow redirects. The redirect hop's GenAI span used to be the only one, empty:
    httpx rebuilds the redirected request around the unread body, so the answered hop was not
    recognised, and its output, usage and cost were never recorded."""
    with FakeLLMServer() as llm:
        redirector = _Redirector(llm.base_url.removesuffix("/v1") + "/v1", status)
        try:
            kwargs: Any = {"model": "gpt-4o-mini", "messages": MESSAGES_BODY, "stream": stream}
            if stream:
                kwargs["stream_options"] = {"include_usage": True}
            if use_async:

                async def run() -> str:
                    client = openai.AsyncOpenAI(base_url=redirector.base_url, api_key="sk-x", max_retries=0)
                    result = await client.chat.completions.create(**kwargs)
                    if not stream:
                        return result.choices[0].message.content or ""
                    return "".join([c.choices[0].delta.content or "" async for c in result if c.choices])

                text = asyncio.run(run())
            else:
                client = openai.OpenAI(base_url=redirector.base_url, api_key="sk-x", max_retries=0)
                result = client.chat.completions.create(**kwargs)
                text = (
                    "".join(c.choices[0].delta.content or "" for c in result if c.choices)
                    if stream
                    else result.choices[0].message.content or ""
                )
        finally:
            redirector.close()
    (call,) = genai(spans)
    attrs = call.attributes or {}
    assert attrs["spanreel.request.url"] == llm.base_url + "/chat/completions"
    assert attrs[ga.GEN_AI_USAGE_OUTPUT_TOKENS] > 0 and "spanreel.cost.usd" in attrs
    assert text and text in json.loads(str(attrs[ga.GEN_AI_OUTPUT_MESSAGES]))[0]["parts"][0]["content"]
    assert call.status.status_code == StatusCode.UNSET
    hops = [s for s in spans.get_finished_spans() if s.parent and s.parent.span_id == call.context.span_id]
    assert sorted((s.attributes or {}).get("http.status_code", 0) for s in hops) == [200, status]


def test_a_redirect_the_client_does_not_follow_still_ends_the_span(spans: InMemorySpanExporter) -> None:
    with FakeLLMServer() as llm:
        redirector = _Redirector(llm.base_url)
        try:
            with httpx2.Client(follow_redirects=False) as client:
                body = {"model": "gpt-4o-mini", "messages": MESSAGES_BODY}
                response = client.post(redirector.base_url + "/chat/completions", json=body)
                assert response.status_code == 308 and response.next_request is not None
                assert genai(spans) == []  # the app may still send next_request
                del response
                (redirected,) = genai(spans)  # it did not: ended when the response went away
                assert redirected.status.status_code == StatusCode.ERROR  # no answer came
                assert (redirected.attributes or {})[ERROR_TYPE] == "308"
                assert ga.GEN_AI_OUTPUT_MESSAGES not in (redirected.attributes or {})
                # The app's next call is a call of its own.
                client.post(llm.base_url + "/chat/completions", json=body)
                assert len(genai(spans)) == 2
                # Another POST to the redirect's target while the redirect response is still
                # held is not its continuation either (it used to be: the span got this call's
                # answer under the first call's request); it ends the redirected call.
                spans.clear()
                held = client.post(redirector.base_url + "/chat/completions", json=body)
                other = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Other"}]}
                client.post(held.headers["location"], json=other)
                first, second = sorted(genai(spans), key=lambda s: s.start_time or 0)
                assert (first.name, first.status.status_code) == ("chat gpt-4o-mini", StatusCode.ERROR)
                assert second.name == "chat gpt-4.1" and second.status.status_code == StatusCode.UNSET
                # The app following it itself (next_request, streamed, the 308 response let go
                # before the body is read) continues it: the answer is recorded.
                spans.clear()
                held = client.post(redirector.base_url + "/chat/completions", json=body)
                assert held.next_request is not None
                followed = client.send(held.next_request, stream=True)
                del held
                followed.read()
                followed.close()
                (continued,) = genai(spans)
                assert ga.GEN_AI_OUTPUT_MESSAGES in (continued.attributes or {})
                assert continued.status.status_code == StatusCode.UNSET
        finally:
            redirector.close()


def test_a_redirect_loop_is_a_failed_call(spans: InMemorySpanExporter) -> None:
    """httpx gives up after 20 redirects (TooManyRedirects, outside the transport): the call used
    to be recorded as a success."""
    redirector = _Redirector("/old")  # every answer sends the client back to the same path
    try:
        client = openai.OpenAI(base_url=redirector.base_url, api_key="sk-x", max_retries=0)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES_BODY)
    finally:
        redirector.close()
    (call,) = genai(spans)
    assert call.status.status_code == StatusCode.ERROR and (call.attributes or {})[ERROR_TYPE] == "308"
    assert call.end_time is not None
