"""Replay sources: OTLP JSON files (hex and base64 ids, Collector file-exporter JSON Lines, Tempo's
``batches``), sessions from a real DuckDB file, and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode
from test_replay_support import T0, TRACE, direct_query, otlp_dict, rec, to_hex_ids, write_db

from spanreel.replay import SessionNotFound, TraceFileError, load_session, load_trace_file


def _recorded_spans() -> list[ReadableSpan]:
    """Two traces from the real SDK: a root with a GenAI child (+ a link) and a second trace."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "file-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("spanreel", "9.9")
    with tracer.start_as_current_span("agent", start_time=T0) as root:
        link = Link(root.get_span_context(), {"why": "test"})
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            start_time=T0 + 5_000_000,
            links=[link],
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",  # deprecated name: normalised into provider
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 11,
                "gen_ai.usage.output_tokens": 7,
                "session.id": "s-9",
            },
        ) as llm:
            llm.set_status(Status(StatusCode.ERROR, "boom"))
            llm.end(end_time=T0 + 9_000_000)
        root.end(end_time=T0 + 20_000_000)
    with tracer.start_as_current_span("second", start_time=T0 - 1_000_000) as other:
        other.end(end_time=T0)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _check(spans: list[Any], recorded: list[ReadableSpan]) -> None:
    by_name = {s.name: s for s in spans}
    assert [s.name for s in spans] == ["second", "agent", "chat gpt-4o-mini"]  # traces by start
    sdk = {s.name: s for s in recorded}
    agent, llm = by_name["agent"], by_name["chat gpt-4o-mini"]
    assert agent.trace_id == f"{sdk['agent'].context.trace_id:032x}"
    assert llm.parent_span_id == agent.span_id == f"{sdk['agent'].context.span_id:016x}"
    assert llm.start_time_ns == T0 + 5_000_000 and llm.end_time_ns == T0 + 9_000_000
    assert llm.operation == "chat" and llm.provider == "openai" and llm.request_model == "gpt-4o-mini"
    assert (llm.input_tokens, llm.output_tokens, llm.session_id) == (11, 7, "s-9")
    assert llm.status_code == "ERROR" and llm.status_message == "boom"
    assert llm.kind == "INTERNAL" and llm.scope_name == "spanreel" and llm.scope_version == "9.9"
    assert llm.service_name == "file-app"
    assert llm.links[0]["span_id"] == agent.span_id and llm.links[0]["attributes"] == {"why": "test"}


@pytest.mark.parametrize("ids", ["hex", "base64"])
def test_load_trace_file_hex_and_base64_ids(tmp_path: Path, ids: str) -> None:
    recorded = _recorded_spans()
    doc = otlp_dict(recorded)
    if ids == "hex":
        doc = to_hex_ids(doc)
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(doc))
    _check(load_trace_file(path), recorded)


def test_load_trace_file_jsonl_tempo_and_legacy_spellings(tmp_path: Path) -> None:
    recorded = _recorded_spans()
    first, second = otlp_dict(recorded[:2], hex_ids=True), otlp_dict(recorded[2:])
    jsonl = tmp_path / "collector-file-exporter.jsonl"
    jsonl.write_text(json.dumps(first) + "\n\n" + json.dumps(second) + "\n")
    _check(load_trace_file(jsonl), recorded)

    legacy = otlp_dict(recorded)
    tempo = {"batches": legacy["resourceSpans"]}
    for rs in tempo["batches"]:
        rs["instrumentationLibrarySpans"] = [
            {"instrumentationLibrary": ss["scope"], "spans": ss["spans"]} for ss in rs.pop("scopeSpans")
        ]
    path = tmp_path / "tempo.json"
    path.write_text(json.dumps({"trace": tempo}))
    spans = load_trace_file(path)
    _check(spans, recorded)

    # duplicates (a retried export written twice) keep one copy
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps([legacy, legacy]))
    assert len(load_trace_file(dup)) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "not JSON"),
        ('{"foo": 1}', "not OTLP trace data"),
        ('{"resourceSpans": []}', "no spans"),
        ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "01"}]}]}]}', "traceId"),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
            + TRACE
            + '", "spanId": "'
            + "1" * 16
            + '", "startTimeUnixNano": "5", "endTimeUnixNano": "1"}]}]}]}',
            "before start",
        ),
    ],
)
def test_load_trace_file_errors_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TraceFileError, match=message) as info:
        load_trace_file(path)
    assert str(path) in str(info.value)


def test_load_trace_file_missing(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError, match="cannot read"):
        load_trace_file(tmp_path / "nope.json")


def test_load_session_every_trace_in_time_order(tmp_path: Path) -> None:
    t2, t3 = "b" * 32, "c" * 32
    spans = [
        # trace 2 starts first; its root has no session.id but a child has
        rec("21", trace_id=t2, name="turn 1", start_ms=0),
        rec("22", "21", trace_id=t2, name="chat a", start_ms=1, session_id="sess"),
        # trace 1 starts later
        rec("11", name="turn 2", start_ms=100, session_id="sess"),
        rec("12", "11", name="chat b", start_ms=101, session_id="sess"),
        # another session
        rec("31", trace_id=t3, name="other", start_ms=50, session_id="other"),
    ]
    db = write_db(tmp_path / "s.duckdb", spans)
    loaded = load_session("sess", db, query=direct_query)
    assert [s.name for s in loaded] == ["turn 1", "chat a", "turn 2", "chat b"]
    assert [s.trace_id for s in loaded] == [t2, t2, TRACE, TRACE]
    with pytest.raises(SessionNotFound, match="'nope' not found"):
        load_session("nope", db, query=direct_query)
