"""A session is its own spans, not every trace it touches.

Recording: the real ``openai`` SDK under ``spanreel.instrumentation.Instrumentor`` against
``FakeLLMServer``. A batch job opens one ``spanreel.session`` per ticket inside one app span, so
three sessions share one trace (a session starts no span when one is active); an outer session
holds a nested session with an id of its own; a single-session trace has an app span beside the
session. The spans go through OTLP JSON into a DuckDB file written by the collector's writer.

``spanreel export --session``, ``spanreel replay --session --dry-run``, :func:`load_session` and
the viewer's session page must cover only the asked session's LLM calls (with the ancestors the
tree needs), and a trace holding several sessions is listed under each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from openai import OpenAI
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_replay_support import direct_query, otlp_dict, write_db

from spanreel.cli import main
from spanreel.collector._query import execute_read_only
from spanreel.collector._ui_data import QueryFn, TraceFilters, list_traces, session_detail, trace_detail
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor, session
from spanreel.replay import SpanRecord, load_session, load_trace_file


@dataclass
class Recording:
    db: Path
    spans: list[SpanRecord]


def _ask(client: OpenAI, text: str) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    tmp = tmp_path_factory.mktemp("scope")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "batch-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app")
    instrumentor = Instrumentor()
    with FakeLLMServer(port=0) as llm:
        client = OpenAI(base_url=llm.base_url, api_key="sk-recording")
        instrumentor.instrument(tracer_provider=provider, capture_content=True)
        try:
            with tracer.start_as_current_span("nightly-batch"):
                for t in (1, 2, 3):
                    with session("ticket", session_id=f"ticket-{t}", user_id=f"cust{t}"):
                        for k in (1, 2):
                            _ask(client, f"ticket {t} message {k}")
            time.sleep(0.01)
            with session("outer", session_id="outer-1"):
                _ask(client, "outer hello")
                with session("lookup", session_id="nested-2"):
                    _ask(client, "nested hello")
                _ask(client, "outer bye")
            time.sleep(0.01)
            with tracer.start_as_current_span("request"):
                with tracer.start_as_current_span("load profile"):
                    pass
                with session("chat", session_id="solo"):
                    _ask(client, "solo hello")
            with session("padded", session_id="  padded id  "):
                _ask(client, "padded hello")
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
    file = tmp / "spans.json"
    file.write_text(json.dumps(otlp_dict(list(memory.get_finished_spans()), hex_ids=True)))
    spans = load_trace_file(file)
    yield Recording(write_db(tmp / "spans.duckdb", spans), spans)


@pytest.fixture()
def query(recording: Recording) -> Iterator[QueryFn]:
    con = duckdb.connect(str(recording.db), read_only=True)
    try:
        yield lambda sql, params: execute_read_only(con, sql, params)
    finally:
        con.close()


def _user_texts(spans: list[SpanRecord]) -> list[str]:
    out = []
    for s in spans:
        if s.operation is None:
            continue
        messages = json.loads(str(s.attributes["gen_ai.input.messages"]))
        out.append(messages[0]["parts"][0]["content"])
    return out


def _cli(*args: str) -> Any:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_batch_trace_holds_three_sessions(recording: Recording) -> None:
    """The premise: the three tickets' calls share one trace."""
    calls = [s for s in recording.spans if s.session_id and s.session_id.startswith("ticket-")]
    assert len({s.trace_id for s in calls}) == 1 and len([s for s in calls if s.operation]) == 6


def test_load_session_takes_only_the_sessions_calls_and_their_ancestors(recording: Recording) -> None:
    loaded = load_session("ticket-2", recording.db, query=direct_query)
    assert _user_texts(loaded) == ["ticket 2 message 1", "ticket 2 message 2"]
    assert loaded[0].name == "nightly-batch" and loaded[0].parent_span_id is None  # the tree's root
    ids = {s.span_id for s in loaded}
    assert all(s.parent_span_id is None or s.parent_span_id in ids for s in loaded)
    assert {s.session_id for s in loaded if s.parent_span_id is not None} == {"ticket-2"}

    assert _user_texts(load_session("nested-2", recording.db, query=direct_query)) == ["nested hello"]
    outer = load_session("outer-1", recording.db, query=direct_query)
    assert _user_texts(outer) == ["outer hello", "outer bye"]
    assert outer[0].name == "outer"


