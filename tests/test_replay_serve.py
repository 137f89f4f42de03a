"""``spanreel serve-recorded``: a conversation recorded through the real ``openai`` SDK (see
test_replay_serve_support) is served back to the SDK — JSON and SSE, tool calls, a recorded 500 —
plus matching rules, the 404 that names the closest request, Anthropic wire format with the real
``anthropic`` SDK, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic._constants import ANTHROPIC_API_VERSION
from click.testing import CliRunner
from conftest import clean_env
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_instr_streams import WEB_SEARCH_BLOCKS, WEB_SEARCH_PARTS
from test_replay_serve_support import (
    SESSION_ID,
    Recording,
    recorded_conversation,
    stream_text,
    stream_tool_calls,
    without_volatile,
)
from test_replay_support import rec

from spanreel._attributes import (
    SPANREEL_CONTENT_TRUNCATED,
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_BODY_MODIFIED,
    SPANREEL_REQUEST_URL,
)
from spanreel.cli import main
from spanreel.replay import load_session, load_trace
from spanreel.replay._edits import ReplayEdits
from spanreel.replay._execute import replay_spans
from spanreel.replay._messages import ApiShape
from spanreel.replay._recorded import RecordedExchange, exchanges_from_spans
from spanreel.replay._safety import RetryPolicy
from spanreel.replay._serve import (
    NO_MATCH_CODE,
    RecordedServer,
    RecordingIndex,
    canonical_json,
    json_differences,
    similarity,
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return recorded_conversation(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def exchanges(recording: Recording) -> list[RecordedExchange]:
    found, unservable = exchanges_from_spans(load_session(SESSION_ID, recording.db))
    assert unservable == []
    assert len(found) == len(recording.calls) == 7
    return found


@pytest.fixture
def server(exchanges: list[RecordedExchange]) -> Iterator[RecordedServer]:
    with RecordedServer(exchanges) as running:
        yield running


def _client(server: RecordedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-unused", max_retries=0)


# --------------------------------------------------------------------------- the SDK, end to end


def test_every_recorded_call_is_answered_as_recorded(recording: Recording, server: RecordedServer) -> None:
    client = _client(server)
    for n, call in enumerate(recording.calls, start=1):
        if call.error is not None:
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(**call.kwargs)
            assert caught.value.status_code == call.error == 500
            assert "Forced error 500" in str(caught.value)
            continue
        result = client.chat.completions.create(**call.kwargs)
        if not call.kwargs.get("stream"):
            # the whole ChatCompletion, tool calls and usage included; only `created` (the span's
            # end second) and `system_fingerprint` (not recorded) are left out
            assert without_volatile(result.model_dump()) == without_volatile(call.response), f"call {n}"
            continue
        chunks = [c.model_dump() for c in result]
        original = call.response
        assert stream_text(chunks) == stream_text(original)
        assert stream_tool_calls(chunks) == stream_tool_calls(original)
        assert {c["id"] for c in chunks} == {c["id"] for c in original}
        assert {c["model"] for c in chunks} == {c["model"] for c in original}
        finish = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
        assert finish == [ch["finish_reason"] for c in original for ch in c["choices"] if ch["finish_reason"]]
        # the usage chunk only when the request asked for it, as OpenAI does
        assert [c["usage"] for c in chunks if c["usage"]] == [c["usage"] for c in original if c["usage"]]
    assert [s.status for s in server.served] == [200, 200, 200, 200, 200, 500, 200]
    assert [s.exchange.index for s in server.served if s.exchange] == [1, 2, 3, 4, 5, 6, 7]


def test_streamed_tool_call_is_re_emitted(recording: Recording, server: RecordedServer) -> None:
    call = recording.calls[4]
    assert call.kwargs["stream"] and call.kwargs["tools"]
    chunks = [c.model_dump() for c in _client(server).chat.completions.create(**call.kwargs)]
    (tool_call,) = stream_tool_calls(chunks)
    (original,) = stream_tool_calls(call.response)
    assert tool_call == original and tool_call["name"] == "get_weather"
    assert json.loads(tool_call["arguments"])["city"]


def test_stream_and_json_are_interchangeable(recording: Recording, server: RecordedServer) -> None:
    """`stream` / `stream_options` do not take part in matching; the answer takes the asked form."""
    client = _client(server)
    streamed = recording.calls[1]  # recorded as a stream with usage
    kwargs = {k: v for k, v in streamed.kwargs.items() if k not in ("stream", "stream_options")}
    as_json = client.chat.completions.create(**kwargs)
    assert as_json.choices[0].message.content == stream_text(streamed.response)
    assert as_json.usage is not None and as_json.usage.model_dump() == next(
        c["usage"] for c in streamed.response if c["usage"]
    )
    plain = recording.calls[0]  # recorded as JSON
    chunks = [c.model_dump() for c in client.chat.completions.create(**plain.kwargs, stream=True)]
    assert stream_text(chunks) == plain.response["choices"][0]["message"]["content"]
    assert all(c["usage"] is None for c in chunks)  # no include_usage in this request


def test_key_order_whitespace_and_number_spelling_do_not_matter(
    recording: Recording, server: RecordedServer
) -> None:
    kwargs = recording.calls[0].kwargs
    body = {"messages": kwargs["messages"], "temperature": 0.2, "model": kwargs["model"]}
    text = json.dumps(body, indent=4).replace("0.2", "2e-1")  # other key order, whitespace, spelling
    assert "2e-1" in text
    r = httpx.post(server.openai_base_url + "/chat/completions", content=text, trust_env=False)
    assert (
        r.status_code == 200
        and r.headers["x-spanreel-recorded-span"] == server.index.exchanges[0].span.span_id
    )
    original = recording.calls[0].response["choices"][0]["message"]["content"]
    assert r.json()["choices"][0]["message"]["content"] == original
    assert canonical_json({"a": 1.0, "b": [2.0, {"c": 0.5}]}) == canonical_json(
        {"b": [2, {"c": 0.5}], "a": 1}
    )


def test_no_match_is_a_404_naming_the_closest_request(recording: Recording, server: RecordedServer) -> None:
    kwargs = json.loads(json.dumps(recording.calls[0].kwargs))
    kwargs["messages"][1]["content"] = "Tabs or spaces, really?"
    with pytest.raises(openai.NotFoundError) as caught:
        _client(server).chat.completions.create(**kwargs)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == NO_MATCH_CODE and error["type"] == "invalid_request_error"
    closest = error["closest"]
    assert closest["index"] == 1 and closest["span_id"] == server.index.exchanges[0].span.span_id
    assert 0.8 < closest["similarity"] < 1
    assert closest["differences"] == [
        'messages[1].content: recorded "Tabs or spaces?" vs received "Tabs or spaces, really?"'
    ]
    assert "closest recorded request: #1 chat gpt-4o-mini" in error["message"]
    assert server.unmatched and server.unmatched[0].closest is not None

    # the closest is picked by similarity: a request like the tool follow-up (call 4)
    kwargs = json.loads(json.dumps(recording.calls[3].kwargs))
    kwargs["model"] = "gpt-4.1"
    with pytest.raises(openai.NotFoundError) as caught:
        _client(server).chat.completions.create(**kwargs)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["closest"]["index"] == 4
    assert caught.value.body["closest"]["differences"] == [
        'model: recorded "gpt-4o-mini" vs received "gpt-4.1"'
    ]


def test_request_to_an_api_without_recordings(server: RecordedServer) -> None:
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "the recording has no request to this API" in str(caught.value)
    r = httpx.post(server.openai_base_url + "/embeddings", json={"input": "x"}, trust_env=False)
    assert r.status_code == 404 and "not an LLM endpoint spanreel serves" in r.json()["error"]["message"]
    r = httpx.post(server.openai_base_url + "/chat/completions", content=b"not json", trust_env=False)
    assert r.status_code == 400


# --------------------------------------------------------------------------- matching rules (synthetic spans)


def _openai_span(span_id: str, body: dict[str, Any], text: str, start_ms: float = 0, **attrs: Any) -> Any:
    return rec(
        span_id,
        name=f"chat {body['model']}",
        start_ms=start_ms,
        kind="CLIENT",
        scope_name="spanreel",
        operation="chat",
        attributes={
            SPANREEL_REQUEST_BODY: json.dumps(body),
            SPANREEL_REQUEST_URL: "https://api.openai.com/v1/chat/completions",
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}]
            ),
            ga.GEN_AI_RESPONSE_ID: f"chatcmpl-{span_id.rjust(16, '0')}",
            ga.GEN_AI_USAGE_INPUT_TOKENS: 3,
            ga.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
            **attrs,
        },
    )


def test_repeated_requests_are_answered_in_recorded_order_then_the_last_repeats() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "roll a die"}]}
    spans = [
        _openai_span("3", body, "three", start_ms=30),
        _openai_span("1", body, "one", start_ms=10),
        _openai_span("2", {**body, "stream": True}, "two", start_ms=20),  # stream does not count
    ]
    exchanges, _ = exchanges_from_spans(spans)
    with RecordedServer(exchanges) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        answers = [
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "roll a die"}])
            for _ in range(4)
        ]
    assert [a.choices[0].message.content for a in answers] == ["one", "two", "three", "three"]
    assert [a.id for a in answers] == ["chatcmpl-0000000000000001", "chatcmpl-0000000000000002"] + [
        "chatcmpl-0000000000000003"
    ] * 2


def test_a_stream_recorded_without_finish_reason_is_served_without_one() -> None:
    """A stream cut off before its finish reason is recorded with the schema's required
    ``finish_reason`` as ``error`` and no ``gen_ai.response.finish_reasons``: served as none, as
    the provider sent; a recorded ``error`` finish reason (the attribute has it) is served."""
    cut = [{"role": "assistant", "parts": [{"type": "text", "content": "Half"}], "finish_reason": "error"}]
    body = {"model": "m", "messages": [{"role": "user", "content": "Tell me"}]}
    spans = [
        _openai_span("1", body, "", **{ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(cut)}),
        _openai_span(
            "2",
            {**body, "model": "n"},
            "",
            **{ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(cut), ga.GEN_AI_RESPONSE_FINISH_REASONS: ["error"]},
        ),
    ]
    exchanges, _ = exchanges_from_spans(spans)
    with RecordedServer(exchanges) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Tell me"}])
        second = client.chat.completions.create(model="n", messages=[{"role": "user", "content": "Tell me"}])
    assert first.choices[0].message.content == "Half" and first.choices[0].finish_reason is None
    assert second.choices[0].finish_reason == "error"


def test_json_differences_and_closest_ranking() -> None:
    user = {"role": "user", "content": "What is a monad, in one line?"}
    recorded = {
        "model": "m",
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "a"}],
        "stream": True,
    }
    received = {
        "model": "m",
        "messages": [{"role": "user", "content": "b"}, {"role": "user", "content": "c"}],
    }
    assert json_differences(recorded, received) == [
        "messages: recorded 1 items, received 2",
        'messages[0].content: recorded "a" vs received "b"',
        "temperature: recorded 0.2, missing in the request",
    ]
    assert json_differences({"a": 1}, {"a": 1.0, "stream": False}) == []
    assert json_differences({"a": "x"}, {"b": "y"}, limit=1) == ['a: recorded "x", missing in the request']
    exchanges, _ = exchanges_from_spans(
        [
            _openai_span(
                "1", {"model": "m", "messages": [{"role": "user", "content": "the cat sat on the mat"}]}, "x"
            ),
            _openai_span(
                "2", {"model": "m", "messages": [{"role": "user", "content": "completely else"}]}, "y"
            ),
        ]
    )
    index = RecordingIndex(exchanges)
    closest = index.closest(
        ApiShape.OPENAI_CHAT,
        {"model": "m", "messages": [{"role": "user", "content": "the cat sat on a mat"}]},
    )
    assert closest is not None and closest.exchange.index == 1
    assert index.closest(ApiShape.ANTHROPIC_MESSAGES, {"model": "m"}) is None
    # lists are aligned: a message inserted in front does not hide the shared ones
    with_system, other = exchanges_from_spans(
        [
            _openai_span(
                "a", {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, user]}, "x"
            ),
            _openai_span(
                "b", {"model": "n", "messages": [{"role": "user", "content": "fail"}]}, "y", start_ms=5
            ),
        ]
    )[0]
    found = RecordingIndex([with_system, other]).closest(
        ApiShape.OPENAI_CHAT, {"model": "m", "messages": [user]}
    )
    assert found is not None and found.exchange is with_system
    assert found.differences == [
        "messages: recorded 2 items, received 1",
        'messages[0].content: recorded "Be brief." vs received "What is a monad, in one line?"',
        'messages[0].role: recorded "system" vs received "user"',
    ]
    assert similarity({"a": [1, 2], "stream": True}, {"a": [1.0, 2]}) == 1.0
    assert 0 < similarity({"a": "abcdef"}, {"a": "abcxyz"}) < similarity({"a": "abcdef"}, {"a": "abcdez"}) < 1
    assert similarity({"a": 1}, {"b": 1}) == 0.0
    # many recordings: pre-ranked by shared key=value leaves, then scored
    many, _ = exchanges_from_spans(
        [
            _openai_span(
                f"{i + 1:x}",
                {
                    "model": "m",
                    "n": i,
                    "messages": [{"role": "user", "content": f"question number {i} " * 3}],
                },
                "x",
                start_ms=i,
            )
            for i in range(40)
        ]
    )
    probe = {
        "model": "m",
        "n": 13,
        "messages": [{"role": "user", "content": "question number 13 " * 3 + "?"}],
    }
    found = RecordingIndex(many).closest(ApiShape.OPENAI_CHAT, probe)
    assert found is not None and found.exchange.index == 14
    (difference,) = found.differences
    assert (
        difference.startswith('messages[0].content: recorded "question number 13 ') and '13 ?"' in difference
    )


def test_unservable_calls_are_listed_with_reasons() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    no_output = _openai_span("1", body, "x")
    no_output = rec(
        "1",
        operation="chat",
        attributes={k: v for k, v in no_output.attributes.items() if k != ga.GEN_AI_OUTPUT_MESSAGES},
    )
    no_body = rec("2", operation="chat", scope_name="openinference.instrumentation.openai")
    embeddings = rec(
        "3",
        operation="embeddings",
        attributes={SPANREEL_REQUEST_BODY: '{"input": "x"}', SPANREEL_REQUEST_URL: "https://h/v1/embeddings"},
    )
    not_json = rec("4", operation="chat", attributes={SPANREEL_REQUEST_BODY: "{oops"})
    cut = _openai_span("5", body, "x", **{SPANREEL_CONTENT_TRUNCATED: [ga.GEN_AI_OUTPUT_MESSAGES]})
    exchanges, unservable = exchanges_from_spans([no_output, no_body, embeddings, not_json, cut])
    assert exchanges == []
    reasons = {u.span.span_id[-1]: u.reason for u in unservable}
    assert "gen_ai.output.messages is missing" in reasons["1"]
    assert "content capture was off or another instrumentation" in reasons["2"]
    assert "openinference" in reasons["2"]
    assert "only OpenAI Chat Completions and Anthropic Messages" in reasons["3"]
    assert "not a JSON object" in reasons["4"]
    assert "the recorded output was truncated at capture" in reasons["5"]


def test_a_modified_recorded_body_is_pointed_out_in_the_404() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "[image: spanreel placeholder]"}]}
    exchanges, _ = exchanges_from_spans(
        [_openai_span("1", body, "x", **{SPANREEL_REQUEST_BODY_MODIFIED: True})]
    )
    with RecordedServer(exchanges) as server:
        r = httpx.post(
            server.openai_base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "data:image/png;base64,AAAA"}]},
            trust_env=False,
        )
    assert r.status_code == 404
    assert "its body was modified at capture" in r.json()["error"]["message"]


# --------------------------------------------------------------------------- Anthropic wire format


def test_anthropic_sdk_recording_is_served_identically(recording: Recording) -> None:
    """Recorded through the real `anthropic` SDK; served back as JSON and as a stream, each call
    (a text answer, a tool use recorded as a stream, the answer after the tool result)."""
    exchanges, unservable = exchanges_from_spans(load_trace(recording.anthropic_trace_id, recording.db))
    assert unservable == [] and len(exchanges) == len(recording.anthropic_calls) == 3
    with RecordedServer(exchanges) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="unused", max_retries=0)
        for call in recording.anthropic_calls:
            assert client.messages.create(**call.kwargs).model_dump() == call.response
            with client.messages.stream(**call.kwargs) as stream:
                assert stream.get_final_message().model_dump() == call.response
    kinds = [[b["type"] for b in c.response["content"]] for c in recording.anthropic_calls]
    assert kinds == [["text"], ["tool_use"], ["text"]]


def _anthropic_spans() -> list[Any]:
    """What an Anthropic call looks like on a spanreel span (GenAI semconv: input tokens include
    cached ones; finish reasons as Anthropic sent them)."""
    text_body = {
        "model": "claude-sonnet-4",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    tool_body = {
        "model": "claude-sonnet-4",
        "max_tokens": 200,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    }
    common = {
        SPANREEL_REQUEST_URL: "https://api.anthropic.com/v1/messages",
        ga.GEN_AI_PROVIDER_NAME: "anthropic",
    }
    return [
        rec(
            "a1",
            name="chat claude-sonnet-4",
            operation="chat",
            provider="anthropic",
            attributes={
                **common,
                SPANREEL_REQUEST_BODY: json.dumps(text_body),
                ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "Hello there, how can I help you today?"}],
                            "finish_reason": "end_turn",
                        }
                    ]
                ),
                ga.GEN_AI_RESPONSE_ID: "msg_01abc",
                ga.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4-20250514",
                ga.GEN_AI_RESPONSE_FINISH_REASONS: ["end_turn"],
                ga.GEN_AI_USAGE_INPUT_TOKENS: 30,
                ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 20,
                ga.GEN_AI_USAGE_OUTPUT_TOKENS: 9,
            },
        ),
        rec(
            "a2",
            name="chat claude-sonnet-4",
            operation="chat",
            provider="anthropic",
            start_ms=50,
            attributes={
                **common,
                SPANREEL_REQUEST_BODY: json.dumps(tool_body),
                ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {"type": "text", "content": "Let me check."},
                                {
                                    "type": "tool_call",
                                    "id": "toolu_1",
                                    "name": "get_weather",
                                    "arguments": {"city": "Oslo"},
                                },
                            ],
                            "finish_reason": "tool_use",
                        }
                    ]
                ),
                ga.GEN_AI_RESPONSE_ID: "msg_02def",
                ga.GEN_AI_USAGE_INPUT_TOKENS: 12,
                ga.GEN_AI_USAGE_OUTPUT_TOKENS: 15,
            },
        ),
    ]


def test_anthropic_recording_is_served_in_messages_format() -> None:
    exchanges, unservable = exchanges_from_spans(_anthropic_spans())
    assert unservable == [] and [e.api for e in exchanges] == [ApiShape.ANTHROPIC_MESSAGES] * 2
    with RecordedServer(exchanges) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="unused", max_retries=0)
        message = client.messages.create(
            model="claude-sonnet-4", max_tokens=200, messages=[{"role": "user", "content": "Hi"}]
        )
        assert message.id == "msg_01abc" and message.model == "claude-sonnet-4-20250514"
        assert [b.model_dump() for b in message.content] == [
            {"type": "text", "text": "Hello there, how can I help you today?", "citations": None}
        ]
        assert message.stop_reason == "end_turn"
        assert (
            message.usage.input_tokens,
            message.usage.cache_read_input_tokens,
            message.usage.output_tokens,
        ) == (
            10,
            20,
            9,
        )
        with client.messages.stream(
            model="claude-sonnet-4", max_tokens=200, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            texts = list(stream.text_stream)
            final = stream.get_final_message()
        assert "".join(texts) == "Hello there, how can I help you today?" and len(texts) > 1
        assert final.stop_reason == "end_turn" and final.usage.output_tokens == 9

        tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
        ask = [{"role": "user", "content": "Weather in Oslo?"}]
        with client.messages.stream(
            model="claude-sonnet-4", max_tokens=200, tools=tools, messages=ask
        ) as stream:
            final = stream.get_final_message()
        kinds = [b.type for b in final.content]
        assert kinds == ["text", "tool_use"] and final.stop_reason == "tool_use"
        tool_use = final.content[1]
        assert tool_use.type == "tool_use"
        assert (tool_use.id, tool_use.name, tool_use.input) == ("toolu_1", "get_weather", {"city": "Oslo"})

        with pytest.raises(anthropic.NotFoundError) as caught:
            client.messages.create(
                model="claude-sonnet-4", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
            )
        assert "max_tokens: recorded 200 vs received 100" in str(caught.value)


def test_anthropic_server_tool_blocks_are_served_back() -> None:
    """A recorded answer with a server tool (Anthropic's web search: ``server_tool_use``, its
    ``web_search_tool_result``, then text) is served with those blocks, as JSON and as a stream;
    never as a ``tool_use`` the application would have to run."""
    parts = WEB_SEARCH_PARTS
    body = {
        "model": "claude-sonnet-4",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Tea price?"}],
    }
    span = rec(
        "a1",
        name="chat claude-sonnet-4",
        operation="chat",
        provider="anthropic",
        attributes={
            SPANREEL_REQUEST_URL: "https://api.anthropic.com/v1/messages",
            SPANREEL_REQUEST_BODY: json.dumps(body),
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [{"role": "assistant", "parts": parts, "finish_reason": "end_turn"}]
            ),
            ga.GEN_AI_USAGE_INPUT_TOKENS: 9,
            ga.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
        },
    )
    exchanges, unservable = exchanges_from_spans([span])
    assert unservable == []
    expected = WEB_SEARCH_BLOCKS
    with RecordedServer(exchanges) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="unused", max_retries=0)
        raw = client.messages.with_raw_response.create(**body).http_response.json()  # type: ignore[arg-type]
        assert raw["content"] == expected and raw["stop_reason"] == "end_turn"
        with client.messages.stream(**body) as stream:  # type: ignore[arg-type]
            final = stream.get_final_message()
        assert [b.type for b in final.content] == ["server_tool_use", "web_search_tool_result", "text"]
        tool_use = final.content[0]
        assert tool_use.type == "server_tool_use" and tool_use.input == {"query": "tea price"}
        assert final.content[1].model_dump()["tool_use_id"] == "srvtoolu_1"
        assert final.stop_reason == "end_turn"


def _cloud_span(span_id: str, url: str, answer: str) -> Any:
    """A recorded Anthropic call on Vertex AI or Bedrock: the model in the URL, not the body,
    which has the ``anthropic_version`` the SDK sends."""
    body = {
        "anthropic_version": ANTHROPIC_API_VERSION,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Tea?"}],
    }
    return rec(
        span_id,
        name="chat claude",
        operation="chat",
        provider="aws.bedrock" if "bedrock" in url else "gcp.vertex_ai",
        attributes={
            SPANREEL_REQUEST_URL: url,
            SPANREEL_REQUEST_BODY: json.dumps(body),
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": answer}],
                        "finish_reason": "end_turn",
                    }
                ]
            ),
            ga.GEN_AI_RESPONSE_ID: "msg_" + span_id,
            ga.GEN_AI_USAGE_INPUT_TOKENS: 5,
            ga.GEN_AI_USAGE_OUTPUT_TOKENS: 4,
        },
    )


def test_vertex_ai_and_bedrock_recordings_are_served() -> None:
    """Anthropic calls recorded on Vertex AI (``…:rawPredict``) and Amazon Bedrock (``…/invoke``)
    are served to ``AnthropicVertex`` / ``AnthropicBedrock``, as JSON and as a stream (Bedrock's an
    AWS event stream, decoded by the SDK); the model named in the path is matched, so two models
    asked the same thing each get their own answer. They used to get a 404 ("not an LLM
    endpoint")."""
    sonnet, haiku = "anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
    vertex_model = "claude-sonnet-4@20250514"
    bedrock = "https://bedrock-runtime.us-east-1.amazonaws.com/model/{}/invoke"
    vertex = (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/proj/locations/us-east5/"
        f"publishers/anthropic/models/{vertex_model}:rawPredict"
    )
    spans = [
        _cloud_span("b1", bedrock.format(sonnet), "Yes, sonnet here."),
        _cloud_span("b2", bedrock.format(haiku), "Yes, haiku here."),
        _cloud_span("v1", vertex, "Yes, from Vertex."),
    ]
    exchanges, unservable = exchanges_from_spans(spans)
    assert unservable == [] and [e.model for e in exchanges] == [sonnet, haiku, vertex_model]
    ask: Any = {"max_tokens": 50, "messages": [{"role": "user", "content": "Tea?"}]}
    with RecordedServer(exchanges) as server:
        on_bedrock = anthropic.AnthropicBedrock(
            aws_access_key="AKIDEXAMPLE",
            aws_secret_key="secret",
            aws_region="us-east-1",
            base_url=server.base_url,
            max_retries=0,
        )
        on_vertex = anthropic.AnthropicVertex(
            region="us-east5",
            project_id="proj",
            access_token="token",
            base_url=server.base_url + "/v1",
            max_retries=0,
        )
        for client, model, answer in [
            (on_bedrock, haiku, "Yes, haiku here."),
            (on_bedrock, sonnet, "Yes, sonnet here."),
            (on_vertex, vertex_model, "Yes, from Vertex."),
        ]:
            message = client.messages.create(model=model, **ask)
            assert [b.text for b in message.content if b.type == "text"] == [answer]
            assert message.stop_reason == "end_turn" and message.usage.output_tokens == 4
            with client.messages.stream(model=model, **ask) as stream:
                assert "".join(stream.text_stream) == answer
                assert stream.get_final_message().stop_reason == "end_turn"
        with pytest.raises(anthropic.NotFoundError, match=r"model: recorded .* vs received"):
            on_bedrock.messages.create(model="anthropic.claude-opus-4-v1:0", **ask)
    assert [r.path.rsplit("/", 1)[-1] for r in server.served[:2]] == ["invoke", "invoke-with-response-stream"]


def test_model_edit_of_a_bedrock_call_goes_into_the_path() -> None:
    """``--model`` on a call whose URL names the model (Bedrock, Vertex AI, Gemini) replaces the
    path's model; it used to add a ``model`` key to a body that has none, sent to the old model."""
    sonnet, haiku = "anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"
    bedrock = "https://bedrock-runtime.us-east-1.amazonaws.com/model/{}/invoke"
    recorded = [
        _cloud_span("b1", bedrock.format(sonnet), "Yes, sonnet here."),
        _cloud_span("b2", bedrock.format(haiku), "Yes, haiku here."),
    ]
    env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1"}
    with RecordedServer(exchanges_from_spans(recorded)[0]) as server:
        result = replay_spans(
            recorded[:1],
            edits=ReplayEdits(model=haiku),
            base_url=server.base_url,
            environ=env,
            span_exporter=InMemorySpanExporter(),
            retry=RetryPolicy(0),
        )
    [call] = result.calls
    assert call.status == "ok", call
    assert call.replay is not None and call.replay.output == "Yes, haiku here."
    [served] = server.served
    assert served.path == f"/model/{haiku}/invoke" and served.status == 200


# --------------------------------------------------------------------------- the CLI


def test_cli_serves_a_session_until_sigterm(recording: Recording, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spanreel",
            "serve-recorded",
            "--session",
            SESSION_ID,
            "--db",
            str(recording.db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        openai_line = proc.stdout.readline().strip()
        anthropic_line = proc.stdout.readline().strip()
        assert openai_line.startswith("OPENAI_BASE_URL=http://127.0.0.1:"), openai_line
        assert anthropic_line == "ANTHROPIC_BASE_URL=" + openai_line.split("=", 1)[1].removesuffix("/v1")
        client = openai.OpenAI(base_url=openai_line.split("=", 1)[1], api_key="unused", max_retries=0)
        judge = recording.calls[6]
        answer = client.chat.completions.create(**judge.kwargs)
        assert without_volatile(answer.model_dump()) == without_volatile(judge.response)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "new"}])
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"serving 7 recorded LLM call(s) from session {SESSION_ID!r}" in err
    assert "200 POST /v1/chat/completions <- #7 chat fake-judge" in err
    assert "404 POST /v1/chat/completions: no recorded match; closest recorded request" in err
    assert "stopped: 2 request(s), 1 without a recorded match" in err
    assert "Traceback" not in err


