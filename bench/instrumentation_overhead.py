"""Added latency and CPU per LLM call: spanreel vs no instrumentation vs
opentelemetry-instrumentation-openai-v2 (with and without opentelemetry-instrumentation-httpx).

Everything runs in one invocation, against one very fast local server (a raw asyncio HTTP/1.1
server in its own process, answering canned Chat Completions JSON or an SSE stream of 15
chunks with usage, then ``[DONE]``, one HTTP chunk per event; the prompt token count changes
with every response, as in real traffic), so the instrumentation's cost is not hidden by the
server's. Every variant runs the same client code (the real ``openai`` SDK, sync client,
keep-alive) in its own subprocess (instrumentations never mix), with content capture on and the
same OpenTelemetry SDK set-up: a ``TracerProvider`` with one ``BatchSpanProcessor`` whose
exporter drops the spans (export is off the call's critical path in every variant; no meter
provider is set, so the HTTP instrumentation's metrics are no-ops):

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

#: Stands for the prompt token count, which changes with every response (as it does in real
#: traffic), so nothing per-usage (e.g. a memoised cost) can be served from a cache.
_TOKENS = b"987654321"

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
        "usage": {"prompt_tokens": int(_TOKENS), "completion_tokens": 12, "total_tokens": 32},
    }
).encode()


def _sse_events() -> list[bytes]:
    words = ["Sencha", "is", "steamed", ".", "Assam", "is", "malty", ".", "Oolong", "is", "oxidised", "."]
    out = []
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    out.append(first)
    for w in words:
        out.append({**base, "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**base, "choices": [], "usage": {"prompt_tokens": int(_TOKENS), "completion_tokens": 12}})
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in out] + [b"data: [DONE]\n\n"]


_SSE_EVENTS = _sse_events()


def _response(stream: bool, tokens: int) -> bytes:
    count = b"%d" % tokens
    if stream:
        # One HTTP chunk per event, as a real server flushes them: the client reads them one by one.
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(e), e) for e in (e.replace(_TOKENS, count) for e in _SSE_EVENTS)
        )
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        return head + chunks + b"0\r\n\r\n"
    body = _COMPLETION.replace(_TOKENS, count)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    return head + body


class _Protocol(asyncio.Protocol):
    """Just enough HTTP/1.1: keep-alive, Content-Length request bodies, canned responses."""

    served = 0

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
            _Protocol.served += 1
            stream = b'"stream":true' in body.replace(b" ", b"")
            self.transport.write(_response(stream, 20 + _Protocol.served))


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
    if variant in ("openai-v2", "openai-v2+httpx"):
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    if variant in ("openai-v2+httpx", "httpx"):
        from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor

        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
        HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)


def client(variant: str, port: int, calls: int, warmup: int, modes: Sequence[str]) -> None:
    """Run in the variant's subprocess: print ``{mode: {"wall_us", "cpu_us"}}`` as JSON."""
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

    fns = {"plain": plain, "stream": streamed}
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        fn = fns[mode]
        for _ in range(warmup):
            fn()
        samples = []
        cpu0 = time.process_time_ns()
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
        cpu = time.process_time_ns() - cpu0
        out[mode] = {"wall_us": statistics.median(samples) / 1000, "cpu_us": cpu / calls / 1000}
    print(json.dumps(out))


# -------------------------------------------------------------------------------------- driver


