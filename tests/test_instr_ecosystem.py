"""Ecosystem: ``opentelemetry-instrument`` picks spanreel up (subprocess, real OTLP into a real
collector and DuckDB); coexistence with opentelemetry-instrumentation-openai-v2 and with the
``anthropic`` SDK's call span (one GenAI span per call); opt-in GenAI metrics; sessions."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import recording as recording_provider
from conftest import start_collector
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.trace import StatusCode

import spanreel
from spanreel._attributes import (
    SESSION_ID,
    SPANREEL_COST_USD,
    SPANREEL_REQUEST_BODY,
    SPANREEL_SESSION_NAME,
    SPANREEL_SESSION_PATH,
    USER_ID,
)
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor
from spanreel.instrumentation._metrics import DURATION_BUCKETS, TOKEN_USAGE_BUCKETS

MESSAGES: Any = [{"role": "user", "content": "Tea?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def recording() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    with recording_provider(capture_content=True) as rec:
        yield rec


def genai_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if ga.GEN_AI_OPERATION_NAME in (s.attributes or {})]


def http_child_of(exporter: InMemorySpanExporter, parent: ReadableSpan) -> None:
    (http,) = [
        s
        for s in exporter.get_finished_spans()
        if s.instrumentation_scope
        and s.instrumentation_scope.name.startswith("opentelemetry.instrumentation.httpx")
    ]
    assert http.parent is not None and http.parent.span_id == parent.context.span_id


def _opentelemetry_instrument(
    app: Path, collector: Any, cwd: Path, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    """Run ``opentelemetry-instrument python app`` exporting OTLP/HTTP to ``collector``, with a
    clean OTEL_/SPANREEL_/OPENAI_ environment plus ``env_vars``; other installed OpenAI
    instrumentations (openai-v2, OpenLLMetry, OpenInference) stay off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANREEL_", "OPENAI_"))}
    env.update(
        OTEL_SERVICE_NAME="otel-instrument-app",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{collector.info['http_endpoint']}",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
    )
    env.update(env_vars)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    return subprocess.run(
        [str(instrument), sys.executable, str(app)],
        env=env, capture_output=True, text=True, timeout=90,
        cwd=cwd,  # not the repository root, whose spanreel/ folder would shadow the package
    )  # fmt: skip


