from __future__ import annotations

import json

import pytest
from test_replay_support import rec

from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_METHOD, SPANREEL_REQUEST_URL
from spanreel.replay import ReplayEdits, SpanRecord, build_tree, plan_calls, rewrite_url
from spanreel.replay._edits import url_with_model
from spanreel.replay._plan import CAPTURE_OFF_REASON, EditError, RecordedRequest, apply_edits

OPENAI = "https://api.openai.com/v1/chat/completions"


@pytest.mark.parametrize(
    ("recorded", "base", "expected"),
    [
        (OPENAI, None, OPENAI),
        (OPENAI, "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"),
        (OPENAI, "http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
        (OPENAI, "http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"),
        (OPENAI, "http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/chat/completions"),
        (OPENAI, "https://gw.example/openai/v1", "https://gw.example/openai/v1/chat/completions"),
        (OPENAI, "https://gw.example/openai", "https://gw.example/openai/v1/chat/completions"),
        # the longest seam overlap wins
        ("https://h/v1/chat/completions", "http://p/x/v1/chat", "http://p/x/v1/chat/completions"),
        # query string kept as recorded
        (
            "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21",
            "http://127.0.0.1:9/openai",
            "http://127.0.0.1:9/openai/deployments/d/chat/completions?api-version=2024-10-21",
        ),
        (
            "https://api.anthropic.com/v1/messages",
            "http://localhost:4000",
            "http://localhost:4000/v1/messages",
        ),
    ],
)
def test_rewrite_url(recorded: str, base: str | None, expected: str) -> None:
    assert rewrite_url(recorded, base) == expected


@pytest.mark.parametrize("base", ["127.0.0.1:8000", "ftp://x/v1", "/v1", "http://"])
def test_rewrite_url_rejects_non_http_base(base: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        rewrite_url(OPENAI, base)


def _req(body: dict[str, object]) -> RecordedRequest:
    text = json.dumps(body, indent=1)  # not compact: verbatim must keep these bytes
    return RecordedRequest("POST", OPENAI, text, body)


CHAT = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "second system stays"},
    ],
    "temperature": 0.2,
}


def test_no_edits_sends_recorded_bytes_verbatim() -> None:
    request = _req(CHAT)
    assert apply_edits(request, ReplayEdits()) == request.body.encode()


def test_model_and_system_edit_replaces_first_system_message_only() -> None:
    body = json.loads(apply_edits(_req(CHAT), ReplayEdits(model="gpt-4.1", system="Be verbose.")))
    assert body["model"] == "gpt-4.1"
    assert body["messages"] == [
        {"role": "system", "content": "Be verbose."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "second system stays"},
    ]
    assert body["temperature"] == 0.2
    assert CHAT["messages"][0]["content"] == "You are terse."  # type: ignore[index]


def test_system_edit_inserts_a_system_message_when_absent() -> None:
    body = json.loads(
        apply_edits(
            _req({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}), ReplayEdits(system="S")
        )
    )
    assert body["messages"][0] == {"role": "system", "content": "S"}
    assert len(body["messages"]) == 2


def test_system_edit_replaces_developer_message() -> None:
    msgs = [
        {"role": "developer", "content": [{"type": "text", "text": "old"}]},
        {"role": "user", "content": "u"},
    ]
    body = json.loads(apply_edits(_req({"model": "o3", "messages": msgs}), ReplayEdits(system="new")))
    assert body["messages"][0] == {"role": "developer", "content": "new"}


def test_system_edit_anthropic_top_level() -> None:
    anth = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "u"}]}
    body = json.loads(apply_edits(_req(anth), ReplayEdits(system="S"), provider="anthropic"))
    assert body["system"] == "S" and body["messages"] == anth["messages"]
    body = json.loads(apply_edits(_req({**anth, "system": "old"}), ReplayEdits(system="S")))
    assert body["system"] == "S"


