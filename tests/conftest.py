"""Shared test helpers: a ``spanreel collector`` subprocess on its own DuckDB file.

:func:`start_collector` runs ``python -m spanreel collector --db DB`` with every listener (OTLP/gRPC,
OTLP/HTTP, query API) on ``127.0.0.1:0`` and returns once the collector has announced its bound
ports in ``<db>.collector.json``. The ``collector_process`` fixture is one such collector per test.

Property tests (hypothesis) explore new examples on every local run; under ``CI`` (set by
``.ci/run``) they replay a fixed set, so CI's verdict depends on the code alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest
from hypothesis import settings as hypothesis_settings
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanreel.collector import run_query
from spanreel.collector._client import discovery_path
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor

hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``SPANREEL_*``/``OTEL_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANREEL_", "OTEL_"))}
    env.update(extra)
    return env


@dataclass
class CollectorProcess:
    """A running collector subprocess; ``info`` is its parsed discovery file."""

    proc: subprocess.Popen[str]
    db: Path
    info: dict[str, Any]
    stderr_path: Path
    _stderr_file: IO[str] = field(repr=False)

    @property
    def discovery(self) -> Path:
        return discovery_path(self.db)

    @property
    def http_url(self) -> str:
        """The OTLP/HTTP traces URL (``http://host:port/v1/traces``)."""
        return f"http://{self.info['http_endpoint']}/v1/traces"

    def stderr(self) -> str:
        """Everything the collector wrote to stderr so far."""
        return self.stderr_path.read_text()

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM (a clean drain), then SIGKILL after ``timeout`` s; return (exit code, stderr).

        Idempotent: a collector that already exited is only reaped.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr_file.close()
        return self.proc.returncode, self.stderr()

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_collector(
    db: Path,
    *extra_args: str,
    timeout: float = 30,
    env: dict[str, str] | None = None,
    stderr_path: Path | None = None,
) -> CollectorProcess:
    """Start a collector on ``db`` (cwd: its folder, else the stderr file's; stderr to
    ``stderr_path``, by default ``<db>.stderr.log``) and wait for it.

    ``extra_args`` follow the endpoint options (e.g. ``"--config", path``); ``env`` is added to
    the environment (without ``SPANREEL_*``/``OTEL_*``: :func:`clean_env`). Raises
    ``AssertionError`` with the collector's stderr if it exits or has not written its discovery
    file within ``timeout`` seconds (it is then killed).
    """
    stderr_path = stderr_path or db.with_name(db.name + ".stderr.log")
    stderr_file = stderr_path.open("w")
    # stderr goes to a file, not a pipe: a long-running collector never blocks on a full pipe.
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanreel", "collector", "--db", str(db),
         "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
         "--query-endpoint", "127.0.0.1:0", *extra_args],
        cwd=db.parent if db.parent.exists() else stderr_path.parent, env=clean_env(**(env or {})),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=stderr_file, text=True,
    )  # fmt: skip
    running = CollectorProcess(proc, db, {}, stderr_path, stderr_file)
    discovery = discovery_path(db)
    deadline = time.monotonic() + timeout
    while not discovery.exists():
        if proc.poll() is not None:
            code, err = running.stop()
            raise AssertionError(f"collector exited with code {code} before it was ready:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            _, err = running.stop()
            raise AssertionError(f"collector did not write {discovery} within {timeout} s:\n{err}")
        time.sleep(0.05)
    running.info = json.loads(discovery.read_text())
    return running


@pytest.fixture
def collector_process(tmp_path: Path) -> Iterator[CollectorProcess]:
    """A collector on ``tmp_path / "spans.duckdb"``, stopped (SIGTERM, then SIGKILL) after the test."""
    with start_collector(tmp_path / "spans.duckdb") as running:
        yield running


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """One collector per test module, on a fresh DuckDB file (a module may define its own)."""
    with start_collector(tmp_path_factory.mktemp("collector") / "spans.duckdb") as running:
        yield running


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    """One fake LLM server per test module, on a free loopback port (a module may define its own)."""
    with FakeLLMServer(port=0) as server:
        yield server


@dataclass(frozen=True)
class PeerClient:
    """SDK calls to make under a peer instrumentation in a process of its own (tests/peer_client.py):
    ``peer`` (openinference, openllmetry, mlflow), ``calls`` (``(api, kwargs)`` pairs) and an
    OpenInference ``session`` id around them."""

    peer: str
    calls: Sequence[tuple[str, Mapping[str, Any]]]
    session: str | None = None


def run_peer_clients(
    clients: Mapping[str, PeerClient], collector: CollectorProcess, llm: FakeLLMServer, cwd: Path
) -> None:
    """Run every client at once, each in its own process against ``llm`` with service name
    ``peer-NAME``, exporting over OTLP/HTTP to ``collector`` (MLflow's tracking store under
    ``cwd``); return once the collector stores one LLM call per call made."""
    env = clean_env(
        FAKE_LLM_URL=llm.base_url,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.http_url,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        MLFLOW_TRACKING_URI=(cwd / "mlruns").as_uri(),
    )
    script = str(Path(__file__).with_name("peer_client.py"))
    before = count_rows(collector.db, "SELECT count(*) FROM llm_calls")
    procs = {
        name: subprocess.Popen(
            [sys.executable, script, json.dumps({"peer": c.peer, "calls": c.calls, "session": c.session})],
            env={**env, "OTEL_SERVICE_NAME": "peer-" + name},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, c in clients.items()
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, f"{name} client failed:\n{out}"
    expected = before + sum(len(c.calls) for c in clients.values())
    deadline = time.monotonic() + 30
    count = before
    while time.monotonic() < deadline:
        count = count_rows(collector.db, "SELECT count(*) FROM llm_calls")
        if count >= expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} of {expected} LLM calls stored:\n{collector.stderr()}")


def count_rows(db: Path, sql: str, params: list[Any] | None = None) -> int:
    """The first column of the first row of ``sql`` on the spanreel database ``db`` (a count)."""
    return int(run_query(sql, db, params).rows[0][0])


def instrument_in_memory(**options: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    """spanreel instrumented (again, if it was) with ``options`` on a new SDK provider whose spans
    go to the returned in-memory exporter as each ends."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = Instrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    inst.instrument(tracer_provider=tp, **options)
    return tp, exporter


@contextmanager
def recording(**options: Any) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """:func:`instrument_in_memory`, uninstrumented and shut down on exit."""
    tp, exporter = instrument_in_memory(**options)
    try:
        yield tp, exporter
    finally:
        Instrumentor().uninstrument()
        tp.shutdown()


@pytest.fixture
def spans(provider: tuple[TracerProvider, InMemorySpanExporter]) -> Iterator[InMemorySpanExporter]:
    """The module's ``provider`` fixture's exporter, emptied for each test."""
    provider[1].clear()
    yield provider[1]


@contextmanager
def exporting_into(collector: CollectorProcess, service: str = "app") -> Iterator[TracerProvider]:
    """A new SDK provider of service ``service`` that exports each span as it ends to
    ``collector`` over OTLP/HTTP; shut down on exit."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
    try:
        yield provider
    finally:
        provider.shutdown()


@contextmanager
def recording_into(
    collector: CollectorProcess, service: str = "app", **options: Any
) -> Iterator[TracerProvider]:
    """spanreel instrumented (content captured, and ``options``) on :func:`exporting_into`'s
    provider; uninstrumented and shut down on exit."""
    with exporting_into(collector, service) as provider:
        instrumentor = Instrumentor()
        instrumentor.instrument(tracer_provider=provider, **{"capture_content": True, **options})
        try:
            yield provider
        finally:
            instrumentor.uninstrument()


@contextmanager
def openai_v2_instrumented(provider: TracerProvider) -> Iterator[None]:
    """opentelemetry-instrumentation-openai-v2 on ``provider``, recording message content on its
    spans (``SPAN_ONLY``, latest experimental GenAI conventions), as its docs set it up; the
    environment restored and the instrumentation removed on exit."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
        env.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            yield
        finally:
            instrumentor.uninstrument()
