"""Forwarding accepted spans upstream (``otlp`` / ``otlphttp`` exporters).

Upstreams are real receivers on loopback: another ``spanreel collector`` subprocess, and in-test
OTLP/HTTP and OTLP/gRPC recorders that script their answers (503 / UNAVAILABLE first) and keep
what they received (headers, encoding, bodies).
"""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from click.testing import CliRunner
from google.protobuf import duration_pb2
from google.protobuf.any_pb2 import Any as AnyProto
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_collector_security import write_pem

from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.collector._config import parse_duration
from spanreel.collector._decode import decode_request
from spanreel.collector._forward import (
    Forwarder,
    Outcome,
    backoff_delay,
    json_to_protobuf,
    parse_retry_after,
    protobuf_to_json,
)
from spanreel.collector._forward_config import ForwarderConfig, QueueSettings, RetrySettings, parse_forwarder
from tests.conftest import CollectorProcess, start_collector

_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


# -- spans ---------------------------------------------------------------------------------------


def _spans(count: int, name: str = "work") -> list[ReadableSpan]:
    """``count`` finished SDK spans (one trace) with GenAI attributes."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "forward-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("forward-test")
    with tracer.start_as_current_span("root"):
        for i in range(count - 1):
            with tracer.start_as_current_span(f"{name} {i}") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                span.set_attribute("gen_ai.usage.input_tokens", i)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _ids(spans: list[ReadableSpan]) -> set[str]:
    return {format(s.context.span_id, "016x") for s in spans}


def _body_ids(body: bytes, json_encoded: bool = False) -> set[str]:
    return {row["span_id"] for row in decode_request(body, json_encoded=json_encoded).rows}


def _protobuf(spans: list[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


# -- in-test upstreams ---------------------------------------------------------------------------


@dataclass
class HttpRecorder:
    """An OTLP/HTTP receiver that answers with ``script`` (status codes, then 200s) and records
    every request (headers, raw body)."""

    script: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def serve(self, ssl_context: ssl.SSLContext | None = None) -> Iterator[HttpRecorder]:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = recorder.script.pop(0) if recorder.script else 200
                payload = ExportTraceServiceResponse().SerializeToString() if status == 200 else b"busy"
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if ssl_context is not None:
            server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    def span_ids(self) -> set[str]:
        ids: set[str] = set()
        for headers, body in self.requests:
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            ids |= _body_ids(body, json_encoded=headers.get("content-type") == "application/json")
        return ids


def _retry_info_status(delay_s: float) -> grpc.Status:
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=int(delay_s * 1e9)))
    detail = AnyProto()
    detail.Pack(retry)
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.UNAVAILABLE, message="busy", details=[detail])
    )


@dataclass
class GrpcRecorder:
    """An OTLP/gRPC receiver answering UNAVAILABLE (with RetryInfo) ``unavailable`` times, then OK.
    ``gzip_disabled`` makes it refuse gzip-compressed requests (UNIMPLEMENTED), which proves what
    the client sent on the wire."""

    unavailable: int = 0
    gzip_disabled: bool = False
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    endpoint: str = ""
    #: where it listens: a loopback port, or a gRPC ``unix:`` address (then also its ``endpoint``)
    bind: str = "127.0.0.1:0"

    def serve(self) -> Iterator[GrpcRecorder]:
        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.requests.append((dict(context.invocation_metadata()), request))
            if self.unavailable > 0:
                self.unavailable -= 1
                context.abort_with_status(_retry_info_status(0.05))
            return bytes(ExportTraceServiceResponse().SerializeToString())

        options = [("grpc.compression_enabled_algorithms_bitset", 1)] if self.gzip_disabled else []
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        handler = grpc.unary_unary_rpc_method_handler(export)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, {"Export": handler}),)
        )
        port = server.add_insecure_port(self.bind)
        self.endpoint = self.bind if self.bind.startswith("unix:") else f"127.0.0.1:{port}"
        server.start()
        try:
            yield self
        finally:
            server.stop(0)

    def span_ids(self) -> set[str]:
        return set().union(*(_body_ids(body) for _, body in self.requests)) if self.requests else set()


@pytest.fixture
def http_recorder() -> Iterator[HttpRecorder]:
    yield from HttpRecorder(script=[503]).serve()


@pytest.fixture
def grpc_recorder() -> Iterator[GrpcRecorder]:
    yield from GrpcRecorder(unavailable=1).serve()


def _wait(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _count(collector: CollectorProcess, sql: str = "SELECT count(*) FROM spans") -> int:
    return int(run_query(sql, collector.db).rows[0][0])


def _health(collector: CollectorProcess) -> dict[str, Any]:
    response = httpx.get(f"{collector.info['query_url']}/api/health", timeout=10)
    response.raise_for_status()
    return dict(response.json())


# -- end to end: a collector forwarding to three upstreams ---------------------------------------

_FAST_RETRY = "retry_on_failure: {initial_interval: 20ms, max_interval: 100ms, max_elapsed_time: 30s}"


def _config(tmp_path: Path, exporters: str, names: list[str]) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(
        "receivers:\n  otlp:\n    protocols:\n"
        "      grpc: {endpoint: 127.0.0.1:0}\n      http: {endpoint: 127.0.0.1:0}\n"
        f"exporters:\n  duckdb: {{path: {tmp_path / 'local.duckdb'}}}\n{exporters}"
        "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n"
        f"      exporters: [duckdb, {', '.join(names)}]\n"
    )
    return path


def test_forwards_over_grpc_and_http_with_headers_gzip_and_retries(
    tmp_path: Path, http_recorder: HttpRecorder, grpc_recorder: GrpcRecorder
) -> None:
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    with start_collector(upstream_dir / "upstream.duckdb") as upstream:
        exporters = (
            f"  otlphttp/recorder:\n    endpoint: {http_recorder.url}\n"
            "    headers: {x-api-key: secret-http}\n    compression: gzip\n"
            f"    {_FAST_RETRY}\n"
            f"  otlp/recorder:\n    endpoint: {grpc_recorder.endpoint}\n    tls: {{insecure: true}}\n"
            "    headers: {X-Tenant: team-a}\n    compression: none\n"
            f"    {_FAST_RETRY}\n"
            f"  otlp/spanreel:\n    endpoint: http://{upstream.info['grpc_endpoint']}\n"
        )
        names = ["otlphttp/recorder", "otlp/recorder", "otlp/spanreel"]
        config = _config(tmp_path, exporters, names)
        with start_collector(tmp_path / "local.duckdb", "--config", str(config)) as local:
            protobuf_spans = _spans(6)
            exporter = OTLPSpanExporter(endpoint=local.http_url, timeout=10)
            assert exporter.export(protobuf_spans).name == "SUCCESS"
            # an OTLP/JSON export too: re-encoded to protobuf for the upstreams
            json_spans = _spans(4, name="json")
            body = protobuf_to_json(_protobuf(json_spans))
            response = httpx.post(
                local.http_url, content=body, headers={"Content-Type": "application/json"}, timeout=10
            )
            assert response.status_code == 200, response.text
            expected = _ids(protobuf_spans) | _ids(json_spans)

            assert _count(local) == len(expected)  # stored locally, acknowledged
            _wait(lambda: http_recorder.span_ids() == expected, "the OTLP/HTTP upstream")
            _wait(lambda: grpc_recorder.span_ids() == expected, "the OTLP/gRPC upstream")
            _wait(lambda: _count(upstream) == len(expected), "the upstream spanreel collector")
            _wait(
                lambda: _health(local)["forwarders"]["otlp/spanreel"]["sent_spans"] == len(expected), "stats"
            )
            stats = _health(local)["forwarders"]

    # HTTP: every request carried the header, gzip and protobuf; the first got 503 and was retried
    assert len(http_recorder.requests) == 3
    for headers, raw in http_recorder.requests:
        assert headers["x-api-key"] == "secret-http"
        assert headers["content-encoding"] == "gzip" and raw[:2] == b"\x1f\x8b"
        assert headers["content-type"] == "application/x-protobuf"
    # gRPC: metadata (lower-cased key), and the UNAVAILABLE + RetryInfo answer was retried
    assert len(grpc_recorder.requests) == 3
    assert all(md["x-tenant"] == "team-a" for md, _ in grpc_recorder.requests)
    assert stats["otlphttp/recorder"]["retries"] == 1 and stats["otlp/recorder"]["retries"] == 1
    assert stats["otlphttp/recorder"]["sent_spans"] == len(expected)
    assert stats["otlphttp/recorder"]["failed_exports"] == stats["otlphttp/recorder"]["dropped_exports"] == 0
    # the upstream collector normalised the forwarded spans like direct ones
    assert (
        run_query("SELECT count(*) FROM llm_calls WHERE request_model = 'gpt-4o-mini'", upstream.db).rows[0][
            0
        ]
        == len(expected) - 2
    )


def test_otlp_endpoints_in_grpc_naming_syntax_reach_their_receivers(tmp_path: Path) -> None:
    """``dns:///host:port`` (common in Kubernetes configs) and ``unix:///path`` endpoints, which
    the OpenTelemetry Collector's otlp exporter accepts, were refused ("expected host:port"). They
    go to the gRPC channel as written: spans reach a second spanreel collector through
    ``dns:///127.0.0.1:PORT`` and a receiver on a Unix socket through ``unix:///…``."""
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    socket_recorder = contextmanager(GrpcRecorder(bind=f"unix:{tmp_path / 'otlp.sock'}").serve)
    with start_collector(upstream_dir / "upstream.duckdb") as upstream, socket_recorder() as recorder:
        dns_target = f"dns:///{upstream.info['grpc_endpoint']}"
        exporters = (
            f"  otlp/dns: {{endpoint: '{dns_target}', tls: {{insecure: true}}, {_FAST_RETRY}}}\n"
            f"  otlp/unix: {{endpoint: 'unix://{tmp_path / 'otlp.sock'}', tls: {{insecure: true}}}}\n"
        )
        config = _config(tmp_path, exporters, ["otlp/dns", "otlp/unix"])
        checked = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(config)])
        assert f"otlp/dns: OTLP/gRPC {dns_target} (plaintext" in checked.output, checked.output
        with start_collector(tmp_path / "local.duckdb", "--config", str(config)) as local:
            spans = _spans(5)
            assert OTLPSpanExporter(endpoint=local.http_url, timeout=10).export(spans).name == "SUCCESS"
            _wait(lambda: _count(upstream) == len(spans), "the upstream collector behind dns:///")
            _wait(lambda: recorder.span_ids() == _ids(spans), "the receiver behind unix:///")
            _wait(lambda: _health(local)["forwarders"]["otlp/dns"]["sent_spans"] == len(spans), "stats")


