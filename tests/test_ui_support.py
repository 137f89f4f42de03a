"""Helpers for the trace viewer tests (no tests here): record a small, varied set of traces with the
real ``openai`` SDK under ``spanreel.instrumentation`` against ``FakeLLMServer``, exported over real
OTLP/HTTP to a collector subprocess, then replay one of them through the ``spanreel`` CLI.

The recorded traces (newest last):

- ``support chat`` (service ``support-bot``, session ``ticket-42``): system + user → answer, then a
  tool round trip (assistant tool call → tool result → answer).
- ``failing call`` (service ``support-bot``): an LLM call answered HTTP 500 (status ERROR).
- ``debate`` (service ``debate-app``, session ``ticket-42``): a ``fake-judge`` call whose user
  message carries HTML/script text (:data:`HOSTILE`) that must be shown, never interpreted.
- ``batch job 0`` … ``batch job 4`` (service ``batch``): no LLM calls.
- ``replay support chat`` (service ``spanreel-replay``): a replay of ``support chat`` with an edited
  system prompt, so its outputs differ.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from click.testing import CliRunner
from conftest import CollectorProcess, count_rows
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spanreel
from spanreel.cli import main
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor

API_KEY = "sk-ui-test-key"
SESSION = "ticket-42"
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> & "quotes"'
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@dataclass
class Dataset:
    db: Path
    support: str  # trace ids
    debate: str
    failing: str
    batch: list[str]
    replay: str
    first_answer: str  # the first assistant answer of ``support chat``

    @property
    def all_traces(self) -> list[str]:
        """Every trace id, oldest first (the order they were recorded in)."""
        return [self.support, self.failing, self.debate, *self.batch, self.replay]


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def record_dataset(collector: CollectorProcess, llm: FakeLLMServer) -> Dataset:
    """Record the traces listed in the module docstring; return their ids once all are stored."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
    debate_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "debate-app"}))
    debate_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
    batch_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "batch"}))
    batch_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
    client = openai.OpenAI(base_url=llm.base_url, api_key=API_KEY, max_retries=0)
    instrumentor = Instrumentor()
    ids: dict[str, str] = {}
    batch: list[str] = []

    def tid(span: Any) -> str:
        return format(span.get_span_context().trace_id, "032x")

    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    try:
        tracer = provider.get_tracer("ui-test")
        with tracer.start_as_current_span("support chat") as root, spanreel.session("support", SESSION):
            ids["support"] = tid(root)
            first = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "You are a helpful support agent."},
                    {"role": "user", "content": "My order #1234 has not arrived."},
                ],
            )
            first_answer = first.choices[0].message.content or ""
            question = {"role": "user", "content": "What is the weather in Paris?"}
            call = client.chat.completions.create(
                model="gpt-4o-mini", messages=[question], tools=[WEATHER_TOOL]
            )
            tool_call = call.choices[0].message.tool_calls[0]  # type: ignore[index]
            client.chat.completions.create(
                model="gpt-4o-mini",
                tools=[WEATHER_TOOL],
                messages=[
                    question,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": tool_call.id,
                                "type": "function",
                                "function": {
                                    "name": tool_call.function.name,  # type: ignore[union-attr]
                                    "arguments": tool_call.function.arguments,  # type: ignore[union-attr]
                                },
                            }
                        ],
                    },
                    {
                        "role": "tool",
                        "tool_call_id": tool_call.id,
                        "content": '{"temp_c": 21, "sky": "clear"}',
                    },
                ],
            )
        time.sleep(0.01)
        with tracer.start_as_current_span("failing call") as root:
            ids["failing"] = tid(root)
            with contextlib.suppress(openai.InternalServerError):
                client.chat.completions.create(
                    model="fake-error-500", messages=[{"role": "user", "content": "this will fail"}]
                )
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=debate_provider, capture_content=True)
        time.sleep(0.01)
        debate_tracer = debate_provider.get_tracer("ui-test")
        with debate_tracer.start_as_current_span("debate") as root, spanreel.session("debate", SESSION):
            ids["debate"] = tid(root)
            client.chat.completions.create(
                model="fake-judge", messages=[{"role": "user", "content": "Judge this: " + HOSTILE}]
            )
        batch_tracer = batch_provider.get_tracer("ui-test")
        for i in range(5):
            time.sleep(0.01)
            with batch_tracer.start_as_current_span(f"batch job {i}") as root:
                batch.append(tid(root))
                with batch_tracer.start_as_current_span("load rows"):
                    pass
    finally:
        instrumentor.uninstrument()
        for p in (provider, debate_provider, batch_provider):
            p.shutdown()
    db = collector.db
    wait_for(lambda: count_rows(db, "SELECT count(*) FROM trace_index") == 8, what="8 recorded traces")
    wait_for(
        lambda: count_rows(db, "SELECT count(*) FROM llm_calls WHERE trace_id = ?", [ids["support"]]) == 3,
        what="3 LLM calls of the support chat",
    )
    res = CliRunner().invoke(
        main,
        ["replay", ids["support"], "--db", str(db), "--base-url", llm.base_url,
         "--system", "Answer like a pirate.", "--json"],
        catch_exceptions=False,
        env={"OPENAI_API_KEY": API_KEY},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    replay = json.loads(res.stdout)["replay_trace_id"]
    wait_for(
        lambda: count_rows(db, "SELECT count(*) FROM llm_calls WHERE trace_id = ?", [replay]) == 3,
        what="the replay's 3 LLM calls",
    )
    return Dataset(db, ids["support"], ids["debate"], ids["failing"], batch, replay, first_answer)
