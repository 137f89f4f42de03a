"""Replay and export of LLM calls recorded by other instrumentations, from the real peer packages.

The calls are made with the real ``openai`` / ``anthropic`` SDKs against the fake LLM server and
recorded into one collector: MLflow tracing, OpenLLMetry and OpenInference in processes of their
own (``conftest.run_peer_clients``), opentelemetry-instrumentation-openai-v2 and the anthropic SDK's
own call span (content mode) in this process. Each call is then replayed on its own against the
fake server, and what the server received is compared with what the app sent; exports read the
same stored rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest
from click.testing import CliRunner
from conftest import (
    CollectorProcess,
    PeerClient,
    count_rows,
    exporting_into,
    openai_v2_instrumented,
    run_peer_clients,
)
from openai import OpenAI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_replay_support import wait_for

from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer, RecordedRequest
from spanreel.replay import load_trace
from spanreel.replay._execute import CallResult, replay_spans
from spanreel.replay._export import fetch_span_rows, finetune_records

pytest.importorskip("openinference.instrumentation.openai")
pytest.importorskip("opentelemetry.instrumentation.openai")
pytest.importorskip("opentelemetry.instrumentation.openai_v2")
pytest.importorskip("mlflow")

GPT, CLAUDE = "gpt-4o-mini", "claude-3-5-haiku-latest"
ASK = {"role": "user", "content": "Weather in Paris?"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL_ID = "call_1"
#: an OpenAI conversation after a tool call, its result sent as text parts (a list)
OPENAI_TOOL_TURN = [
    {"role": "system", "content": "You are a weather bot."},
    ASK,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": CALL_ID, "content": [{"type": "text", "text": "Sunny, 21C"}]},
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "weather", "input_schema": TOOLS[0]["function"]["parameters"]}
]
#: an Anthropic conversation after a tool use, its result sent as a string
ANTHROPIC_TOOL_TURN = [
    ASK,
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
    },
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21C"}]},
]

OPENAI_TOOL_CALL = {"model": GPT, "messages": OPENAI_TOOL_TURN, "tools": TOOLS}
ANTHROPIC_TOOL_CALL = {
    "model": CLAUDE,
    "max_tokens": 200,
    "tools": ANTHROPIC_TOOLS,
    "messages": ANTHROPIC_TOOL_TURN,
}
ANTHROPIC_SYSTEM_CALL = {
    "model": CLAUDE,
    "max_tokens": 3,
    "system": "Be brief.",
    "stop_sequences": ["END"],
    "messages": [ASK],
}

IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in it?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
]

#: calls made in this process, by service name: openai-v2 (openai SDK) and the anthropic SDK's span
OPENAI_V2_CALLS: list[dict[str, Any]] = [
    OPENAI_TOOL_CALL,
    {"model": GPT, "messages": OPENAI_TOOL_TURN[:2], "tools": TOOLS},  # answered with a tool call
    {"model": GPT, "messages": IMAGE},
]
ANTHROPIC_SDK_CALLS: list[dict[str, Any]] = [ANTHROPIC_TOOL_CALL]
EMBEDDINGS = ("embeddings", {"model": "text-embedding-3-small", "input": ["hello world", "second"]})
COMPLETIONS = (
    "completions",
    {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 20, "temperature": 0.5},
)
RESPONSES = ("responses", {"model": GPT, "instructions": "Be brief.", "input": "Is DuckDB fast?"})
IMAGES = ("images", {"model": "dall-e-3", "prompt": "a cat", "n": 1})
MODERATIONS = ("moderations", {"model": "omni-moderation-latest", "input": "Is DuckDB fast?"})

#: calls made under the peers that patch the SDKs, each in a process of its own
CLIENTS: dict[str, PeerClient] = {
    "openllmetry-apis": PeerClient("openllmetry", [EMBEDDINGS, COMPLETIONS]),
    "openinference-apis": PeerClient("openinference", [EMBEDDINGS, COMPLETIONS]),
    "openinference-chat": PeerClient("openinference", [("chat", OPENAI_TOOL_CALL)]),
    # OpenInference records every OpenAI request as an LLM span (the fake server has no images
    # or moderations API: those two fail with 404)
    "openinference-responses": PeerClient("openinference", [RESPONSES, IMAGES, MODERATIONS]),
    "mlflow-responses": PeerClient("mlflow", [RESPONSES]),
    "mlflow-apis": PeerClient("mlflow", [EMBEDDINGS, COMPLETIONS]),
    "mlflow-headers": PeerClient(
        "mlflow", [("chat", {"model": GPT, "messages": [ASK], "extra_headers": {"X-Tenant": "t1"}})]
    ),
    "mlflow": PeerClient(
        "mlflow",
        [
            (
                "chat",
                {
                    "model": GPT,
                    "messages": OPENAI_TOOL_TURN[:2],
                    "temperature": 0.2,
                    "max_tokens": 50,
                    "tools": TOOLS,
                    "tool_choice": "auto",
                    "timeout": 30,  # the SDK's own options: not sent as body fields
                    "extra_body": {"user": "u-1"},
                },
            ),
            ("chat", OPENAI_TOOL_CALL),
            ("messages", ANTHROPIC_SYSTEM_CALL),
            ("messages", ANTHROPIC_TOOL_CALL),
            ("parse", {"model": GPT, "messages": [ASK], "response_format": "Answer"}),
        ],
    ),
}


@dataclass(frozen=True)
class Call:
    """A recorded LLM call: its trace and span, and the arguments the app passed."""

    trace_id: str
    span_id: str
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Recorded:
    collector: CollectorProcess
    llm: FakeLLMServer
    calls: dict[str, list[Call]]  # by service name, in the order made


@pytest.fixture(scope="module")
def recorded(
    collector: CollectorProcess, llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Recorded:
    made: dict[str, list[Mapping[str, Any]]] = {}
    with exporting_into(collector, "peer-openai-v2") as provider, openai_v2_instrumented(provider):
        client = OpenAI(base_url=llm.base_url, api_key="test-key")
        for kwargs in OPENAI_V2_CALLS:
            client.chat.completions.create(**kwargs)
    made["peer-openai-v2"] = OPENAI_V2_CALLS
    with exporting_into(collector, "peer-anthropic-sdk") as provider:
        claude = anthropic.Anthropic(
            base_url=llm.base_url.removesuffix("/v1"),
            api_key="test-key",
            open_telemetry={"tracer_provider": provider, "traces": {"content_mode": "content"}},
        )
        for kwargs in ANTHROPIC_SDK_CALLS:
            claude.messages.create(**kwargs)
    made["peer-anthropic-sdk"] = ANTHROPIC_SDK_CALLS
    if CLIENTS:
        run_peer_clients(CLIENTS, collector, llm, tmp_path_factory.mktemp("peers"))
    made.update({"peer-" + name: [kwargs for _, kwargs in c.calls] for name, c in CLIENTS.items()})
    total = sum(len(c) for c in made.values())
    wait_for(lambda: count_rows(collector.db, "SELECT count(*) FROM llm_calls") == total, what="calls")
    calls: dict[str, list[Call]] = {}
    for service, kwargs_list in made.items():
        rows = run_query(
            "SELECT trace_id, span_id FROM llm_calls WHERE service_name = ? ORDER BY start_time",
            collector.db,
            params=[service],
        ).rows
        assert len(rows) == len(kwargs_list), (service, rows)
        calls[service] = [Call(t, s, k) for (t, s), k in zip(rows, kwargs_list, strict=True)]
    return Recorded(collector, llm, calls)


def replay(recorded: Recorded, call: Call) -> tuple[CallResult, list[RecordedRequest]]:
    """``call`` replayed on its own against the fake server: its result and the requests sent."""
    llm = recorded.llm
    before = len(llm.requests)
    result = replay_spans(
        load_trace(call.trace_id, recorded.collector.db),
        base_url=llm.base_url,
        span_exporter=InMemorySpanExporter(),
        environ={"OPENAI_API_KEY": "sk-replay", "ANTHROPIC_API_KEY": "sk-replay"},
    )
    (result_call,) = result.calls
    return result_call, llm.requests[before:]


def export(recorded: Recorded, call: Call) -> dict[str, Any]:
    """``call``'s fine-tuning example (``export --format openai-jsonl``)."""
    rows = fetch_span_rows(recorded.collector.db, trace_id=call.trace_id)
    rows = [r for r in rows if r["span_id"] == call.span_id]
    result = finetune_records(rows)
    assert result.skipped == [] and len(result.records) == 1, result
    return result.records[0]


