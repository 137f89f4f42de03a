"""Ingest benchmark: OTLP load from concurrent gRPC and HTTP clients into a `spanreel collector`
subprocess (and, when installed, Arize Phoenix, through the same generator in the same run).

Requests are pre-encoded ``ExportTraceServiceRequest`` protobufs of realistic GenAI spans (~2 KB
each: GenAI attributes, input/output messages, an agent root span per trace). Before each send only
the trace ids are patched in place (a per-request counter), so every span is new: duplicates would
be ignored by the collector and flatter the figures.

Phases, each for ``--seconds``:

1. **saturation** — ``--clients`` concurrent clients (half gRPC, half HTTP/protobuf) send as fast
   as the collector answers. Prints accepted spans/s (acknowledged), stored spans/s (rows counted
   in DuckDB ÷ time to the last acknowledgement), p50/p99 export latency, peak RSS (the
   collector and its decode workers, summed, sampled every 100 ms) and the receiver's CPU time
   per stored span — on a shared, loaded machine the rates fall with the CPU share the collector
   gets, the CPU per span much less; 2 cores ÷ CPU per span bounds the rate of an idle machine.
2. **half load** — the same clients paced to half the stored rate of phase 1 (or ``--rate``);
   prints the same figures. Target: p99 < 250 ms.

Then Phoenix (``arize-phoenix``; found via ``--phoenix-python``, ``$PHOENIX_PYTHON``, or an
importable ``phoenix``) gets phase 1 on its OTLP gRPC/HTTP receivers; stored spans are counted in
its SQLite file until the count stops growing (Phoenix acknowledges before it writes). The ratio
spanreel/Phoenix is printed. Without Phoenix that part is skipped with the reason.

Run (a few minutes; not part of CI):

    python bench/ingest.py                       # 20 s per phase, 8 clients, 500 spans per request
    python bench/ingest.py --seconds 10 --clients 4 --no-phoenix
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.attributes import server_attributes as server
from opentelemetry.semconv._incubating.attributes.session_attributes import SESSION_ID

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_TRACE = 5  # an agent root span and four chat calls


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, list):
        items = [AnyValue(string_value=str(v)) for v in value]
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=items)))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def build_request(n_spans: int, seed: int) -> tuple[bytes, list[int], list[int]]:
    """A serialized request of ``n_spans`` GenAI spans, the byte offsets of every trace id in it,
    and those of every span id (as ``span_id`` and as ``parent_span_id``)."""
    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [
            _kv("service.name", "bench-agent"),
            _kv("service.version", "1.4.2"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.version", "1.45.2"),
        ]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = "spanreel", "0.1.0"
    now = time.time_ns()
    trace_ids: list[bytes] = []
    root_id = b""
    for i in range(n_spans):
        span = scope_spans.spans.add()
        if i % SPANS_PER_TRACE == 0:
            trace_ids.append(rnd.randbytes(16))
            root_id = rnd.randbytes(8)
            span.span_id, span.name, span.kind = (
                root_id,
                "invoke_agent planner",
                trace_pb2.Span.SPAN_KIND_INTERNAL,
            )
            span.attributes.extend(
                [_kv(gen_ai.GEN_AI_OPERATION_NAME, "invoke_agent"), _kv(SESSION_ID, f"s{i}")]
            )
        else:
            span.span_id, span.parent_span_id = rnd.randbytes(8), root_id
            span.name, span.kind = "chat gpt-4o-mini", trace_pb2.Span.SPAN_KIND_CLIENT
            question = f"Question {i}: " + "what does the quarterly report say about churn? " * 9
            system = "You are a careful analyst. " * 12
            messages_in = [
                {"role": "system", "parts": [{"type": "text", "content": system}]},
                {"role": "user", "parts": [{"type": "text", "content": question}]},
            ]
            messages_out = [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "Churn fell two points, mostly in SMB. " * 12}],
                    "finish_reason": "stop",
                }
            ]
            span.attributes.extend(
                [
                    _kv(gen_ai.GEN_AI_OPERATION_NAME, "chat"),
                    _kv(gen_ai.GEN_AI_PROVIDER_NAME, "openai"),
                    _kv(gen_ai.GEN_AI_REQUEST_MODEL, "gpt-4o-mini"),
                    _kv(gen_ai.GEN_AI_RESPONSE_MODEL, "gpt-4o-mini-2024-07-18"),
                    _kv(gen_ai.GEN_AI_REQUEST_TEMPERATURE, 0.2),
                    _kv(gen_ai.GEN_AI_REQUEST_MAX_TOKENS, 512),
                    _kv(gen_ai.GEN_AI_RESPONSE_ID, f"chatcmpl-{rnd.getrandbits(64):x}"),
                    _kv(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, ["stop"]),
                    _kv(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, 180 + i % 97),
                    _kv(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, 64 + i % 31),
                    _kv(server.SERVER_ADDRESS, "api.openai.com"),
                    _kv(server.SERVER_PORT, 443),
                    _kv(SESSION_ID, f"s{i - i % SPANS_PER_TRACE}"),
                    _kv(gen_ai.GEN_AI_INPUT_MESSAGES, json.dumps(messages_in)),
                    _kv(gen_ai.GEN_AI_OUTPUT_MESSAGES, json.dumps(messages_out)),
                    _kv("spanreel.request.method", "POST"),
                    _kv("spanreel.request.url", "https://api.openai.com/v1/chat/completions"),
                ]
            )
        span.trace_id = trace_ids[-1]
        span.start_time_unix_nano = now + i * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + 850_000_000
    payload = request.SerializeToString()
    span_ids = [span.span_id for span in scope_spans.spans]
    # Span ids are patched in their first 4 bytes: the other 4 must tell them apart.
    assert len({span_id[4:] for span_id in span_ids}) == n_spans, "span ids must differ in their last 4 bytes"
    trace_offsets = _offsets(payload, trace_ids)
    assert len(trace_offsets) == n_spans, "every span's trace id must be patchable"
    span_offsets = _offsets(payload, span_ids)
    parents = sum(1 for span in scope_spans.spans if span.parent_span_id)
    assert len(span_offsets) == n_spans + parents, "every span id and parent id must be patchable"
    return payload, trace_offsets, span_offsets


def _offsets(payload: bytes, needles: list[bytes]) -> list[int]:
    found: list[int] = []
    for needle in needles:
        start = 0
        while (pos := payload.find(needle, start)) >= 0:
            found.append(pos)
            start = pos + len(needle)
    return found


class RequestFactory:
    """Fresh requests from a few templates: each trace id's first 8 bytes become a new counter, and
    each span id's (parent ids alike) first 4 bytes its low 32 bits, so that no two requests share
    a trace id or a span id (receivers that key spans by span id alone, as Phoenix does, would
    drop repeats)."""

    def __init__(self, n_spans: int, templates: int = 4) -> None:
        self._templates = [build_request(n_spans, seed) for seed in range(templates)]
        self._counter = random.getrandbits(40) << 20
        self.spans_per_request = n_spans

    def next(self) -> bytes:
        template, trace_offsets, span_offsets = self._templates[self._counter % len(self._templates)]
        self._counter += 1
        stamp = self._counter.to_bytes(8, "big")
        buf = bytearray(template)
        for off in trace_offsets:
            buf[off : off + 8] = stamp
        for off in span_offsets:
            buf[off : off + 4] = stamp[4:]
        return bytes(buf)

    @property
    def request_bytes(self) -> int:
        return len(self._templates[0][0])


@dataclass
class PhaseResult:
    name: str
    #: sending time
    seconds: float = 0.0
    #: from the first send until every accepted span was stored
    stored_seconds: float = 0.0
    accepted_spans: int = 0
    stored_spans: int = 0
    refused: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    peak_rss_bytes: int = 0
    #: CPU seconds used by the receiver's process tree during the phase
    cpu_seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        if len(self.latencies_s) == 1:
            return self.latencies_s[0]
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(q) - 1]

    def line(self) -> str:
        return (
            f"{self.name:<26} accepted {self.accepted_spans / self.seconds:>9,.0f} spans/s   "
            f"stored {self.stored_spans / self.stored_seconds:>9,.0f} spans/s   "
            f"p50 {self.percentile(50) * 1000:>7.1f} ms   p99 {self.percentile(99) * 1000:>7.1f} ms   "
            f"peak RSS {self.peak_rss_bytes / 2**20:>6.0f} MiB   "
            f"CPU {self.cpu_us_per_span:6.1f} µs/span   "
            f"(refused {self.refused}, errors {self.errors})"
        )

    @property
    def cpu_us_per_span(self) -> float:
        """Receiver CPU time per stored span: a figure a loaded machine distorts much less than rates."""
        return self.cpu_seconds * 1e6 / self.stored_spans if self.stored_spans else float("nan")


# -- process memory ----------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    ticks = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def _sample_rss(pid: int, result: PhaseResult, stop: asyncio.Event) -> None:
    while not stop.is_set():
        result.peak_rss_bytes = max(result.peak_rss_bytes, await asyncio.to_thread(_tree_rss, pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


# -- the load generator ------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    grpc_endpoint: str
    http_url: str
    pid: int
    #: ``count_spans(expected)`` → (rows stored, monotonic time the count last grew); a receiver that
    #: acknowledges before it stores is polled until ``expected`` rows are there or it stops growing
    count_spans: Callable[[int], tuple[int, float]]


async def _run_phase(
    target: Target, factory: RequestFactory, name: str, clients: int, seconds: float, rate: float | None
) -> PhaseResult:
    result = PhaseResult(name)
    stop_rss = asyncio.Event()
    before, _ = await asyncio.to_thread(target.count_spans, 0)
    cpu_before = _tree_cpu_seconds(target.pid)
    rss_task = asyncio.create_task(_sample_rss(target.pid, result, stop_rss))
    deadline = time.monotonic() + seconds
    # Pacing: each client sends one request every `interval` seconds (rate is in spans/s overall).
    interval = clients * factory.spans_per_request / rate if rate else 0.0
    channel = grpc.aio.insecure_channel(
        target.grpc_endpoint, options=[("grpc.max_send_message_length", 64 * 2**20)]
    )
    export = channel.unary_unary(EXPORT_METHOD)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def client(i: int) -> None:
        use_grpc = i % 2 == 0
        next_send = time.monotonic() + (interval * i / clients if interval else 0.0)
        while (now := time.monotonic()) < deadline:
            if interval:
                if now < next_send:
                    await asyncio.sleep(next_send - now)
                next_send += interval
            payload = factory.next()
            started = time.monotonic()
            ok = False
            try:
                if use_grpc:
                    await export(payload, timeout=30)
                    ok = True
                else:
                    async with session.post(
                        target.http_url, data=payload, headers={"Content-Type": "application/x-protobuf"}
                    ) as response:
                        await response.read()
                        if response.status == 200:
                            ok = True
                        elif response.status in (429, 503):
                            result.refused += 1
                            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                            continue
                        else:
                            result.errors += 1
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    result.refused += 1
                    await asyncio.sleep(1)
                    continue
                result.errors += 1
            except (aiohttp.ClientError, TimeoutError):
                result.errors += 1
            if ok:
                result.latencies_s.append(time.monotonic() - started)
                result.accepted_spans += factory.spans_per_request

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    result.seconds = time.monotonic() - started
    await session.close()
    await channel.close()
    after, last_growth = await asyncio.to_thread(target.count_spans, before + result.accepted_spans)
    result.stored_spans = after - before
    result.stored_seconds = max(last_growth - started, result.seconds)
    result.cpu_seconds = _tree_cpu_seconds(target.pid) - cpu_before
    stop_rss.set()
    await rss_task
    return result


# -- the systems under test --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def spanreel_collector(workdir: Path, decode_workers: int | None) -> Iterator[Target]:
    from spanreel.collector import run_query

    db = workdir / "bench.duckdb"
    config = workdir / "otel-config.yaml"
    workers = "" if decode_workers is None else f"\n    decode_workers: {decode_workers}"
    config.write_text(
        "receivers:\n  otlp:\n    protocols:\n"
        "      grpc: {endpoint: 127.0.0.1:0}\n      http: {endpoint: 127.0.0.1:0}\n"
        f"exporters:\n  duckdb:\n    path: {db}\n    metrics_log_interval: 0s{workers}\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANREEL_", "OTEL_"))}
    log = (workdir / "collector.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanreel", "collector", "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=workdir,
    )  # fmt: skip
    discovery = Path(str(db) + ".collector.json")
    try:
        deadline = time.monotonic() + 60
        while not discovery.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the collector did not start:\n{(workdir / 'collector.log').read_text()}")
            time.sleep(0.05)
        info = json.loads(discovery.read_text())

        def count(expected: int) -> tuple[int, float]:
            # Acknowledged means committed: no waiting.
            return int(run_query("SELECT count(*) FROM spans", db).rows[0][0]), time.monotonic()

        yield Target(
            "spanreel", info["grpc_endpoint"], f"http://{info['http_endpoint']}/v1/traces", proc.pid, count
        )
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def find_phoenix_python(explicit: str | None) -> tuple[str | None, str]:
    """(interpreter that can import phoenix, or None; why not)."""
    candidates = [explicit, os.environ.get("PHOENIX_PYTHON"), sys.executable]
    default_venv = Path("/work/phoenix-venv/bin/python")
    if default_venv.exists():
        candidates.append(str(default_venv))
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import phoenix"], capture_output=True, timeout=120)
        if probe.returncode == 0:
            return python, ""
    return None, (
        "arize-phoenix is not importable (pip install arize-phoenix into a separate virtualenv — it "
        "pins anthropic<2, which conflicts with spanreel's test dependencies — and pass "
        "--phoenix-python or set PHOENIX_PYTHON)"
    )


@contextlib.contextmanager
def phoenix_server(python: str, workdir: Path) -> Iterator[Target]:
    import urllib.request

    http_port, grpc_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(http_port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "phoenix.log").open("w")
    proc = subprocess.Popen(
        [python, "-m", "phoenix.server.main", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Phoenix did not start:\n{(workdir / 'phoenix.log').read_text()[-2000:]}")
            url = f"http://127.0.0.1:{http_port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
            time.sleep(0.5)
        db = workdir / "phoenix.db"

        def count(expected: int) -> tuple[int, float]:
            # Phoenix acknowledges before it writes: wait for the expected rows, or until the count
            # has not grown for 20 s (at most 5 minutes).
            last, last_growth = -1, time.monotonic()
            deadline = last_growth + 300
            while True:
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
                    current = int(con.execute("SELECT count(*) FROM spans").fetchone()[0])
                now = time.monotonic()
                if current != last:
                    last, last_growth = current, now
                if current >= expected or now - last_growth > 20 or now > deadline:
                    return current, last_growth
                time.sleep(0.25)

        yield Target(
            "phoenix",
            f"127.0.0.1:{grpc_port}",
            f"http://127.0.0.1:{http_port}/v1/traces",
            proc.pid,
            count,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _warm_up(target: Target, factory: RequestFactory) -> None:
    # Start the decode workers and let the DB file grow past its first allocations.
    await _run_phase(target, factory, "warm-up", 2, 2.0, None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (half gRPC, half HTTP)")
    parser.add_argument("--spans-per-request", type=int, default=500, help="spans per export request")
    parser.add_argument(
        "--rate", type=float, help="spans/s for the paced phase [default: half the stored rate]"
    )
    parser.add_argument("--decode-workers", type=int, help="collector decode processes [default: its own]")
    parser.add_argument("--no-phoenix", action="store_true", help="skip the Arize Phoenix comparison")
    parser.add_argument("--phoenix-python", help="a Python interpreter that has arize-phoenix installed")
    args = parser.parse_args()

    factory = RequestFactory(args.spans_per_request)
    print(
        f"spanreel ingest benchmark: {args.clients} clients, {args.spans_per_request} spans/request "
        f"({factory.request_bytes / args.spans_per_request:,.0f} bytes/span, "
        f"{factory.request_bytes / 2**20:.2f} MiB/request), {args.seconds:g} s per phase, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="spanreel-bench-"))
    try:
        (workdir / "spanreel").mkdir()
        with spanreel_collector(workdir / "spanreel", args.decode_workers) as target:
            asyncio.run(_warm_up(target, factory))
            full = asyncio.run(
                _run_phase(target, factory, "spanreel saturation", args.clients, args.seconds, None)
            )
            print(full.line(), flush=True)
            rate = args.rate or full.stored_spans / full.stored_seconds / 2
            half = asyncio.run(
                _run_phase(
                    target, factory, f"spanreel @ {rate:,.0f} spans/s", args.clients, args.seconds, rate
                )
            )
            print(half.line(), flush=True)
        stored_rate = full.stored_spans / full.stored_seconds
        cpus = len(os.sched_getaffinity(0))
        print(
            f"CPU-bound ceiling on {cpus} idle cores (no load generator): "
            f"{cpus * 1e6 / full.cpu_us_per_span:,.0f} spans/s"
        )
        print(
            f"targets: stored ≥ 50,000 spans/s: {'met' if stored_rate >= 50_000 else 'NOT met'} "
            f"({stored_rate:,.0f}); p99 < 250 ms at half load: "
            f"{'met' if half.percentile(99) < 0.25 else 'NOT met'} ({half.percentile(99) * 1000:.0f} ms)"
        )
        if args.no_phoenix:
            print("phoenix: skipped (--no-phoenix)")
            return
        python, why = find_phoenix_python(args.phoenix_python)
        if python is None:
            print(f"phoenix: skipped: {why}")
            return
        (workdir / "phoenix").mkdir()
        with phoenix_server(python, workdir / "phoenix") as phoenix:
            asyncio.run(_warm_up(phoenix, factory))
            other = asyncio.run(
                _run_phase(phoenix, factory, "phoenix saturation", args.clients, args.seconds, None)
            )
        print(other.line())
        ours, theirs = stored_rate, other.stored_spans / other.stored_seconds
        print(
            f"phoenix stored {other.stored_spans:,} of the {other.accepted_spans:,} spans it acknowledged "
            f"(waited until its count stopped growing for 20 s)"
        )
        if not theirs:
            print("ratio spanreel / phoenix: Phoenix stored nothing in the time measured")
            return
        print(
            f"ratio spanreel / phoenix: stored spans/s {ours / theirs:.1f}×, "
            f"peak RSS {full.peak_rss_bytes / max(other.peak_rss_bytes, 1):.2f}×"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
