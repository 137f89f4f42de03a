"""Recorded failures served back: a local server answers like OpenAI and Anthropic do when they
refuse a request (400 with the provider's error body, Anthropic's 529), the calls are recorded
through the real ``openai`` and ``anthropic`` SDKs into a collector, and ``serve-recorded`` must
answer them with the same HTTP status and error body, so the SDK raises the same exception."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import openai
import pytest
from conftest import CollectorProcess, recording_into
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_replay_support import rec, wait_for_failed_calls

import spanreel
from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_URL, SPANREEL_RESPONSE_ERROR_BODY
from spanreel.replay import load_session
from spanreel.replay._recorded import RecordedExchange, exchanges_from_spans
from spanreel.replay._serve import RecordedServer

SESSION = "refused-calls"
OPENAI_400 = {
    "error": {
        "message": "Invalid value for 'temperature': must be <= 2.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
}
ANTHROPIC_400 = {
    "type": "error",
    "error": {"type": "invalid_request_error", "message": "max_tokens: 9999 > 8192"},
}
ANTHROPIC_529 = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


class _Refusing(BaseHTTPRequestHandler):
    """Answers every request as the provider refuses it: by path and the body's model."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        if self.path.endswith("/messages"):
            status, answer = (529, ANTHROPIC_529) if body["model"] == "busy" else (400, ANTHROPIC_400)
        else:
            status, answer = 400, OPENAI_400
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def refusing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Refused:
    kwargs: dict[str, Any]
    error: openai.APIStatusError | anthropic.APIStatusError


OPENAI_CALL: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "temperature": 3,
    "messages": [{"role": "user", "content": "hot"}],
}
ANTHROPIC_CALLS: list[dict[str, Any]] = [
    {"model": "claude-haiku-4-5", "max_tokens": 9999, "messages": [{"role": "user", "content": "long"}]},
    {"model": "busy", "max_tokens": 10, "messages": [{"role": "user", "content": "now"}]},
]


@pytest.fixture(scope="module")
def recorded(
    collector: CollectorProcess, refusing_server: str
) -> tuple[list[RecordedExchange], list[Refused]]:
    """The three refused calls, made once through the real SDKs (no retries) and recorded; the
    ``anthropic`` SDK's own call span is on, so spanreel adopts it (it carries the status code)."""
    refused: list[Refused] = []
    with recording_into(collector, "refused-app") as provider:
        oa = openai.OpenAI(base_url=refusing_server + "/v1", api_key="sk-rec", max_retries=0)
        an = anthropic.Anthropic(
            base_url=refusing_server,
            api_key="sk-ant-rec",
            max_retries=0,
            open_telemetry={"tracer_provider": provider},
        )
        with spanreel.session("refused", SESSION):
            with pytest.raises(openai.BadRequestError) as oa_error:
                oa.chat.completions.create(**OPENAI_CALL)
            refused.append(Refused(OPENAI_CALL, oa_error.value))
            for kwargs in ANTHROPIC_CALLS:
                with pytest.raises(anthropic.APIStatusError) as an_error:
                    an.messages.create(**kwargs)
                refused.append(Refused(kwargs, an_error.value))
    wait_for_failed_calls(collector.db, SESSION, 3)
    exchanges, unservable = exchanges_from_spans(load_session(SESSION, collector.db))
    assert unservable == [] and len(exchanges) == 3
    return exchanges, refused


def test_a_refused_call_is_recorded_with_the_providers_error_body(
    recorded: tuple[list[RecordedExchange], list[Refused]],
) -> None:
    exchanges, _ = recorded
    bodies = [json.loads(ex.span.attributes[SPANREEL_RESPONSE_ERROR_BODY]) for ex in exchanges]
    assert bodies == [OPENAI_400, ANTHROPIC_400, ANTHROPIC_529]


def test_refused_calls_are_served_with_their_status_and_error_body(
    recorded: tuple[list[RecordedExchange], list[Refused]],
) -> None:
    """The SDK raises what it raised when the call was recorded — and does not retry a 400 as
    if the server had failed (a 500 would be retried)."""
    exchanges, refused = recorded
    with RecordedServer(exchanges) as server:
        oa = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=2)
        an = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as oa_error:
            oa.chat.completions.create(**OPENAI_CALL)
        served = [oa_error.value]
        for kwargs in ANTHROPIC_CALLS:
            with pytest.raises(anthropic.APIStatusError) as an_error:
                an.messages.create(**kwargs)
            served.append(an_error.value)
        assert [s.status for s in server.served] == [400, 400, 529]  # one request each: no retry
    for again, original in zip(served, refused, strict=True):
        assert type(again) is type(original.error)
        assert again.status_code == original.error.status_code
        assert again.body == original.error.body
        assert str(again) == str(original.error)
    assert isinstance(served[2], anthropic.OverloadedError)
    assert served[0].code == "invalid_value" and served[0].param == "temperature"
    assert served[0].type == "invalid_request_error"


def _failed_span(span_id: str, url: str, body: dict[str, Any], **kw: Any) -> Any:
    return rec(
        span_id,
        start_ms=kw.pop("start_ms", 0),
        kind="CLIENT",
        operation="chat",
        status_code="ERROR",
        status_message=kw.pop("status_message", ""),
        attributes={SPANREEL_REQUEST_BODY: json.dumps(body), SPANREEL_REQUEST_URL: url, **kw},
    )


def test_without_a_recorded_body_the_error_is_rebuilt_with_the_recorded_status() -> None:
    """Recorded with content capture off (or before error bodies were recorded): the status comes
    from the span (an adopted ``anthropic`` SDK span carries ``http.response.status_code``) or its
    HTTP child (opentelemetry-instrumentation-httpx writes ``http.status_code`` by default), the
    body is rebuilt in the provider's shape."""
    oa_body = {"model": "m", "messages": [{"role": "user", "content": "hot"}]}
    an_body = {"model": "busy", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    spans = [
        _failed_span(
            "1",
            "https://api.openai.com/v1/chat/completions",
            oa_body,
            status_message="Invalid value for 'temperature': must be <= 2.",
            **{"error.type": "invalid_value"},
        ),
        rec("2", "1", name="POST", kind="CLIENT", status_code="ERROR", attributes={"http.status_code": 400}),
        _failed_span(
            "3",
            "https://api.anthropic.com/v1/messages",
            an_body,
            start_ms=5,
            **{
                "error.type": "overloaded_error",
                "http.response.status_code": 529,
                ga.GEN_AI_REQUEST_MODEL: "b",
            },
        ),
    ]
    exchanges, unservable = exchanges_from_spans(spans)
    assert unservable == []
    with RecordedServer(exchanges) as server:
        oa = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as oa_error:
            oa.chat.completions.create(**oa_body)
        an = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.OverloadedError) as an_error:
            an.messages.create(**an_body)
    assert oa_error.value.body == {
        "message": "Invalid value for 'temperature': must be <= 2.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_value",
    }
    assert an_error.value.status_code == 529
    assert an_error.value.body == {
        "type": "error",
        "error": {
            "type": "overloaded_error",
            "message": "the recorded call failed with HTTP 529 (overloaded_error); "
            "its error message was not recorded",
        },
    }