def test_opentelemetry_instrument_picks_spanreel_up(server: FakeLLMServer, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import openai
            c = openai.OpenAI(max_retries=0)
            r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Tea?"}])
            print(r.id)
            """
        )
    )
    with start_collector(tmp_path / "spans.duckdb") as collector:
        proc = _opentelemetry_instrument(
            app, collector, tmp_path, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="k"
        )
        assert proc.returncode == 0, proc.stderr
        response_id = proc.stdout.strip()
        db = tmp_path / "spans.duckdb"
        rows = run_query(
            "SELECT scope_name, service_name, operation, provider, request_model, response_model, span_id, "
            "json_extract_string(attributes, '$.\"gen_ai.response.id\"') "
            "FROM spans WHERE operation IS NOT NULL",
            db,
        ).rows
        children = run_query("SELECT parent_span_id, scope_name FROM spans WHERE operation IS NULL", db).rows
    ((*columns, span_id, recorded_id),) = rows
    assert columns == ["spanreel", "otel-instrument-app", "chat", "openai", "gpt-4o-mini", "gpt-4o-mini"]
    assert recorded_id == response_id
    http = [c[0] for c in children if c[1].startswith("opentelemetry.instrumentation.httpx")]
    assert http == [span_id], children


def test_a_malformed_setting_under_opentelemetry_instrument_spares_the_other_instrumentors(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    """``SPANREEL_REDACT=emails`` (a typo) raised out of ``instrument()``: opentelemetry-instrument
    printed two tracebacks, "Failed to auto initialize OpenTelemetry", and loaded no instrumentor
    after spanreel. Now one stderr line; the app and the other instrumentations run."""
    app = tmp_path / "app.py"
    app.write_text(
        "import httpx2\nprint(httpx2.get(" + repr(server.base_url + "/models") + ").status_code)\n"
    )
    with start_collector(tmp_path / "spans.duckdb") as collector:
        proc = _opentelemetry_instrument(app, collector, tmp_path, SPANREEL_REDACT="emails")
    assert proc.returncode == 0 and proc.stdout.strip() == "200", proc.stderr
    assert "Failed to auto initialize" not in proc.stderr and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "spanreel" in line]
    assert line.startswith("spanreel: not instrumenting:") and "emails" in line


def test_opentelemetry_instrument_cleans_urls_copies_sessions_and_records_metrics(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    # Under opentelemetry-instrument the httpx instrumentation is set up before spanreel (entry
    # points load in name order), so spanreel cannot hook its spans' creation: its processor must
    # still keep a Gemini ?key= out of the HTTP span, put the session on it, and SPANREEL_METRICS
    # must still turn the GenAI metrics on.
    canary = "AIzaCANARY-0123456789abcdef"
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import httpx2, spanreel
            with spanreel.session("triage", session_id="sess-otel-1", user_id="u-7"):
                r = httpx2.post(
                    "{server.base_url.removesuffix("/v1")}/v1beta/models/gemini-2.0-flash:generateContent"
                    "?alt=json&key={canary}",
                    json={{"contents": [{{"role": "user", "parts": [{{"text": "Tea?"}}]}}]}},
                )
                r.raise_for_status()
            """
        )
    )
    with start_collector(tmp_path / "spans.duckdb") as collector:
        proc = _opentelemetry_instrument(
            app, collector, tmp_path, OTEL_METRICS_EXPORTER="console", SPANREEL_METRICS="true"
        )
        assert proc.returncode == 0, proc.stderr
        rows = run_query(
            "SELECT scope_name, operation, session_id, CAST(attributes AS VARCHAR) FROM spans "
            "ORDER BY start_time",
            tmp_path / "spans.duckdb",
        ).rows
    assert [(scope, operation, session) for scope, operation, session, _ in rows] == [
        ("spanreel", None, "sess-otel-1"),  # the session's root span
        ("spanreel", "generate_content", "sess-otel-1"),
        ("opentelemetry.instrumentation.httpx", None, "sess-otel-1"),
    ]
    http_attributes = rows[2][3]
    assert json.loads(http_attributes)[USER_ID] == "u-7"
    url = json.loads(http_attributes).get("url.full") or json.loads(http_attributes)["http.url"]
    assert url.endswith(":generateContent?alt=json"), url
    for *_, attrs in rows:
        assert canary not in attrs
    assert "gen_ai.client.operation.duration" in proc.stdout
    assert "gen_ai.client.token.usage" in proc.stdout


