"""A streamed call the provider answered with HTTP 200 and then failed with an error event in its
stream (Anthropic's ``event: error``, an OpenAI-compatible server's ``data: {"error": …}``, as vLLM
and OpenRouter send): recorded through the real ``openai`` and ``anthropic`` SDKs from a local
server into a collector, ``serve-recorded`` serves it as it came — HTTP 200, an event stream with
the output recorded before the error, then the error event, and no end — so the SDK raises what it
raised when recording (it used to get a JSON HTTP 500, or a cut-off stream and no error)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from conftest import CollectorProcess, recording_into
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_instr_faults import Canned
from test_replay_support import rec, wait_for_failed_calls

import spanreel
from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_URL, SPANREEL_RESPONSE_ERROR_BODY
from spanreel.replay import load_session
from spanreel.replay._messages import ApiShape
from spanreel.replay._recorded import RecordedExchange, exchanges_from_spans, recorded_error_body
from spanreel.replay._serve import RecordedServer

SESSION = "stream-errors"
OPENAI_ERROR = {
    "error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [],
    "stop_reason": None,
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 1},
}


def _event(payload: Any, event: str | None = None) -> bytes:
    return ((f"event: {event}\n" if event else "") + f"data: {json.dumps(payload)}\n\n").encode()


def _chunk(delta: dict[str, Any]) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    return _event(
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
         "choices": [choice]}
    )  # fmt: skip


def _anthropic_text(text: str) -> list[bytes]:
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return [_event(block, block["type"]), _event(delta, delta["type"])]


def _openai(content: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}


def _anthropic(content: str) -> dict[str, Any]:
    return {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": content}]}


START = _event({"type": "message_start", "message": MESSAGE}, "message_start")
#: (request, what the server streams) per call, in recording order; the fifth goes through the
#: ``anthropic`` SDK's own call span (spanreel adopts it).
CALLS: list[tuple[dict[str, Any], list[bytes]]] = [
    (_openai("tabs?"), [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Tabs, as"}),
                        _chunk({"content": " always."}), _event(OPENAI_ERROR)]),
    (_openai("spaces?"), [_event(OPENAI_ERROR)]),
    (_anthropic("tabs?"), [START, *_anthropic_text("Tabs, as always."), _event(OVERLOADED, "error")]),
    (_anthropic("spaces?"), [START, _event(OVERLOADED, "error")]),
    (_anthropic("both?"), [START, *_anthropic_text("Both."), _event(OVERLOADED, "error")]),
]  # fmt: skip


@dataclass
class Failed:
    """A call as the app saw it when recording: the text it got, then the exception."""

    kwargs: dict[str, Any]
    text: str
    error: openai.APIError | anthropic.APIStatusError


def _text(event: Any) -> str:
    if isinstance(event, openai.types.chat.ChatCompletionChunk):
        return "".join(c.delta.content or "" for c in event.choices)
    delta = getattr(event, "delta", None)
    return str(getattr(delta, "text", "") or "") if event.type == "content_block_delta" else ""


def _call(client: openai.OpenAI | anthropic.Anthropic, kwargs: dict[str, Any]) -> Failed:
    """Stream the call and read it to its error: the text before it and the exception raised."""
    create: Callable[..., Iterable[Any]] = (
        client.chat.completions.create if isinstance(client, openai.OpenAI) else client.messages.create
    )
    text: list[str] = []
    with pytest.raises((openai.APIError, anthropic.APIStatusError)) as raised:
        for event in create(**kwargs, stream=True):
            text.append(_text(event))
    return Failed(kwargs, "".join(text), raised.value)


@pytest.fixture(scope="module")
def recorded(collector: CollectorProcess) -> tuple[list[RecordedExchange], list[Failed]]:
    canned = Canned()
    failed: list[Failed] = []
    try:
        with recording_into(collector, "stream-error-app") as provider:
            oa = openai.OpenAI(base_url=canned.base_url, api_key="sk-rec", max_retries=0)
            root = canned.base_url.removesuffix("/v1")
            an = anthropic.Anthropic(base_url=root, api_key="sk-ant-rec", max_retries=0)
            an_sdk_span = anthropic.Anthropic(
                base_url=root,
                api_key="sk-ant-rec",
                max_retries=0,
                open_telemetry={"tracer_provider": provider},
            )
            clients = [oa, oa, an, an, an_sdk_span]
            with spanreel.session("stream-errors", SESSION):
                for client, (kwargs, events) in zip(clients, CALLS, strict=True):
                    canned.set(events, "text/event-stream")
                    failed.append(_call(client, kwargs))
    finally:
        canned.httpd.shutdown()
        canned.httpd.server_close()
    wait_for_failed_calls(collector.db, SESSION, len(CALLS))
    exchanges, unservable = exchanges_from_spans(load_session(SESSION, collector.db))
    assert unservable == [] and len(exchanges) == len(CALLS)
    return exchanges, failed


def _recorded_text(ex: RecordedExchange) -> str:
    return "".join(p["content"] for m in ex.output_messages for p in m["parts"] if p["type"] == "text")


def test_an_error_event_is_recorded_as_a_failure_in_a_stream_answered_200(
    recorded: tuple[list[RecordedExchange], list[Failed]],
) -> None:
    """What the recording holds: span ERROR with the event's error type, the output received
    before it (its finish reason ``error``: none came), the message on spanreel's own span only,
    and the event's data as sent (``spanreel.response.error_body``, content captured)."""
    exchanges, failed = recorded
    assert [type(f.error) for f in failed] == [openai.APIError] * 2 + [anthropic.APIStatusError] * 3
    for ex, original in zip(exchanges, failed, strict=True):
        assert ex.error is not None and ex.error.in_stream, ex.label
        assert ex.error.type == ("server_error" if ex.api is ApiShape.OPENAI_CHAT else "overloaded_error")
        assert _recorded_text(ex) == original.text
        sent = OPENAI_ERROR if ex.api is ApiShape.OPENAI_CHAT else OVERLOADED
        assert json.loads(ex.span.attributes[SPANREEL_RESPONSE_ERROR_BODY]) == sent
        assert ga.GEN_AI_RESPONSE_FINISH_REASONS not in ex.span.attributes
    assert [ex.error.message for ex in exchanges if ex.error] == [
        OPENAI_ERROR["error"]["message"]] * 2 + ["Overloaded"] * 2 + [None]  # fmt: skip
    assert exchanges[4].span.scope_name == "com.anthropic.sdk.python"


