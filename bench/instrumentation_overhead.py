"""Added latency per LLM call: spanreel vs no instrumentation vs opentelemetry-instrumentation-openai-v2.

Everything runs in one invocation, against one very fast local server (a raw asyncio HTTP/1.1
server in its own process, answering canned Chat Completions JSON or an SSE stream of 12 chunks
with usage), so the instrumentation's cost is not hidden by the server's. Each variant runs in its
own client subprocess (instrumentations never mix) using the real ``openai`` SDK (sync client,
keep-alive), with content capture on and an SDK ``TracerProvider`` + ``BatchSpanProcessor`` whose
exporter drops the spans (the export path is not on the call's critical path in any variant):

- ``baseline``: no instrumentation (same provider set up, nothing uses it);
- ``spanreel``: ``spanreel.instrumentation.Instrumentor`` (GenAI span + the httpx HTTP child span);
- ``spanreel-no-http``: spanreel without the HTTP child span (``http_spans=False``);
- ``openai-v2``: ``opentelemetry-instrumentation-openai-v2`` with
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY`` (its way of capturing content).

Variants are interleaved over several rounds (``--rounds``) to spread machine noise evenly; each
client does ``--warmup`` calls, then ``--calls`` timed calls (``time.perf_counter_ns``) per mode
(non-streaming, streaming read to the end). The figure per variant is the median of the rounds'
medians; the added latency is that minus the baseline's. Prints a table, the ratios, and the
targets (spanreel added ≤ openai-v2 added; ≤ 150 µs per non-streamed call).

Run: ``python bench/instrumentation_overhead.py [--calls 2000] [--rounds 5] [--json]``.
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

VARIANTS = ("baseline", "spanreel", "spanreel-no-http", "openai-v2")
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


# -------------------------------------------------------------------------------------- client


def _setup(variant: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    if variant in ("spanreel", "spanreel-no-http"):
        from spanreel.instrumentation import Instrumentor

        Instrumentor().instrument(
            tracer_provider=provider, capture_content=True, http_spans=variant == "spanreel"
        )
    elif variant == "openai-v2":
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)


def client(variant: str, port: int, calls: int, warmup: int) -> None:
    _setup(variant)
    import openai

    c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-bench", max_retries=0)
    messages: Any = MESSAGES

    def plain() -> None:
        r = c.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)
        assert r.choices[0].message.content

    def streamed() -> None:
        stream = c.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        assert sum(1 for _ in stream) > 10

    out: dict[str, float] = {}
    for mode, fn in (("plain", plain), ("stream", streamed)):
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
        out[mode] = statistics.median(samples) / 1000
    print(json.dumps(out))


# -------------------------------------------------------------------------------------- driver


def _run_client(variant: str, port: int, calls: int, warmup: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANREEL_"))}
    proc = subprocess.run(
        [sys.executable, __file__, "--client", variant, "--port", str(port),
         "--calls", str(calls), "--warmup", str(warmup)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"client {variant} failed:\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per mode per client run")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls first")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of every variant")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return
    if args.client:
        client(args.client, args.port, args.calls, args.warmup)
        return

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for variant in order:
                runs[variant].append(_run_client(variant, port, args.calls, args.warmup))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()

    figures = {
        v: {mode: statistics.median(run[mode] for run in runs[v]) for mode in ("plain", "stream")}
        for v in VARIANTS
    }
    added = {
        v: {mode: figures[v][mode] - figures["baseline"][mode] for mode in ("plain", "stream")}
        for v in VARIANTS
    }
    if args.json:
        print(json.dumps({"latency_us": figures, "added_us": added}, indent=2))
        return
    print(f"median latency per call (µs), {args.rounds} rounds × {args.calls} calls, local server")
    print(f"{'variant':<18}{'non-streamed':>14}{'added':>10}{'streamed':>12}{'added':>10}")
    for v in VARIANTS:
        f, a = figures[v], added[v]
        print(f"{v:<18}{f['plain']:>14.1f}{a['plain']:>10.1f}{f['stream']:>12.1f}{a['stream']:>10.1f}")
    for mode, label in (("plain", "non-streamed"), ("stream", "streamed")):
        sr, ov2 = added["spanreel"][mode], added["openai-v2"][mode]
        ratio = sr / ov2 if ov2 > 0 else float("inf")
        base = figures["baseline"][mode]
        print(
            f"{label}: spanreel/baseline latency {figures['spanreel'][mode] / base:.3f}, "
            f"openai-v2/baseline {figures['openai-v2'][mode] / base:.3f}, "
            f"added spanreel/openai-v2 {ratio:.2f}"
        )
    sr_plain = added["spanreel"]["plain"]
    ok_v2 = all(added["spanreel"][m] <= added["openai-v2"][m] for m in ("plain", "stream"))
    print(f"target spanreel added ≤ openai-v2 added: {'OK' if ok_v2 else 'OVER'}")
    print(f"target spanreel added ≤ 150 µs per non-streamed call: {sr_plain:.1f} µs "
          f"[{'OK' if sr_plain <= 150 else 'OVER'}]")  # fmt: skip


if __name__ == "__main__":
    main()
