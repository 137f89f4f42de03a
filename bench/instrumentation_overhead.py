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
- ``spanreel-no-http``: spanreel without the HTTP child span (``http_spans=False``; what
  ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=httpx,httpx2`` gives a zero-code set-up);
- ``openai-v2``: ``opentelemetry-instrumentation-openai-v2`` with
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY`` and
  ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (its way of capturing content);
- ``openai-v2+httpx``: the same plus opentelemetry-instrumentation-httpx (``HTTPXClientInstrumentor``
  and ``HTTPX2ClientInstrumentor``): like for like with ``spanreel``;
- ``httpx``: opentelemetry-instrumentation-httpx alone (the cost of the HTTP child span by itself).

Every variant's client is one persistent subprocess: it does ``--warmup`` untimed calls per mode
(non-streamed; streamed with ``stream_options.include_usage``, read to the end), then runs timed
blocks of ``--calls`` calls on the driver's command. Per block it reports the median wall time per
call (``time.perf_counter_ns`` around each call) and the client process's CPU time per call
(``time.process_time_ns`` over the block ÷ calls: every thread of the client, the span
processor's included; the server runs in another process).

With ``--instructions`` each variant's client also runs under valgrind's callgrind, and the
figure is the number of instructions per call (thousands): the client makes a few calls of every
mode, then, in another run, ``--icalls`` more of one mode (streamed: half as many); the
difference ÷ those calls cancels start-up, imports and warm-up. Instruction counts do not depend
on what else the machine is doing, so they are the figure to trust on a shared, loaded machine
(they include the span processor's thread and garbage collection, not the server). ``instr≈µs``
converts them at the baseline's own measured CPU µs per instruction. This takes several minutes
(``--jobs`` runs in parallel; ``--rounds 0`` skips the timed runs).

Each of ``--rounds`` rounds runs one block per variant per mode, variants in a rotated order, so
the blocks compared in a round ran within seconds of each other. The figure per variant is the
median of its blocks; "added" is the median over rounds of (variant − baseline) in the same round,
so slow drift of the machine's speed (other processes, a shared VM) cancels out instead of landing
on whichever variant ran in the slow minute; ratios are against the baseline. Targets checked
(issue 3): spanreel's added latency ≤ openai-v2's, and ≤ 150 µs per non-streamed call; verdicts
are given on the wall, CPU and instruction figures.

Run: ``python bench/instrumentation_overhead.py [--calls 200] [--rounds 30] [--variants a,b]
[--modes plain,stream] [--instructions [--icalls 200] [--jobs 2]] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def sdk_calls(port: int) -> dict[str, Callable[[], None]]:
    """The timed calls per mode: the real ``openai`` SDK (sync client, keep-alive) against the
    server at ``port``; ``stream`` reads the stream to the end."""
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

    return {"plain": plain, "stream": streamed}


def client(
    variant: str,
    port: int,
    warmup: int,
    modes: Sequence[str],
    counts: dict[str, int] | None = None,
) -> None:
    """Run in the variant's subprocess. Timed: warm up every mode, print ``ready``, then for each
    line ``MODE N`` read from stdin run ``N`` timed calls and print ``{"wall_us", "cpu_us"}`` as
    JSON (one line), until stdin closes. With ``counts`` (``{mode: calls}``): just make that many
    calls of each mode, untimed (under callgrind)."""
    _setup(variant)
    fns = sdk_calls(port)
    if counts is not None:  # under callgrind: just make the calls
        for mode, n in counts.items():
            for _ in range(n):
                fns[mode]()
        return
    for mode in modes:  # warm up every mode once, then serve timed blocks until stdin closes
        for _ in range(warmup):
            fns[mode]()
    print("ready", flush=True)
    for line in sys.stdin:
        mode, n = line.split()
        print(json.dumps(_timed_block(fns[mode], int(n))), flush=True)


def _timed_block(fn: Any, calls: int) -> dict[str, float]:
    """``calls`` timed calls: the median wall time per call and the process's CPU time per call
    (µs)."""
    samples = []
    cpu0 = time.process_time_ns()
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    cpu = time.process_time_ns() - cpu0
    return {"wall_us": statistics.median(samples) / 1000, "cpu_us": cpu / calls / 1000}


# -------------------------------------------------------------------------------------- driver


def _client_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANREEL_"))}


class _Client:
    """One variant's persistent client subprocess (see :func:`client`)."""

    def __init__(self, variant: str, port: int, args: argparse.Namespace) -> None:
        self.variant = variant
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--client", variant, "--port", str(port),
             "--warmup", str(args.warmup), "--modes", ",".join(args.modes)],
            env=_client_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._expect("ready")

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"client {self.variant} exited with {self.proc.wait()} (its stderr is above)")
        return line.strip()

    def _expect(self, text: str) -> None:
        line = self._readline()
        if line != text:
            sys.exit(f"client {self.variant}: expected {text!r}, got {line!r}")

    def block(self, mode: str, calls: int) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{mode} {calls}\n")
        self.proc.stdin.flush()
        result: dict[str, float] = json.loads(self._readline())
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


