"""The collector's life cycle as an operator sees it, with real ``spanreel collector`` subprocesses:

- a stalled OTLP/HTTP upload (headers and part of the body, then nothing) is answered 408 after
  ``read_timeout`` and gives back its share of the queue;
- SIGTERM is prompt (a few seconds) whatever the clients do — an idle keep-alive connection, a
  stalled upload, a long query — and every export acknowledged before it is in the file;
- a second Ctrl-C / SIGTERM during a slow shutdown exits at once (130 / 143), with one line;
- start-up I/O errors (database folder impossible, database locked, port taken) are one clear
  line and exit code 1, never a traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import clean_env, start_collector
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanreel.collector import run_query

TRACE_ID, SPAN_ID = "5a" * 16, "5b" * 8
#: A query that runs for minutes unless interrupted.
LONG_QUERY = "SELECT sum(hash(range)) FROM range(100000000000)"


def _config(folder: Path, http: str = "{endpoint: 127.0.0.1:0}") -> Path:
    """A collector config in ``folder``: the receivers on free loopback ports, counters not logged;
    ``http`` is the OTLP/HTTP protocol's settings (YAML flow mapping)."""
    path = folder / "collector.yaml"
    path.write_text(
        "receivers:\n  otlp:\n    protocols:\n"
        f"      grpc: {{endpoint: 127.0.0.1:0}}\n      http: {http}\n"
        "exporters:\n  duckdb:\n    decode_workers: 0\n    metrics_log_interval: 0s\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    return path


def _export(trace_hex: str = TRACE_ID, span_hex: str = SPAN_ID) -> bytes:
    """An OTLP/protobuf export request with one span."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex(trace_hex), bytes.fromhex(span_hex), "work"
    span.start_time_unix_nano = time.time_ns() - 10**9
    span.end_time_unix_nano = time.time_ns()
    return request.SerializeToString()


def _post_head(length: int) -> bytes:
    return (
        "POST /v1/traces HTTP/1.1\r\nHost: collector\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _read_response(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends on ``sock`` until it closes it, it sends a whole response
    (Content-Length), or ``timeout`` seconds pass."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        received += chunk
        head, sep, rest = received.partition(b"\r\n\r\n")
        length = [
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        ]
        if sep and length and len(rest) >= length[0]:
            break
    return received


def test_a_stalled_upload_is_answered_408_and_releases_its_queue_bytes(tmp_path: Path) -> None:
    config = _config(tmp_path, "{endpoint: 127.0.0.1:0, read_timeout: 1s}")
    with start_collector(tmp_path / "spans.duckdb", "--config", str(config)) as running:
        host, port = running.info["http_endpoint"].rsplit(":", 1)
        health_url = f"{running.info['query_url']}/api/health"
        with socket.create_connection((host, int(port))) as stalled:
            stalled.sendall(_post_head(100_000) + b"\x0a" * 5000)
            time.sleep(0.3)
            held = httpx.get(health_url).json()
            assert (held["queued_requests"], held["queued_bytes"]) == (1, 5000)  # the upload holds its bytes
            started = time.monotonic()
            answer = _read_response(stalled, timeout=8)
            waited = time.monotonic() - started
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert b"connection: close" in head.lower(), head
        assert "read_timeout (1 s)" in status_pb2.Status.FromString(body).message
        assert waited < 3, waited
        health = httpx.get(health_url).json()
        assert (health["queued_requests"], health["queued_bytes"]) == (0, 0)
        assert health["malformed_requests"] == 1
        # The receiver serves the next client as before.
        ok = httpx.post(running.http_url, content=b"", headers={"Content-Type": "application/x-protobuf"})
        assert ok.status_code == 200, ok.content


def test_sigterm_is_prompt_with_busy_clients_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "spans.duckdb"
    running = start_collector(db, "--config", str(_config(tmp_path)))
    with running:
        host, port = running.info["http_endpoint"].rsplit(":", 1)
        # An export acknowledged on a keep-alive connection that then stays open, idle.
        keep_alive = socket.create_connection((host, int(port)))
        payload = _export()
        keep_alive.sendall(_post_head(len(payload)) + payload)
        assert _read_response(keep_alive, timeout=10).startswith(b"HTTP/1.1 200"), "export not acknowledged"
        # An upload that stalls half-way (read_timeout is 30 s), and a query that runs for minutes.
        stalled = socket.create_connection((host, int(port)))
        stalled.sendall(_post_head(100_000) + b"\x0a" * 5000)
        answers: list[httpx.Response] = []
        query = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{running.info['query_url']}/api/query", json={"sql": LONG_QUERY}, timeout=120)
            )
        )
        query.start()
        time.sleep(0.5)
        started = time.monotonic()
        running.proc.send_signal(signal.SIGTERM)
        try:
            code = running.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 10 s after SIGTERM:\n{running.stderr()}") from None
        took = time.monotonic() - started
        query.join(10)
        keep_alive.close()
        stalled.close()
        stderr = running.stderr()
    assert code == 0, stderr
    assert took < 8, (took, stderr)
    assert "Traceback" not in stderr, stderr
    assert answers and "the collector is stopping" in answers[0].json()["error"], answers
    assert not running.discovery.exists()
    assert run_query("SELECT trace_id, span_id FROM spans", db).rows == [[TRACE_ID, SPAN_ID]]


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_exits_at_once(tmp_path: Path, second: signal.Signals) -> None:
    db = tmp_path / "spans.duckdb"
    with start_collector(db, "--config", str(_config(tmp_path))) as running:
        httpx.post(running.http_url, content=_export(), headers={"Content-Type": "application/x-protobuf"})
        host, port = running.info["http_endpoint"].rsplit(":", 1)
        with socket.create_connection((host, int(port))) as stalled:  # keeps the drain busy for seconds
            stalled.sendall(_post_head(100_000) + b"\x0a" * 5000)
            time.sleep(0.3)
            running.proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
            assert running.proc.poll() is None, "the first signal must drain, not exit"
            started = time.monotonic()
            running.proc.send_signal(second)
            try:
                code = running.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"still running after a second signal:\n{running.stderr()}") from None
            took = time.monotonic() - started
        stderr = running.stderr()
    assert code == 128 + second, (code, stderr)
    assert took < 1.5, took  # the drain alone takes 3 s
    assert "Traceback" not in stderr, stderr
    (line,) = [line for line in stderr.splitlines() if "again: exiting now" in line]
    assert line.startswith(f"spanreel collector: {second.name} again"), line
    assert not running.discovery.exists()
    # What was acknowledged is in the file all the same.
    assert run_query("SELECT trace_id, span_id FROM spans", db).rows == [[TRACE_ID, SPAN_ID]]


def _collector(db: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``spanreel collector --db DB`` (every listener on a free loopback port unless ``args``
    override it) to completion; for start-up failures."""
    endpoints = dict.fromkeys(("--grpc-endpoint", "--http-endpoint", "--query-endpoint"), "127.0.0.1:0")
    for flag in args[::2]:
        endpoints.pop(flag, None)
    argv = [sys.executable, "-m", "spanreel", "collector", "--db", str(db), *args]
    for flag, value in endpoints.items():
        argv += [flag, value]
    return subprocess.run(
        argv, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def _assert_clean_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1, result.stderr
    for text in expected:
        assert text in error_lines[0], result.stderr


def test_database_folder_blocked_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("")
    result = _collector(tmp_path / "notadir" / "sub" / "spans.duckdb")
    # Caught by the configuration check, before any file is opened; about --db, not the config file.
    _assert_clean_failure(result, "configuration error: --db:", "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_database_folder_not_writable(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = _collector(folder / "sub" / "spans.duckdb")
    finally:
        folder.chmod(0o700)
    _assert_clean_failure(result, "cannot create the database", "Permission denied")


def test_database_locked_by_another_collector(tmp_path: Path) -> None:
    db = tmp_path / "spans.duckdb"
    with start_collector(db):
        result = _collector(db)
    _assert_clean_failure(result, "in use by another process", str(db))


@pytest.mark.parametrize("flag", ["--http-endpoint", "--grpc-endpoint", "--query-endpoint"])
def test_port_already_in_use(tmp_path: Path, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"127.0.0.1:{taken.getsockname()[1]}"
        result = _collector(tmp_path / "spans.duckdb", flag, endpoint)
    _assert_clean_failure(result, "cannot listen", endpoint)