def test_single_session_trace_is_loaded_whole_as_before(recording: Recording) -> None:
    """A trace holding one session keeps every span, also the app's spans outside the session."""
    loaded = load_session("solo", recording.db, query=direct_query)
    trace = [s for s in recording.spans if s.trace_id == loaded[0].trace_id]
    assert [s.span_id for s in loaded] == [s.span_id for s in trace]
    assert "load profile" in [s.name for s in loaded]


def test_export_session_writes_only_its_conversations(recording: Recording, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    db = str(recording.db)
    _cli("export", "--session", "ticket-2", "--format", "openai-jsonl", "-o", str(out), "--db", db)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["messages"][0]["content"] for line in lines] == ["ticket 2 message 1", "ticket 2 message 2"]

    otlp = tmp_path / "x.json"
    _cli("export", "--session", "ticket-3", "--format", "otlp-json", "-o", str(otlp), "--db", db)
    assert _user_texts(load_trace_file(otlp)) == ["ticket 3 message 1", "ticket 3 message 2"]


def test_replay_session_dry_run_plans_only_its_calls(recording: Recording) -> None:
    for sid, expected in (("ticket-2", 2), ("nested-2", 1), ("outer-1", 2), ("solo", 1)):
        res = _cli("replay", "--session", sid, "--dry-run", "--json", "--db", str(recording.db))
        plan = json.loads(res.stdout)
        assert len(plan["calls"]) == expected, sid


def test_session_page_shows_the_sessions_calls_and_totals(recording: Recording, query: QueryFn) -> None:
    detail = session_detail(query, "ticket-2")
    (trace,) = detail["traces"]
    assert trace["other_sessions"] == ["ticket-1", "ticket-3"]
    assert trace["session_ids"] == ["ticket-1", "ticket-2", "ticket-3"]
    calls = [s for s in recording.spans if s.session_id == "ticket-2" and s.operation]
    assert [c["span_id"] for c in trace["calls"]] == [s.span_id for s in calls]
    tokens_in = sum(s.input_tokens or 0 for s in calls)
    tokens_out = sum(s.output_tokens or 0 for s in calls)
    assert (trace["llm_calls"], trace["input_tokens"], trace["output_tokens"]) == (2, tokens_in, tokens_out)
    assert trace["start_time"] is not None and trace["duration_ns"] > 0
    totals = detail["totals"]
    assert (totals["llm_calls"], totals["input_tokens"]) == (2, tokens_in)
    assert totals["output_tokens"] == tokens_out
    assert totals["duration_ns"] == trace["duration_ns"]

    nested = session_detail(query, "nested-2")
    assert [len(t["calls"]) for t in nested["traces"]] == [1] and nested["totals"]["llm_calls"] == 1


def test_single_session_page_is_the_whole_trace_as_before(query: QueryFn) -> None:
    detail = session_detail(query, "solo")
    (trace,) = detail["traces"]
    assert trace["other_sessions"] == []
    listed = list_traces(query, TraceFilters(session="solo"))["traces"][0]
    for key in ("start_time", "end_time", "duration_ns", "llm_calls", "input_tokens", "output_tokens"):
        assert trace[key] == listed[key], key


def test_trace_with_several_sessions_is_listed_under_each(recording: Recording, query: QueryFn) -> None:
    batch = next(s.trace_id for s in recording.spans if s.name == "nightly-batch")
    for sid in ("ticket-1", "ticket-2", "ticket-3"):
        (listed,) = list_traces(query, TraceFilters(session=sid))["traces"]
        assert listed["trace_id"] == batch
        assert listed["session_ids"] == ["ticket-1", "ticket-2", "ticket-3"]
    assert trace_detail(query, batch)["trace"]["session_ids"] == ["ticket-1", "ticket-2", "ticket-3"]


def test_padded_session_id_is_found_stripped(recording: Recording, tmp_path: Path) -> None:
    """The collector strips ``session_id``; the lookups strip the id they are given the same way."""
    assert {s.session_id for s in recording.spans if s.name == "padded"} == {"padded id"}
    padded = "  padded id  "
    assert _user_texts(load_session(padded, recording.db, query=direct_query)) == ["padded hello"]
    db = str(recording.db)
    plan = json.loads(_cli("replay", "--session", padded, "--dry-run", "--json", "--db", db).stdout)
    assert len(plan["calls"]) == 1 and plan["session_id"] == "padded id"
    out = tmp_path / "p.jsonl"
    _cli("export", "--session", padded, "--format", "openai-jsonl", "-o", str(out), "--db", db)
    assert json.loads(out.read_text())["messages"][0]["content"] == "padded hello"