# --------------------------------------------------------------------------- tool results as blocks


def test_tool_results_recorded_as_blocks_are_sent_and_exported_as_their_text(recorded: Recorded) -> None:
    """The anthropic SDK's span records a tool result as content blocks (``[{"type": "text",
    "text": "Sunny, 21C"}]``), openai-v2 a result sent as text parts as those parts: the replay
    sent, and the export wrote, the JSON text of the list where the app sent the text."""
    (claude,) = recorded.calls["peer-anthropic-sdk"]
    result, (sent,) = replay(recorded, claude)
    assert result.status == "ok", result
    tool_result = sent.json["messages"][2]["content"][0]
    assert tool_result == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "Sunny, 21C"}],  # what the Messages API makes of the string
    }
    assert export(recorded, claude)["messages"][2] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": "Sunny, 21C",
    }

    gpt = recorded.calls["peer-openai-v2"][0]
    result, (sent,) = replay(recorded, gpt)
    assert result.status == "ok", result
    assert sent.json["messages"][3] == {"role": "tool", "tool_call_id": CALL_ID, "content": "Sunny, 21C"}
    assert export(recorded, gpt)["messages"][3] == sent.json["messages"][3]


# --------------------------------------------------------------------------- MLflow: the recorded arguments


def test_mlflow_calls_are_replayed_with_the_arguments_the_app_passed(recorded: Recorded) -> None:
    """MLflow records the SDK call's arguments (``mlflow.spanInputs``): the replay sends them as
    the body the SDK sent — system prompt, sampling parameters, max_tokens and tools included (the
    request was rebuilt from the messages alone: tools, temperature and the Anthropic system prompt
    were dropped, max_tokens became 1024). A response_format MLflow recorded as a class's text
    cannot be sent."""
    *sent_as_is, parse = recorded.calls["peer-mlflow"]
    for call in sent_as_is:
        result, (sent,) = replay(recorded, call)
        assert result.status == "ok", result
        expected = {k: v for k, v in call.kwargs.items() if k not in ("timeout", "extra_body")}
        expected.update(call.kwargs.get("extra_body") or {})
        assert sent.json == expected
        assert result.notes == ("request rebuilt from mlflow.spanInputs (MLflow)",)
        assert sent.path == ("/v1/messages" if call.kwargs["model"] == CLAUDE else "/v1/chat/completions")
    result, sent_nothing = replay(recorded, parse)
    assert result.status == "skipped" and sent_nothing == []
    assert "mlflow.spanInputs (MLflow) holds response_format as the text of a Python object" in str(
        result.skip_reason
    )


