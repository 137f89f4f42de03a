"""End to end: `python -m spanreel collector` as a subprocess, real OTLP over loopback from the
stock OpenTelemetry exporters and raw HTTP/gRPC clients, queries through the API and directly."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from conftest import CollectorProcess, clean_env, start_collector
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanreel.collector import QueryError, run_query, running_collector

EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def small_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    tmp = tmp_path_factory.mktemp("small")
    (tmp / "small.yaml").write_text(
        """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:4317", max_recv_msg_size_mib: 0.01}
      http: {endpoint: "127.0.0.1:4318", max_request_body_size: 10000}
exporters:
  duckdb: {}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [duckdb]}
"""
    )
    with start_collector(tmp / "spans.duckdb", "--config", str(tmp / "small.yaml")) as running:
        yield running


def _spans(service: str, n_children: int = 1, big: str = "") -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e", "1.0")
    with tracer.start_as_current_span("agent run"):
        for i in range(n_children):
            attrs: dict[str, Any] = {
                gen_ai.GEN_AI_OPERATION_NAME: "chat",
                gen_ai.GEN_AI_PROVIDER_NAME: "openai",
                gen_ai.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 10 + i,
                gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
                gen_ai.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
                "session.id": "sess-1",
            }
            if big:
                attrs["big"] = big
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attrs):
                pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _trace_id(spans: list[ReadableSpan]) -> str:
    context = spans[0].get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}"


def test_stock_exporters_then_query_api_then_sigterm(tmp_path: Path) -> None:
    with start_collector(tmp_path / "spans.duckdb") as running:
        grpc_spans = _spans("grpc-app", n_children=2)
        http_spans = _spans("http-app")
        grpc_exporter = GrpcExporter(
            endpoint=running.info["grpc_endpoint"], insecure=True, compression=grpc.Compression.Gzip
        )
        http_exporter = HttpExporter(endpoint=running.http_url, compression=HttpCompression.Gzip)
        assert grpc_exporter.export(grpc_spans) == SpanExportResult.SUCCESS
        assert http_exporter.export(http_spans) == SpanExportResult.SUCCESS
        # A retried export delivers duplicates: still one row per span.
        assert grpc_exporter.export(grpc_spans) == SpanExportResult.SUCCESS
        grpc_exporter.shutdown()
        http_exporter.shutdown()

        assert running_collector(running.db) is not None
        sql = (
            "SELECT trace_id, service_name, span_count, llm_calls, input_tokens, output_tokens, session_id, "
            "start_time FROM traces ORDER BY service_name"
        )
        live = run_query(sql, running.db)  # acked exports are committed: visible at once
        assert [r[1:7] for r in live.rows] == [
            ["grpc-app", 3, 2, 21, 6, "sess-1"],
            ["http-app", 2, 1, 10, 3, "sess-1"],
        ]
        assert live.rows[0][0] == _trace_id(grpc_spans)
        calls_sql = (
            "SELECT span_id, parent_span_id, NULL AS kind, operation, provider, request_model, "
            "finish_reasons, attributes, start_time, end_time, duration_ns FROM llm_calls ORDER BY span_id"
        )
        calls_live = run_query(calls_sql, running.db)
        assert len(calls_live.rows) == 3
        assert all(r[3:7] == ["chat", "openai", "gpt-4o-mini", ["stop"]] for r in calls_live.rows)
        assert all(r[2] is None for r in calls_live.rows)  # kind is not an llm_calls column
        assert json.loads(calls_live.rows[0][7])["session.id"] == "sess-1"

        code, err = running.stop()
        assert code == 0, err
        assert "stopped" in err
        assert not running.discovery.exists()
        # Direct DuckDB path after shutdown: same values, same JSON-safe types.
        assert running_collector(running.db) is None
        assert run_query(sql, running.db) == live
        assert run_query(calls_sql, running.db) == calls_live


def _otlp_json(trace_hex: str, span_hex: str, **extra: Any) -> dict[str, Any]:
    span = {
        "traceId": trace_hex,
        "spanId": span_hex,
        "name": "chat json-model",
        "kind": 3,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000250000000",
        "attributes": [
            {"key": gen_ai.GEN_AI_OPERATION_NAME, "value": {"stringValue": "chat"}},
            {"key": gen_ai.GEN_AI_SYSTEM, "value": {"stringValue": "openai"}},
            {"key": gen_ai.GEN_AI_USAGE_PROMPT_TOKENS, "value": {"intValue": "42"}},
        ],
    }
    span.update(extra)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                "scopeSpans": [{"scope": {"name": "raw"}, "spans": [span]}],
            }
        ]
    }


def test_otlp_json_gzip_and_partial_success(collector: CollectorProcess) -> None:
    trace_hex = "5b8efff798038103d269b633813fc60c"
    good = _otlp_json(trace_hex, "eee19b7ec3c1b174")
    bad_span = _otlp_json(trace_hex, "0000000000000000")["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    good["resourceSpans"][0]["scopeSpans"][0]["spans"].append(bad_span)
    body = gzip.compress(json.dumps(good).encode())
    response = httpx.post(
        collector.http_url,
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1 and "span_id" in partial["errorMessage"]
    rows = run_query(
        "SELECT span_id, provider, input_tokens, duration_ns, start_time FROM spans WHERE trace_id = ?",
        collector.db,
        [trace_hex],
    ).rows
    assert rows == [["eee19b7ec3c1b174", "openai", 42, 250_000_000, "2023-11-14T22:13:20.000000000Z"]]
    # Full success: empty partial success, protobuf in -> protobuf out.
    request = ExportTraceServiceRequest()
    response = httpx.post(
        collector.http_url,
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


def test_http_error_statuses(collector: CollectorProcess, small_collector: CollectorProcess) -> None:
    url = collector.http_url
    r = httpx.post(url, content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/x-protobuf" in r.json()["message"]
    r = httpx.get(url)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = httpx.post(url, content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "invalid JSON" in r.json()["message"]
    r = httpx.post(url, content=b"\xff\xff\xff", headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    assert "protobuf" in status_pb2.Status.FromString(r.content).message
    r = httpx.post(
        url,
        content=b"not gzip at all",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 400
    # 413 is judged after decompression: 40 kB of JSON compresses to well under the 10 kB limit.
    doc = _otlp_json("6b8efff798038103d269b633813fc60c", "aee19b7ec3c1b174", name="x" * 40_000)
    compressed = gzip.compress(json.dumps(doc).encode())
    assert len(compressed) < 10_000
    r = httpx.post(
        small_collector.http_url,
        content=compressed,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 413 and "max_request_body_size" in r.json()["message"]


def test_grpc_status_codes(collector: CollectorProcess, small_collector: CollectorProcess) -> None:
    with grpc.insecure_channel(collector.info["grpc_endpoint"]) as channel:
        export = channel.unary_unary(EXPORT_PATH)
        with pytest.raises(grpc.RpcError) as bad:
            export(b"\xff\xff\xff\xff", timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Partial success: the invalid span is reported, the valid one stored.
        spans = _spans("partial-grpc")
        request = ExportTraceServiceRequest()
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        request.CopyFrom(encode_spans(spans))
        bad_span = request.resource_spans[0].scope_spans[0].spans.add()
        bad_span.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
        bad_span.end_time_unix_nano = bad_span.start_time_unix_nano - 1
        reply = ExportTraceServiceResponse.FromString(export(request.SerializeToString(), timeout=10))
        assert reply.partial_success.rejected_spans == 1
        assert "end_time_unix_nano" in reply.partial_success.error_message
    count = run_query("SELECT count(*) FROM spans WHERE service_name = 'partial-grpc'", collector.db)
    assert count.rows == [[2]]
    # Over the limit after decompression: RESOURCE_EXHAUSTED (0.01 MiB limit, 40 kB attribute).
    big = encode_spans(_spans("big", big="y" * 40_000)).SerializeToString()
    with grpc.insecure_channel(small_collector.info["grpc_endpoint"]) as channel:
        export = channel.unary_unary(EXPORT_PATH)
        with pytest.raises(grpc.RpcError) as too_big:
            export(big, timeout=10, compression=grpc.Compression.Gzip)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_span_times_beyond_int64_nanoseconds_are_rejected_alone(collector: CollectorProcess) -> None:
    """OTLP times are fixed64; storage is signed 64-bit ns. Such a span used to fail the whole
    request (HTTP 500 / gRPC UNKNOWN, the good spans lost, the client retrying a poison request)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    for transport in ("http", "grpc"):
        service = f"far-future-{transport}"
        request = encode_spans(_spans(service))
        far = request.resource_spans[0].scope_spans[0].spans.add()
        far.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
        far.span_id = bytes.fromhex("0123456789abcdef")
        far.start_time_unix_nano, far.end_time_unix_nano = 2**64 - 2, 2**64 - 1
        body = request.SerializeToString()
        if transport == "http":
            response = httpx.post(
                collector.http_url, content=body, headers={"Content-Type": "application/x-protobuf"}
            )
            assert response.status_code == 200, response.content
            reply = ExportTraceServiceResponse.FromString(response.content)
        else:
            with grpc.insecure_channel(collector.info["grpc_endpoint"]) as channel:
                reply = ExportTraceServiceResponse.FromString(
                    channel.unary_unary(EXPORT_PATH)(body, timeout=10)
                )
        assert reply.partial_success.rejected_spans == 1
        assert "end_time_unix_nano" in reply.partial_success.error_message
        count = run_query("SELECT count(*) FROM spans WHERE service_name = ?", collector.db, [service])
        assert count.rows == [[2]]


