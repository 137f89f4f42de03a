"""``spanreel export``: fine-tuning JSONL, Parquet and OTLP JSON from a conversation recorded through
the real ``openai`` SDK (see test_replay_serve_support); OTLP JSON round-trips through
``load_trace_file`` and through a collector's OTLP/HTTP JSON receiver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from conftest import start_collector
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_replay_serve_support import SESSION_ID, Recording, recorded_conversation, stream_tool_calls

from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_URL
from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.replay import load_session, load_trace_file
from spanreel.replay._export import finetune_records, spans_to_otlp_json
from spanreel.replay._otlp_file import decode_trace_document

ROLES = {"system", "user", "assistant", "tool"}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return recorded_conversation(tmp_path_factory.getbasetemp())


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- openai-jsonl


def test_openai_jsonl_has_one_fine_tuning_example_per_successful_call(recording: Recording) -> None:
    res = cli("export", "--session", SESSION_ID, "--db", str(recording.db), "--format", "openai-jsonl")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    examples = [json.loads(line) for line in lines]
    ok_calls = [c for c in recording.calls if c.error is None]
    assert len(examples) == len(ok_calls) == 6
    assert "skipped LLM call (span" in res.stderr and "the call failed (status ERROR)" in res.stderr
    assert "wrote 6 fine-tuning examples to stdout" in res.stderr
    for example, call in zip(examples, ok_calls, strict=True):
        assert set(example) <= {"messages", "tools", "parallel_tool_calls"}
        messages = example["messages"]
        assert all(m["role"] in ROLES for m in messages)
        # the request's messages as sent, then the recorded answer
        assert messages[:-1] == call.kwargs["messages"]
        answer = messages[-1]
        assert answer["role"] == "assistant"
        if call.kwargs.get("stream"):
            tool_calls = stream_tool_calls(call.response)
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in call.response if c["choices"]
            )
        else:
            message = call.response["choices"][0]["message"]
            tool_calls = [
                {"id": t["id"], "name": t["function"]["name"], "arguments": t["function"]["arguments"]}
                for t in message["tool_calls"] or ()
            ]
            text = message["content"]
        if tool_calls:
            assert "content" not in answer
            assert [
                {"id": t["id"], "name": t["function"]["name"], "arguments": t["function"]["arguments"]}
                for t in answer["tool_calls"]
            ] == tool_calls
            assert all(t["type"] == "function" for t in answer["tool_calls"])
        else:
            assert answer == {"role": "assistant", "content": text}
        if "tools" in call.kwargs:
            assert example["tools"] == call.kwargs["tools"]
        else:
            assert "tools" not in example
    # the tool result stays an OpenAI tool message in the follow-up example
    follow_up = examples[3]["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "tool", "assistant"]
    assert follow_up[2]["tool_call_id"] == follow_up[1]["tool_calls"][0]["id"]


def test_openai_jsonl_from_an_anthropic_recording(recording: Recording) -> None:
    res = cli("export", recording.anthropic_trace_id, "--db", str(recording.db), "--format", "openai-jsonl")
    assert res.exit_code == 0, res.output
    first, tool_use, follow_up = (json.loads(line) for line in res.stdout.splitlines())
    calls = recording.anthropic_calls
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tabs or spaces?"},
        {"role": "assistant", "content": calls[0].response["content"][0]["text"]},
    ]
    block = calls[1].response["content"][0]
    (tool_call,) = tool_use["messages"][-1]["tool_calls"]
    assert tool_call["id"] == block["id"] and tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == block["input"]
    assert tool_use["tools"][0]["function"]["parameters"] == calls[1].kwargs["tools"][0]["input_schema"]
    assert [m["role"] for m in follow_up["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert follow_up["messages"][2] == {"role": "tool", "tool_call_id": block["id"], "content": "21 C"}


def test_jsonl_from_semconv_messages_and_anthropic_bodies() -> None:
    """Calls recorded without an OpenAI body: GenAI messages, and an Anthropic request body."""
    semconv_row = {
        "span_id": "01",
        "operation": "chat",
        "status_code": "UNSET",
        "attributes": {
            ga.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "Be brief."}]),
            ga.GEN_AI_INPUT_MESSAGES: json.dumps(
                [
                    {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
                    {
                        "role": "assistant",
                        "parts": [{"type": "tool_call", "id": "c1", "name": "w", "arguments": {"q": 1}}],
                    },
                    {
                        "role": "tool",
                        "parts": [{"type": "tool_call_response", "id": "c1", "response": "sunny"}],
                    },
                ]
            ),
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Sunny."}],
                        "finish_reason": "stop",
                    }
                ]
            ),
            ga.GEN_AI_TOOL_DEFINITIONS: json.dumps([{"type": "function", "name": "w", "parameters": {}}]),
        },
    }
    anthropic_body = {
        "model": "claude-x",
        "max_tokens": 50,
        "system": "Be kind.",
        "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {"q": 1}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
        ],
    }
    anthropic_row = {
        "span_id": "02",
        "operation": "chat",
        "status_code": "OK",
        "attributes": {
            SPANREEL_REQUEST_BODY: json.dumps(anthropic_body),
            SPANREEL_REQUEST_URL: "https://api.anthropic.com/v1/messages",
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny!"}]}]
            ),
        },
    }
    no_output = {"span_id": "03", "operation": "chat", "attributes": {SPANREEL_REQUEST_BODY: "{}"}}
    not_llm = {"span_id": "04", "operation": None, "attributes": {}}
    embeddings = {"span_id": "05", "operation": "embeddings", "attributes": {SPANREEL_REQUEST_BODY: "{}"}}
    result = finetune_records([semconv_row, anthropic_row, no_output, not_llm, embeddings])
    assert result.records[0] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"q": 1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
    }
    assert result.records[1] == {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"q": 1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny!"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}},
            }
        ],
    }
    assert len(result.records) == 2
    assert result.skipped == [
        ("03", "no output recorded (gen_ai.output.messages; content capture off?)"),
        ("05", "an embeddings call, not a conversation"),
    ]


def test_jsonl_from_the_normalised_messages_of_another_convention() -> None:
    """OpenInference's indexed messages (here without ``input.value``) are not gen_ai.* attributes:
    the collector's normalised ``input_messages`` / ``output_messages`` columns give the example."""
    from spanreel.collector._normalise import normalise_messages

    attributes = {
        "openinference.span.kind": "LLM",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "Weather?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Sunny.",
        "llm.finish_reason": "stop",
    }
    inputs, outputs = normalise_messages(attributes)
    row = {
        "span_id": "01",
        "operation": "chat",
        "status_code": "OK",
        "attributes": attributes,
        "input_messages": inputs,
        "output_messages": outputs,
    }
    assert finetune_records([row]).records == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Sunny."},
            ]
        }
    ]


