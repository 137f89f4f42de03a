"""The fake OpenAI-compatible server, exercised with the real ``openai`` SDK and raw HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from click.testing import CliRunner

from spanreel.fakellm import FakeLLMServer, fake_llm_command, generate_answer

MESSAGES = [{"role": "user", "content": "Is tea better than coffee?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def client(server: FakeLLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def test_base_url_is_bound_loopback(server: FakeLLMServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.port > 0


def test_deterministic_answer_usage_and_id(client: openai.OpenAI) -> None:
    a = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    b = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert a.id == b.id and a.id.startswith("chatcmpl-")
    assert a.model == "gpt-4o-mini"
    text = a.choices[0].message.content
    assert text and text == b.choices[0].message.content
    assert 20 <= len(text.split()) <= 60
    assert a.choices[0].finish_reason == "stop"
    assert a.usage is not None
    assert a.usage.completion_tokens == len(text.split())
    assert a.usage.prompt_tokens == len(MESSAGES[0]["content"].split())
    assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4.1"},
        {"messages": [{"role": "user", "content": "Is tea better than coffee??"}]},
        {"messages": [{"role": "system", "content": "Be terse."}, *MESSAGES]},
        {"temperature": 0.3},
        {"seed": 7},
    ],
)
def test_changed_prompt_changes_answer(client: openai.OpenAI, change: dict[str, object]) -> None:
    base = {"model": "gpt-4o-mini", "messages": MESSAGES}
    a = client.chat.completions.create(**base)  # type: ignore[call-overload]
    b = client.chat.completions.create(**{**base, **change})  # type: ignore[call-overload]
    assert a.id != b.id
    assert a.choices[0].message.content != b.choices[0].message.content


def test_streaming_matches_non_streaming_and_reports_usage(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # a few words per chunk
    assert {c.id for c in chunks} == {full.id}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == full.usage.completion_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_max_tokens_cuts_with_length(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "length"
    assert len((r.choices[0].message.content or "").split()) == 5
    assert r.usage is not None and r.usage.completion_tokens == 5
    s = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_completion_tokens=4,
        stream=True,
    )
    chunks = list(s)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).split().__len__() == 4
    assert chunks[-1].choices[0].finish_reason == "length"


def test_score_line_when_asked_to_judge(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="fake-judge",
        messages=[{"role": "user", "content": "Judge this debate and give a score."}],
    )
    text = r.choices[0].message.content or ""
    last_line = text.splitlines()[-1]
    assert last_line.startswith("Score: ") and last_line.endswith("/10")
    assert 1 <= int(last_line.removeprefix("Score: ").removesuffix("/10")) <= 10
    plain = client.chat.completions.create(model="fake-judge", messages=MESSAGES)  # type: ignore[arg-type]
    assert "Score:" not in (plain.choices[0].message.content or "")


def test_tool_call_then_text(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"type": "string", "enum": ["C", "F"]},
                    },
                },
            },
        }
    ]
    msgs: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=tools)  # type: ignore[arg-type]
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert set(args) == {"city", "unit"} and args["unit"] in ("C", "F")

    streamed = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=tools, stream=True)  # type: ignore[arg-type]
    )
    arg_text = "".join(
        tc.function.arguments or ""
        for c in streamed
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function is not None
    )
    assert json.loads(arg_text) == args

    msgs += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    follow = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=tools)  # type: ignore[arg-type]
    assert follow.choices[0].finish_reason == "stop"
    assert follow.choices[0].message.content


def test_forced_error_and_bad_requests(server: FakeLLMServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fake-error-500", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.status_code == 500
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=MESSAGES)  # type: ignore[arg-type]

    bad = httpx.post(server.base_url + "/chat/completions", content=b"{not json", timeout=5)
    assert bad.status_code == 400
    err = bad.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    missing = httpx.post(server.base_url + "/chat/completions", json={"model": "m"}, timeout=5)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_required_parameter"


def test_unprefixed_path_models_and_recorded_requests(server: FakeLLMServer, client: openai.OpenAI) -> None:
    before = len(server.requests)
    root = server.base_url.removesuffix("/v1")
    r = httpx.post(root + "/chat/completions", json={"model": "m", "messages": MESSAGES}, timeout=5)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids
    new = server.requests[before:]
    assert [(q.method, q.path) for q in new] == [("POST", "/chat/completions"), ("GET", "/v1/models")]
    assert new[0].json == {"model": "m", "messages": MESSAGES}
    assert new[1].header("authorization") == "Bearer sk-test"


def test_chunk_delay_spreads_stream(server: FakeLLMServer) -> None:
    with FakeLLMServer(chunk_delay=0.02) as slow:
        c = openai.OpenAI(base_url=slow.base_url, api_key="k", max_retries=0)
        started = time.monotonic()
        arrivals = [
            time.monotonic() - started
            for _ in c.chat.completions.create(
                model="m",
                messages=MESSAGES,
                stream=True,  # type: ignore[arg-type]
            )
        ]
    assert len(arrivals) > 4
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 2)


async def test_async_client_streaming(server: FakeLLMServer) -> None:
    c = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == generate_answer({"model": "m", "messages": MESSAGES})
    await c.close()


def test_stop_is_idempotent_and_port_freed() -> None:
    srv = FakeLLMServer().start()
    port = srv.port
    srv.stop()
    srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_cli_help() -> None:
    result = CliRunner().invoke(fake_llm_command, ["--help"])
    assert result.exit_code == 0
    assert "--chunk-delay" in result.output and "--port" in result.output


def test_cli_port_range_and_module_entry_point() -> None:
    """``--port 99999`` ended in a traceback (OverflowError from bind); ``python -m
    spanreel.fakellm`` exited 0 without serving."""
    bad = CliRunner().invoke(fake_llm_command, ["--port", "99999"])
    assert bad.exit_code == 2 and "0<=x<=65535" in bad.output
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanreel.fakellm", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake LLM serving at http://127.0.0.1:"), line
        base = line.split(" at ", 1)[1].strip()
        models = openai.OpenAI(base_url=base, api_key="k", max_retries=0).models.list()
        assert models.data
    finally:
        proc.terminate()
        proc.wait(timeout=30)