def test_a_span_the_normalisers_choke_on_does_not_fail_its_request(collector: CollectorProcess) -> None:
    """An OpenLLMetry completion whose content part had a list or object as its ``type`` raised
    TypeError while deriving the GenAI columns: the whole export failed (HTTP 500 / gRPC
    UNKNOWN), the good span beside it was lost and the client retried the poison forever."""
    for transport, odd_type in (("http", {}), ("grpc", ["image_url"])):
        trace_hex = ("7a" if transport == "http" else "7b") + "8efff798038103d269b633813fc60c"
        doc = _otlp_json(trace_hex, "eee19b7ec3c1b174")
        poison = _otlp_json(trace_hex, "fee19b7ec3c1b174")["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        content = json.dumps([{"type": odd_type}])
        poison["attributes"].append({"key": "gen_ai.completion.0.content", "value": {"stringValue": content}})
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(poison)
        if transport == "http":
            response = httpx.post(collector.http_url, json=doc)
            assert response.status_code == 200, response.text
            assert "partialSuccess" not in response.json()
        else:
            request = ExportTraceServiceRequest()
            json_format.ParseDict(_hex_ids_as_base64(doc), request)
            with grpc.insecure_channel(collector.info["grpc_endpoint"]) as channel:
                reply = ExportTraceServiceResponse.FromString(
                    channel.unary_unary(EXPORT_PATH)(request.SerializeToString(), timeout=10)
                )
            assert not reply.HasField("partial_success")
        rows = run_query(
            "SELECT span_id, operation, provider, attributes->>'$.\"gen_ai.completion.0.content\"' "
            "FROM spans WHERE trace_id = ? ORDER BY span_id",
            collector.db,
            [trace_hex],
        ).rows
        assert rows == [
            ["eee19b7ec3c1b174", "chat", "openai", None],
            ["fee19b7ec3c1b174", "chat", "openai", content],
        ]


def _hex_ids_as_base64(doc: dict[str, Any]) -> dict[str, Any]:
    """OTLP/JSON (hex ids) → the proto3 JSON mapping (base64 bytes) json_format parses."""
    for resource_spans in doc["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return doc


def test_implausible_token_counts_do_not_fail_the_request(collector: CollectorProcess) -> None:
    """Two calls of one trace each claiming 2**63 - 1 output tokens (valid OTLP int64s): their sum
    overflowed the per-trace BIGINT total and failed the whole request, every time it was
    retried. A count no LLM call can have is not a token count: the column is NULL, the attribute
    is kept as sent."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    service = "huge-token-counts"
    request = encode_spans(_spans(service, n_children=2))
    for span in request.resource_spans[0].scope_spans[0].spans:
        for kv in span.attributes:
            if kv.key == gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS:
                kv.value.int_value = 2**63 - 1
    response = httpx.post(
        collector.http_url,
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.content
    assert not ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans
    calls = run_query(
        "SELECT output_tokens, attributes->>'$.\"gen_ai.usage.output_tokens\"' FROM llm_calls "
        "WHERE service_name = ?",
        collector.db,
        [service],
    )
    assert calls.rows == [[None, str(2**63 - 1)]] * 2
    totals = run_query(
        "SELECT output_tokens, input_tokens FROM traces WHERE trace_id IN "
        "(SELECT trace_id FROM spans WHERE service_name = ?)",
        collector.db,
        [service],
    )
    assert totals.rows == [[None, 21]]


def test_query_api_read_only(collector: CollectorProcess) -> None:
    url = collector.info["query_url"]
    assert httpx.get(f"{url}/api/health").json()["status"] == "ok"
    ok = httpx.post(f"{url}/api/query", json={"sql": "SELECT ? + 1 AS x", "params": [41]})
    assert ok.status_code == 200 and ok.json() == {"columns": ["x"], "rows": [[42]], "truncated": False}
    several = httpx.post(f"{url}/api/query", json={"sql": "SELECT 1; SELECT 2 AS y"})
    assert several.status_code == 200 and several.json() == {
        "columns": ["y"],
        "rows": [[2]],
        "truncated": False,
    }
    # max_rows: the query stops there (the whole result used to be built and serialised)
    capped = httpx.post(f"{url}/api/query", json={"sql": "SELECT * FROM range(5000000)", "max_rows": 5})
    assert capped.json() == {"columns": ["range"], "rows": [[0], [1], [2], [3], [4]], "truncated": True}
    assert run_query("SELECT * FROM range(10)", collector.db, max_rows=3).truncated
    assert httpx.post(f"{url}/api/query", json={"sql": "SELECT 1", "max_rows": 0}).status_code == 400
    for sql in (
        "INSERT INTO spans (trace_id, span_id) VALUES ('a', 'b')",
        "COPY spans TO 'out.csv'",
        "ATTACH 'other.duckdb' AS other",
        "SELECT 1; DELETE FROM spans",
        "EXPLAIN ANALYZE DELETE FROM spans",
        "SELECT * FROM read_text('/etc/hostname')",
    ):
        r = httpx.post(f"{url}/api/query", json={"sql": sql})
        assert r.status_code == 400, sql
        assert r.json()["error"]
        with pytest.raises(QueryError):
            run_query(sql, collector.db)
    assert (
        httpx.post(
            f"{url}/api/query", content=b"nope", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert httpx.post(f"{url}/api/query", json={"sql": 1}).status_code == 400


def test_second_collector_on_same_db_fails_clearly(collector: CollectorProcess) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spanreel",
            "collector",
            "--db",
            str(collector.db),
            "--grpc-endpoint",
            "127.0.0.1:0",
            "--http-endpoint",
            "127.0.0.1:0",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert str(collector.db) in proc.stderr and "--db" in proc.stderr
    assert collector.proc.poll() is None  # the first one is unaffected


def test_help_mentions_endpoints_and_stop() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "spanreel", "collector", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for text in ("4317", "4318", "SPANREEL_DB", "--db", "SIGTERM", "--query-endpoint"):
        assert text in proc.stdout


async def test_in_process_collector(tmp_path: Path) -> None:
    import asyncio

    from spanreel.collector import Collector, CollectorConfig

    config = CollectorConfig(
        db_path=tmp_path / "inproc.duckdb", grpc_endpoint="127.0.0.1:0", http_endpoint="127.0.0.1:0"
    )
    discovery = Path(str(config.db_path) + ".collector.json")
    async with Collector(config) as collector:
        info = collector.info
        assert info.grpc_endpoint and not info.grpc_endpoint.endswith(":0")
        assert json.loads(discovery.read_text())["query_url"] == info.query_url
        doc = _otlp_json("7b8efff798038103d269b633813fc60c", "bee19b7ec3c1b174")
        async with httpx.AsyncClient() as client:
            r = await client.post(f"http://{info.http_endpoint}/v1/traces", json=doc)
        assert r.status_code == 200 and r.json() == {}
        result = await asyncio.to_thread(run_query, "SELECT name FROM spans", config.db_path)
        assert result.rows == [["chat json-model"]]
    assert not discovery.exists()


async def test_a_failing_disk_is_reported_to_clients_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When COMMIT fails (the disk is full) clients get 503 naming the real error, which is logged
    once per interval, not once per request; the spans are acknowledged only once stored."""
    import asyncio

    from test_collector_storage import _FailingCommit

    from spanreel.collector import Collector, CollectorConfig

    config = CollectorConfig(
        db_path=tmp_path / "full.duckdb", grpc_endpoint=None, http_endpoint="127.0.0.1:0"
    )
    async with Collector(config) as collector:
        writer = collector._writer
        assert writer is not None
        failing = _FailingCommit(writer._con)
        writer._con = failing  # type: ignore[assignment]
        url = f"http://{collector.info.http_endpoint}/v1/traces"
        async with httpx.AsyncClient() as client:
            refused = [
                await client.post(url, json=_otlp_json("7b8efff798038103d269b633813fc60c", span))
                for span in ("aa" * 8, "bb" * 8)
            ]
            assert [r.status_code for r in refused] == [503, 503]
            assert "No space left on device" in refused[0].json()["message"]
            failing.fail = False
            stored = await client.post(url, json=_otlp_json("7b8efff798038103d269b633813fc60c", "cc" * 8))
            assert stored.status_code == 200
        result = await asyncio.to_thread(run_query, "SELECT span_id FROM spans", config.db_path)
        assert result.rows == [["cc" * 8]]
    logged = [r.getMessage() for r in caplog.records if "storing spans failed" in r.getMessage()]
    assert len(logged) == 1 and "No space left on device" in logged[0]


def test_unavailable_status_carries_retry_info() -> None:
    from google.rpc import error_details_pb2

    from spanreel.collector._server import RETRY_AFTER_S, _unavailable_status

    status = _unavailable_status("queue full")
    assert status.code == grpc.StatusCode.UNAVAILABLE
    trailers = dict(status.trailing_metadata)
    retry = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert retry.retry_delay.seconds == RETRY_AFTER_S
    rich = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert rich.message == "queue full" and rich.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)


def test_content_encodings(collector: CollectorProcess) -> None:
    url = collector.http_url
    doc = _otlp_json("7b8efff798038103d269b633813fc60c", "bee19b7ec3c1b174", name="deflated")
    raw = json.dumps(doc).encode()
    for encoding, body in (("deflate", zlib.compress(raw)), ("identity", raw), ("GZIP", gzip.compress(raw))):
        r = httpx.post(
            url, content=body, headers={"Content-Type": "application/json", "Content-Encoding": encoding}
        )
        assert r.status_code == 200, (encoding, r.text)
    # Encodings the receiver cannot undo are refused with a Status body, never read as plain bytes.
    for encoding in ("zstd", "snappy", "br"):
        r = httpx.post(
            url, content=raw, headers={"Content-Type": "application/x-protobuf", "Content-Encoding": encoding}
        )
        assert r.status_code == 415, (encoding, r.text)
        assert "gzip" in status_pb2.Status.FromString(r.content).message


def test_gzip_bomb_is_cut_off_at_the_limit(small_collector: CollectorProcess) -> None:
    # 64 MiB of zeros compress to ~64 kB; the collector stops reading at its 10 kB limit.
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=1)
    status = Path(f"/proc/{small_collector.proc.pid}/status")

    def peak_rss() -> int:
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    before = peak_rss()
    r = httpx.post(
        small_collector.http_url,
        content=bomb,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=60,
    )
    assert r.status_code == 413
    assert "after decompression" in status_pb2.Status.FromString(r.content).message
    assert peak_rss() - before < 32 * 1024 * 1024  # never inflated