def test_jsonl_from_mlflow_arguments_holding_a_python_object() -> None:
    """MLflow records ``parse(response_format=Answer)`` with the class as its text: replay cannot
    send that, but the export (messages and answer) is unaffected — it raised."""
    from spanreel.collector._normalise import normalise_messages

    inputs = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    outputs = {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "{}"}}]
    }
    attributes = {
        "mlflow.spanType": json.dumps("CHAT_MODEL"),
        "mlflow.message.format": json.dumps("openai"),
        "mlflow.spanInputs": json.dumps({**inputs, "response_format": "<class 'app.Answer'>"}),
        "mlflow.spanOutputs": json.dumps(outputs),
    }
    row = {"span_id": "01", "operation": "chat", "status_code": "OK", "attributes": attributes}
    row["input_messages"], row["output_messages"] = normalise_messages(attributes)
    assert finetune_records([row]).records == [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "{}"}]}
    ]


# --------------------------------------------------------------------------- parquet


def test_parquet_has_the_selected_span_rows(recording: Recording, tmp_path: Path) -> None:
    out = tmp_path / "calls.parquet"
    where = f"operation = 'chat' AND session_id = '{SESSION_ID}'"
    res = cli("export", "--where", where, "--db", str(recording.db), "--format", "parquet", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert f"wrote 7 span rows to {out}" in res.stderr
    table = pq.read_table(out)
    assert table.num_rows == 7
    assert str(table.schema.field("start_time").type) == "timestamp[ns, tz=UTC]"
    expected = run_query(
        "SELECT span_id, name, input_tokens, output_tokens, attributes, epoch_ns(start_time) FROM spans "
        f"WHERE {where} ORDER BY start_time",
        recording.db,
    ).rows
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT span_id, name, input_tokens, output_tokens, attributes, epoch_ns(start_time), "
            f"typeof(attributes), typeof(start_time), received_at IS NOT NULL FROM read_parquet('{out}')"
        ).fetchall()
    finally:
        con.close()
    assert [r[:4] for r in rows] == [tuple(r[:4]) for r in expected]
    assert [json.loads(r[4]) for r in rows] == [json.loads(r[4]) for r in expected]
    assert [r[5] for r in rows] == [r[5] for r in expected]
    assert {r[6:] for r in rows} == {("JSON", "TIMESTAMP WITH TIME ZONE", True)} or {r[6:] for r in rows} == {
        ("JSON", "TIMESTAMPTZ_NS", True)
    }
    # The conversation and cost the collector derived are exported too (they were NULL from the
    # database, filled from an OTLP file).
    derived = table.select(["input_messages", "output_messages", "cost_usd"]).to_pylist()
    assert all(row["input_messages"] for row in derived)
    assert sum(1 for row in derived if row["output_messages"] and row["cost_usd"]) == 4  # priced models