def test_cli_source_errors_are_one_line(recording: Recording, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["serve-recorded", "--db", str(recording.db)])
    assert res.exit_code == 2 and "give exactly one source: TRACE_ID, --session, --from-file" in res.output
    res = runner.invoke(
        main, ["serve-recorded", recording.trace_id, "--session", "x", "--db", str(recording.db)]
    )
    assert res.exit_code == 2 and "(got TRACE_ID, --session)" in res.output
    res = runner.invoke(main, ["serve-recorded", "ffffffffffff", "--db", str(recording.db)])
    assert (
        res.exit_code == 1
        and res.output.strip()
        == f"Error: trace ffffffffffff not found in {recording.db} (`spanreel traces` lists them)"
    )
    res = runner.invoke(main, ["serve-recorded", "--session", "nope", "--db", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 1 and "no spanreel database at" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = runner.invoke(main, ["serve-recorded", "--from-file", str(bad)])
    assert res.exit_code == 1 and "not OTLP trace data" in res.output and "Traceback" not in res.output


def test_trace_source_has_only_that_trace(recording: Recording) -> None:
    exchanges, _ = exchanges_from_spans(load_trace(recording.trace_ids[1], recording.db))
    assert [e.span.name for e in exchanges] == ["chat fake-judge"]
    assert os.path.exists(recording.db)
