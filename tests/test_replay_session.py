"""Replaying a real recorded session end to end.

Recording: the real ``openai`` SDK under ``spanreel.instrumentation.Instrumentor`` against
``FakeLLMServer`` — a two-trace session (``spanreel.session``): an agent turn with a tool call, a
recorded tool span and a streamed answer that sends the tool result back, then a follow-up turn
carrying the whole history plus an independent call. The spans are written as OTLP JSON (what
``--from-file`` reads) and into a DuckDB file with the collector's writer.

Replays run through :func:`replay_spans` (the new trace captured in memory, to check its shape,
links and attributes) and through the CLI (``--from-file``, ``--session`` with a real collector
subprocess receiving the replay over OTLP/HTTP, ``--dry-run``, ``--fail-on``, ``show``,
``traces --replays-of``). Requests are checked as the fake server received them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import CollectorProcess, openai_v2_instrumented, start_collector
from openai import OpenAI
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_replay_support import otlp_dict, wait_for, write_db

from spanreel._attributes import (
    SPANREEL_REPLAY_MODE,
    SPANREEL_REPLAY_ORIGINAL_SESSION_ID,
    SPANREEL_REPLAY_ORIGINAL_SPAN_ID,
    SPANREEL_REPLAY_ORIGINAL_TRACE_ID,
)
from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor, session
from spanreel.replay import SpanRecord, load_trace_file
from spanreel.replay._edits import ReplayEdits
from spanreel.replay._execute import replay_spans
from spanreel.replay._messages import ToolCall
from spanreel.replay._safety import RetryPolicy

SESSION = "ticket-42"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
TOOL_RESULT = "sunny, 21 C"


@dataclass
class Recording:
    llm: FakeLLMServer
    file: Path
    db: Path
    spans: list[SpanRecord]
    bodies: list[bytes]  # as the fake server received them, in order
    outputs: list[str]


def write_otlp_json(spans: list[ReadableSpan], path: Path) -> Path:
    path.write_text(json.dumps(otlp_dict(spans, hex_ids=True)))
    return path


@pytest.fixture(scope="module")
def recording(llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    tmp = tmp_path_factory.mktemp("session")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "support-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app")
    client = OpenAI(base_url=llm.base_url, api_key="sk-recording")
    first = len(llm.requests)
    outputs: list[str] = []
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    try:
        history: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "What is the weather in Paris?"},
        ]
        with tracer.start_as_current_span("turn 1"), session("support", session_id=SESSION):
            with tracer.start_as_current_span("plan"):
                r = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=TOOLS)
            message = r.choices[0].message
            assert message.tool_calls, "the fake server calls the offered tool"
            outputs.append(
                f"{message.tool_calls[0].function.name}({message.tool_calls[0].function.arguments})"
            )
            history.append(message.model_dump(exclude_none=True))
            with tracer.start_as_current_span("tool get_weather"):
                history.append(
                    {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": TOOL_RESULT}
                )
            with tracer.start_as_current_span("answer"):
                parts = []
                for chunk in client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=history,
                    tools=TOOLS,
                    stream=True,
                    stream_options={"include_usage": True},
                ):
                    if chunk.choices and chunk.choices[0].delta.content:
                        parts.append(chunk.choices[0].delta.content)
            outputs.append("".join(parts))
            history.append({"role": "assistant", "content": outputs[-1]})
        time.sleep(0.01)  # the second trace starts later
        with tracer.start_as_current_span("turn 2"), session("support", session_id=SESSION):
            history.append({"role": "user", "content": "Thanks. Should I take an umbrella?"})
            r = client.chat.completions.create(model="gpt-4o-mini", messages=history)
            outputs.append(r.choices[0].message.content or "")
            r = client.chat.completions.create(
                model="gpt-4.1", messages=[{"role": "user", "content": "Rate this support chat."}]
            )
            outputs.append(r.choices[0].message.content or "")
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    bodies = [r.body for r in llm.requests[first:]]
    file = write_otlp_json(list(memory.get_finished_spans()), tmp / "session.json")
    spans = load_trace_file(file)
    db = write_db(tmp / "spans.duckdb", spans)
    return Recording(llm, file, db, spans, bodies, outputs)


def _tree(spans: list[ReadableSpan], trace_id: str) -> dict[str, list[str]]:
    """parent name → child names (sorted) of one trace; the root's parent is ''."""
    mine = [s for s in spans if format(s.context.trace_id, "032x") == trace_id]
    by_id = {s.context.span_id: s for s in mine}
    out: dict[str, list[str]] = {}
    for s in mine:
        parent = by_id[s.parent.span_id].name if s.parent and s.parent.span_id in by_id else ""
        out.setdefault(parent, []).append(s.name)
    return {k: sorted(v) for k, v in out.items()}