#: Per variant, per mode, the block figures ({"wall_us", "cpu_us"}) of every round in order.
Runs = dict[str, dict[str, list[dict[str, float]]]]


def _timed_runs(variants: Sequence[str], port: int, args: argparse.Namespace) -> Runs:
    """All clients stay up (warm); each round runs one block of ``--calls`` calls per variant per
    mode, variants in a rotated order, so the variants compared in a round ran seconds apart."""
    clients = [_Client(v, port, args) for v in variants]
    runs: Runs = {v: {m: [] for m in args.modes} for v in variants}
    try:
        for r in range(args.rounds):
            order = clients[r % len(clients) :] + clients[: r % len(clients)]
            for mode in args.modes:
                for c in order:
                    runs[c.variant][mode].append(c.block(mode, args.calls))
            if (r + 1) % 5 == 0 or r + 1 == args.rounds:
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for c in clients:
            c.close()
    return runs


def _paired(runs: Runs, v: str, mode: str, kind: str) -> float:
    """Median over rounds of (variant − baseline) in the same round: machine-speed drift between
    rounds cancels out."""
    return statistics.median(
        a[kind] - b[kind] for a, b in zip(runs[v][mode], runs["baseline"][mode], strict=True)
    )


def _collected(variant: str, port: int, counts: dict[str, int]) -> int:
    """Instructions executed by a whole client process making ``counts`` calls (callgrind)."""
    spec = ",".join(f"{m}:{n}" for m, n in counts.items())
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--client", variant, "--port", str(port), "--counts", spec],
        env={**_client_env(), "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        sys.exit(f"callgrind run of {variant} failed:\n{proc.stderr[-3000:]}")
    return int(found.group(1))


def _instructions(
    variants: Sequence[str], port: int, modes: Sequence[str], calls: int, jobs: int
) -> dict[str, dict[str, float]]:
    """Thousands of instructions per call, by variant and mode: each client runs under callgrind
    with a few calls of every mode, then again with ``calls`` more of one mode (streamed:
    ``calls // 2``); the difference ÷ those calls cancels start-up, imports and warm-up."""
    base = {m: {"plain": 20, "stream": 10}[m] for m in modes}
    extra = {"plain": calls, "stream": max(1, calls // 2)}
    runs: dict[tuple[str, str | None], dict[str, int]] = {}
    for v in variants:
        runs[(v, None)] = base
        for m in modes:
            runs[(v, m)] = {**base, m: base[m] + extra[m]}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {job: pool.submit(_collected, job[0], port, counts) for job, counts in runs.items()}
        totals = {job: future.result() for job, future in futures.items()}
    return {v: {m: (totals[(v, m)] - totals[(v, None)]) / extra[m] / 1000 for m in modes} for v in variants}


def _names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown}; choose from {', '.join(allowed)}")
    return names


#: Figure kinds: key, column title, unit, verdict label.
KINDS = (
    ("wall_us", "wall", "µs", "wall"),
    ("cpu_us", "cpu", "µs", "CPU"),
    ("kinstr", "k-instr", "k instructions", "instructions"),
    ("instr_us", "instr≈µs", "µs", "instructions as µs"),
)
Figures = dict[str, dict[str, dict[str, float]]]


def _kinds(figures: Figures, mode: str) -> list[tuple[str, str, str, str]]:
    return [k for k in KINDS if k[0] in figures["baseline"][mode]]


def _added(figures: Figures, v: str, mode: str, kind: str) -> float:
    """The variant's added figure: the paired per-round median (``added:KIND``) for timed kinds,
    else the difference of the two figures (instructions are deterministic)."""
    paired = figures[v][mode].get(f"added:{kind}")
    return paired if paired is not None else figures[v][mode][kind] - figures["baseline"][mode][kind]


def _report(figures: Figures, variants: Sequence[str], modes: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for mode in modes:
        kinds = _kinds(figures, mode)
        lines.append("")
        lines.append(
            f"{MODE_LABELS[mode]}, per call (added = variant - baseline, ratio = variant / baseline)"
        )
        header = "".join(f"{title:>10}{'added':>9}{'ratio':>7} " for _, title, _, _ in kinds)
        lines.append(f"{'variant':<18}{header}")
        for v in variants:
            row = f"{v:<18}"
            for key, _, _, _ in kinds:
                value, base = figures[v][mode][key], figures["baseline"][mode][key]
                row += f"{value:>10.1f}{value - base:>9.1f}{value / base:>7.3f} "
            lines.append(row)
    return lines


def _verdicts(figures: Figures, modes: Sequence[str]) -> list[str]:
    pairs = (
        ("spanreel", "openai-v2+httpx", "like for like, both with the HTTP child span"),
        ("spanreel-no-http", "openai-v2", "like for like, GenAI span only"),
        ("spanreel", "openai-v2", "the issue's literal comparison"),
    )
    lines = [""]
    for mode in modes:
        for key, _, unit, label in _kinds(figures, mode):
            for sr, v2, why in pairs:
                if sr in figures and v2 in figures:
                    a, b = _added(figures, sr, mode, key), _added(figures, v2, mode, key)
                    lines.append(
                        f"target {MODE_LABELS[mode]} [{label}]: {sr} added {a:.1f} ≤ {v2} added {b:.1f} "
                        f"{unit} ({why}): {'OK' if a <= b else 'OVER'}"
                    )
            if mode == "plain" and unit == "µs":
                for sr in ("spanreel", "spanreel-no-http"):
                    if sr in figures:
                        a = _added(figures, sr, mode, key)
                        verdict = "OK" if a <= 150 else "OVER"
                        lines.append(
                            f"target non-streamed [{label}]: {sr} added {a:.1f} µs ≤ 150 µs: {verdict}"
                        )
            if "httpx" in figures:
                lines.append(
                    f"the HTTP child span alone (httpx variant), {MODE_LABELS[mode]} [{label}]: "
                    f"{_added(figures, 'httpx', mode, key):.1f} {unit}"
                )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per block")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls first, per mode")
    parser.add_argument("--rounds", type=int, default=30, help="rounds of one block per variant per mode")
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
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per call with valgrind's callgrind (repeatable under load; slow)",
    )
    parser.add_argument("--icalls", type=int, default=200, help="calls counted per mode under callgrind")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs in parallel")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--counts", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return
    if args.client:
        counts = None
        if args.counts:
            counts = {m: int(n) for m, _, n in (item.partition(":") for item in args.counts.split(","))}
        client(args.client, args.port, args.warmup, args.modes, counts)
        return

    variants = ["baseline", *(v for v in args.variants if v != "baseline")]
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        runs = _timed_runs(variants, port, args) if args.rounds else {}
        kinstr = (
            _instructions(variants, port, args.modes, args.icalls, args.jobs) if args.instructions else None
        )
    finally:
        server.terminate()
        server.wait()

    figures: Figures = {v: {m: {} for m in args.modes} for v in variants}
    for v in variants if runs else ():
        for m in args.modes:
            for kind in ("wall_us", "cpu_us"):
                figures[v][m][kind] = statistics.median(block[kind] for block in runs[v][m])
                figures[v][m][f"added:{kind}"] = _paired(runs, v, m, kind)
    if kinstr is not None:
        for v in variants:
            for m in args.modes:
                figures[v][m]["kinstr"] = kinstr[v][m]
                if "cpu_us" in figures["baseline"][m]:  # instructions → µs at the baseline's own rate
                    rate = figures["baseline"][m]["cpu_us"] / kinstr["baseline"][m]
                    figures[v][m]["instr_us"] = kinstr[v][m] * rate
    if args.json:
        added = {
            v: {m: {k[0]: _added(figures, v, m, k[0]) for k in _kinds(figures, m)} for m in args.modes}
            for v in variants
        }
        print(json.dumps({"per_call_us": figures, "added_us": added, "runs": runs}, indent=2))
        return
    print(
        f"{args.rounds} interleaved rounds of a {args.calls}-call block per mode per variant "
        f"(persistent clients, {args.warmup} warm-up calls each); local server; per call: median "
        "over rounds; added: median over rounds of (variant - baseline) in the same round; "
        f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
    )
    if kinstr is not None:
        print(
            f"instructions: callgrind, {args.icalls} non-streamed / {max(1, args.icalls // 2)} streamed "
            "calls counted per variant (start-up cancelled out); instr≈µs = instructions at the "
            "baseline's own CPU µs per instruction"
        )
    for line in _report(figures, variants, args.modes) + _verdicts(figures, args.modes):
        print(line)


if __name__ == "__main__":
    main()
