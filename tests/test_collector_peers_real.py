"""Spans from the real peer instrumentations land in the same ``llm_calls`` columns as spanreel's.

Each peer (OpenInference, OpenLLMetry, MLflow tracing) wraps the real ``openai`` SDK calling the
local fake LLM server in its own child process — they patch ``openai`` globally, so they must not
run inside the pytest process — and exports over real OTLP/HTTP to a ``spanreel collector``
subprocess. OpenLIT cannot be installed beside spanreel (it pins ``openai<3`` and older
OpenTelemetry packages); its attributes are covered from its source in test_collector_peers.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import extract_output_text
from tests.conftest import CollectorProcess, clean_env, start_collector

pytest.importorskip("openinference.instrumentation.openai")
pytest.importorskip("opentelemetry.instrumentation.openai")
pytest.importorskip("mlflow")

_CLIENT = r"""
import os, sys
import openai
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

peer = sys.argv[1]
client = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"], api_key="test-key")
messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is DuckDB fast?"}]

def calls():
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass

image = [{"role": "user", "content": [
    {"type": "text", "text": "What is in it?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
]}]

if peer.startswith("mlflow"):
    import mlflow
    if peer == "mlflow":
        mlflow.openai.autolog()
        calls()
    elif peer == "mlflow-image":
        mlflow.openai.autolog()
        client.chat.completions.create(model="gpt-4o-mini", messages=image)
    else:  # mlflow-anthropic: the span's inputs and outputs are Anthropic Messages
        import anthropic
        mlflow.anthropic.autolog()
        claude = anthropic.Anthropic(base_url=os.environ["FAKE_LLM_URL"].removesuffix("/v1"), api_key="k")
        ask = [{"role": "user", "content": "Is DuckDB fast?"}]
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=100, messages=ask)
    from mlflow.tracing.provider import provider
    provider.get().force_flush()
elif peer == "openinference-image":
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "peer-" + peer}))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    from openinference.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    client.chat.completions.create(model="gpt-4o-mini", messages=image)
    tracer_provider.shutdown()
else:
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "peer-" + peer}))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if peer == "openinference":
        from openinference.instrumentation import using_session
        from openinference.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
        with using_session("sess-openinference"):
            calls()
    elif peer == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
        calls()
    tracer_provider.shutdown()