def test_export_errors_are_one_line(recording: Recording, tmp_path: Path) -> None:
    db = str(recording.db)
    smuggled = "1=1) ; SELECT * FROM spans WHERE (1=1"
    res = CliRunner().invoke(main, ["export", "--where", smuggled, "--db", db, "--format", "otlp-json"])
    assert res.exit_code == 1 and "--where must be one boolean expression" in res.output
    res = CliRunner().invoke(main, ["export", "--where", "1=1;", "--db", db, "--format", "otlp-json"])
    assert res.exit_code == 1 and res.output.startswith("Error: --where: Parser Error")
    res = CliRunner().invoke(
        main, ["export", "--where", "no_such_column = 1", "--db", db, "--format", "otlp-json"]
    )
    assert res.exit_code == 1 and "no_such_column" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(
        main, ["export", "--where", "name = 'nothing'", "--db", db, "--format", "otlp-json"]
    )
    assert res.exit_code == 1 and "no spans match --where" in res.output
    res = CliRunner().invoke(main, ["export", recording.trace_id, "--db", db, "--format", "parquet"])
    assert res.exit_code == 2 and "give -o FILE" in res.output
    res = CliRunner().invoke(main, ["export", "--db", db, "--format", "parquet"])
    assert res.exit_code == 2 and "give exactly one source" in res.output


# --------------------------------------------------------------------------- otlp-json