class _BlackHole:
    """A TCP server that accepts connections and never answers (a hung upstream)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_down_or_hung_upstream_never_blocks_or_loses_local_storage(tmp_path: Path) -> None:
    hole = _BlackHole()
    try:
        exporters = (
            f"  otlphttp/hung:\n    endpoint: http://127.0.0.1:{hole.port}\n    timeout: 60s\n"
            "    sending_queue: {queue_size: 2, num_consumers: 1}\n"
            f"  otlp/down:\n    endpoint: 127.0.0.1:{_free_port()}\n    tls: {{insecure: true}}\n"
            f"    {_FAST_RETRY}\n    sending_queue: {{queue_size: 3, num_consumers: 1}}\n"
        )
        config = _config(tmp_path, exporters, ["otlphttp/hung", "otlp/down"])
        collector = start_collector(tmp_path / "local.duckdb", "--config", str(config))
        with collector:
            exports = [_spans(5, name=f"batch{i}") for i in range(12)]
            with httpx.Client(timeout=20) as client:  # far below the hung upstream's 60 s timeout
                for spans in exports:
                    response = client.post(
                        collector.http_url,
                        content=_protobuf(spans),
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                    assert response.status_code == 200
            assert _count(collector) == 60  # every span stored locally, each export acknowledged
            stats = _health(collector)["forwarders"]
            hung, down = stats["otlphttp/hung"], stats["otlp/down"]
            assert hung["sent_exports"] == down["sent_exports"] == 0
            # bounded queues: one export in flight, `queue_size` waiting, the oldest others dropped
            assert hung["queue_exports"] <= 2 and hung["dropped_exports"] >= 12 - 1 - 2
            assert (
                down["queue_exports"] <= 3 and down["dropped_exports"] + down["failed_exports"] >= 12 - 1 - 3
            )
            code, stderr = collector.stop()
        assert code == 0, stderr
        assert "queue full" in stderr and "dropped the oldest" in stderr
    finally:
        hole.close()
    assert _count(collector) == 60  # still all there after the shutdown


# -- a forwarder in-process ----------------------------------------------------------------------


class _GatedSender:
    """A sender that blocks until released and records the bodies it sent."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.sent: list[bytes] = []

    def send(self, body: bytes) -> Outcome:
        self.started.set()
        self.release.wait(10)
        self.sent.append(body)
        return Outcome("ok")

    def close(self) -> None:
        self.release.set()