def test_coexists_with_openai_v2(
    recording: tuple[TracerProvider, InMemorySpanExporter],
    server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    tp, exporter = recording
    v2 = OpenAIInstrumentor()
    v2.instrument(tracer_provider=tp)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        (span,) = genai_spans(exporter)  # one GenAI span: openai-v2's, adopted by spanreel
        http_child_of(exporter, span)
        a = span.attributes or {}
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name != "spanreel"
        assert span.name == "chat gpt-4o-mini"
        assert json.loads(str(a[SPANREEL_REQUEST_BODY]))["messages"] == MESSAGES
        assert a[ga.GEN_AI_RESPONSE_ID] == r.id and a[SPANREEL_COST_USD] > 0  # type: ignore[operator]
        exporter.clear()
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        (span,) = genai_spans(exporter)
        assert chunks and SPANREEL_REQUEST_BODY in (span.attributes or {})
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name != "spanreel"
    finally:
        v2.uninstrument()


def test_an_adopted_span_masks_the_key_its_owner_records(
    recording: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """openai-v2 records the SDK's "Incorrect API key provided: sk-…" in its span's status and
    exception event: spanreel, which adopts that span, masks the request's credentials out."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from test_instr_faults import Canned

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    tp, exporter = recording
    key = "sk-canary-" + "9" * 30
    canned = Canned()
    body = {"error": {"message": f"Incorrect API key provided: {key}.", "code": "invalid_api_key"}}
    canned.set([json.dumps(body).encode()], status=401)
    v2 = OpenAIInstrumentor()
    v2.instrument(tracer_provider=tp)
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=canned.base_url, api_key=key, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
        (span,) = genai_spans(exporter)
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name != "spanreel"
        assert "Incorrect API key provided: [REDACTED:credential]" in str(span.status.description)
        assert key.encode() not in encode_spans(exporter.get_finished_spans()).SerializeToString()
    finally:
        v2.uninstrument()
        canned.httpd.shutdown()
        canned.httpd.server_close()


def test_an_adopted_openinference_span_keeps_its_status_and_exception_event(
    recording: tuple[TracerProvider, InMemorySpanExporter], server: FakeLLMServer
) -> None:
    """OpenInference's span is a proxy (``wrapt.ObjectProxy``) of the SDK span. spanreel's
    stand-ins that mask the request's key out of the error text an adopted span records went on
    the SDK span's dict but called the proxy's class, which has no ``record_exception`` or
    ``set_status``: they raised, OpenInference swallowed it, and a call that failed (HTTP 500)
    ended UNSET with no ``exception`` event, a successful one without OpenInference's OK. The
    adopted span, shared by the SDK's attempts, carried the first retry's
    ``http.request.resend_count`` (1 of 2 retries), which marks a retry of the call before."""
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from test_instr_faults import Canned

    tp, exporter = recording
    key = "sk-canary-" + "7" * 30
    canned = Canned()
    body = {"error": {"message": f"Incorrect API key provided: {key}.", "type": "server_error"}}
    canned.set([json.dumps(body).encode()], status=500)
    peer = OpenAIInstrumentor()
    peer.instrument(tracer_provider=tp)
    try:
        client = openai.OpenAI(base_url=canned.base_url, api_key=key, max_retries=2)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        (span,) = genai_spans(exporter)  # one GenAI span for the SDK call's 3 attempts
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "openinference.instrumentation.openai"
        assert span.status.status_code is StatusCode.ERROR
        assert "Incorrect API key provided: [REDACTED:credential]" in str(span.status.description)
        (event,) = [e for e in span.events if e.name == "exception"]
        assert "Incorrect API key provided: [REDACTED:credential]" in str(
            (event.attributes or {}).get("exception.message")
        )
        a = span.attributes or {}
        assert json.loads(str(a[SPANREEL_REQUEST_BODY]))["messages"] == MESSAGES
        assert "http.request.resend_count" not in a
        attempts = [
            s for s in exporter.get_finished_spans() if s.parent and s.parent.span_id == span.context.span_id
        ]
        assert len(attempts) == 3
        assert key.encode() not in encode_spans(exporter.get_finished_spans()).SerializeToString()
        exporter.clear()
        openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        (span,) = genai_spans(exporter)
        assert span.status.status_code is StatusCode.OK
        assert (span.attributes or {})[SPANREEL_COST_USD] > 0  # type: ignore[operator]
    finally:
        peer.uninstrument()
        canned.httpd.shutdown()
        canned.httpd.server_close()


@pytest.mark.parametrize("stream", [False, True])
def test_coexists_with_anthropic_call_span(
    recording: tuple[TracerProvider, InMemorySpanExporter], server: FakeLLMServer, stream: bool
) -> None:
    tp, exporter = recording
    client = anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{server.port}",
        api_key="k",
        max_retries=0,
        open_telemetry={"tracer_provider": tp},
    )
    kwargs: Any = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": MESSAGES}
    if stream:
        with client.messages.stream(**kwargs) as s:
            text = s.get_final_text()
    else:
        block = client.messages.create(**kwargs).content[0]
        text = block.text if block.type == "text" else ""
    (span,) = genai_spans(exporter)
    assert (
        span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "com.anthropic.sdk.python"
    )
    http_child_of(exporter, span)
    a = span.attributes or {}
    assert json.loads(str(a[SPANREEL_REQUEST_BODY]))["messages"] == MESSAGES
    assert text and text in str(a[ga.GEN_AI_OUTPUT_MESSAGES])
    assert a[SPANREEL_COST_USD] > 0  # type: ignore[operator]


def _anthropic_client(server: FakeLLMServer, tp: TracerProvider, **kwargs: Any) -> anthropic.Anthropic:
    """An ``anthropic`` client at the fake server whose own call span (on by default) goes to ``tp``."""
    return anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{server.port}",
        api_key="k",
        open_telemetry={"tracer_provider": tp},
        **kwargs,
    )


@pytest.mark.parametrize("leave", ["break", "raise", "abandon", "async raise"])
def test_adopted_span_keeps_output_when_a_stream_is_left_early(
    recording: tuple[TracerProvider, InMemorySpanExporter], server: FakeLLMServer, leave: str
) -> None:
    """The anthropic SDK ends its call span in its stream wrapper's close(), *before* it closes the
    body spanreel reads: a stream left early (break, an exception in the loop, garbage
    collection) lost spanreel's output messages and cost ("Setting attribute on ended span")."""
    tp, exporter = recording
    kwargs: Any = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": MESSAGES}
    first = ""
    if leave == "async raise":

        async def app() -> str:
            client = anthropic.AsyncAnthropic(
                base_url=f"http://127.0.0.1:{server.port}",
                api_key="k",
                open_telemetry={"tracer_provider": tp},
            )
            with contextlib.suppress(ValueError):
                async with client.messages.stream(**kwargs) as s:
                    async for text in s.text_stream:
                        raise ValueError(text)
            return ""

        asyncio.run(app())
    else:
        client = _anthropic_client(server, tp)
        if leave == "abandon":
            events = iter(client.messages.create(stream=True, **kwargs))
            while next(events).type != "content_block_delta":
                pass
            del events
            gc.collect()
        else:
            with contextlib.suppress(ValueError), client.messages.stream(**kwargs) as s:
                for first in s.text_stream:
                    if leave == "raise":
                        raise ValueError(first)
                    break
    (span,) = genai_spans(exporter)
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "com.anthropic.sdk.python"
    a = span.attributes or {}
    (output,) = json.loads(str(a[ga.GEN_AI_OUTPUT_MESSAGES]))
    assert output["role"] == "assistant" and output["parts"][0]["content"].startswith(first)
    assert a[SPANREEL_COST_USD] > 0  # type: ignore[operator]


def test_calls_leave_no_reference_cycles(
    recording: tuple[TracerProvider, InMemorySpanExporter], server: FakeLLMServer
) -> None:
    """A call's objects (spanreel's, its span, the request) are freed by reference counting as
    soon as the app lets go, for spanreel's own span and an adopted one, streamed or not. A
    reference cycle (a bound method kept on its own object did it) leaves every call for the
    garbage collector: the collections it forces cost the app time on every call."""
    tp, exporter = recording
    openai_client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="k", max_retries=0)
    anthropic_client = _anthropic_client(server, tp, max_retries=0)
    kwargs: Any = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": MESSAGES}
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            for _chunk in openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                pass
            anthropic_client.messages.create(**kwargs)
            for _event in anthropic_client.messages.create(stream=True, **kwargs):
                pass  # (not the messages.stream() helper: it makes reference cycles of its own)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [type(o) for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert len(genai_spans(exporter)) == 12
    leaked = {t.__qualname__ for t in cyclic if t.__module__.startswith("spanreel") or t.__name__ == "_Span"}
    assert not leaked


def test_an_adopted_openinference_span_leaves_no_reference_cycles(
    recording: tuple[TracerProvider, InMemorySpanExporter], server: FakeLLMServer
) -> None:
    """The stand-in for an adopted span's ``end`` takes itself off the span when called (it and
    the bound ``end`` it keeps refer to the span). On OpenInference's proxy span it sits on the
    proxy, but was looked for in ``vars()`` (the wrapped span's dict): it stayed, and every call
    (its span, spanreel's call and parser) was left to the garbage collector."""
    from openinference.instrumentation.openai import OpenAIInstrumentor

    tp, exporter = recording
    peer = OpenAIInstrumentor()
    peer.instrument(tracer_provider=tp)
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
                pass
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [type(o) for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        peer.uninstrument()
    spans = genai_spans(exporter)
    assert len(spans) == 6
    assert all(
        s.instrumentation_scope and s.instrumentation_scope.name.startswith("openinference") for s in spans
    )
    leaked = {t.__qualname__ for t in cyclic if t.__module__.startswith("spanreel") or t.__name__ == "_Span"}
    assert not leaked


def _metered() -> tuple[InMemoryMetricReader, MeterProvider, TracerProvider, Instrumentor]:
    """A metric reader, its meter provider, a tracer provider, and spanreel's instrumentor, not
    instrumented yet."""
    reader = InMemoryMetricReader()
    inst = Instrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    return reader, MeterProvider(metric_readers=[reader]), TracerProvider(), inst


def test_genai_metrics(server: FakeLLMServer) -> None:
    reader, meters, tp, inst = _metered()
    inst.instrument(tracer_provider=tp, meter_provider=meters)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="fake-error-500", messages=MESSAGES)
    finally:
        inst.uninstrument()
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    points = {p.attributes["gen_ai.token.type"]: p for p in usage.data.data_points}  # type: ignore[union-attr,index]
    assert r.usage is not None
    assert points["input"].sum == r.usage.prompt_tokens and points["output"].sum == r.usage.completion_tokens
    assert tuple(points["input"].explicit_bounds) == TOKEN_USAGE_BUCKETS  # type: ignore[union-attr]
    assert points["input"].attributes[ga.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"  # type: ignore[index]
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    by_error = {p.attributes.get("error.type"): p for p in duration.data.data_points}  # type: ignore[union-attr]
    assert set(by_error) == {None, "fake_error_500"}
    assert tuple(by_error[None].explicit_bounds) == DURATION_BUCKETS  # type: ignore[union-attr]


def test_metrics_count_each_call_once_beside_openai_v2(server: FakeLLMServer) -> None:
    """When spanreel adopts openai-v2's span, openai-v2 records the GenAI client metrics and
    spanreel does not (every call and token was counted twice); beside the anthropic SDK's span,
    which records no metrics, spanreel's are the only ones."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    reader, meters, tp, inst = _metered()
    v2 = OpenAIInstrumentor()
    v2.instrument(tracer_provider=tp, meter_provider=meters)
    inst.instrument(tracer_provider=tp, meter_provider=meters)
    try:
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        anthropic.Anthropic(
            base_url=f"http://127.0.0.1:{server.port}",
            api_key="k",
            max_retries=0,
            open_telemetry={"tracer_provider": tp},
        ).messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
    finally:
        inst.uninstrument()
        v2.uninstrument()
    data = reader.get_metrics_data()
    assert data is not None
    calls: dict[str, list[str]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "gen_ai.client.operation.duration":
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        model = str(point.attributes[ga.GEN_AI_REQUEST_MODEL])  # type: ignore[index]
                        calls.setdefault(model, []).extend([sm.scope.name] * point.count)  # type: ignore[union-attr]
    assert calls["gpt-4o-mini"] == ["opentelemetry.util.genai.handler"]
    assert calls["claude-haiku-4-5"] == ["spanreel"]


_PEER_BESIDE_SPANREEL = """
import json, sys
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from spanreel.instrumentation import Instrumentor
if sys.argv[1] == "openinference":
    from openinference.instrumentation.openai import OpenAIInstrumentor
else:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
tracers, meters = TracerProvider(), MeterProvider(metric_readers=[reader])
tracers.add_span_processor(SimpleSpanProcessor(exporter))
OpenAIInstrumentor().instrument(tracer_provider=tracers, meter_provider=meters)
Instrumentor().instrument(tracer_provider=tracers, meter_provider=meters, capture_content=True)
client = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Tea?"}])
try:  # an SDK call with a retry: still one GenAI span (spanreel's request attributes, added to the
    # adopted span at the first attempt, must not stop the retry from adopting it too)
    client.with_options(max_retries=1).chat.completions.create(
        model="fake-error-500", messages=[{"role": "user", "content": "Tea?"}]
    )
except openai.InternalServerError:
    pass
spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
print(json.dumps({
    "genai": [
        {"scope": s.instrumentation_scope.name, "attributes": dict(s.attributes),
         "children": [c.instrumentation_scope.name for c in spans.values()
                      if c.parent and c.parent.span_id == s.context.span_id]}
        for s in spans.values() if "gen_ai.operation.name" in s.attributes
    ],
    "durations": [
        [sm.scope.name, p.count]
        for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
        for m in sm.metrics if m.name == "gen_ai.client.operation.duration" for p in m.data.data_points
    ],
}))
"""


@pytest.mark.parametrize("peer", ["openinference", "openllmetry"])
def test_one_genai_span_and_one_metric_beside_openinference_and_openllmetry(
    server: FakeLLMServer, peer: str, tmp_path: Path
) -> None:
    """OpenInference's openai instrumentation (Arize Phoenix) makes an ``INTERNAL`` span with
    ``openinference.span.kind`` ``LLM``: spanreel added a second GenAI span under it (two LLM calls
    in the collector for one). OpenLLMetry's scope is ``opentelemetry.instrumentation.openai.v1``:
    its metrics and spanreel's both counted the call. Now spanreel adopts both spans, and counts
    metrics only beside OpenInference, which records none. (A subprocess: OpenLLMetry's
    ``uninstrument()`` leaves the openai SDK wrapped.)"""
    done = subprocess.run(
        [sys.executable, "-c", _PEER_BESIDE_SPANREEL, peer, server.base_url],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    span, retried = found["genai"]
    assert retried["attributes"]["gen_ai.request.model"] == "fake-error-500"  # one span, 2 attempts
    assert len([c for c in retried["children"] if c.startswith("opentelemetry.instrumentation.httpx")]) == 2
    owner = (
        "openinference.instrumentation.openai"
        if peer == "openinference"
        else "opentelemetry.instrumentation.openai"
    )
    assert span["scope"].startswith(owner)
    a = span["attributes"]
    assert json.loads(a[SPANREEL_REQUEST_BODY])["messages"] == MESSAGES
    assert a[SPANREEL_COST_USD] > 0
    assert [c for c in span["children"] if c.startswith("opentelemetry.instrumentation.httpx")]
    counts = [count for scope, count in found["durations"] if scope == "spanreel"]
    assert counts == ([1, 1] if peer == "openinference" else [])  # one per SDK call, not per attempt


def test_metrics_count_an_sdk_call_once_across_its_retries(server: FakeLLMServer) -> None:
    """The anthropic SDK retries inside one call span; spanreel recorded the duration metric once
    per HTTP attempt (two failures for one call). Now once, when the call's span ends."""
    reader, meters, tp, inst = _metered()
    inst.instrument(tracer_provider=tp, meter_provider=meters)
    try:
        client = _anthropic_client(server, tp, max_retries=1)
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model="fake-error-500", max_tokens=50, messages=MESSAGES)
        client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
    finally:
        inst.uninstrument()
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        (point.attributes.get(ga.GEN_AI_REQUEST_MODEL), point.attributes.get("error.type"), point.count)  # type: ignore[union-attr]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "gen_ai.client.operation.duration"
        for point in metric.data.data_points  # type: ignore[union-attr]
    ]
    assert sorted(points) == [("claude-haiku-4-5", None, 1), ("fake-error-500", "api_error", 1)]