def test_system_edit_responses_and_gemini_shapes() -> None:
    body = json.loads(apply_edits(_req({"model": "m", "input": "hi"}), ReplayEdits(system="S")))
    assert body["instructions"] == "S"
    body = json.loads(apply_edits(_req({"contents": [{"parts": [{"text": "hi"}]}]}), ReplayEdits(system="S")))
    assert body["systemInstruction"] == {"parts": [{"text": "S"}]}


def test_system_edit_on_unknown_shape_is_an_error() -> None:
    with pytest.raises(EditError):
        apply_edits(_req({"prompt": "x"}), ReplayEdits(system="S"))
    with pytest.raises(EditError):
        apply_edits(RecordedRequest("POST", OPENAI, "[1]", [1]), ReplayEdits(model="m"))


def _llm(
    span_id: str,
    parent: str | None,
    start_ms: float,
    *,
    body: bool = True,
    scope_name: str = "spanreel",
    operation: str = "chat",
    attributes: dict[str, object] | None = None,
) -> SpanRecord:
    attrs: dict[str, object] = {}
    if body:
        attrs = {
            SPANREEL_REQUEST_METHOD: "POST",
            SPANREEL_REQUEST_URL: OPENAI,
            SPANREEL_REQUEST_BODY: json.dumps({"model": "m", "messages": []}),
        }
    attrs.update(attributes or {})
    return rec(
        span_id,
        parent,
        start_ms=start_ms,
        name="chat m",
        kind="CLIENT",
        scope_name=scope_name,
        operation=operation,
        attributes=attrs,
    )


def test_plan_orders_calls_and_explains_what_cannot_be_replayed() -> None:
    spans = [
        rec("a1", start_ms=0, dur_ms=500),
        _llm("c3", "a1", 300),
        _llm("c1", "a1", 100),
        _llm("c2", "a1", 200, body=False),  # spanreel span, capture off
        _llm("c4", "a1", 400, body=False, scope_name="opentelemetry.instrumentation.openai_v2"),
        _llm("t1", "a1", 50, body=False, operation="execute_tool"),  # not an LLM call
        rec("h1", "c1", start_ms=101, name="POST", kind="CLIENT"),  # the httpx span: not an LLM call
        _llm("c5", "a1", 450, attributes={SPANREEL_REQUEST_BODY: "not json"}),
        _llm("c6", "a1", 460, attributes={SPANREEL_REQUEST_URL: "/relative"}),
    ]
    plan = plan_calls(build_tree(spans))
    assert [(c.index, c.span.span_id[-2:], c.replayable) for c in plan] == [
        (1, "c1", True),
        (2, "c2", False),
        (3, "c3", True),
        (4, "c4", False),
        (5, "c5", False),
        (6, "c6", False),
    ]
    assert plan[1].skip_reason == CAPTURE_OFF_REASON
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in CAPTURE_OFF_REASON
    assert "openai_v2" in (plan[3].skip_reason or "")
    assert "not JSON" in (plan[4].skip_reason or "")
    assert "URL" in (plan[5].skip_reason or "")
    first = plan[0].request
    assert first is not None and first.method == "POST" and first.url == OPENAI
    assert first.json_body == {"model": "m", "messages": []}


def test_the_attempts_of_a_call_the_app_retried_are_one_call() -> None:
    """The SDK retried a call (500, then 200): the trace holds a GenAI span per attempt, the
    retries with ``http.request.resend_count``. They were planned as separate calls, each replayed;
    now they are one call compared with its last attempt (what the app got), timed from the
    first attempt's start. The same request sent again as a new call (no resend count) stays a
    call of its own."""
    from spanreel.replay._result import original_side

    retry = {"http.request.resend_count": 1}
    spans = [
        rec("a1", start_ms=0, dur_ms=900),
        _llm("c1", "a1", 100, attributes={"error.type": "500"}),
        _llm("c2", "a1", 300, attributes=retry),  # the SDK's retry of c1
        _llm("c3", "a1", 500),  # the app asks again: a new call
        _llm("c4", "a1", 700, attributes={SPANREEL_REQUEST_BODY: json.dumps({"model": "n"}), **retry}),
    ]
    plan = plan_calls(build_tree(spans))
    assert [(c.index, c.span.span_id[-2:], c.attempts) for c in plan] == [
        (1, "c2", 2),
        (2, "c3", 1),
        (3, "c4", 1),
    ]
    assert plan[0].started_ns == spans[1].start_time_ns
    whole = (spans[2].end_time_ns - spans[1].start_time_ns) / 1e6
    assert original_side(plan[0].span, plan[0].started_ns).latency_ms == whole


