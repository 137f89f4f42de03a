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

:func:`record_honest_replays` records, on a collector of its own, a trace and two replays whose
comparison must not claim more than it saw (a call without a new cost, answers without output).
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
from test_replay_honest import Canned

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


@dataclass
class HonestReplays:
    """``honest`` (a gpt-4o-mini and a gpt-4.1 call) and two replays of it: ``partial``, the
    gpt-4.1 call edited to ``fake-gpt`` (no price: its new cost is unknown), and ``no_output``,
    sent to ``wrong_url``, a server answering HTTP 200 with an HTML page."""

    db: Path
    original: str
    partial: str
    no_output: str
    wrong_url: str
    original_costs: list[float]


def record_honest_replays(collector: CollectorProcess, llm: FakeLLMServer) -> HonestReplays:
    """Record and replay the traces of :class:`HonestReplays` through the collector."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "honest-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
    client = openai.OpenAI(base_url=llm.base_url, api_key=API_KEY, max_retries=0)
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    try:
        with provider.get_tracer("ui-test").start_as_current_span("honest") as root:
            for model, question in (("gpt-4o-mini", "Tabs or spaces?"), ("gpt-4.1", "Vim or Emacs?")):
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    original = format(root.get_span_context().trace_id, "032x")
    db = collector.db

    def calls(trace_id: str) -> int:
        return count_rows(db, "SELECT count(*) FROM llm_calls WHERE trace_id = ?", [trace_id])

    wait_for(lambda: calls(original) == 2, what="the 2 recorded calls")

    def replay(*args: str) -> dict[str, Any]:
        res = CliRunner().invoke(
            main,
            ["replay", original, "--db", str(db), "--retries", "0", "--fail-on", "never", "--json", *args],
            catch_exceptions=False,
            env={"OPENAI_API_KEY": API_KEY},
        )
        assert res.exit_code == 0, res.output
        report: dict[str, Any] = json.loads(res.stdout)
        wait_for(lambda: calls(report["replay_trace_id"]) == 2, what="the replay's 2 calls")
        return report

    partial = replay("--base-url", llm.base_url, "--only", "chat gpt-4.1", "--model", "fake-gpt")
    assert [c["new_cost_usd"] is None for c in partial["calls"]] == [False, True]
    with Canned("text/html; charset=utf-8", b"<html><body>Welcome to nginx!</body></html>") as wrong:
        no_output = replay("--base-url", wrong.base_url)
    assert [c["status"] for c in no_output["calls"]] == ["error", "error"]
    return HonestReplays(
        db,
        original,
        partial["replay_trace_id"],
        no_output["replay_trace_id"],
        wrong.base_url,
        [c["original_cost_usd"] for c in partial["calls"]],
    )