def test_session_id_too_long_for_baggage_warns_once_and_never_raises(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenTelemetry drops a baggage entry over 4096 bytes from outgoing requests; spanreel says
    so in one ``spanreel:`` line, and the call and its span are unaffected."""
    from opentelemetry import baggage
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    from spanreel.instrumentation import _context

    monkeypatch.setattr(_context, "_warned_baggage", set(), raising=False)
    caplog.set_level("WARNING", logger="spanreel")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = Instrumentor()
    long_id = "L" * 5000
    with FakeLLMServer(port=0) as llm:
        client = OpenAI(base_url=llm.base_url, api_key="sk-test")
        instrumentor.instrument(tracer_provider=provider, capture_content=True)
        try:
            with session("ok", session_id="short", user_id="u" * 100):
                _ask(client, "fine")
            assert not [r for r in caplog.records if r.getMessage().startswith("spanreel:")]
            with session("long", session_id=long_id, user_id="u" * 5000):
                _ask(client, "still works")
                headers: dict[str, str] = {}
                W3CBaggagePropagator().inject(headers)
                assert baggage.get_baggage("session.id") == long_id  # in-process it is there
            with session("again", session_id=long_id + "2", user_id="u" * 5000):
                _ask(client, "and again")
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
    # the premise: the propagator really leaves the too-long entries out of the header
    assert "session.id" not in headers.get("baggage", "") and "user.id" not in headers.get("baggage", "")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("spanreel:")]
    assert len(lines) == 1, lines  # once, not once per session
    assert "session_id and user_id are longer than" in lines[0] and "4096 bytes" in lines[0]
    assert "'long'" in lines[0] and long_id not in lines[0]
    calls = [s for s in memory.get_finished_spans() if s.name.startswith("chat")]
    assert [(s.attributes or {}).get("session.id") for s in calls] == ["short", long_id, long_id + "2"]


def test_sessions_command_lists_each_session_with_its_own_calls(recording: Recording) -> None:
    """``spanreel sessions``: one row per session id, newest first, each counting only the spans
    that carry its id (three sessions of one trace each count that trace, a nested session's call
    is not its outer session's), with the name and user given to ``spanreel.session``."""
    db = str(recording.db)
    rows = json.loads(_cli("sessions", "--db", db, "--json").stdout)
    order = [r["session_id"] for r in rows]
    assert order == ["padded id", "solo", "nested-2", "outer-1", "ticket-3", "ticket-2", "ticket-1"]
    by_id = {r["session_id"]: r for r in rows}
    ticket = by_id["ticket-2"]
    named = (ticket["session_name"], ticket["user_id"], ticket["service_name"])
    assert named == ("ticket", "cust2", "batch-app")
    assert (ticket["trace_count"], ticket["llm_calls"], ticket["error_count"]) == (1, 2, 0)
    assert (by_id["outer-1"]["llm_calls"], by_id["nested-2"]["llm_calls"]) == (2, 1)
    assert by_id["nested-2"]["session_name"] == "lookup" and by_id["outer-1"]["user_id"] is None
    calls = [s for s in recording.spans if s.operation and s.session_id == "ticket-2"]
    assert ticket["input_tokens"] == sum(s.input_tokens or 0 for s in calls) > 0
    assert ticket["output_tokens"] == sum(s.output_tokens or 0 for s in calls) > 0
    session_spans = [s for s in recording.spans if s.session_id == "ticket-2"]
    assert ticket["span_count"] == len(session_spans)
    assert ticket["start_time"] < ticket["end_time"] and ticket["duration_ns"] > 0

    # the view the command reads holds the same rows, SQL users can filter it
    sql = "SELECT * FROM sessions WHERE user_id = 'cust2'"
    same = json.loads(_cli("sql", sql, "--db", db, "--json").stdout)
    assert [dict(zip(same["columns"], row, strict=True)) for row in same["rows"]] == [ticket]

    newest = json.loads(_cli("sessions", "--db", db, "--json", "--limit", "2").stdout)
    assert [r["session_id"] for r in newest] == ["padded id", "solo"]
    table = _cli("sessions", "--db", db).stdout
    assert "ticket-2" in table and "cust2" in table and "lookup" in table


def test_sessions_command_on_a_file_without_sessions(tmp_path: Path) -> None:
    db = write_db(tmp_path / "none.duckdb", [])
    res = CliRunner().invoke(main, ["sessions", "--db", str(db)], catch_exceptions=False)
    assert res.exit_code == 0 and "no sessions in" in res.stderr
    assert json.loads(_cli("sessions", "--db", str(db), "--json").stdout) == []
