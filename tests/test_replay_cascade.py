"""Pure parts of replay: dependency detection, output substitution (OpenAI and Anthropic shapes,
tool-call divergence), edits, peer request rebuilding, host safety, retries, similarity/verdict."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from test_replay_support import rec

from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_URL
from spanreel.replay._cascade import find_dependencies, waves
from spanreel.replay._edits import EditError, ReplayEdits, edit_body, parse_set
from spanreel.replay._messages import (
    ApiShape,
    ModelOutput,
    ToolCall,
    assistant_turns,
    detect_shape,
    substitute_turn,
)
from spanreel.replay._peer import rebuild_request
from spanreel.replay._plan import plan_calls
from spanreel.replay._report import judge, output_diff, similarity
from spanreel.replay._result import CallResult, CallSide, ReplayResult
from spanreel.replay._safety import RetryPolicy, UnsafeHostError, check_url, parse_retry_after
from spanreel.replay._tree import build_tree

URL = "https://api.openai.com/v1/chat/completions"


def _out(text: str | None = None, *calls: tuple[str, str, Any]) -> str:
    parts: list[dict[str, Any]] = []
    if text is not None:
        parts.append({"type": "text", "content": text})
    parts += [{"type": "tool_call", "id": i, "name": n, "arguments": a} for i, n, a in calls]
    return json.dumps([{"role": "assistant", "parts": parts, "finish_reason": "stop"}])


def _llm(span_id: str, start_ms: float, body: dict[str, Any], output: str) -> Any:
    return rec(
        span_id,
        "a0",
        name="chat gpt-4o-mini",
        start_ms=start_ms,
        scope_name="spanreel",
        operation="chat",
        provider="openai",
        attributes={
            SPANREEL_REQUEST_BODY: json.dumps(body),
            SPANREEL_REQUEST_URL: URL,
            "gen_ai.output.messages": output,
        },
    )


SYSTEM = {"role": "system", "content": "be nice"}
USER = {"role": "user", "content": "weather?"}
TOOL_CALL_MSG = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
        }
    ],
}


def _agent_calls() -> list[Any]:
    spans = [
        rec("a0", name="agent"),
        _llm(
            "b1",
            1,
            {"model": "m", "messages": [SYSTEM, USER]},
            _out(None, ("call_1", "weather", {"city": "Paris"})),
        ),
        _llm(
            "b2",
            2,
            {
                "model": "m",
                "messages": [
                    SYSTEM,
                    USER,
                    TOOL_CALL_MSG,
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                ],
            },
            _out("It is sunny."),
        ),
        _llm(
            "b3",
            3,
            {
                "model": "m",
                "messages": [
                    SYSTEM,
                    USER,
                    TOOL_CALL_MSG,
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                    {"role": "assistant", "content": "It  is sunny.\n"},  # whitespace differs: still a match
                    {"role": "user", "content": "thanks"},
                ],
            },
            _out("You're welcome."),
        ),
        _llm(
            "b4",
            4,
            {"model": "m", "messages": [{"role": "user", "content": "unrelated"}]},
            _out("It is sunny."),
        ),
    ]
    return plan_calls(build_tree(spans))


def test_dependencies_by_tool_call_and_text_and_waves() -> None:
    calls = _agent_calls()
    deps = find_dependencies(calls)
    assert [(d.message_index, d.source) for d in deps[2]] == [(2, 1)]
    assert [(d.message_index, d.source) for d in deps[3]] == [(2, 1), (4, 2)]
    assert 1 not in deps and 4 not in deps  # call 4 *produced* a known text, it does not contain it
    assert waves(calls, deps) == {1: 1, 2: 2, 3: 3, 4: 1}
    assert [c.path for c in calls] == ["agent/chat gpt-4o-mini"] * 4


def test_latest_identical_output_is_the_source() -> None:
    spans = [
        rec("a0", name="agent"),
        _llm("b1", 1, {"model": "m", "messages": [USER]}, _out("OK")),
        _llm("b2", 2, {"model": "m", "messages": [USER]}, _out("OK")),
        _llm("b3", 3, {"model": "m", "messages": [USER, {"role": "assistant", "content": "OK"}]}, _out("x")),
    ]
    deps = find_dependencies(plan_calls(build_tree(spans)))
    assert [d.source for d in deps[3]] == [2]


def _tool_body() -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            SYSTEM,
            USER,
            json.loads(json.dumps(TOOL_CALL_MSG)),
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "and?"},
        ],
    }


RECORDED = ModelOutput(None, (ToolCall("call_1", "weather", {"city": "Paris"}),))


def test_substitute_same_tool_new_id_reuses_result() -> None:
    body = _tool_body()
    new = ModelOutput(None, (ToolCall("call_9", "weather", {"city": "Paris"}),))
    sub = substitute_turn(body, ApiShape.OPENAI_CHAT, 2, RECORDED, new)
    assert sub.applied and sub.divergences == []
    assert body["messages"][2]["tool_calls"][0]["id"] == "call_9"
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}
    assert body["messages"][4] == {"role": "user", "content": "and?"}


def test_substitute_divergent_tool_call_reuses_recorded_result_or_hook() -> None:
    new = ModelOutput("Let me check.", (ToolCall("call_9", "weather", {"city": "Rome"}),))
    body = _tool_body()
    sub = substitute_turn(body, ApiShape.OPENAI_CHAT, 2, RECORDED, new)
    assert sub.applied and len(sub.divergences) == 1
    assert 'weather({"city":"Rome"})' in sub.divergences[0] and "Paris" in sub.divergences[0]
    assert body["messages"][2]["content"] == "Let me check."
    assert json.loads(body["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {"city": "Rome"}
    assert body["messages"][3]["content"] == "sunny"  # recorded result reused

    seen: list[Any] = []

    def tool_hook(call: ToolCall, recorded: str | None) -> str:
        seen.append((call.name, call.arguments, recorded))
        return "rainy in " + call.arguments["city"]

    body = _tool_body()
    substitute_turn(body, ApiShape.OPENAI_CHAT, 2, RECORDED, new, tool_hook)
    assert seen == [("weather", {"city": "Rome"}, "sunny")]
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_9", "content": "rainy in Rome"}


def test_substitute_more_fewer_and_no_tool_calls() -> None:
    two = ModelOutput(None, (ToolCall("n1", "weather", {"city": "Paris"}), ToolCall("n2", "time", {})))
    body = _tool_body()
    sub = substitute_turn(body, ApiShape.OPENAI_CHAT, 2, RECORDED, two)
    assert [m.get("tool_call_id") for m in body["messages"][3:5]] == ["n1", "n2"]
    assert "no recorded result" in body["messages"][4]["content"] and len(sub.divergences) == 1

    body = _tool_body()
    recorded_two = ModelOutput(None, (ToolCall("call_1", "weather", {}), ToolCall("call_2", "time", {})))
    body["messages"].insert(4, {"role": "tool", "tool_call_id": "call_2", "content": "noon"})
    sub = substitute_turn(
        body, ApiShape.OPENAI_CHAT, 2, recorded_two, ModelOutput(None, (ToolCall("x", "weather", {}),))
    )
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert any("dropped" in d for d in sub.divergences)

    body = _tool_body()
    before = json.dumps(body)
    sub = substitute_turn(body, ApiShape.OPENAI_CHAT, 2, RECORDED, ModelOutput("No tool needed."))
    assert not sub.applied and json.dumps(body) == before and "kept" in sub.divergences[0]


def test_anthropic_shape_turns_and_substitution() -> None:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4",
        "max_tokens": 100,
        "system": "be nice",
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Paris"}}
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny"}]},
        ],
    }
    assert detect_shape(body, "https://api.anthropic.com/v1/messages") is ApiShape.ANTHROPIC_MESSAGES
    assert detect_shape({"messages": []}, URL) is ApiShape.OPENAI_CHAT
    assert detect_shape({"input": "x"}, URL) is None
    (turn,) = assistant_turns(body, ApiShape.ANTHROPIC_MESSAGES)
    recorded = ModelOutput(None, (ToolCall("tu_1", "weather", {"city": "Paris"}),))
    assert turn.message_index == 1 and turn.output == recorded
    new = ModelOutput("Checking.", (ToolCall("tu_9", "weather", {"city": "Oslo"}),))
    sub = substitute_turn(body, ApiShape.ANTHROPIC_MESSAGES, 1, recorded, new)
    assert sub.applied and len(sub.divergences) == 1
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "tu_9", "name": "weather", "input": {"city": "Oslo"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "tu_9", "content": "sunny"}
    ]


def test_edits_order_set_system_append_only_and_hook() -> None:
    assert parse_set("temperature=0") == ("temperature", 0)
    assert parse_set('stop=["\\n"]') == ("stop", ["\n"])
    assert parse_set("user=alice") == ("user", "alice")
    assert parse_set("metadata.tag=x") == ("metadata.tag", "x")
    for bad in ("novalue", "=1", "a..b=1"):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_set(bad)

    def hook(body: dict[str, Any]) -> None:
        body["seen_model"] = body["model"]

    edits = ReplayEdits(
        model="m2",
        params=(("temperature", 0), ("metadata.tag", "x")),
        system_append="Be brief.",
        hook=hook,
        only=("agent/*",),
    )
    body = edit_body({"model": "m", "messages": [SYSTEM, USER]}, edits)
    assert body["model"] == body["seen_model"] == "m2" and body["temperature"] == 0
    assert body["metadata"] == {"tag": "x"}
    assert body["messages"][0] == {"role": "system", "content": "be nice\n\nBe brief."}
    no_system = edit_body({"messages": [USER]}, ReplayEdits(system_append="Hi."))
    assert no_system["messages"][0] == {"role": "system", "content": "Hi."}
    anthropic = edit_body(
        {"model": "claude-x", "system": "a", "messages": []}, ReplayEdits(system_append="b")
    )
    assert anthropic["system"] == "a\n\nb"
    assert edits.applies_to("chat gpt", "agent/step/chat gpt") and not edits.applies_to(
        "chat gpt", "other/chat gpt"
    )
    assert ReplayEdits(only=("chat *",)).applies_to("chat gpt", "x/chat gpt")

    replaced = edit_body({"messages": [USER]}, ReplayEdits(hook=lambda b: {"model": "x", "messages": []}))
    assert replaced == {"model": "x", "messages": []}
    with pytest.raises(EditError, match="returned list"):
        edit_body({"messages": []}, ReplayEdits(hook=lambda b: [], hook_name="m:f"))  # type: ignore[arg-type,return-value]
    with pytest.raises(EditError, match="hook m:f failed: KeyError"):
        edit_body({"messages": []}, ReplayEdits(hook=lambda b: b["nope"], hook_name="m:f"))
    with pytest.raises(EditError, match="not an object"):
        edit_body({"metadata": 3}, ReplayEdits(params=(("metadata.tag", 1),)))


def test_rebuild_requests_from_peer_conventions() -> None:
    semconv = {
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
                {
                    "role": "assistant",
                    "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}}],
                },
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "r"}]},
            ]
        ),
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "sys"}]),
        "gen_ai.request.temperature": 0.5,
        "server.address": "127.0.0.1",
        "server.port": 8000,
    }
    rebuilt = rebuild_request(semconv, "openai", "gpt-4o-mini")
    assert not isinstance(rebuilt, str)
    assert rebuilt.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert rebuilt.body == {
        "model": "gpt-4o-mini",
        "temperature": 0.5,
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
    }
    # what the recording lacks is named: the tools of a conversation that calls them, and
    # Anthropic's max_tokens (a guess, as Anthropic needs one)
    assert rebuilt.gaps == ("tool definitions",)
    anthropic = rebuild_request(semconv, "anthropic", "claude-x")
    assert not isinstance(anthropic, str)
    assert anthropic.body["system"] == "sys" and anthropic.body["max_tokens"] == 1024
    assert anthropic.body["messages"][2]["content"][0]["type"] == "tool_result"
    assert anthropic.gaps == ("tool definitions", "max_tokens (1024 sent: Anthropic needs one)")
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    complete = semconv | {"gen_ai.tool.definitions": json.dumps(tools), "gen_ai.request.max_tokens": 9}
    assert rebuild_request(complete, "anthropic", "claude-x").gaps == ()  # type: ignore[union-attr]

    oi = {
        "input.value": json.dumps({"messages": [USER], "stream": True}),
        "input.mime_type": "application/json",
    }
    rebuilt = rebuild_request(oi, "openai", "gpt-4o")
    assert not isinstance(rebuilt, str)
    assert rebuilt.body == {"messages": [USER], "model": "gpt-4o"} and rebuilt.url == URL

    indexed = {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "yo"}
    rebuilt = rebuild_request(indexed, "openai", "gpt-4o")
    assert not isinstance(rebuilt, str) and rebuilt.body["messages"] == [{"role": "user", "content": "yo"}]

    assert "model was not recorded" in str(rebuild_request({}, "openai", None))
    assert "probably off" in str(rebuild_request({}, "openai", "gpt-4o"))
    image = {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "blob", "content": "x"}]}])
    }
    assert "'blob' part" in str(rebuild_request(image, "openai", "m"))
    assert "no known API host" in str(rebuild_request(semconv | {"server.address": ""}, "acme", "m"))


def test_rebuild_requests_from_indexed_and_mlflow_messages() -> None:
    """OpenLLMetry ≤ 0.54, OpenInference and MLflow record the conversation in their own shapes;
    the collector's normalise_messages reads them and replay turns them into a request body."""
    call = {"name": "weather", "arguments": '{"city": "Oslo"}'}
    llmetry = {
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "weather?",
        "gen_ai.prompt.1.role": "assistant",
        "gen_ai.prompt.1.tool_calls.0.id": "c1",
        **{f"gen_ai.prompt.1.tool_calls.0.{k}": v for k, v in call.items()},
        "gen_ai.prompt.2.role": "tool",
        "gen_ai.prompt.2.tool_call_id": "c1",
        "gen_ai.prompt.2.content": "sunny",
    }
    openinference = {
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "weather?",
        "llm.input_messages.1.message.role": "assistant",
        "llm.input_messages.1.message.tool_calls.0.tool_call.id": "c1",
        **{f"llm.input_messages.1.message.tool_calls.0.tool_call.function.{k}": v for k, v in call.items()},
        "llm.input_messages.2.message.role": "tool",
        "llm.input_messages.2.message.tool_call_id": "c1",
        "llm.input_messages.2.message.content": "sunny",
    }
    openai_messages = [
        USER,
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": call}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    mlflow = {
        "mlflow.spanType": json.dumps("CHAT_MODEL"),
        "mlflow.spanInputs": json.dumps({"messages": openai_messages}),
    }
    expected = [USER, {**openai_messages[1], "content": None}, openai_messages[2]]
    for attrs, source in (
        (llmetry, "gen_ai.prompt.*"),
        (openinference, "llm.input_messages.*"),
        (mlflow, "mlflow.spanInputs"),
    ):
        rebuilt = rebuild_request(attrs | {"gen_ai.request.temperature": 0}, "openai", "gpt-4o")
        assert not isinstance(rebuilt, str), rebuilt
        assert rebuilt.source == source and rebuilt.url == URL
        assert rebuilt.body == {"model": "gpt-4o", "temperature": 0, "messages": expected}
    anthropic = rebuild_request(llmetry, "anthropic", "claude-x")
    assert not isinstance(anthropic, str), anthropic
    assert anthropic.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Oslo"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}]},
    ]


