"""Durability and backpressure, end to end with `spanreel collector` subprocesses:

- crash: SIGKILL while the stock OTLP/gRPC exporter is sending; restart on the same port and file;
  every acknowledged span survived, and after the exporter's retries every span is there once;
- overload: far more than the collector can store, from concurrent gRPC and HTTP clients; the
  excess is refused with UNAVAILABLE + RetryInfo (both trailers) / 503 + Retry-After, memory stays
  bounded (peak RSS of the collector process), and everything acknowledged is stored.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import httpx
from conftest import clean_env, start_collector
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanreel.collector import run_query

EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

SENDER = textwrap.dedent(
    """
    import os, sys
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    endpoint, folder, batches, per_batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "crash-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("crash")
    # The stock exporter: retries UNAVAILABLE / connection failures with backoff within its timeout.
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=45)
    sent = open(os.path.join(folder, "sent.txt"), "a")
    acked = open(os.path.join(folder, "acked.txt"), "a")
    for b in range(batches):
        memory.clear()
        for i in range(per_batch):
            with tracer.start_as_current_span(f"chat {b}-{i}", attributes={"payload": "x" * 2000}):
                pass
        spans = memory.get_finished_spans()
        ids = [f"{s.context.trace_id:032x} {s.context.span_id:016x}" for s in spans]
        sent.write("\\n".join(ids) + "\\n"); sent.flush()
        if exporter.export(spans) is not SpanExportResult.SUCCESS:
            sys.exit(f"batch {b} failed after the exporter's retries")
        acked.write("\\n".join(ids) + "\\n"); acked.flush(); os.fsync(acked.fileno())
    print("all batches acknowledged")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if _is_worker(int(c))]


def _is_worker(pid: int) -> bool:
    try:
        return b"multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line] if path.exists() else []


def test_sigkill_while_exporting_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    endpoint = f"127.0.0.1:{_free_port()}"
    args = ("--grpc-endpoint", endpoint, "--config", str(_config(tmp_path, decode_workers=1)))
    first = start_collector(db, *args)
    batches, per_batch = 60, 50
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, endpoint, str(tmp_path), str(batches), str(per_batch)],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_lines(tmp_path / "acked.txt")) < 5 * per_batch:
            if sender.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sender: {sender.communicate()}\ncollector: {first.stderr()}")
            time.sleep(0.02)
        # Requests of ~100 kB are decoded in a worker process: one is running now.
        workers = _children(first.proc.pid)
        assert workers, "no decode worker process"
        first.proc.kill()  # SIGKILL: no drain, no checkpoint
        first.proc.wait()
        first.stop()
        acked_before_kill = set(_lines(tmp_path / "acked.txt"))
        assert len(acked_before_kill) < batches * per_batch  # killed mid-stream
        first.discovery.unlink()  # a stale discovery file from the killed process
        with start_collector(db, *args) as second:
            # The killed collector's workers notice their parent is gone and exit by themselves.
            deadline = time.monotonic() + 30
            while any(Path(f"/proc/{pid}").exists() and _is_worker(pid) for pid in workers):
                assert time.monotonic() < deadline, f"orphaned decode workers: {workers}"
                time.sleep(0.1)
            out, err = sender.communicate(timeout=120)
            assert sender.returncode == 0, (err[-3000:], second.stderr())
            assert "all batches acknowledged" in out
            sql = (
                "SELECT trace_id || ' ' || span_id, count(*) OVER (PARTITION BY trace_id, span_id) FROM spans"
            )
            rows = run_query(sql, second.db).rows
            stats = httpx.get(f"{second.info['query_url']}/api/health").json()
        stored = [r[0] for r in rows]
        assert all(r[1] == 1 for r in rows)
        assert acked_before_kill <= set(stored), "an acknowledged span was lost"
        sent = _lines(tmp_path / "sent.txt")
        assert sorted(stored) == sorted(set(sent)) and len(stored) == batches * per_batch
        assert stats["stored_spans"] + stats["duplicate_spans"] >= batches * per_batch - len(
            acked_before_kill
        )
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.communicate()