def _forwarder_config(**queue: Any) -> ForwarderConfig:
    return ForwarderConfig(
        name="otlp/test",
        protocol="grpc",
        target="127.0.0.1:1",
        queue=QueueSettings(**{"num_consumers": 1, **queue}),
        retry=RetrySettings(initial_interval_s=0.01, max_interval_s=0.02),
    )


def test_full_queue_drops_the_oldest_exports() -> None:
    sender = _GatedSender()
    forwarder = Forwarder(_forwarder_config(queue_size=2), sender=sender)
    forwarder.start()
    batches = [_protobuf(_spans(2, name=f"b{i}")) for i in range(6)]
    forwarder.submit(batches[0], json_encoded=False, spans=2)
    assert sender.started.wait(5)  # batch 0 is in flight
    for body in batches[1:]:
        forwarder.submit(body, json_encoded=False, spans=2)
    stats = forwarder.stats()
    assert (stats.queue_exports, stats.dropped_exports, stats.dropped_spans) == (2, 3, 6)
    sender.release.set()
    _wait(lambda: forwarder.stats().sent_exports == 3, "the queue to drain")
    assert sender.sent == [batches[0], batches[4], batches[5]]  # the newest two survived
    forwarder.begin_stop(1.0)
    forwarder.finish_stop()