def test_plan_marks_peer_calls_rebuilt_and_skips_wrappers() -> None:
    peer_attrs = {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
    }
    spans = [
        rec("a0", name="root"),
        rec(
            "p1",
            "a0",
            name="chat gpt-4o",
            scope_name="opentelemetry.instrumentation.openai_v2",
            operation="chat",
            provider="openai",
            request_model="gpt-4o",
            attributes=peer_attrs,
            start_ms=1,
        ),
        # a peer span wrapping spanreel's own span: the inner one is the call
        rec(
            "p2",
            "a0",
            name="chat outer",
            scope_name="openinference",
            operation="chat",
            provider="openai",
            request_model="gpt-4o",
            attributes=peer_attrs,
            start_ms=2,
        ),
        _llm("s1", 3, {"model": "gpt-4o", "messages": [USER]}, _out("x")),
    ]
    spans[3] = rec(
        "s1",
        "p2",
        name="chat gpt-4o",
        start_ms=3,
        scope_name="spanreel",
        operation="chat",
        provider="openai",
        attributes=dict(spans[3].attributes),
    )
    calls = plan_calls(build_tree(spans))
    assert [c.span.span_id[-2:] for c in calls] == ["p1", "s1"]
    assert calls[0].request is not None and calls[0].request.rebuilt_from == "gen_ai.input.messages"
    assert calls[1].request is not None and calls[1].request.rebuilt_from is None