def test_wrapper_genai_span_around_recorded_call_is_not_listed() -> None:
    spans = [
        _llm("w1", None, 0, body=False, scope_name="com.anthropic.sdk.python"),
        _llm("c1", "w1", 1),
    ]
    plan = plan_calls(build_tree(spans))
    assert [c.span.span_id[-2:] for c in plan] == ["c1"]


def test_output_text_from_semconv_messages() -> None:
    from spanreel.replay._execute import output_text

    text_parts = [{"type": "text", "content": "Hello"}, {"type": "text", "content": "there"}]
    call = {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}
    messages = [
        {"role": "assistant", "parts": text_parts, "finish_reason": "stop"},
        {"role": "assistant", "parts": [call], "finish_reason": "tool_calls"},
    ]
    assert output_text(json.dumps(messages)) == 'Hello\nthere\n---\nget_weather({"city": "Paris"})'
    assert output_text(messages[:1]) == "Hello\nthere"
    assert output_text(None) is None and output_text("not json") is None and output_text("{}") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent?alt=sse",
            "https://generativelanguage.googleapis.com/v1beta/models/NEW@1:generateContent?alt=sse",
        ),
        (
            "https://x/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4@2025:streamRawPredict",
            "https://x/v1/projects/p/locations/l/publishers/anthropic/models/NEW@1:streamRawPredict",
        ),
        (
            "https://b/model/anthropic.claude-v1:0/invoke-with-response-stream",
            "https://b/model/NEW@1/invoke-with-response-stream",
        ),
        ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/chat/completions"),
        (
            "https://r.openai.azure.com/openai/deployments/dep/chat/completions",
            "https://r.openai.azure.com/openai/deployments/dep/chat/completions",
        ),
    ],
)
def test_model_edit_of_a_url_that_names_the_model(url: str, expected: str) -> None:
    """The URL's model is replaced for the APIs that name it in the path, never elsewhere (an
    Azure deployment is not a model); the body then gets no ``model`` key."""
    assert url_with_model(url, "NEW@1") == expected
    body = json.loads(
        apply_edits(
            RecordedRequest("POST", url, json.dumps({"messages": []}), {"messages": []}),
            ReplayEdits(model="NEW@1"),
        )
    )
    assert ("model" in body) is (url == expected)


def test_system_append_responses_string_and_gemini_parts() -> None:
    body = json.loads(
        apply_edits(
            _req({"model": "m", "input": "hi", "instructions": "Old."}), ReplayEdits(system_append="S")
        )
    )
    assert body["instructions"] == "Old.\n\nS"
    gemini = {
        "contents": [],
        "systemInstruction": {"role": "system", "parts": [{"text": "a"}, {"text": "b"}]},
    }
    body = json.loads(apply_edits(_req(gemini), ReplayEdits(system_append="S")))
    assert body["systemInstruction"] == {
        "role": "system",
        "parts": [{"text": "a"}, {"text": "b"}, {"text": "S"}],
    }
    body = json.loads(apply_edits(_req({"contents": []}), ReplayEdits(system_append="S")))
    assert body["systemInstruction"] == {"parts": [{"text": "S"}]}
    # The field name spelling (the REST API takes both) is kept, not doubled by the JSON name.
    snake = {"contents": [], "system_instruction": {"parts": [{"text": "a"}]}}
    body = json.loads(apply_edits(_req(snake), ReplayEdits(system_append="S")))
    assert body == {"contents": [], "system_instruction": {"parts": [{"text": "a"}, {"text": "S"}]}}
    body = json.loads(apply_edits(_req(snake), ReplayEdits(system="New.")))
    assert body == {"contents": [], "system_instruction": {"parts": [{"text": "New."}]}}