def test_queue_sized_in_bytes() -> None:
    sender = _GatedSender()
    body = _protobuf(_spans(3))
    forwarder = Forwarder(_forwarder_config(queue_size=len(body) * 2, sizer="bytes"), sender=sender)
    forwarder.start()
    forwarder.submit(body, json_encoded=False, spans=3)
    assert sender.started.wait(5)
    for _ in range(3):
        forwarder.submit(body, json_encoded=False, spans=3)
    assert (forwarder.stats().queue_size, forwarder.stats().dropped_exports) == (len(body) * 2, 1)
    sender.release.set()
    forwarder.begin_stop(0.5)
    forwarder.finish_stop()


def _drop_counts(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The export counts of the "queue full … dropped the oldest N export(s)" warnings."""
    return [
        int(r.getMessage().split("dropped the oldest ")[1].split()[0])
        for r in caplog.records
        if "queue full" in r.getMessage()
    ]


def test_shutdown_with_a_stuck_upstream_counts_and_reports_every_export(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Shutdown while the upstream hangs: the export in flight and the queued ones are counted
    as failed and reported in one summary line (the queue was logged one line per export, the
    export in flight not at all), and drops made within the 10 s warning interval are reported
    at the end (they were never logged)."""
    caplog.set_level("INFO", logger="spanreel.collector.forward")
    sender = _GatedSender()
    forwarder = Forwarder(_forwarder_config(queue_size=5), sender=sender)
    forwarder.start()
    forwarder.submit(_protobuf(_spans(2)), json_encoded=False, spans=2)
    assert sender.started.wait(5)  # in flight, and stays there
    for _ in range(8):
        forwarder.submit(_protobuf(_spans(2)), json_encoded=False, spans=2)
    assert _drop_counts(caplog) == [1]  # the first drop is reported at once, the next two wait
    forwarder.begin_stop(0.2)
    forwarder.finish_stop()  # closing the sender releases the stuck send: it must not count again
    time.sleep(0.2)
    stats = forwarder.stats()
    assert (stats.sent_exports, stats.failed_exports, stats.failed_spans) == (0, 6, 12)
    assert (stats.dropped_exports, stats.dropped_spans) == (3, 6)
    assert sum(_drop_counts(caplog)) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "dropped an export" in m]
    (summary,) = [m for m in messages if "not forwarded at shutdown" in m]
    assert "6 export(s) (12 spans)" in summary