"""

_PEERS = ("openinference", "openllmetry", "mlflow")
#: One more call each, told apart by service name.
_EXTRA = ("mlflow-anthropic", "mlflow-image", "openinference-image")


@pytest.fixture(scope="module")
def peer_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorProcess, FakeLLMServer]]:
    """One collector that received the two calls of every peer, each made in its own process."""
    tmp = tmp_path_factory.mktemp("peers")
    with FakeLLMServer() as llm, start_collector(tmp / "peers.duckdb") as collector:
        url = collector.http_url
        env = clean_env(
            FAKE_LLM_URL=llm.base_url,
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=url,
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
            MLFLOW_TRACKING_URI=(tmp / "mlruns").as_uri(),
        )
        procs = {
            peer: subprocess.Popen(
                [sys.executable, "-c", _CLIENT, peer],
                env={**env, "OTEL_SERVICE_NAME": "peer-" + peer},
                cwd=tmp,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for peer in (*_PEERS, *_EXTRA)
        }
        for peer, proc in procs.items():
            out, _ = proc.communicate(timeout=90)
            assert proc.returncode == 0, f"{peer} client failed:\n{out}"
        _wait_for_llm_calls(collector, expected=2 * len(_PEERS) + len(_EXTRA))
        yield collector, llm


def _wait_for_llm_calls(collector: CollectorProcess, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = run_query("SELECT count(*) FROM llm_calls", collector.db).rows[0][0]
        if count >= expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} of {expected} LLM calls stored:\n{collector.stderr()}")


def _calls(
    collector: CollectorProcess, scope_prefix: str, service: str | None = None
) -> list[dict[str, Any]]:
    """The LLM calls of a peer (by scope), of its main client unless ``service`` names another."""
    result = run_query(
        "SELECT s.scope_name, c.operation, c.provider, c.request_model, c.response_model, c.input_tokens,"
        " c.output_tokens, c.finish_reasons, c.session_id, c.attributes, c.input_messages, c.output_messages"
        " FROM llm_calls c JOIN spans s USING (trace_id, span_id)"
        " WHERE s.scope_name LIKE ? AND s.service_name = ? ORDER BY c.start_time",
        collector.db,
        params=[
            scope_prefix + "%",
            service or "peer-" + scope_prefix.split(".")[0].replace("opentelemetry", "openllmetry"),
        ],
    )
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


@pytest.mark.parametrize(
    ("scope_prefix", "session_id", "original_key"),
    [
        ("openinference.instrumentation.openai", "sess-openinference", "llm.token_count.prompt"),
        ("opentelemetry.instrumentation.openai", None, "gen_ai.input.messages"),
        ("mlflow", None, "mlflow.chat.tokenUsage"),
    ],
    ids=["openinference", "openllmetry", "mlflow"],
)
def test_peer_llm_calls_fill_the_columns(
    peer_db: tuple[CollectorProcess, FakeLLMServer],
    scope_prefix: str,
    session_id: str | None,
    original_key: str,
) -> None:
    collector, _ = peer_db
    calls = _calls(collector, scope_prefix)
    assert len(calls) == 2, calls
    for call in calls:
        assert call["operation"] == "chat"
        assert call["provider"] == "openai"
        assert call["request_model"] == "gpt-4o-mini"
        assert call["response_model"] == "gpt-4o-mini"
        assert call["finish_reasons"] == ["stop"]
        assert call["session_id"] == session_id
        # the fake server counts prompt tokens as words of the messages' text ("Be brief." + question)
        assert call["input_tokens"] == 5
        assert isinstance(call["output_tokens"], int) and call["output_tokens"] >= 20
        assert original_key in json.loads(call["attributes"])  # the original attributes are kept
        # The conversation in the GenAI semconv message schema, whatever the peer's own encoding.
        inputs = [
            (m["role"], [p.get("content") for p in m["parts"]]) for m in json.loads(call["input_messages"])
        ]
        assert inputs == [("system", ["Be brief."]), ("user", ["Is DuckDB fast?"])]
        (output,) = json.loads(call["output_messages"])
        assert output["role"] == "assistant" and output["finish_reason"] == "stop"
        assert extract_output_text(call["output_messages"]).strip()


def test_each_peer_only_stores_its_model_calls_as_llm_calls(
    peer_db: tuple[CollectorProcess, FakeLLMServer],
) -> None:
    collector, _ = peer_db
    total = run_query("SELECT count(*) FROM llm_calls", collector.db).rows[0][0]
    assert total == 2 * len(_PEERS) + len(_EXTRA)


def test_mlflow_anthropic_call_fills_the_columns(peer_db: tuple[CollectorProcess, FakeLLMServer]) -> None:
    """MLflow's Anthropic autolog records Anthropic Messages (``content`` blocks, ``stop_reason``):
    read in that format, it gets its output messages and finish reasons (they were empty)."""
    (call,) = _calls(peer_db[0], "mlflow", "peer-mlflow-anthropic")
    assert (call["provider"], call["finish_reasons"]) == ("anthropic", ["end_turn"])
    inputs = json.loads(call["input_messages"])
    assert inputs == [{"role": "user", "parts": [{"type": "text", "content": "Is DuckDB fast?"}]}]
    (output,) = json.loads(call["output_messages"])
    assert output["role"] == "assistant" and output["finish_reason"] == "end_turn"
    assert extract_output_text(call["output_messages"]).strip()


@pytest.mark.parametrize(
    ("scope_prefix", "service"),
    [("openinference.instrumentation.openai", "peer-openinference-image"), ("mlflow", "peer-mlflow-image")],
    ids=["openinference", "mlflow"],
)
def test_peer_image_parts_are_kept(
    peer_db: tuple[CollectorProcess, FakeLLMServer], scope_prefix: str, service: str
) -> None:
    """An image in a peer's input messages is a semconv ``uri`` part, as spanreel records it (it
    was dropped: only the text was kept)."""
    (call,) = _calls(peer_db[0], scope_prefix, service)
    (message,) = json.loads(call["input_messages"])
    assert message["parts"] == [
        {"type": "text", "content": "What is in it?"},
        {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
    ]
