"""Helpers for the offline replay tests (serve-recorded, export, pytest plugin); no tests here.

:func:`recorded_conversation` records, once per test process, a real conversation made with the
``openai`` SDK against :class:`~spanreel.fakellm.FakeLLMServer`, instrumented by
:class:`spanreel.instrumentation.Instrumentor` and exported over real OTLP/HTTP to a collector
subprocess, which is then stopped so the DuckDB file can be read directly. Two traces share one
session: trace 1 has a plain call, a streamed call (with usage), a tool call, its follow-up with
the tool result, a streamed tool call and a failed call (HTTP 500); trace 2 has one more call.
A third trace, in its own session, has three calls made with the ``anthropic`` SDK (text, a
streamed tool use, the tool result).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
from conftest import start_collector
from openai import InternalServerError, OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spanreel
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor

SESSION_ID = "offline-session-1"
ANTHROPIC_SESSION_ID = "offline-session-anthropic"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}


@dataclass
class Call:
    """One recorded SDK call: the keyword arguments given to ``create`` and what the SDK returned
    (``response``: the ``model_dump()`` of a ChatCompletion, or for a stream the list of chunk
    dumps; ``error``: the status code of an API error)."""

    kwargs: dict[str, Any]
    response: Any = None
    error: int | None = None


@dataclass
class Recording:
    db: Path
    trace_ids: list[str]
    calls: list[Call] = field(default_factory=list)
    llm_base_url: str = ""
    #: a third trace (session ANTHROPIC_SESSION_ID) recorded with the ``anthropic`` SDK
    anthropic_trace_id: str = ""
    anthropic_calls: list[Call] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        """The first (main) trace."""
        return self.trace_ids[0]


_CACHE: dict[str, Recording] = {}


def _call(client: OpenAI, calls: list[Call], **kwargs: Any) -> Any:
    call = Call(kwargs)
    calls.append(call)
    try:
        result = client.chat.completions.create(**kwargs)
    except InternalServerError as exc:
        call.error = exc.status_code
        return None
    if kwargs.get("stream"):
        call.response = [chunk.model_dump() for chunk in result]
    else:
        call.response = result.model_dump()
    return call.response


def stream_text(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])


def stream_tool_calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls assembled from stream chunks: ``[{"id", "name", "arguments"}]``."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for tc in choice["delta"].get("tool_calls") or ():
                entry = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
                entry["id"] = tc.get("id") or entry["id"]
                fn = tc.get("function") or {}
                entry["name"] = fn.get("name") or entry["name"]
                entry["arguments"] += fn.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def _record(base: Path) -> Recording:
    base.mkdir(parents=True, exist_ok=True)
    with FakeLLMServer(port=0) as llm, start_collector(base / "spans.duckdb") as collector:
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "offline-app"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
        client = OpenAI(base_url=llm.base_url, api_key="sk-recording", max_retries=0)
        llm_url = llm.base_url
        instrumentor = Instrumentor()
        calls: list[Call] = []
        trace_ids: list[str] = []
        instrumentor.instrument(tracer_provider=provider, capture_content=True)
        tracer = provider.get_tracer("offline-test")
        try:
            with tracer.start_as_current_span("conversation") as root, spanreel.session("c", SESSION_ID):
                trace_ids.append(format(root.get_span_context().trace_id, "032x"))
                first = _call(
                    client,
                    calls,
                    model="gpt-4o-mini",
                    temperature=0.2,
                    messages=[
                        {"role": "system", "content": "You argue for tabs."},
                        {"role": "user", "content": "Tabs or spaces?"},
                    ],
                )
                _call(
                    client,
                    calls,
                    model="gpt-4o-mini",
                    stream=True,
                    stream_options={"include_usage": True},
                    messages=[
                        {"role": "system", "content": "You argue for spaces."},
                        {"role": "user", "content": "Reply to: " + first["choices"][0]["message"]["content"]},
                    ],
                )
                question = [{"role": "user", "content": "What is the weather in Paris?"}]
                asked = _call(client, calls, model="gpt-4o-mini", messages=question, tools=[WEATHER_TOOL])
                tool_call = asked["choices"][0]["message"]["tool_calls"][0]
                _call(
                    client,
                    calls,
                    model="gpt-4o-mini",
                    tools=[WEATHER_TOOL],
                    messages=[
                        *question,
                        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                        {
                            "role": "tool",
                            "tool_call_id": tool_call["id"],
                            "content": '{"temp": 21, "sky": "clear"}',
                        },
                    ],
                )
                _call(
                    client,
                    calls,
                    model="gpt-4o-mini",
                    stream=True,
                    tools=[WEATHER_TOOL],
                    messages=[{"role": "user", "content": "And the weather in Rome?"}],
                )
                _call(client, calls, model="fake-error-500", messages=[{"role": "user", "content": "fail"}])
            with tracer.start_as_current_span("follow-up") as root, spanreel.session("f", SESSION_ID):
                trace_ids.append(format(root.get_span_context().trace_id, "032x"))
                _call(
                    client,
                    calls,
                    model="fake-judge",
                    messages=[{"role": "user", "content": "Judge and score it."}],
                )
            with tracer.start_as_current_span("claude") as root, spanreel.session("a", ANTHROPIC_SESSION_ID):
                anthropic_trace = format(root.get_span_context().trace_id, "032x")
                anthropic_calls = _record_anthropic(llm.base_url.removesuffix("/v1"))
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
        # SimpleSpanProcessor exports synchronously and the collector acknowledges an export only
        # after its spans are committed: everything is stored once provider.shutdown() returns.
        db = collector.db
        code, err = collector.stop()
        assert code == 0, err
    for session_id, made in ((SESSION_ID, calls), (ANTHROPIC_SESSION_ID, anthropic_calls)):
        stored = run_query("SELECT count(*) FROM llm_calls WHERE session_id = ?", db, [session_id]).rows[0][0]
        assert stored == len(made), f"{stored} LLM calls stored in {session_id}, {len(made)} made"
    return Recording(db, trace_ids, calls, llm_url, anthropic_trace, anthropic_calls)


def _record_anthropic(base_url: str) -> list[Call]:
    """Three calls with the real ``anthropic`` SDK: text, a streamed tool use, the tool result."""
    client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-recording", max_retries=0)
    calls: list[Call] = []
    first = Call({"model": "claude-sonnet-4", "max_tokens": 200, "system": "Be brief.",
                  "messages": [{"role": "user", "content": "Tabs or spaces?"}]})  # fmt: skip
    first.response = client.messages.create(**first.kwargs).model_dump()
    calls.append(first)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    tools = [{"name": "get_weather", "description": "Current weather.",
              "input_schema": WEATHER_TOOL["function"]["parameters"]}]  # fmt: skip
    streamed = Call({"model": "claude-sonnet-4", "max_tokens": 200, "tools": tools, "messages": ask})
    with client.messages.stream(**streamed.kwargs) as stream:
        streamed.response = stream.get_final_message().model_dump()
    calls.append(streamed)
    tool_use = next(b for b in streamed.response["content"] if b["type"] == "tool_use")
    result = {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "21 C"}
    follow_up = Call({"model": "claude-sonnet-4", "max_tokens": 200, "tools": tools, "messages": [
        *ask, {"role": "assistant", "content": [tool_use]}, {"role": "user", "content": [result]},
    ]})  # fmt: skip
    follow_up.response = client.messages.create(**follow_up.kwargs).model_dump()
    calls.append(follow_up)
    return calls


def recorded_conversation(base: Path) -> Recording:
    """The recording (made once per process under ``base``; the collector is stopped after)."""
    key = "conversation"
    if key not in _CACHE:
        _CACHE[key] = _record(base / "offline-recording")
    return _CACHE[key]


def without_volatile(completion: dict[str, Any]) -> dict[str, Any]:
    """A ChatCompletion dump without the fields a recording does not keep (``created``: the
    recording has the span's end second; ``system_fingerprint``: not recorded)."""
    out = json.loads(json.dumps(completion))
    out.pop("created", None)
    out.pop("system_fingerprint", None)
    return out