def test_drop_warning_names_the_room_of_a_disabled_queue(caplog: pytest.LogCaptureFixture) -> None:
    sender = _GatedSender()
    forwarder = Forwarder(_forwarder_config(enabled=False, num_consumers=1), sender=sender)
    forwarder.start()
    forwarder.submit(_protobuf(_spans(1)), json_encoded=False, spans=1)
    assert sender.started.wait(5)
    for _ in range(3):
        forwarder.submit(_protobuf(_spans(1)), json_encoded=False, spans=1)
    sender.release.set()
    forwarder.begin_stop(1.0)
    forwarder.finish_stop()
    warnings = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert warnings and all("sending_queue disabled: room for 1 waiting request(s)" in w for w in warnings)
    assert forwarder.stats().dropped_exports == sum(_drop_counts(caplog)) == 2


class _ScriptedSender:
    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.attempts = 0

    def send(self, body: bytes) -> Outcome:
        self.attempts += 1
        return self.outcomes.pop(0) if self.outcomes else Outcome("ok")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("outcomes", "sent", "failed", "attempts"),
    [
        ([Outcome("retry", "503"), Outcome("retry", "503")], 1, 0, 3),
        ([Outcome("fail", "HTTP 400: bad")], 0, 1, 1),  # permanent: not retried
        ([Outcome("retry", "503", retry_after_s=60.0)], 0, 1, 1),  # over max_elapsed_time: given up
    ],
)
def test_retry_decisions(outcomes: list[Outcome], sent: int, failed: int, attempts: int) -> None:
    sender = _ScriptedSender(list(outcomes))
    config = _forwarder_config()
    config = ForwarderConfig(
        name=config.name,
        protocol="grpc",
        target=config.target,
        queue=config.queue,
        retry=RetrySettings(initial_interval_s=0.01, max_interval_s=0.02, max_elapsed_time_s=5),
    )
    forwarder = Forwarder(config, sender=sender)
    forwarder.start()
    forwarder.submit(_protobuf(_spans(2)), json_encoded=False, spans=2)
    _wait(lambda: forwarder.stats().sent_exports + forwarder.stats().failed_exports == 1, "the export")
    stats = forwarder.stats()
    assert (stats.sent_exports, stats.failed_exports, sender.attempts) == (sent, failed, attempts)
    forwarder.begin_stop(0.5)
    forwarder.finish_stop()


def test_grpc_forwarder_sends_gzip_when_configured() -> None:
    """A receiver that refuses gzip rejects what a gzip forwarder sends, and takes the same
    export uncompressed: the compression setting reaches the wire."""
    for recorder in GrpcRecorder(gzip_disabled=True).serve():
        results = {}
        for compression in ("gzip", "none"):
            config = parse_forwarder(
                "otlp",
                {"endpoint": recorder.endpoint, "tls": {"insecure": True}, "compression": compression},
                parse_duration=parse_duration,
            )
            forwarder = Forwarder(config)
            forwarder.start()
            forwarder.submit(_protobuf(_spans(2)), json_encoded=False, spans=2)
            _wait(lambda f=forwarder: f.stats().sent_exports + f.stats().failed_exports == 1, "the export")
            results[compression] = forwarder.stats()
            forwarder.begin_stop(0.5)
            forwarder.finish_stop()
        assert results["gzip"].failed_exports == 1 and results["gzip"].sent_exports == 0
        assert results["none"].sent_exports == 1


# -- pure helpers --------------------------------------------------------------------------------