def _run_client(variant: str, port: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANREEL_"))}
    proc = subprocess.run(
        [sys.executable, __file__, "--client", variant, "--port", str(port), "--calls", str(args.calls),
         "--warmup", str(args.warmup), "--modes", ",".join(args.modes)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"client {variant} failed:\n{proc.stderr}")
    result: dict[str, dict[str, float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown}; choose from {', '.join(allowed)}")
    return names


def _report(
    figures: dict[str, dict[str, dict[str, float]]], variants: Sequence[str], modes: Sequence[str]
) -> list[str]:
    lines: list[str] = []
    base = figures["baseline"]
    for mode in modes:
        b_wall, b_cpu = base[mode]["wall_us"], base[mode]["cpu_us"]
        lines.append("")
        lines.append(f"{MODE_LABELS[mode]} (µs per call; ratio = variant / baseline)")
        lines.append(
            f"{'variant':<18}{'wall':>9}{'added':>9}{'ratio':>8}   {'cpu':>9}{'added':>9}{'ratio':>8}"
        )
        for v in variants:
            wall, cpu = figures[v][mode]["wall_us"], figures[v][mode]["cpu_us"]
            lines.append(
                f"{v:<18}{wall:>9.1f}{wall - b_wall:>9.1f}{wall / b_wall:>8.3f}   "
                f"{cpu:>9.1f}{cpu - b_cpu:>9.1f}{cpu / b_cpu:>8.3f}"
            )
    return lines


def _added(figures: dict[str, dict[str, dict[str, float]]], v: str, mode: str, kind: str) -> float:
    return figures[v][mode][kind] - figures["baseline"][mode][kind]


def _verdicts(figures: dict[str, dict[str, dict[str, float]]], modes: Sequence[str]) -> list[str]:
    lines = [""]
    for kind, label in (("cpu_us", "CPU"), ("wall_us", "wall")):
        for sr, v2 in (("spanreel", "openai-v2+httpx"), ("spanreel-no-http", "openai-v2")):
            if sr not in figures or v2 not in figures:
                continue
            for mode in modes:
                a, b = _added(figures, sr, mode, kind), _added(figures, v2, mode, kind)
                verdict = "OK" if a <= b else "OVER"
                lines.append(
                    f"target {label} {MODE_LABELS[mode]}: {sr} added {a:.1f} µs ≤ {v2} added {b:.1f} µs "
                    f"[{verdict}]"
                )
        for sr in ("spanreel", "spanreel-no-http"):
            if sr in figures and "plain" in modes:
                a = _added(figures, sr, "plain", kind)
                lines.append(
                    f"target {label} non-streamed: {sr} added {a:.1f} µs ≤ 150 µs "
                    f"[{'OK' if a <= 150 else 'OVER'}]"
                )
        if "spanreel" in figures and "openai-v2" in figures:
            for mode in modes:
                a, b = _added(figures, "spanreel", mode, kind), _added(figures, "openai-v2", mode, kind)
                lines.append(
                    f"target {label} {MODE_LABELS[mode]} (issue's literal comparison): spanreel added "
                    f"{a:.1f} µs ≤ openai-v2 added {b:.1f} µs [{'OK' if a <= b else 'OVER'}]"
                )
    if "httpx" in figures:
        for mode in modes:
            lines.append(
                f"the HTTP child span alone (httpx variant), {MODE_LABELS[mode]}: "
                f"{_added(figures, 'httpx', mode, 'cpu_us'):.1f} µs CPU, "
                f"{_added(figures, 'httpx', mode, 'wall_us'):.1f} µs wall"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per mode per client run")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls first, per mode")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of every variant")
    parser.add_argument(
        "--variants",
        type=lambda t: _names(t, VARIANTS, "variants"),
        default=list(VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)} (baseline is always run)",
    )
    parser.add_argument(
        "--modes",
        type=lambda t: _names(t, MODES, "modes"),
        default=list(MODES),
        help="comma-separated subset of plain,stream",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return
    if args.client:
        client(args.client, args.port, args.calls, args.warmup, args.modes)
        return

    variants = ["baseline", *(v for v in args.variants if v != "baseline")]
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        runs: dict[str, list[dict[str, dict[str, float]]]] = {v: [] for v in variants}
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for variant in order:
                runs[variant].append(_run_client(variant, port, args))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()

    figures = {
        v: {
            mode: {
                kind: statistics.median(run[mode][kind] for run in runs[v]) for kind in ("wall_us", "cpu_us")
            }
            for mode in args.modes
        }
        for v in variants
    }
    if args.json:
        added = {
            v: {m: {k: _added(figures, v, m, k) for k in ("wall_us", "cpu_us")} for m in args.modes}
            for v in variants
        }
        print(json.dumps({"per_call_us": figures, "added_us": added, "runs": runs}, indent=2))
        return
    print(
        f"{args.rounds} interleaved rounds × {args.calls} timed calls per mode per variant "
        f"(after {args.warmup} warm-up calls); local server; median over rounds; "
        f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
    )
    for line in _report(figures, variants, args.modes) + _verdicts(figures, args.modes):
        print(line)


if __name__ == "__main__":
    main()