# --------------------------------------------------------------------------- embeddings, completions


@pytest.mark.parametrize("peer", ["openllmetry", "openinference", "mlflow"])
def test_peer_embeddings_and_completions_are_replayed_at_their_own_api(recorded: Recorded, peer: str) -> None:
    """An embeddings call and a legacy completions call are sent to /v1/embeddings with ``input``
    and /v1/completions with ``prompt`` (OpenLLMetry's were sent to /v1/chat/completions as chat
    messages — which the real API refuses for those models —, OpenInference's and MLflow's were
    skipped), from the body the peer recorded or rebuilt from OpenLLMetry's messages."""
    embeddings, completions = recorded.calls[f"peer-{peer}-apis"]
    for call, path in ((embeddings, "/v1/embeddings"), (completions, "/v1/completions")):
        result, requests = replay(recorded, call)
        assert result.status == "ok", result.skip_reason or result.replay
        (sent,) = requests
        assert sent.path == path
        assert {k: sent.json.get(k) for k in call.kwargs} == call.kwargs  # every argument the app passed
        assert "messages" not in sent.json


def test_responses_calls_are_replayed_at_responses_and_other_apis_are_not_sent(recorded: Recorded) -> None:
    """A recorded ``input`` body is a Responses request only for a call that says so (MLflow's chat
    model span, OpenInference's input messages); OpenInference's spans of images and moderations
    requests, with a ``prompt`` or ``input`` body too, are not sent to another API."""
    (mlflow,) = recorded.calls["peer-mlflow-responses"]
    oi, images, moderations = recorded.calls["peer-openinference-responses"]
    for call in (mlflow, oi):
        result, requests = replay(recorded, call)
        assert result.status == "ok", result.skip_reason or result.replay
        (sent,) = requests
        assert sent.path == "/v1/responses" and sent.json == call.kwargs
    for call in (images, moderations):
        result, sent_nothing = replay(recorded, call)
        assert result.status == "skipped" and sent_nothing == []
        assert "the recorded request (input.value (OpenInference)) is not a chat, completions, " in str(
            result.skip_reason
        )


# --------------------------------------------------------------------------- what the peer did not record

REBUILT_WITHOUT_TOOLS = (
    "the request was rebuilt without what the instrumentation did not record (tool definitions): it is "
    "not the request the app sent, so the output may differ (a --hook can add what is missing)"
)