def test_a_stream_failed_by_an_error_event_is_served_as_it_came(
    recorded: tuple[list[RecordedExchange], list[Failed]],
) -> None:
    """HTTP 200, an event stream: the recorded output without a finish reason, then the error
    event in the provider's format, where the stream ends — and the SDK raises what it raised."""
    exchanges, failed = recorded
    with RecordedServer(exchanges) as server:
        oa = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        an = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
        served = [_call(an if "max_tokens" in f.kwargs else oa, f.kwargs) for f in failed]
        paths = {False: server.openai_base_url + "/chat/completions", True: server.base_url + "/v1/messages"}
        wire = [
            httpx2.post(paths["max_tokens" in f.kwargs], json={**f.kwargs, "stream": True}) for f in failed
        ]
        assert [r.status for r in server.served] == [200] * 2 * len(CALLS)
    for again, original in zip(served, failed, strict=True):
        assert type(again.error) is type(original.error)
        assert again.error.body == original.error.body
        assert str(again.error) == str(original.error)
        assert again.text == original.text
    assert isinstance(served[2].error, anthropic.APIStatusError) and served[2].error.status_code == 200
    # Through the anthropic SDK's own span too: the event's data is on it (spanreel's attributes).
    assert isinstance(served[4].error, anthropic.APIStatusError) and served[4].error.body == OVERLOADED
    assert served[4].text == failed[4].text == "Both."
    for response in wire:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = response.text.strip().split("\n\n")
        assert "error" in json.loads(events[-1].split("data: ", 1)[1])
        assert "[DONE]" not in response.text and 'finish_reason": "stop' not in response.text
        assert "message_stop" not in response.text and "message_delta" not in response.text
    assert wire[1].text == "data: " + json.dumps(OPENAI_ERROR) + "\n\n"  # nothing came before it
    assert wire[3].text.startswith("event: message_start\n")  # Anthropic's message_start did
    assert wire[3].text.endswith("event: error\ndata: " + json.dumps(OVERLOADED) + "\n\n")