def _resolver(mapping: dict[str, list[str]]) -> Any:
    return lambda host, port: mapping.get(host, [])


def test_check_url_refuses_link_local_and_metadata_unless_allowed() -> None:
    resolve = _resolver(
        {"evil.example": ["93.184.216.34", "169.254.169.254"], "ok.example": ["93.184.216.34"]}
    )
    check_url("https://api.openai.com/v1/x", resolve=_resolver({}))
    check_url("http://127.0.0.1:8000/v1", resolve=resolve)
    check_url("https://ok.example/", resolve=resolve)
    for url, why in [
        ("http://169.254.169.254/latest/meta-data", "instance-metadata"),
        ("http://169.254.10.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00:ec2::254]/", "instance-metadata"),
        ("http://[::ffff:169.254.169.254]/", "instance-metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata host name"),
        ("http://METADATA.google.internal./", "metadata host name"),
        ("http://100.100.100.200/", "instance-metadata"),
        ("https://evil.example/v1", "resolves to 169.254.169.254"),
    ]:
        with pytest.raises(UnsafeHostError, match=why) as info:
            check_url(url, resolve=resolve)
        assert "--allow-host" in str(info.value)
    check_url("https://evil.example/v1", ["EVIL.example"], resolve=resolve)
    check_url("http://169.254.169.254/", ["169.254.169.254"], resolve=resolve)


