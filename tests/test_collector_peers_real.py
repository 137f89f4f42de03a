"""Spans from the real peer instrumentations land in the same ``llm_calls`` columns as spanreel's.

Each peer (OpenInference, OpenLLMetry, MLflow tracing, the ``anthropic`` SDK's own call span) wraps
the real ``openai`` / ``anthropic`` SDK calling the local fake LLM server in its own child process
(tests/peer_client.py, run by ``conftest.run_peer_clients``) — they patch the SDKs globally, so
they must not run inside the pytest process — and exports over real OTLP/HTTP to a ``spanreel
collector`` subprocess. OpenLIT cannot be installed beside spanreel (it pins ``openai<3`` and older
OpenTelemetry packages); its attributes are covered from its source in test_collector_peers.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import extract_output_text
from tests.conftest import CollectorProcess, PeerClient, run_peer_clients

pytest.importorskip("openinference.instrumentation.openai")
pytest.importorskip("opentelemetry.instrumentation.openai")
pytest.importorskip("mlflow")

_ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is DuckDB fast?"}]
#: a call, and the same question streamed
_TWO_CALLS = [
    ("chat", {"model": "gpt-4o-mini", "messages": _ASK, "temperature": 0.2}),
    (
        "chat",
        {"model": "gpt-4o-mini", "messages": _ASK, "stream": True, "stream_options": {"include_usage": True}},
    ),
]
_IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in it?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
]
_ANTHROPIC = {"model": "claude-3-5-haiku-latest", "max_tokens": 100, "messages": [_ASK[1]]}
#: a failed call, a legacy completion and a Responses call (one span each)
_OTHER_APIS = [
    ("chat", {"model": "fake-error-400", "messages": _ASK}),
    ("completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 20}),
    ("responses", {"model": "gpt-4o-mini", "instructions": "Be brief.", "input": "Is DuckDB fast?"}),
]

#: each peer's two calls; then one more call each, told apart by service name
_CLIENTS = {
    "openinference": PeerClient("openinference", _TWO_CALLS, session="sess-openinference"),
    "openllmetry": PeerClient("openllmetry", _TWO_CALLS),
    "mlflow": PeerClient("mlflow", _TWO_CALLS),
    # the span's inputs and outputs are Anthropic Messages
    "mlflow-anthropic": PeerClient("mlflow", [("messages", {**_ANTHROPIC, "system": "Be brief."})]),
    "mlflow-image": PeerClient("mlflow", [("chat", {"model": "gpt-4o-mini", "messages": _IMAGE})]),
    "openinference-image": PeerClient(
        "openinference", [("chat", {"model": "gpt-4o-mini", "messages": _IMAGE})]
    ),
    "mlflow-apis": PeerClient("mlflow", _OTHER_APIS),
    "openinference-apis": PeerClient("openinference", _OTHER_APIS),
    # the SDK's own call span, content recorded; cut off at max_tokens
    "anthropic-sdk": PeerClient("anthropic-sdk", [("messages", {**_ANTHROPIC, "max_tokens": 3})]),
}


@pytest.fixture(scope="module")
def peer_db(
    collector: CollectorProcess, llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CollectorProcess, FakeLLMServer]:
    """One collector that received the calls of every peer, each client in its own process."""
    run_peer_clients(_CLIENTS, collector, llm, tmp_path_factory.mktemp("peers"))
    return collector, llm


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
    assert total == sum(len(c.calls) for c in _CLIENTS.values())


def test_mlflow_anthropic_call_fills_the_columns(peer_db: tuple[CollectorProcess, FakeLLMServer]) -> None:
    """MLflow's Anthropic autolog records Anthropic Messages (``content`` blocks, ``stop_reason``):
    read in that format, it gets its output messages and finish reasons (they were empty), and
    its ``system`` prompt is the first input message (it was dropped)."""
    (call,) = _calls(peer_db[0], "mlflow", "peer-mlflow-anthropic")
    assert (call["provider"], call["finish_reasons"]) == ("anthropic", ["end_turn"])
    inputs = json.loads(call["input_messages"])
    assert inputs == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Is DuckDB fast?"}]},
    ]
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


def _by_model(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(call["request_model"]): call for call in calls}


@pytest.mark.parametrize(
    ("scope_prefix", "service"),
    [
        ("openinference.instrumentation.openai", "peer-openinference-apis"),
        ("mlflow", "peer-mlflow-apis"),
    ],
    ids=["openinference", "mlflow"],
)
def test_peer_failed_call_keeps_its_model(
    peer_db: tuple[CollectorProcess, FakeLLMServer], scope_prefix: str, service: str
) -> None:
    """A call the provider refused (HTTP 400) has no response model; its request model comes from
    the recorded parameters (it was NULL)."""
    calls = _by_model(_calls(peer_db[0], scope_prefix, service))
    failed = calls["fake-error-400"]  # by request model
    assert (failed["operation"], failed["response_model"], failed["output_messages"]) == ("chat", None, None)


@pytest.mark.parametrize(
    ("scope_prefix", "service"),
    [
        ("openinference.instrumentation.openai", "peer-openinference-apis"),
        ("mlflow", "peer-mlflow-apis"),
    ],
    ids=["openinference", "mlflow"],
)
def test_peer_legacy_completion_is_a_text_completion(
    peer_db: tuple[CollectorProcess, FakeLLMServer], scope_prefix: str, service: str
) -> None:
    """A legacy Completions call is stored as spanreel stores its own: operation
    ``text_completion``, the prompt as a user message, each choice's text as an assistant message
    with its finish reason, and the tokens (OpenInference's was ``chat`` without messages; MLflow's
    had neither messages nor tokens)."""
    call = _by_model(_calls(peer_db[0], scope_prefix, service))["gpt-3.5-turbo-instruct"]
    assert (call["operation"], call["finish_reasons"]) == ("text_completion", ["length"])
    assert (call["input_tokens"], call["output_tokens"]) == (2, 20)
    prompt = {"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}
    assert json.loads(call["input_messages"]) == [prompt]
    (output,) = json.loads(call["output_messages"])
    assert (output["role"], output["finish_reason"]) == ("assistant", "length")
    assert extract_output_text(call["output_messages"]).strip()


def test_mlflow_responses_call_gets_its_conversation(peer_db: tuple[CollectorProcess, FakeLLMServer]) -> None:
    """MLflow records a Responses call's kwargs (``instructions``, ``input``) and ``response``
    object: read as that API, it gets its messages and finish reason (it had none); the
    instructions are the first input message, role ``system``."""
    call = _by_model(_calls(peer_db[0], "mlflow", "peer-mlflow-apis"))["gpt-4o-mini"]
    assert (call["operation"], call["finish_reasons"]) == ("chat", ["stop"])
    assert json.loads(call["input_messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Is DuckDB fast?"}]},
    ]
    (output,) = json.loads(call["output_messages"])
    assert (output["role"], output["finish_reason"]) == ("assistant", "stop")
    assert extract_output_text(call["output_messages"]).strip()


def test_anthropic_sdk_call_span_gets_its_stop_reason(
    peer_db: tuple[CollectorProcess, FakeLLMServer],
) -> None:
    """The anthropic SDK's own span records the stop reason as ``anthropic.message.stop_reason``:
    a ``max_tokens`` cut-off is in finish_reasons and in the output message, spelled as spanreel
    records Anthropic's (both were missing)."""
    (call,) = _calls(peer_db[0], "com.anthropic.sdk", "peer-anthropic-sdk")
    assert (call["operation"], call["provider"], call["request_model"]) == (
        "chat",
        "anthropic",
        "claude-3-5-haiku-latest",
    )
    assert call["finish_reasons"] == ["max_tokens"]
    assert json.loads(call["attributes"])["anthropic.message.stop_reason"] == "max_tokens"
    (output,) = json.loads(call["output_messages"])
    assert (output["role"], output["finish_reason"]) == ("assistant", "max_tokens")