def _config(folder: Path, *, max_queue_bytes: int | None = None, decode_workers: int = 0) -> Path:
    extra = f"\n    max_queue_bytes: {max_queue_bytes}" if max_queue_bytes else ""
    path = folder / "collector.yaml"
    path.write_text(
        "receivers:\n  otlp:\n    protocols:\n"
        "      grpc: {endpoint: 127.0.0.1:0}\n      http: {endpoint: 127.0.0.1:0}\n"
        f"exporters:\n  duckdb:\n    decode_workers: {decode_workers}\n    metrics_log_interval: 0s{extra}\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    return path


def _request(n_spans: int, rnd: random.Random) -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    trace_id = rnd.randbytes(16)
    for i in range(n_spans):
        span = spans.add()
        span.trace_id, span.span_id, span.name = trace_id, rnd.randbytes(8), f"chat {i}"
        span.start_time_unix_nano, span.end_time_unix_nano = (
            1_700_000_000_000_000_000,
            1_700_000_000_500_000_000,
        )
        span.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value="m" * 2000)))
        span.attributes.append(KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")))
    return request.SerializeToString()


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_overload_is_refused_with_retry_hints_and_memory_stays_bounded(tmp_path: Path) -> None:
    queue_bytes = 2 * 1024 * 1024
    rnd = random.Random(7)
    spans_per_request = 400
    n_clients, per_client = 12, 20
    payloads = [_request(spans_per_request, rnd) for _ in range(n_clients * per_client + 4)]
    payload_size = len(payloads[0])  # ≈ 0.9 MiB
    with start_collector(
        tmp_path / "load.duckdb", "--config", str(_config(tmp_path, max_queue_bytes=queue_bytes))
    ) as c:
        grpc_target, http_url = c.info["grpc_endpoint"], c.http_url
        # Warm-up at a load it sustains: one request at a time, all accepted.
        with grpc.insecure_channel(grpc_target) as channel:
            for payload in payloads[-4:]:
                channel.unary_unary(EXPORT_PATH)(payload, timeout=60)
        baseline_rss = _peak_rss(c.proc.pid)

        outcome: dict[str, int] = {"accepted": 0, "unavailable": 0, "503": 0}
        trailers_seen: list[dict[str, bytes]] = []
        retry_after: set[str] = set()

        async def grpc_client(batch: list[bytes]) -> None:
            async with grpc.aio.insecure_channel(grpc_target) as channel:
                export = channel.unary_unary(EXPORT_PATH)
                for payload in batch:
                    try:
                        await export(payload, timeout=60)
                        outcome["accepted"] += 1
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                        outcome["unavailable"] += 1
                        trailers_seen.append(dict(exc.trailing_metadata() or ()))

        async def http_client(batch: list[bytes]) -> None:
            async with httpx.AsyncClient(timeout=60) as client:
                for payload in batch:
                    r = await client.post(
                        http_url, content=payload, headers={"Content-Type": "application/x-protobuf"}
                    )
                    if r.status_code == 200:
                        outcome["accepted"] += 1
                    else:
                        assert r.status_code == 503, r.content
                        assert status_pb2.Status.FromString(r.content).code == 14  # UNAVAILABLE
                        outcome["503"] += 1
                        retry_after.add(r.headers["retry-after"])

        async def overload() -> None:
            clients = []
            for i in range(n_clients):
                batch = payloads[i * per_client : (i + 1) * per_client]
                clients.append(grpc_client(batch) if i % 2 else http_client(batch))
            await asyncio.gather(*clients)

        asyncio.run(overload())
        growth = _peak_rss(c.proc.pid) - baseline_rss
        stats = httpx.get(f"{c.info['query_url']}/api/health").json()
        stored = run_query("SELECT count(*) FROM spans", c.db).rows[0][0]

    offered = n_clients * per_client
    refused = outcome["unavailable"] + outcome["503"]
    assert outcome["accepted"] + refused == offered
    # At least twice what it could take in the same time: at least half of the requests refused.
    assert refused * 2 >= offered and outcome["unavailable"] and outcome["503"], outcome
    assert retry_after == {"1"}
    for trailers in trailers_seen:
        retry = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds == 1
        details = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert details.code == 14 and details.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    # Memory: bounded by the queue and in-flight transport buffers, not by what was offered.
    offered_bytes = offered * payload_size
    assert growth < 90 * 2**20 < offered_bytes / 2, (growth, offered_bytes)
    # Everything acknowledged is stored; the queue drained; the counters agree.
    assert stored == (outcome["accepted"] + 4) * spans_per_request
    assert stats["refused_requests"] == refused and stats["queued_bytes"] == 0
    assert stats["stored_spans"] == stored
    print(
        json.dumps(
            {"outcome": outcome, "rss_growth_mib": growth / 2**20, "offered_mib": offered_bytes / 2**20}
        )
    )
    assert os.path.exists(c.db)


def test_concurrent_large_uploads_count_against_the_queue_while_they_are_read(tmp_path: Path) -> None:
    # 12 gzip bodies of 40 MiB each (under the 64 MiB body limit, ~40 kB on the wire) sent at once
    # to a 2 MiB queue: bodies count against the queue as they are decompressed, so at most one
    # is held in full; the others are refused (503) part-way instead of all being buffered.
    body = gzip.compress(bytes(40 * 2**20), compresslevel=1)
    with start_collector(
        tmp_path / "big.duckdb", "--config", str(_config(tmp_path, max_queue_bytes=2 * 2**20))
    ) as c:
        httpx.post(c.http_url, content=b"", headers={"Content-Type": "application/x-protobuf"})  # warm
        baseline_rss = _peak_rss(c.proc.pid)

        async def upload(client: httpx.AsyncClient) -> int:
            headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
            r = await client.post(c.http_url, content=body, headers=headers)
            if r.status_code == 503:
                assert "queue full" in status_pb2.Status.FromString(r.content).message
            return r.status_code

        async def uploads() -> list[int]:
            async with httpx.AsyncClient(timeout=120) as client:
                return await asyncio.gather(*(upload(client) for _ in range(12)))

        statuses = asyncio.run(uploads())
        growth = _peak_rss(c.proc.pid) - baseline_rss
        health = httpx.get(f"{c.info['query_url']}/api/health").json()
    # Zeros are not a valid export: the ones read in full are answered 400, the rest 503.
    assert set(statuses) <= {400, 503} and statuses.count(503) >= 6, statuses
    assert health["queued_bytes"] == 0 and health["queued_requests"] == 0
    assert growth < 200 * 2**20, growth / 2**20  # 12 bodies buffered at once would be 480 MiB+