def test_retry_after_and_backoff() -> None:
    now = dt.datetime(2015, 10, 21, 7, 27, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(max_retries=3, base_delay=0.5, max_delay=10)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert policy.delay(1, retry_after=3) == 3 and policy.delay(1, retry_after=3600) == 10
    assert policy.retryable_status(429) and policy.retryable_status(503) and not policy.retryable_status(400)


def _result(original: str, new: str | None, status: str = "ok") -> ReplayResult:
    def side(text: str | None, st: str = "ok") -> CallSide:
        return CallSide("s", "m", text, 1, 2, 3.0, ("stop",), st, "boom" if st == "error" else None)

    call = CallResult(1, "chat", side(original), side(new, status))
    return ReplayResult("t" * 32, "r" * 32, "replay x", (call,), ReplayEdits(), None, None)


def test_similarity_diff_and_verdict() -> None:
    assert similarity("a b c", "a  b\nc") == 1.0
    assert similarity("a b c d", "a b x d") == 0.75
    assert similarity(None, "x") is None
    assert output_diff("same", "same") is None
    diff = output_diff("one\ntwo", "one\nthree")
    assert diff is not None and "-two" in diff and "+three" in diff and diff.startswith("--- original")

    changed = _result("a b c d", "a b x d")
    assert not judge(changed, "error").failed
    verdict = judge(changed, "changed")
    assert verdict.failed and "similarity 0.75 < 1" in verdict.reasons[0]
    assert not judge(changed, "changed", similarity_threshold=0.7).failed
    errored = _result("a", None, "error")
    assert judge(errored, "error").failed and judge(errored, "changed").failed
    assert not judge(errored, "never").failed