def cli_replay(recorded: Recorded, call: Call, *args: str) -> Any:
    """``spanreel replay TRACE --json …`` against the fake server: the parsed JSON."""
    res = CliRunner().invoke(
        main,
        [
            "replay",
            call.trace_id,
            "--db",
            str(recorded.collector.db),
            "--base-url",
            recorded.llm.base_url,
            *args,
        ],
        env={"OPENAI_API_KEY": "sk-replay", "ANTHROPIC_API_KEY": "sk-replay", "COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout) if "--json" in args else res.stdout


def add_weather_tool(body: dict[str, Any]) -> dict[str, Any]:
    """A --hook that puts back the tool definitions the recording lacks."""
    return {**body, "tools": TOOLS}


def test_a_call_rebuilt_without_its_tool_definitions_is_replayed_with_a_note(recorded: Recorded) -> None:
    """openai-v2 and the anthropic SDK's span record no tool definitions: a call whose
    conversation calls tools (in its history, or its answer) was re-sent without them and
    reported as a plain replay. It is still sent — a --hook can add them — but the report, the
    dry run and a warning say what it lacks."""
    *tool_calls, _ = recorded.calls["peer-openai-v2"]
    for call in [*tool_calls, *recorded.calls["peer-anthropic-sdk"]]:
        result, (sent,) = replay(recorded, call)
        assert "tools" not in sent.json
        assert result.status == "ok" and result.notes[-1] == REBUILT_WITHOUT_TOOLS

    first = tool_calls[1]  # answered with a tool call, from messages without any
    plan = cli_replay(recorded, first, "--dry-run", "--json")
    assert plan["calls"][0]["body_modified"] == ["tool definitions"]
    assert plan["warnings"] == [
        "1 of 1 calls (call 1) are not replayed verbatim: their request was rebuilt without what the "
        "recording instrumentation did not record (tool definitions), so their output may differ; "
        "add it with --hook MODULE:FUNCTION"
    ]
    assert "rebuilt without (not recorded): tool definitions" in cli_replay(recorded, first, "--dry-run")

    before = len(recorded.llm.requests)
    report = cli_replay(recorded, first, "--hook", f"{__file__}:add_weather_tool", "--json")
    (sent,) = recorded.llm.requests[before:]
    assert sent.json["tools"] == TOOLS and report["warnings"] == []
    assert report["calls"][0]["notes"][-1] == (
        "the request was rebuilt without what the instrumentation did not record (tool definitions): "
        "the --hook got the rebuilt body"
    )


def test_mlflow_request_options_that_are_not_re_sent_are_named(recorded: Recorded) -> None:
    """The SDK's extra_headers are not part of the body MLflow's arguments give: the replay says
    they were not sent."""
    (call,) = recorded.calls["peer-mlflow-headers"]
    result, (sent,) = replay(recorded, call)
    assert sent.json == {"model": GPT, "messages": [ASK]} and sent.header("X-Tenant") is None
    assert result.notes[-1].startswith(
        "the request was rebuilt without what the instrumentation did not record (request headers "
        "(extra_headers)): "
    )


def test_a_message_recorded_without_its_content_is_not_replayed(recorded: Recorded) -> None:
    """openai-v2 records a message whose content is a list of parts (text and an image) as
    ``"parts": []``: the replay sent an empty user message and reported it as replayed; the
    export skips it too."""
    *_, image = recorded.calls["peer-openai-v2"]
    result, sent = replay(recorded, image)
    assert result.status == "skipped" and sent == []
    rows = fetch_span_rows(recorded.collector.db, trace_id=image.trace_id)
    assert finetune_records(rows).skipped == [
        (
            image.span_id,
            "input message 0 was recorded without its content (the instrumentation left it out: some "
            "record only text, not images or lists of parts)",
        )
    ]  # it was exported with an empty user message
    assert result.skip_reason == (
        "recorded by 'opentelemetry.util.genai.handler': gen_ai.input.messages[0] (user) has "
        "no recorded content: the recording instrumentation left it out (some record only text, not "
        "images or lists of parts), so the request cannot be rebuilt"
    )


# --------------------------------------------------------------------------- export


def test_openinference_and_mlflow_calls_are_exported_as_fine_tuning_examples(recorded: Recorded) -> None:
    """Their calls were skipped with "no output recorded (content capture off?)": export read only
    the gen_ai.* attributes, not the request the peer recorded nor the collector's normalised
    output messages (which replay and the viewer use)."""
    (oi,) = recorded.calls["peer-openinference-chat"]
    example = export(recorded, oi)
    assert example["messages"][:-1] == OPENAI_TOOL_TURN and example["tools"] == TOOLS
    answer = example["messages"][-1]
    assert answer["role"] == "assistant" and answer["content"].strip()

    tool_call, _, claude, _, _ = recorded.calls["peer-mlflow"]
    example = export(recorded, tool_call)
    assert example["messages"][:-1] == OPENAI_TOOL_TURN[:2] and example["tools"] == TOOLS
    (call,) = example["messages"][-1]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"])
    example = export(recorded, claude)
    assert example["messages"][:-1] == [{"role": "system", "content": "Be brief."}, ASK]
    assert example["messages"][-1]["role"] == "assistant"