def test_verbatim_session_replay_keeps_the_tree_and_links(recording: Recording) -> None:
    llm = recording.llm
    memory = InMemorySpanExporter()
    before = len(llm.requests)
    result = replay_spans(
        recording.spans, session_id=SESSION, base_url=llm.base_url, concurrency=4, span_exporter=memory
    )
    assert result.ok and result.mode == "verbatim" and result.session_id == SESSION
    assert len(result.original_trace_ids) == 2
    assert [c.status for c in result.calls] == ["ok"] * 4
    assert [c.replay.output if c.replay else None for c in result.calls][1:] == recording.outputs[1:]
    assert all(c.output_changed is False and not c.divergences and not c.depends_on for c in result.calls)
    assert [c.path for c in result.calls] == [
        "turn 1/plan/chat gpt-4o-mini",
        "turn 1/answer/chat gpt-4o-mini",
        "turn 2/chat gpt-4o-mini",
        "turn 2/chat gpt-4.1",
    ]
    # verbatim: the recorded bytes, all four (sent concurrently, so compare as multisets)
    assert sorted(r.body for r in llm.requests[before:]) == sorted(recording.bodies)

    spans = list(memory.get_finished_spans())
    tree = _tree(spans, result.replay_trace_id or "")
    assert tree[""] == [f"replay session {SESSION}"]
    assert tree[f"replay session {SESSION}"] == ["turn 1", "turn 2"]
    assert tree["turn 1"] == ["answer", "plan", "tool get_weather"]
    assert tree["plan"] == tree["answer"] == ["chat gpt-4o-mini"]
    assert tree["turn 2"] == ["chat gpt-4.1", "chat gpt-4o-mini"]
    assert tree["chat gpt-4o-mini"] == ["POST"] * 3  # the replayed HTTP spans, not re-created ones

    originals = {(s.trace_id, s.span_id): s for s in recording.spans}
    root = next(s for s in spans if s.name.startswith("replay session"))
    assert root.attributes is not None
    assert root.attributes[SPANREEL_REPLAY_ORIGINAL_SESSION_ID] == SESSION
    assert root.attributes[SPANREEL_REPLAY_MODE] == "verbatim"
    assert {
        (format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x")) for lk in root.links
    } == {(s.trace_id, s.span_id) for s in recording.spans if s.parent_span_id is None}
    for span in spans:
        if span is root or span.name == "POST":
            continue
        attrs = span.attributes or {}
        key = (attrs[SPANREEL_REPLAY_ORIGINAL_TRACE_ID], attrs[SPANREEL_REPLAY_ORIGINAL_SPAN_ID])
        assert originals[key].name == span.name  # every re-created / replayed span points to its original
        assert [
            (format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x")) for lk in span.links
        ] == [key]
        assert "session.id" not in attrs  # a replay is not part of the original session


def test_cascade_substitutes_new_outputs_and_flags_tool_divergence(recording: Recording) -> None:
    llm = recording.llm
    before = len(llm.requests)
    seen_tools: list[tuple[str, Any, str | None]] = []

    def tool_hook(call: ToolCall, recorded: str | None) -> str:
        seen_tools.append((call.name, call.arguments, recorded))
        return f"cloudy in {call.arguments.get('city')}"

    result = replay_spans(
        recording.spans,
        session_id=SESSION,
        mode="cascade",
        # only the first call is edited; the change must flow into every later call
        edits=ReplayEdits(system="You are a terse support agent.", only=("turn 1/plan/*",)),
        base_url=llm.base_url,
        concurrency=4,
        tool_results=tool_hook,
        span_exporter=InMemorySpanExporter(),
    )
    assert result.ok and result.mode == "cascade"
    first, answer, follow_up, rating = result.calls
    assert [c.edited for c in result.calls] == [True, False, False, False]
    assert (first.depends_on, answer.depends_on, follow_up.depends_on, rating.depends_on) == (
        (),
        (1,),
        (1, 2),
        (),
    )
    # the edited system prompt changed the tool call's arguments: flagged on the call and where it was used
    assert first.output_changed and any(d.startswith("output: tool call 1") for d in first.divergences)
    assert any("message 2 (call 1): tool call 1" in d for d in answer.divergences)
    assert rating.output_changed is False

    bodies = [r.json for r in llm.requests[before:]]
    assert len(bodies) == 4
    answer_body = next(b for b in bodies if b.get("stream"))
    follow_body = next(b for b in bodies if len(b["messages"]) > 5)
    new_call = answer_body["messages"][2]["tool_calls"][0]
    recorded_call = json.loads(recording.bodies[1])["messages"][2]["tool_calls"][0]
    assert new_call["id"] != recorded_call["id"] and new_call["function"] != recorded_call["function"]
    city = json.loads(new_call["function"]["arguments"])["city"]
    # the hook was asked for the diverging call (with the recorded result) and its answer was sent
    assert seen_tools == [("get_weather", {"city": city}, TOOL_RESULT)]
    assert answer_body["messages"][3] == {
        "role": "tool",
        "tool_call_id": new_call["id"],
        "content": f"cloudy in {city}",
    }
    # the follow-up carries the *new* tool call, result and streamed answer, not the recorded ones
    assert answer.replay is not None and answer.replay.output
    assert follow_body["messages"][2]["tool_calls"][0]["id"] == new_call["id"]
    assert follow_body["messages"][3]["content"] == f"cloudy in {city}"
    assert follow_body["messages"][4]["content"] == answer.replay.output != recording.outputs[1]
    assert follow_body["messages"][0] == {
        "role": "system",
        "content": "You are a support agent.",
    }  # not edited


def test_dry_run_prints_the_plan_and_sends_nothing(recording: Recording) -> None:
    llm = recording.llm
    before = len(llm.requests)
    res = cli("replay", "--from-file", str(recording.file), "--mode", "cascade", "--dry-run",
              "--base-url", llm.base_url, "--model", "gpt-4.1", "--only", "*/answer/*")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "dry run" in res.stdout and "nothing was sent" in res.stdout
    assert "turn 1/answer/chat gpt-4o-mini" in res.stdout and "1 (msg 2)" in res.stdout
    plan = json.loads(
        cli("replay", "--from-file", str(recording.file), "--mode", "cascade", "--dry-run", "--json").stdout
    )
    assert [c["wave"] for c in plan["calls"]] == [1, 2, 3, 1]
    assert [[d["call"] for d in c["depends_on"]] for c in plan["calls"]] == [[], [1], [1, 2], []]
    assert plan["calls"][0]["url"] == llm.base_url + "/chat/completions"  # recorded URL
    assert len(llm.requests) == before


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_from_file_report_and_fail_on(recording: Recording, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nowhere: a warning only
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    llm = recording.llm
    args = ["replay", "--from-file", str(recording.file), "--base-url", llm.base_url, "--mode", "cascade"]
    res = cli(*args, "--set", "temperature=0", "--fail-on", "changed", "--json")
    assert res.exit_code == 1, res.output  # temperature=0 changes every answer
    report = json.loads(res.stdout)
    assert report["mode"] == "cascade" and report["edits"]["set"] == {"temperature": 0}
    assert report["verdict"]["failed"] is True and report["verdict"]["fail_on"] == "changed"
    call = report["calls"][2]
    for key in (
        "similarity",
        "diff",
        "input_tokens_delta",
        "output_tokens_delta",
        "latency_delta_ms",
        "original_cost_usd",
        "new_cost_usd",
        "cost_delta_usd",
        "depends_on",
        "divergences",
        "path",
    ):
        assert key in call, key  # fmt: skip
    assert 0 <= call["similarity"] < 1 and call["diff"].startswith("--- original")
    assert call["new_cost_usd"] > 0 and call["original_cost_usd"] > 0  # gpt-4o-mini is priced
    assert call["input_tokens_delta"] == call["new_input_tokens"] - call["original_input_tokens"]
    totals = report["totals"]
    assert totals["changed"] == 4 and totals["errors"] == 0 and totals["mean_similarity"] < 1

    res = cli(*args, "--set", "temperature=0", "--fail-on", "changed", "--similarity-threshold", "0")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "replay of" in out and "--- original" in out and "+++ replay" in out and "totals:" in out
    assert "could not be exported" in res.stderr

    res = cli(*args, "--fail-on", "changed")  # nothing edited: the deterministic server answers the same
    assert res.exit_code == 0, res.output


def test_show_waterfall_from_file_and_json(recording: Recording) -> None:
    res = cli("show", "--from-file", str(recording.file))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.count("trace ") >= 2 and "█" in out and "gpt-4o-mini" in out and "tool get_weather" in out
    assert "└─ " in out or "├─ " in out
    data = json.loads(cli("show", "--from-file", str(recording.file), "--json").stdout)
    assert data["trace_count"] == 2 and data["span_count"] == len(recording.spans)
    turn1 = data["traces"][0]["roots"][0]
    assert turn1["name"] == "turn 1" and [c["name"] for c in turn1["children"]] == [
        "plan",
        "tool get_weather",
        "answer",
    ]
    llm_node = turn1["children"][0]["children"][0]
    assert llm_node["cost_usd"] > 0 and llm_node["session_id"] == SESSION


def test_unsafe_host_in_a_trace_file_is_refused(recording: Recording, tmp_path: Path) -> None:
    doc = json.loads(recording.file.read_text())
    text = json.dumps(doc).replace(
        recording.llm.base_url.rsplit("/", 1)[0], "http://metadata.google.internal"
    )
    evil = tmp_path / "evil.json"
    evil.write_text(text)
    before = len(recording.llm.requests)
    result = replay_spans(load_trace_file(evil), span_exporter=InMemorySpanExporter(), retry=RetryPolicy(0))
    assert [c.status for c in result.calls] == ["error"] * 4
    assert all(
        "refusing to send to metadata.google.internal" in (c.replay.error or "")
        for c in result.calls
        if c.replay
    )
    assert len(recording.llm.requests) == before


class _Flaky(BaseHTTPRequestHandler):
    """429 with Retry-After: 0 on the first request, then a chat.completion."""

    calls = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).calls += 1
        if type(self).calls == 1:
            payload, status, extra = b'{"error": {"message": "slow down"}}', 429, {"Retry-After": "0"}
        else:
            payload = json.dumps({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "after a retry"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }).encode()  # fmt: skip
            status, extra = 200, {}
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_429_is_retried_honouring_retry_after(recording: Recording) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rating = [s for s in recording.spans if s.name == "chat gpt-4.1"]
        result = replay_spans(
            rating,
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            span_exporter=InMemorySpanExporter(),
            retry=RetryPolicy(max_retries=2, base_delay=30),  # Retry-After: 0 wins over the 30 s backoff
        )
    finally:
        server.shutdown()
        server.server_close()
    (call,) = result.calls
    assert call.status == "ok" and call.attempts == 2 and call.http_status == 200
    assert call.replay is not None and call.replay.output == "after a retry"


@pytest.fixture(scope="module")
def collector(recording: Recording) -> Iterator[CollectorProcess]:
    with start_collector(recording.db) as running:
        yield running


def test_session_replay_through_the_collector_and_replays_of(
    recording: Recording, collector: CollectorProcess
) -> None:
    db = recording.db
    res = cli("replay", "--session", SESSION, "--db", str(db), "--base-url", recording.llm.base_url, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["session_id"] == SESSION and len(report["original_trace_ids"]) == 2
    assert report["export"]["ok"] is True and report["warnings"] == []
    new_trace = report["replay_trace_id"]
    # 1 root + 2 turns + plan/tool/answer + 4 LLM spans + 4 HTTP spans
    count = "SELECT count(*) FROM spans WHERE trace_id = ?"
    wait_for(lambda: run_query(count, db, [new_trace]).rows[0][0] == 14)

    for original in report["original_trace_ids"]:
        listed = json.loads(cli("traces", "--db", str(db), "--replays-of", original[:12], "--json").stdout)
        assert [t["trace_id"] for t in listed] == [new_trace]
        assert listed[0]["root_name"] == f"replay session {SESSION}" and listed[0]["llm_calls"] == 4
    shown = cli("show", new_trace, "--db", str(db)).stdout
    assert "replay session" in shown and "tool get_weather" in shown
    session_view = cli("show", "--session", SESSION, "--db", str(db)).stdout
    assert f"session {SESSION}" in session_view and "2 traces" in session_view
    none = cli("traces", "--db", str(db), "--replays-of", new_trace)
    assert none.exit_code == 0 and "no replays of" in none.stderr

    # `spanreel sessions` through the running collector's query API agrees with the spans
    listed = json.loads(cli("sessions", "--db", str(db), "--json").stdout)
    row = next(r for r in listed if r["session_id"] == SESSION)
    traces = "SELECT count(DISTINCT trace_id), count(operation) FROM spans WHERE session_id = ?"
    assert [row["trace_count"], row["llm_calls"]] == list(run_query(traces, db, [SESSION]).rows[0])
    assert row["trace_count"] >= 2 and row["session_name"] is not None


def test_trace_from_another_instrumentation_is_rebuilt_and_replayed(
    llm: FakeLLMServer, tmp_path: Path
) -> None:
    """opentelemetry-instrumentation-openai-v2 records messages, not the wire request: the request
    is rebuilt from gen_ai.input.messages + model + parameters and gives the same answer."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with openai_v2_instrumented(provider):
        client = OpenAI(base_url=llm.base_url, api_key="k")
        messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello there"}]
        r = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.3)  # type: ignore[arg-type]
        recorded_output = r.choices[0].message.content
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    provider.shutdown()
    spans = load_trace_file(write_otlp_json(list(memory.get_finished_spans()), tmp_path / "peer.json"))
    assert all(s.scope_name != "spanreel" for s in spans)
    before = len(llm.requests)
    result = replay_spans(spans, base_url=llm.base_url, span_exporter=InMemorySpanExporter())
    first = result.calls[0]
    assert first.status == "ok" and first.notes == ("request rebuilt from gen_ai.input.messages",)
    assert first.replay is not None and first.replay.output == recorded_output and not first.output_changed
    sent = sorted((r.json for r in llm.requests[before:]), key=lambda b: len(b["messages"]))
    assert sent[1] == {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.3}


def test_cli_hook_system_file_and_only(
    recording: Recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    hooks = tmp_path / "hooks.py"
    hooks.write_text("def tag(body):\n    body['user'] = 'replay-' + body['model']\n    return body\n")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("From a file.")
    llm = recording.llm
    before = len(llm.requests)
    res = cli(
        "replay", "--from-file", str(recording.file), "--base-url", llm.base_url, "--concurrency", "1",
        "--hook", f"{hooks}:tag", "--system", f"@{prompt}", "--only", "turn 2/*", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["edits"]["hook"] == f"{hooks}:tag" and report["edits"]["system"] == "From a file."
    assert [c["edited"] for c in report["calls"]] == [False, False, True, True]
    sent = [r.json for r in llm.requests[before:]]  # --concurrency 1: in recorded order
    assert [b.get("user") for b in sent] == [None, None, "replay-gpt-4o-mini", "replay-gpt-4.1"]
    assert sent[0]["messages"][0]["content"] == "You are a support agent."
    assert sent[2]["messages"][0] == {"role": "system", "content": "From a file."}
    bad = cli("replay", "--from-file", str(recording.file), "--hook", "no_such_module_x:f")
    assert bad.exit_code == 2 and "cannot load no_such_module_x:f" in bad.output
    both = cli("replay", "abcdef12", "--from-file", str(recording.file))
    assert both.exit_code == 2
    assert (
        "give exactly one source: TRACE_ID, --session, --from-file (got TRACE_ID, --from-file)" in both.output
    )


def test_cli_tool_hook_that_fails_or_returns_no_text_is_a_clear_call_error(
    recording: Recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    hooks = tmp_path / "tool_hooks.py"
    hooks.write_text(
        "def as_dict(call, recorded):\n    return {'temp': 3}\n\n"
        "def bad(call, recorded):\n    raise RuntimeError('tool hook exploded')\n"
    )
    llm = recording.llm
    # the edited system prompt changes the first call's tool call: the hook is asked for call 2's result
    args = ["replay", "--from-file", str(recording.file), "--base-url", llm.base_url, "--mode", "cascade",
            "--system", "You are a terse support agent.", "--only", "turn 1/plan/*", "--json"]  # fmt: skip
    expected = {
        "as_dict": "tool hook tool_hooks:as_dict returned dict for get_weather(",
        "bad": "tool hook tool_hooks:bad failed for get_weather(",
    }
    for name, error in expected.items():
        before = len(llm.requests)
        res = cli(*args, "--tool-hook", f"{hooks}:{name}")
        assert res.exit_code == 1, res.output
        calls = json.loads(res.stdout)["calls"]
        assert [c["status"] for c in calls] == ["ok", "error", "error", "ok"]
        assert all((c["error"] or "").startswith(error) for c in calls[1:3]), calls
        assert "internal error" not in res.stdout
        assert name != "bad" or calls[1]["error"].endswith("RuntimeError: tool hook exploded")
        # no request went out with a tool message that is not text
        sent = [r.json for r in llm.requests[before:]]
        assert len(sent) == 2
        assert all(
            isinstance(m.get("content"), str) for b in sent for m in b["messages"] if m["role"] == "tool"
        )
