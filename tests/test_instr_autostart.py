"""End to end: ``SPANREEL_ENABLED=1`` instruments an unmodified program (the .pth start-up hook),
exports over real OTLP/HTTP to an in-test receiver, and flushes at exit."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from spanreel.fakellm import FakeLLMServer

SECRET = "sk-E2E-SECRET-777"

APP = textwrap.dedent(
    """
    import openai
    import spanreel

    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL / OPENAI_API_KEY from the environment
    with spanreel.session("e2e-session", session_id="sess-e2e"):
        r = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Is tea better than coffee?"}]
        )
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "And streamed?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    print(r.choices[0].message.content)
    """
)


class _Receiver:
    """A minimal OTLP/HTTP trace receiver (protobuf) collecting ExportTraceServiceRequests."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.raw.append(body)
                receiver.requests.append(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[tuple[str, Any, Any]]:
        """(service.name, scope, span) for every received span."""
        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                service = next(
                    (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), ""
                )
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append((service, ss.scope, span))
        return out


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANREEL_", "OPENAI_"))}
    env.update(extra)
    return env


def _run(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


def test_pth_hook_is_installed() -> None:
    pth = Path(sysconfig.get_paths()["purelib"]) / "spanreel-autoinstrument.pth"
    assert pth.is_file()
    assert "SPANREEL_ENABLED" in pth.read_text() and "spanreel._autostart" in pth.read_text()


def test_zero_code_change_auto_instrumentation(
    receiver: _Receiver, llm: FakeLLMServer, tmp_path: Path
) -> None:
    env = _env(
        SPANREEL_ENABLED="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="e2e-app",
        # A long batch delay: spans can only arrive through the flush at exit.
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY=SECRET,
    )
    proc = _run(APP, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "spanreel:" not in proc.stderr

    spans = receiver.spans()
    assert {service for service, _, _ in spans} == {"e2e-app"}
    genai = [(scope, s) for _, scope, s in spans if scope.name == "spanreel" and s.name.startswith("chat ")]
    assert len(genai) == 2
    roots = [s for _, scope, s in spans if s.name == "e2e-session"]
    assert len(roots) == 1
    root = roots[0]
    by_id = {s.span_id: s for _, _, s in spans}
    for scope, span in genai:
        a = _attrs(span)
        assert span.name == "chat gpt-4o-mini" and span.kind == 3  # SPAN_KIND_CLIENT
        assert scope.version
        assert a["gen_ai.provider.name"] == "openai"
        assert a["session.id"] == "sess-e2e"
        assert a["gen_ai.usage.output_tokens"] > 0
        assert span.trace_id == root.trace_id and span.parent_span_id == root.span_id
        assert "spanreel.request.body" in a
    streamed = next(s for _, s in genai if _attrs(s)["gen_ai.request.stream"])
    assert "gen_ai.response.time_to_first_chunk" in _attrs(streamed)
    http = [s for _, scope, s in spans if scope.name.startswith("opentelemetry.instrumentation.httpx")]
    assert len(http) == 2
    for span in http:
        assert by_id[span.parent_span_id].name == "chat gpt-4o-mini"
        assert _attrs(span)["session.id"] == "sess-e2e"  # BaggageSpanProcessor
    assert all(SECRET.encode() not in raw for raw in receiver.raw)


@pytest.mark.parametrize(("disabled", "http_expected"), [("httpx2", 0), ("httpx, requests", 2)])
def test_disabled_instrumentations_drop_the_http_child_span_only(
    receiver: _Receiver, llm: FakeLLMServer, tmp_path: Path, disabled: str, http_expected: int
) -> None:
    # openai 3.x sends through httpx2: listing httpx2 (its HTTP instrumentation's entry-point
    # name) drops the HTTP child spans, listing httpx (another library) keeps them.
    env = _env(
        SPANREEL_ENABLED="1",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY=SECRET,
    )
    proc = _run(APP, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = receiver.spans()
    assert len([s for _, scope, s in spans if scope.name == "spanreel" and s.name.startswith("chat ")]) == 2
    http = [s for _, scope, s in spans if scope.name.startswith("opentelemetry.instrumentation.httpx")]
    assert len(http) == http_expected


@pytest.mark.parametrize(
    "first",
    [
        "import opentelemetry.instrumentation.httpx",
        "from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor\n"
        "HTTPXClientInstrumentor().instrument()",
    ],
)
def test_an_app_that_imports_the_httpx_instrumentation_first_is_recorded(
    receiver: _Receiver, llm: FakeLLMServer, tmp_path: Path, first: str
) -> None:
    """An app (or a library it uses) that imports opentelemetry-instrumentation-httpx before
    httpx: that module imports httpx while it is itself still importing, and spanreel's hook
    fired too early and was never retried, so nothing was recorded. Now the GenAI span is
    recorded, the HTTP span its child."""
    env = _env(SPANREEL_ENABLED="1", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    code = f"{first}\nimport openai\n" + (
        f"openai.OpenAI(base_url={llm.base_url!r}, api_key='k', max_retries=0).chat.completions.create("
        "model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'Tea?'}])\n"
    )
    proc = _run(code, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = receiver.spans()
    (genai,) = [s for _, scope, s in spans if scope.name == "spanreel"]
    (http,) = [s for _, scope, s in spans if scope.name.startswith("opentelemetry.instrumentation.httpx")]
    assert genai.name == "chat gpt-4o-mini" and http.parent_span_id == genai.span_id


def test_every_exporter_in_the_list_gets_the_spans(
    receiver: _Receiver, llm: FakeLLMServer, tmp_path: Path
) -> None:
    """``OTEL_TRACES_EXPORTER`` is a comma-separated list (OTel SDK environment specification):
    only its first entry was used, so ``console,otlp`` sent nothing to the collector, and the
    entry-point names ``opentelemetry-instrument`` uses (``otlp_proto_http``) were refused."""
    code = (
        "import openai\n"
        f"openai.OpenAI(base_url={llm.base_url!r}, api_key='k', max_retries=0).chat.completions.create("
        "model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'Tea?'}])\n"
    )
    env = _env(
        SPANREEL_ENABLED="1",
        OTEL_TRACES_EXPORTER="console, otlp_proto_http",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
    )
    proc = _run(code, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"name": "chat gpt-4o-mini"' in proc.stdout  # the console exporter
    assert [s.name for _, scope, s in receiver.spans() if scope.name == "spanreel"] == ["chat gpt-4o-mini"]
    unknown = _run(code, {**env, "OTEL_TRACES_EXPORTER": "otlp,nosuch"}, tmp_path)
    assert unknown.returncode == 0 and "no exporter named 'nosuch'" in unknown.stderr


_MULTIPROCESSING_APP = """
import multiprocessing, sys
import openai

def call(base):
    openai.OpenAI(base_url=base, api_key="k", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Tea?"}]
    )

if __name__ == "__main__":
    base, method = sys.argv[1], sys.argv[2]
    context = multiprocessing.get_context(method)
    child = context.Process(target=call, args=(base,))
    child.start()
    child.join()
    pool = context.Pool(2)
    pool.map(call, [base] * 2)
    pool.close()
    pool.join()
"""


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_calls_in_multiprocessing_children_are_exported(
    receiver: _Receiver, llm: FakeLLMServer, tmp_path: Path, method: str
) -> None:
    """A forked multiprocessing child ends with os._exit: the SDK's atexit flush never ran there,
    and its spans were lost. They are flushed by multiprocessing's exit finalizers now."""
    script = tmp_path / "mp_app.py"
    script.write_text(_MULTIPROCESSING_APP)
    proc = subprocess.run(
        [sys.executable, str(script), llm.base_url, method],
        env=_env(SPANREEL_ENABLED="1", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint),
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    genai = [s for _, scope, s in receiver.spans() if scope.name == "spanreel"]
    assert len(genai) == 3  # the Process's call and the two Pool workers' calls


def test_disabled_by_default_and_light_when_enabled(tmp_path: Path, receiver: _Receiver) -> None:
    probe = "import sys; print(*(m in sys.modules for m in ('spanreel._autostart', 'httpx2', 'httpx')))"
    off = _run(probe, _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint), tmp_path)
    assert off.returncode == 0 and off.stdout.split() == ["False", "False", "False"]
    on = _run(probe, _env(SPANREEL_ENABLED="1", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint), tmp_path)
    assert on.returncode == 0, on.stderr
    # Enabled, yet httpx/httpx2 are only instrumented when the program imports them.
    assert on.stdout.split() == ["True", "False", "False"]
    assert receiver.requests == []


def test_bad_configuration_reports_one_line_and_continues(tmp_path: Path, llm: FakeLLMServer) -> None:
    code = "import openai; print(openai.OpenAI(max_retries=0).models.list().data[0].id)"
    env = _env(
        SPANREEL_ENABLED="1",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY="k",
    )
    proc = _run(code, env, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "fake-gpt"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and lines[0].startswith("spanreel: auto-instrumentation disabled")
        and "http/json" in lines[0]
    )


def test_a_misspelt_switch_is_reported_and_the_app_runs(tmp_path: Path) -> None:
    """``SPANREEL_ENABLED=enable`` (neither on nor off) says so on stderr and leaves spanreel off;
    it was silently off."""
    probe = "import sys; print('spanreel._autostart' in sys.modules and 'httpx2' in sys.modules)"
    proc = _run(probe, _env(SPANREEL_ENABLED="enable"), tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "False"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SPANREEL_ENABLED='enable' is neither on" in lines[0], proc.stderr
    for off in ("0", "false", "OFF", ""):
        quiet = _run(probe, _env(SPANREEL_ENABLED=off), tmp_path)
        assert quiet.returncode == 0 and quiet.stderr == "", (off, quiet.stderr)
    # Other settings spanreel cannot read: one plain line each, once (they were Python warnings
    # quoting spanreel's source file and line, SPANREEL_METRICS twice).
    proc = _run(
        "print('ran')",
        _env(
            SPANREEL_ENABLED="1",
            SPANREEL_METRICS="maybe",
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="bogus",
            OTEL_TRACES_EXPORTER="none",
        ),
        tmp_path,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ran"
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("spanreel: ") for line in lines), proc.stderr
    assert "SPANREEL_METRICS='maybe'" in proc.stderr and "content capture is off" in proc.stderr


@pytest.mark.parametrize(
    "setting",
    [{"SPANREEL_CAPTURE_MAX_BYTES": "abc"}, {"SPANREEL_REDACT": "bogus"}],
    ids=["max-bytes", "redact"],
)
def test_a_malformed_setting_leaves_the_apps_tracer_provider_alone(
    tmp_path: Path, setting: dict[str, str]
) -> None:
    """A setting spanreel cannot read leaves the app uninstrumented (README), so the app must keep
    its own tracing: spanreel had already registered its SDK tracer provider, the app's
    ``set_tracer_provider`` was refused ("Overriding of current TracerProvider is not allowed")
    and the app's exporter got nothing."""
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        provider, exporter = TracerProvider(), InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        with trace.get_tracer("app").start_as_current_span("my-span"):
            pass
        print([s.name for s in exporter.get_finished_spans()])
        """
    )
    proc = _run(code, _env(SPANREEL_ENABLED="1", OTEL_TRACES_EXPORTER="none", **setting), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['my-span']", proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spanreel: not instrumenting: SPANREEL_"), proc.stderr


def test_instrumenting_before_the_app_sets_its_provider(tmp_path: Path, llm: FakeLLMServer) -> None:
    """``Instrumentor().instrument()`` first, the SDK provider after: the span processor could not
    be added then and never was, so Gemini's ``?key=`` stayed in the HTTP span's URL and session
    baggage was not copied. It is added at the first call after the provider is set."""
    code = textwrap.dedent(
        f"""
        import json, httpx2
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from spanreel.instrumentation import Instrumentor
        Instrumentor().instrument()
        provider, exporter = TracerProvider(), InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        body = {{"contents": [{{"role": "user", "parts": [{{"text": "hi"}}]}}]}}
        httpx2.post("http://127.0.0.1:{llm.port}/v1beta/models/gemini-2.0-flash:generateContent"
                    "?key=AIzaCANARY0123456789abcdef", json=body)
        print(json.dumps([[s.name, dict(s.attributes or {{}})] for s in exporter.get_finished_spans()]))
        """
    )
    proc = _run(code, _env(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = json.loads(proc.stdout)
    assert sorted(name for name, _ in spans) == ["POST", "generate_content gemini-2.0-flash"]
    assert "AIzaCANARY" not in proc.stdout


def test_http_spans_of_an_app_instrumented_httpx_on_another_provider_are_cleaned(
    tmp_path: Path, llm: FakeLLMServer
) -> None:
    """The app instruments httpx itself on the global provider; spanreel records on its own. The
    HTTP spans never met spanreel's span processor: Gemini's ``?key=`` stayed in their URLs."""
    code = textwrap.dedent(
        f"""
        import json, httpx2
        from opentelemetry import trace
        from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from spanreel.instrumentation import Instrumentor
        exporters = []
        def provider():
            p, e = TracerProvider(), InMemorySpanExporter()
            p.add_span_processor(SimpleSpanProcessor(e))
            exporters.append(e)
            return p
        trace.set_tracer_provider(provider())
        HTTPX2ClientInstrumentor().instrument()
        Instrumentor().instrument(tracer_provider=provider())
        body = {{"contents": [{{"role": "user", "parts": [{{"text": "hi"}}]}}]}}
        httpx2.post("http://127.0.0.1:{llm.port}/v1beta/models/gemini-2.0-flash:generateContent"
                    "?key=AIzaCANARY0123456789abcdef", json=body)
        spans = [s for e in exporters for s in e.get_finished_spans()]
        print(json.dumps([[s.name, dict(s.attributes or {{}})] for s in spans]))
        """
    )
    proc = _run(code, _env(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = json.loads(proc.stdout)
    assert sorted(name for name, _ in spans) == ["POST", "generate_content gemini-2.0-flash"]
    assert "AIzaCANARY" not in proc.stdout


def test_a_redaction_hook_beside_the_app_is_found_at_start_up(
    receiver: _Receiver, llm: FakeLLMServer, tmp_path: Path
) -> None:
    """``SPANREEL_REDACT_HOOK=my_hooks:redact`` with ``my_hooks.py`` next to the app turned
    recording off ("No module named 'my_hooks'"): the start-up hook runs before Python puts the
    script's folder on ``sys.path``. It is looked for there now (run from another folder, so the
    current directory does not help)."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "my_hooks.py").write_text("def redact(text):\n    return text.replace('Paris', '[CITY]')\n")
    script = app_dir / "app.py"
    script.write_text(
        "import sys, openai\n"
        "openai.OpenAI(max_retries=0).chat.completions.create(\n"
        "    model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'Tea in Paris?'}])\n"
        "print(sys.path.count(sys.path[0]))\n"
    )
    env = _env(
        SPANREEL_ENABLED="1",
        SPANREEL_REDACT_HOOK="my_hooks:redact",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY="k",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, cwd=elsewhere
    )
    assert proc.returncode == 0 and "spanreel:" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "1"  # the app's sys.path is as Python made it: no extra entry
    (span,) = [s for _, scope, s in receiver.spans() if scope.name == "spanreel"]
    messages = _attrs(span)["gen_ai.input.messages"]
    assert "Tea in [CITY]?" in messages and "Paris" not in messages
