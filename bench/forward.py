"""What forwarding (``otlp`` / ``otlphttp`` exporters) costs the collector's ingest path.

Runs a ``spanreel collector`` subprocess three times on a fresh DuckDB file and sends the same
pre-encoded OTLP/HTTP protobuf exports (``--spans`` GenAI-like spans each) from ``--clients``
concurrent clients:

1. no forwarder (the baseline, measured in the same run);
2. an ``otlphttp`` forwarder (gzip) to a live upstream — an in-process OTLP/HTTP sink that
   acknowledges every export;
3. an ``otlp`` forwarder to a down upstream (a closed port, retrying).

Prints accepted spans/s, p50/p99 export latency and, for (2), how long the upstream took to
receive everything, with ratios against (1).

Run: ``python bench/forward.py [--requests 300] [--spans 100] [--clients 8] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def _payloads(requests: int, spans: int) -> list[bytes]:
    out = []
    for r in range(requests):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "bench-forward"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("bench")
        for i in range(spans):
            with tracer.start_as_current_span(f"chat gpt-4o-mini {r}.{i}") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.provider.name", "openai")
                span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                span.set_attribute("gen_ai.usage.input_tokens", 100 + i)
                span.set_attribute("gen_ai.usage.output_tokens", 40)
                span.set_attribute(
                    "gen_ai.input.messages", json.dumps([{"role": "user", "content": "x" * 600}])
                )
        provider.shutdown()
        out.append(bytes(encode_spans(memory.get_finished_spans()).SerializeToString()))
    return out


class _Sink:
    """An OTLP/HTTP upstream that acknowledges everything and counts requests."""

    def __init__(self) -> None:
        sink = self
        self.requests = 0
        self.lock = threading.Lock()
        ok = ExportTraceServiceResponse().SerializeToString()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                with sink.lock:
                    sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(ok)))
                self.end_headers()
                self.wfile.write(ok)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(folder: Path, exporters: str, names: str) -> tuple[subprocess.Popen[bytes], str]:
    db = folder / "bench.duckdb"
    config = folder / "otel-config.yaml"
    config.write_text(
        "receivers:\n  otlp:\n    protocols:\n      http: {endpoint: 127.0.0.1:0}\n"
        f"exporters:\n  duckdb: {{path: {db}}}\n{exporters}"
        f"service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [duckdb{names}]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANREEL_", "OTEL_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanreel", "collector", "--config", str(config), "--db", str(db)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    discovery = db.with_name(db.name + ".collector.json")
    deadline = time.monotonic() + 60
    while not discovery.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("the collector did not start")
        time.sleep(0.05)
    info = json.loads(discovery.read_text())
    return proc, f"http://{info['http_endpoint']}/v1/traces"


def _load(url: str, payloads: list[bytes], clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(payloads)

    def client() -> None:
        with httpx.Client(timeout=60, headers={"Content-Type": "application/x-protobuf"}) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                while True:
                    t0 = time.perf_counter()
                    status = http.post(url, content=body).status_code
                    if status == 200:
                        with lock:
                            latencies.append(time.perf_counter() - t0)
                        break
                    time.sleep(0.05)  # 503: backpressure, retry

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    return time.perf_counter() - t0, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    payloads = _payloads(args.requests, args.spans)
    total = args.requests * args.spans
    mib = sum(map(len, payloads)) / 2**20
    print(f"{args.requests} exports × {args.spans} spans ({mib:.1f} MiB protobuf), {args.clients} clients")
    sink = _Sink()
    scenarios = [
        ("no forwarder (baseline)", "", ""),
        ("otlphttp → live upstream", f"  otlphttp:\n    endpoint: {sink.url}\n", ", otlphttp"),
        (
            "otlp → down upstream",
            f"  otlp:\n    endpoint: 127.0.0.1:{_free_port()}\n    tls: {{insecure: true}}\n",
            ", otlp",
        ),
    ]
    results: dict[str, list[tuple[float, float, float, str]]] = {label: [] for label, _, _ in scenarios}
    for _ in range(args.rounds):  # interleaved rounds: load on a shared machine hits all alike
        for label, exporters, names in scenarios:
            with tempfile.TemporaryDirectory(prefix="spanreel-bench-forward-") as tmp:
                proc, url = _start(Path(tmp), exporters, names)
                try:
                    sink.requests = 0
                    elapsed, latencies = _load(url, payloads, args.clients)
                    upstream = ""
                    if "live" in label:
                        waited = time.perf_counter()
                        deadline = time.monotonic() + 120
                        while sink.requests < args.requests and time.monotonic() < deadline:
                            time.sleep(0.01)
                        lag = time.perf_counter() - waited
                        upstream = (
                            f"got {sink.requests}/{args.requests} exports {lag:.2f} s after the last ack"
                        )
                    results[label].append(
                        (total / elapsed, _pct(latencies, 0.5), _pct(latencies, 0.99), upstream)
                    )
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
    print(f"{'scenario':<26} {'accepted spans/s':>17} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8}  upstream")
    baseline = statistics.median(r[0] for r in results[scenarios[0][0]])
    for label, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        print(f"{label:<26} {rate:>17,.0f} {rate / baseline:>6.2f} {p50:>8.1f} {p99:>8.1f}  {runs[-1][3]}")
    print(f"(medians of {args.rounds} interleaved rounds; 1-minute load average: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