def test_session_user_path_and_upstream_baggage(
    recording: tuple[TracerProvider, InMemorySpanExporter], server: FakeLLMServer
) -> None:
    _, exporter = recording
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    with spanreel.session("debate", user_id="alice") as outer:
        with spanreel.session("round-1") as inner:
            client.chat.completions.create(model="a", messages=MESSAGES)
        assert inner.id == outer.id and inner.path == "/debate/round-1" and inner.user_id == "alice"
    (call,) = genai_spans(exporter)
    a = call.attributes or {}
    assert (a[SESSION_ID], a[USER_ID], a[SPANREEL_SESSION_PATH], a[SPANREEL_SESSION_NAME]) == (
        outer.id, "alice", "/debate/round-1", "round-1",
    )  # fmt: skip
    # the session is the GenAI conversation too (semconv gen_ai.conversation.id; it was unset)
    assert a[ga.GEN_AI_CONVERSATION_ID] == outer.id
    (root,) = [s for s in exporter.get_finished_spans() if s.name == "debate"]
    assert (root.attributes or {})[USER_ID] == "alice" and call.context.trace_id == root.context.trace_id
    # Upstream service: its baggage arrives with the request; the session continues in a new trace.
    exporter.clear()
    upstream = W3CBaggagePropagator().extract(
        {"baggage": "session.id=sess-up,user.id=bob,spanreel.session.path=/web"}
    )
    token = context.attach(upstream)
    try:
        assert baggage.get_baggage(SESSION_ID) == "sess-up"
        with spanreel.session("worker") as s:
            client.chat.completions.create(model="b", messages=MESSAGES)
    finally:
        context.detach(token)
    assert (s.id, s.user_id, s.path) == ("sess-up", "bob", "/web/worker")
    (call,) = genai_spans(exporter)
    assert (call.attributes or {})[SESSION_ID] == "sess-up"
    assert (call.attributes or {})[ga.GEN_AI_CONVERSATION_ID] == "sess-up"
    assert trace.get_current_span().get_span_context().is_valid is False
    # A call that names its own conversation (Responses ``conversation``) keeps it inside a
    # session: the session's id used to overwrite it (in start_call and in the span processor).
    exporter.clear()
    with spanreel.session("support", session_id="ticket-42"):
        client.responses.create(model="c", input="hi", conversation="conv_abc123")
    (call,) = genai_spans(exporter)
    a = call.attributes or {}
    assert (a[ga.GEN_AI_CONVERSATION_ID], a[SESSION_ID]) == ("conv_abc123", "ticket-42")