def test_backoff_grows_caps_jitters_and_honours_the_server() -> None:
    policy = RetrySettings(initial_interval_s=1, max_interval_s=10, multiplier=2, randomization_factor=0.5)
    assert [backoff_delay(n, policy) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff_delay(0, policy, jitter=0.0) == 0.5 and backoff_delay(
        0, policy, jitter=0.999
    ) == pytest.approx(1.5, abs=0.01)
    assert backoff_delay(0, policy, server_delay_s=30) == 30  # RetryInfo / Retry-After is a floor
    assert backoff_delay(3, policy, server_delay_s=0.1) == 8
    # Retrying for ever (max_elapsed_time 0): 1.5 ** 1751 overflowed and killed the sender thread.
    forever = RetrySettings(max_elapsed_time_s=0)
    assert backoff_delay(5000, forever, jitter=0.5) == forever.max_interval_s
    # A server asking for centuries: the wait (threading's timeout) overflowed too.
    assert backoff_delay(0, policy, server_delay_s=1e15) == 86_400


def test_retry_after_values() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after("yesterday") is None and parse_retry_after(None) is None


def test_reencoding_keeps_every_field() -> None:
    spans = _spans(3)
    original = _protobuf(spans)
    as_json = protobuf_to_json(original)
    assert json.loads(as_json)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == format(
        spans[0].context.trace_id, "032x"
    )
    back = json_to_protobuf(as_json)
    assert ExportTraceServiceRequest.FromString(back) == ExportTraceServiceRequest.FromString(original)
    assert (
        decode_request(as_json, json_encoded=True).rows == decode_request(original, json_encoded=False).rows
    )


def _snake_case_json_with_a_non_hex_id(spans: list[ReadableSpan]) -> bytes:
    """``spans`` as OTLP/JSON with proto field names (``resource_spans``, ``trace_id``…, which
    proto3 JSON parsers accept) plus one span whose trace id is not hex."""
    doc = json.loads(protobuf_to_json(_protobuf(spans)))
    [resource] = doc["resourceSpans"]
    [scope] = resource["scopeSpans"]
    snake = {"traceId": "trace_id", "spanId": "span_id", "parentSpanId": "parent_span_id"}
    snake |= {"startTimeUnixNano": "start_time_unix_nano", "endTimeUnixNano": "end_time_unix_nano"}
    renamed = [{snake.get(k, k): v for k, v in span.items()} for span in scope["spans"]]
    renamed.append({**renamed[0], "trace_id": "not hex", "span_id": "00000000000000ff"})
    return json.dumps(
        {"resource_spans": [{"resource": resource["resource"], "scope_spans": [{"spans": renamed}]}]}
    ).encode()


def test_json_to_protobuf_reads_json_as_the_receiver_does() -> None:
    """Proto field names keep their ids (they used to be read as base64: garbage ids upstream), and
    a span with a non-hex id is left out alone (it used to make the whole export unforwardable)."""
    spans = _spans(3)
    payload = _snake_case_json_with_a_non_hex_id(spans)
    local = decode_request(payload, json_encoded=True)
    assert local.rejected_spans == 1 and {r["span_id"] for r in local.rows} == _ids(spans)
    forwarded = decode_request(json_to_protobuf(payload), json_encoded=False)
    assert forwarded.rows == local.rows and forwarded.rejected_spans == 0


def test_otlp_json_exports_are_forwarded_as_they_were_stored(tmp_path: Path) -> None:
    for recorder in GrpcRecorder().serve():
        exporters = (
            f"  otlp:\n    endpoint: {recorder.endpoint}\n    tls: {{insecure: true}}\n    {_FAST_RETRY}\n"
        )
        config = _config(tmp_path, exporters, ["otlp"])
        with start_collector(tmp_path / "local.duckdb", "--config", str(config)) as local:
            spans = _spans(4, name="snake")
            response = httpx.post(
                local.http_url,
                content=_snake_case_json_with_a_non_hex_id(spans),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            assert int(response.json()["partialSuccess"]["rejectedSpans"]) == 1
            _wait(lambda: _health(local)["forwarders"]["otlp"]["sent_exports"] == 1, "the forward")
            stats = _health(local)["forwarders"]["otlp"]
        assert stats["failed_exports"] == 0 and stats["sent_spans"] == len(spans)
        [(_, body)] = recorder.requests
        rows = decode_request(body, json_encoded=False).rows
        assert {r["span_id"] for r in rows} == _ids(spans)
        assert {r["trace_id"] for r in rows} == {format(spans[0].context.trace_id, "032x")}


def test_spans_rejected_locally_are_not_forwarded(tmp_path: Path) -> None:
    """The client was told (partial success) that the invalid spans were rejected: the upstreams
    get the stored spans only. Before, they got the invalid ones too, and an upstream that rejects
    them (another spanreel) made the stats count the delivered spans as rejected."""
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    for recorder in GrpcRecorder().serve():
        with start_collector(upstream_dir / "upstream.duckdb") as upstream:
            exporters = (
                f"  otlp:\n    endpoint: {recorder.endpoint}\n    tls: {{insecure: true}}\n"
                f"  otlphttp/spanreel:\n    endpoint: http://{upstream.info['http_endpoint']}\n"
                "    encoding: json\n"
            )
            config = _config(tmp_path, exporters, ["otlp", "otlphttp/spanreel"])
            with start_collector(tmp_path / "local.duckdb", "--config", str(config)) as local:
                spans = _spans(3, name="partly-invalid")
                request = encode_spans(spans)
                scope = request.resource_spans[0].scope_spans[0]
                backwards = scope.spans.add()
                backwards.CopyFrom(scope.spans[0])
                backwards.span_id = bytes.fromhex("00000000000000ee")
                backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1
                no_trace = scope.spans.add()
                no_trace.CopyFrom(scope.spans[0])
                no_trace.span_id, no_trace.trace_id = bytes.fromhex("00000000000000ef"), bytes(16)
                response = httpx.post(
                    local.http_url,
                    content=request.SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                    timeout=10,
                )
                assert response.status_code == 200
                assert (
                    ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans
                    == 2
                )

                def forwarded() -> bool:
                    stats = _health(local)["forwarders"]
                    return all(s["sent_exports"] + s["failed_exports"] == 1 for s in stats.values())

                _wait(forwarded, "both forwards")
                stats = _health(local)["forwarders"]
                upstream_rows = run_query("SELECT span_id FROM spans", upstream.db).rows
        for name in ("otlp", "otlphttp/spanreel"):
            assert stats[name]["sent_spans"] == len(spans) and stats[name]["rejected_spans"] == 0, stats
        [(_, body)] = recorder.requests
        assert len(ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans) == 3
        assert _body_ids(body) == _ids(spans)
        assert {row[0] for row in upstream_rows} == _ids(spans)


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (CN ``name``) and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return write_pem(folder, name, cert, key)


def test_otlphttp_sends_its_client_certificate_with_insecure_skip_verify(tmp_path: Path) -> None:
    """An upstream with a self-signed certificate that requires client certificates (mTLS):
    ``insecure_skip_verify`` used to drop the configured client certificate."""
    server_cert, server_key = _self_signed(tmp_path, "upstream")
    client_cert, client_key = _self_signed(tmp_path, "spanreel-client")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(client_cert))
    for recorder in HttpRecorder().serve(ssl_context=context):
        tls = {"insecure_skip_verify": True, "cert_file": str(client_cert), "key_file": str(client_key)}
        section = {"endpoint": recorder.url, "tls": tls, "retry_on_failure": {"enabled": False}}
        config = parse_forwarder("otlphttp", section, parse_duration=parse_duration)
        forwarder = Forwarder(config)
        forwarder.start()
        spans = _spans(2)
        forwarder.submit(_protobuf(spans), json_encoded=False, spans=len(spans))
        _wait(lambda f=forwarder: f.stats().sent_exports + f.stats().failed_exports == 1, "the export")
        forwarder.begin_stop(0)
        forwarder.finish_stop()
        assert forwarder.stats().sent_spans == len(spans)
        assert recorder.span_ids() == _ids(spans)


def test_a_collector_started_with_a_forwarder_to_nowhere_exits_cleanly(tmp_path: Path) -> None:
    """Nothing received, nothing forwarded: start-up makes no connection and shutdown is prompt."""
    exporters = f"  otlp:\n    endpoint: 127.0.0.1:{_free_port()}\n    tls: {{insecure: true}}\n"
    config = _config(tmp_path, exporters, ["otlp"])
    with start_collector(tmp_path / "local.duckdb", "--config", str(config)) as collector:
        assert _health(collector)["forwarders"]["otlp"]["sent_exports"] == 0
        code, stderr = collector.stop()
    assert code == 0, stderr
