"""Added latency and CPU per LLM call: spanreel vs no instrumentation vs
opentelemetry-instrumentation-openai-v2 (with and without opentelemetry-instrumentation-httpx).

Everything runs in one invocation, against one very fast local server (a raw asyncio HTTP/1.1
server in its own process, answering canned Chat Completions JSON or an SSE stream of 15 events
with usage), so the instrumentation's cost is not hidden by the server's. Every variant runs the
same client code (the real ``openai`` SDK, sync client, keep-alive) in its own subprocess
(instrumentations never mix), with content capture on and the same OpenTelemetry SDK set-up: a
``TracerProvider`` with one ``BatchSpanProcessor`` whose exporter drops the spans (export is off
the call's critical path in every variant; no metrics provider is set, so HTTP metrics are no-ops):

- ``baseline``: no instrumentation (the same provider set up, nothing uses it);
- ``spanreel``: ``spanreel.instrumentation.Instrumentor`` — the GenAI span (content captured)
  plus its child HTTP span from opentelemetry-instrumentation-httpx (the issue's contract);
- ``spanreel-no-http``: spanreel without the HTTP child span (``http_spans=False``);
- ``openai-v2``: ``opentelemetry-instrumentation-openai-v2`` with
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY`` and
  ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (its way of capturing content);
- ``openai-v2+httpx``: the same plus opentelemetry-instrumentation-httpx (``HTTPXClientInstrumentor``
  and ``HTTPX2ClientInstrumentor``): like for like with ``spanreel``;
- ``httpx``: opentelemetry-instrumentation-httpx alone (the cost of the HTTP child span by itself).

Each client does ``--warmup`` untimed calls, then ``--calls`` timed calls per mode (non-streamed;
streamed with ``stream_options.include_usage``, read to the end). Per mode it reports the median
wall time per call (``time.perf_counter_ns`` around each call) and the client process's CPU time
per call (``time.process_time_ns`` over the whole timed loop ÷ calls: every thread of the client,
the span processor's included; the server runs in another process). CPU time is the steadier
figure on a shared, loaded machine: wall time also counts waiting for a CPU.

Variants are interleaved over ``--rounds`` rounds (each round runs every variant once, in a
rotated order) to spread machine noise evenly; the figure per variant is the median of its
rounds. "added" is that minus the baseline's figure from the same run; ratios are against the
baseline. Targets checked (issue 3): spanreel's added latency ≤ openai-v2's, and ≤ 150 µs per
non-streamed call; verdicts are given on both CPU and wall figures.

Run: ``python bench/instrumentation_overhead.py [--calls 2000] [--rounds 5] [--variants a,b] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

VARIANTS = ("baseline", "spanreel", "spanreel-no-http", "openai-v2", "openai-v2+httpx", "httpx")
MODES = ("plain", "stream")
MODE_LABELS = {"plain": "non-streamed", "stream": "streamed"}
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Name three teas and one fact about each."},
]

# -------------------------------------------------------------------------------------- server

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sencha is steamed. Assam is malty. Oolong is partly oxidised.",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
    }
).encode()


def _sse_body() -> bytes:
    words = ["Sencha", "is", "steamed", ".", "Assam", "is", "malty", ".", "Oolong", "is", "oxidised", "."]
    out = []
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    out.append(first)
    for w in words:
        out.append({**base, "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**base, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 12}})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in out) + b"data: [DONE]\n\n"


_SSE = _sse_body()


def _response(stream: bool) -> bytes:
    if stream:
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(_SSE), _SSE)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        return head + chunked
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(
        _COMPLETION
    )
    return head + _COMPLETION


class _Protocol(asyncio.Protocol):
    """Just enough HTTP/1.1: keep-alive, Content-Length request bodies, canned responses."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
            self.transport.write(_response(b'"stream":true' in body.replace(b" ", b"")))


def serve() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Protocol, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


#CLIENT