def test_the_session_baggage_is_not_sent_to_the_llm_provider(
    recording: tuple[TracerProvider, InMemorySpanExporter], server: FakeLLMServer
) -> None:
    """The HTTP instrumentation injects the context's baggage into every request: each LLM call
    sent the provider ``baggage: session.id=…,user.id=alice@example.com,…`` (W3C Baggage warns
    against leaking such entries to third parties). The LLM request now keeps ``traceparent`` and
    the app's other baggage but not the session's; the HTTP span still records the session, and a
    request that is not an LLM call (the app's own services) still carries it."""
    _, exporter = recording
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    server.requests.clear()
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with spanreel.session("support", session_id="ticket-7", user_id="alice@example.com"):
            client.chat.completions.create(model="a", messages=MESSAGES)
            client.chat.completions.create(model="a", messages=MESSAGES, stream=True).close()
            client.models.list()  # not an LLM call: as any downstream service
    finally:
        context.detach(token)
    llm = [r for r in server.requests if r.path.endswith("/chat/completions")]
    (other,) = [r for r in server.requests if r.path.endswith("/models")]
    assert len(llm) == 2
    for request in llm:
        assert request.header("traceparent")
        assert request.header("baggage") == "tenant=acme", request.headers
    sent = other.header("baggage") or ""
    assert "session.id=ticket-7" in sent and "user.id=alice%40example.com" in sent and "tenant=acme" in sent
    calls = genai_spans(exporter)
    assert len(calls) == 2
    for call in calls:
        (http,) = [
            s for s in exporter.get_finished_spans() if s.parent and s.parent.span_id == call.context.span_id
        ]
        for span in (call, http):
            a = span.attributes or {}
            assert (a[SESSION_ID], a[USER_ID], a[SPANREEL_SESSION_NAME]) == (
                "ticket-7",
                "alice@example.com",
                "support",
            )
            assert a[ga.GEN_AI_CONVERSATION_ID] == "ticket-7"