def test_a_stream_failed_by_an_error_event_asked_for_as_json_is_a_failure(
    recorded: tuple[list[RecordedExchange], list[Failed]],
) -> None:
    """Asked for without ``stream``, the call is answered as any recorded failure: HTTP 500 when
    the recording names no status (not a 200 that would pass for an answer)."""
    exchanges, failed = recorded
    with RecordedServer(exchanges) as server:
        oa = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        an = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            oa.chat.completions.create(**failed[0].kwargs)
        with pytest.raises(anthropic.InternalServerError) as an_error:
            an.messages.create(**failed[2].kwargs)
    assert an_error.value.body == OVERLOADED


def _streamed_failure(
    span_id: str,
    *,
    output: bool = True,
    first_chunk: bool = True,
    events: tuple[dict[str, Any], ...] = (),
    **attributes: Any,
) -> Any:
    """A streamed OpenAI call recorded failed (``error.type`` in ``attributes``): with the text
    ``Ta`` received (``output``), a timed first event (``first_chunk``) and span ``events``."""
    message = {"role": "assistant", "parts": [{"type": "text", "content": "Ta"}], "finish_reason": "error"}
    recorded = {
        SPANREEL_REQUEST_BODY: json.dumps({**_openai(span_id), "stream": True}),
        SPANREEL_REQUEST_URL: "https://api.openai.com/v1/chat/completions",
        **({ga.GEN_AI_OUTPUT_MESSAGES: json.dumps([message])} if output else {}),
        **({ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.1} if first_chunk else {}),
    }
    return rec(
        span_id,
        start_ms=int(span_id),
        kind="CLIENT",
        operation="chat",
        status_code="ERROR",
        attributes={**recorded, **attributes},
        events=events,
    )


def test_only_an_error_the_provider_sent_in_an_open_stream_is_served_as_an_error_event() -> None:
    """A stream the client lost (an ``exception`` event: a broken connection, a timeout; spanreel's
    ``incomplete_stream``; the anthropic SDK span's ``connection_error``) stays a cut-off answer; an
    HTTP error status stays an HTTP error; with no status recorded, a timed first event tells that
    the stream was open."""
    exception = {"name": "exception", "attributes": {"exception.type": "httpx2.RemoteProtocolError"}}
    ok, refused = {"http.response.status_code": 200}, {"http.response.status_code": 529}
    spans = [
        _streamed_failure("1", **{"error.type": "server_error"}),
        _streamed_failure("2", events=(exception,), **{"error.type": "RemoteProtocolError"}),
        _streamed_failure("3", **{"error.type": "incomplete_stream"}),
        _streamed_failure("4", **{"error.type": "connection_error", **ok}),
        _streamed_failure("5", first_chunk=False, **{"error.type": "server_error", **ok}),
        _streamed_failure("6", output=False, **{"error.type": "overloaded", **refused}),
        _streamed_failure("7", output=False, first_chunk=False, **{"error.type": "server_error"}),
    ]
    exchanges, unservable = exchanges_from_spans(spans)
    assert unservable == []
    kinds = [
        ("in stream" if ex.error.in_stream else ex.error.status) if ex.error else "cut off"
        for ex in exchanges
    ]
    assert kinds == ["in stream", "cut off", "cut off", "cut off", "in stream", 529, 500]


def test_a_stream_error_recorded_without_its_data_is_rebuilt_from_its_type() -> None:
    """Content capture off: no ``spanreel.response.error_body``; the event served is rebuilt from
    ``error.type``, and its message says the original was not recorded."""
    (ex,), unservable = exchanges_from_spans([_streamed_failure("1", **{"error.type": "server_error"})])
    assert unservable == [] and ex.error is not None and ex.error.in_stream
    body = recorded_error_body(ex)
    assert body["error"]["type"] == "server_error"
    assert "error event in its stream (server_error)" in body["error"]["message"]
    assert "not recorded" in body["error"]["message"]