def test_otlp_json_round_trips_through_load_trace_file(recording: Recording, tmp_path: Path) -> None:
    out = tmp_path / "session.json"
    res = cli(
        "export", "--session", SESSION_ID, "--db", str(recording.db), "--format", "otlp-json", "-o", str(out)
    )
    assert res.exit_code == 0, res.output
    document = json.loads(out.read_text())
    original = load_session(SESSION_ID, recording.db)
    assert load_trace_file(out) == original  # every field of every span, GenAI columns included
    # OTLP/JSON encoding rules: hex ids, integer enums, int64 as strings; grouped by resource/scope
    (resource,) = document["resourceSpans"]
    scopes = {s["scope"]["name"]: s["spans"] for s in resource["scopeSpans"]}
    assert set(scopes) >= {"offline-test", "spanreel"}
    span = scopes["spanreel"][0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16 and span["kind"] == 3
    assert isinstance(span["startTimeUnixNano"], str)
    # ... and it serves: `serve-recorded --from-file` uses the same loader
    trace_file = tmp_path / "trace.json"
    cli(
        "export",
        recording.trace_id,
        "--db",
        str(recording.db),
        "--format",
        "otlp-json",
        "-o",
        str(trace_file),
    )
    assert len(load_trace_file(trace_file)) == len([s for s in original if s.trace_id == recording.trace_id])


def test_otlp_json_is_accepted_by_the_collectors_json_receiver(recording: Recording, tmp_path: Path) -> None:
    out = tmp_path / "session.json"
    cli("export", "--session", SESSION_ID, "--db", str(recording.db), "--format", "otlp-json", "-o", str(out))
    with start_collector(tmp_path / "copy.duckdb") as collector:
        r = httpx.post(
            collector.http_url,
            content=out.read_bytes(),
            headers={"Content-Type": "application/json"},
            trust_env=False,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.json().get("partialSuccess", {}).get("rejectedSpans", 0) in (0, "0")
        collector.stop()
    assert load_session(SESSION_ID, tmp_path / "copy.duckdb") == load_session(SESSION_ID, recording.db)


def _row(span_id: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": span_id,
        "parent_span_id": None,
        "trace_state": "",
        "name": f"span {span_id}",
        "kind": "INTERNAL",
        "scope_name": "lib",
        "scope_version": "1.0",
        "start_time_unix_nano": 1_700_000_000_000_000_000,
        "end_time_unix_nano": 1_700_000_000_500_000_000,
        "status_code": "UNSET",
        "status_message": "",
        "attributes": {},
        "resource_attributes": {"service.name": "a"},
        "events": [],
        "links": [],
    }
    row.update(kw)
    return row


def test_otlp_json_keeps_values_resources_scopes_events_and_links() -> None:
    rows = [
        _row(
            "00000000000000a1",
            kind="SERVER",
            trace_state="k=v",
            status_code="ERROR",
            status_message="boom",
            attributes={"s": "x", "i": 2**40, "f": 0.5, "b": True, "l": [1, 2], "m": {"k": "v"}, "n": None},
            events=[{"time_unix_nano": 1_700_000_000_100_000_000, "name": "e", "attributes": {"x": 1}}],
            links=[
                {
                    "trace_id": "0af7651916cd43dd8448eb211c80319c",
                    "span_id": "b7ad6b7169203331",
                    "trace_state": "",
                    "attributes": {"why": "replay"},
                }
            ],
        ),
        _row("00000000000000a2", parent_span_id="00000000000000a1", scope_name="other", scope_version=""),
        _row("00000000000000a3", resource_attributes={"service.name": "b"}, kind="CLIENT", status_code="OK"),
        _row("00000000000000a4", parent_span_id="00000000000000a1"),
    ]
    document = spans_to_otlp_json(rows)
    groups = [
        (
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            [(s["scope"].get("name"), len(s["spans"])) for s in rs["scopeSpans"]],
        )
        for rs in document["resourceSpans"]
    ]
    assert groups == [("a", [("lib", 2), ("other", 1)]), ("b", [("lib", 1)])]
    decoded = {r["span_id"]: r for r in decode_trace_document(json.dumps(document))}
    for row in rows:
        back = decoded[row["span_id"]]
        for key, value in row.items():
            assert back[key] == value or (key == "parent_span_id" and not value and not back[key]), key
    first = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert first["links"][0]["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert {"key": "i", "value": {"intValue": str(2**40)}} in first["attributes"]
