"""Replay end to end: a conversation recorded with the real ``openai`` SDK under
``spanreel.instrumentation.Instrumentor``, exported over real OTLP/HTTP to a collector subprocess on
a fresh DuckDB file, then replayed against ``FakeLLMServer`` through the ``spanreel`` CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import CollectorProcess, count_rows
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from test_replay_support import wait_for, write_db

from spanreel._attributes import SPANREEL_REPLAY_ORIGINAL_SPAN_ID, SPANREEL_REPLAY_ORIGINAL_TRACE_ID
from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor
from spanreel.replay import load_trace, replay_trace
from spanreel.replay._plan import CAPTURE_OFF_REASON
from spanreel.replay._safety import RetryPolicy

API_KEY = "sk-replay-test-key"


@dataclass
class Recorded:
    db: Path
    llm: FakeLLMServer
    trace_id: str
    root_span_id: str
    outputs: list[str]
    bodies: list[bytes]  # request bodies as the fake server received them, in order


@pytest.fixture(scope="module")
def recorded(llm: FakeLLMServer, collector: CollectorProcess) -> Recorded:
    """Record: root span "debate" with 3 captured chat calls (one streamed) and 1 uncaptured."""
    db = collector.db
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "debate-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
    tracer = provider.get_tracer("test")
    client = OpenAI(base_url=llm.base_url, api_key=API_KEY)
    instrumentor = Instrumentor()
    first_request = len(llm.requests)
    outputs: list[str] = []
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    try:
        with tracer.start_as_current_span("debate") as root:
            ctx = root.get_span_context()
            r = client.chat.completions.create(
                model="gpt-4o-mini",
                temperature=0.2,
                messages=[
                    {"role": "system", "content": "You argue for tabs."},
                    {"role": "user", "content": "Tabs or spaces?"},
                ],
            )
            outputs.append(r.choices[0].message.content or "")
            parts = []
            for chunk in client.chat.completions.create(
                model="gpt-4o-mini",
                stream=True,
                stream_options={"include_usage": True},
                messages=[
                    {"role": "system", "content": "You argue for spaces."},
                    {"role": "user", "content": "Reply to: " + outputs[0]},
                ],
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
            outputs.append("".join(parts))
            r = client.chat.completions.create(
                model="fake-judge", messages=[{"role": "user", "content": "Judge and score: " + outputs[1]}]
            )
            outputs.append(r.choices[0].message.content or "")
            # a call recorded with content capture off cannot be replayed
            instrumentor.uninstrument()
            instrumentor.instrument(tracer_provider=provider, capture_content=False)
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "secret"}]
            )
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    trace_id = format(ctx.trace_id, "032x")
    wait_for(
        lambda: count_rows(db, "SELECT count(*) FROM llm_calls WHERE trace_id = ?", [trace_id]) == 4,
        what="4 recorded LLM calls",
    )
    bodies = [r.body for r in llm.requests[first_request:]]
    assert len(bodies) == 4
    return Recorded(db, llm, trace_id, format(ctx.span_id, "016x"), outputs, bodies)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_verbatim_replay_pairs_calls_and_reproduces_outputs(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    llm = recorded.llm
    before = len(llm.requests)
    res = cli(
        "replay", recorded.trace_id[:12], "--db", str(recorded.db), "--base-url", llm.base_url, "--json"
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)  # stdout is JSON only
    assert report["original_trace_id"] == recorded.trace_id
    new_trace = report["replay_trace_id"]
    assert len(new_trace) == 32 and new_trace != recorded.trace_id
    calls = report["calls"]
    assert [c["index"] for c in calls] == [1, 2, 3, 4]
    assert [c["status"] for c in calls] == ["ok", "ok", "ok", "skipped"]
    assert [c["original_output"] for c in calls[:3]] == recorded.outputs
    assert [c["new_output"] for c in calls[:3]] == recorded.outputs
    assert all(c["output_changed"] is False for c in calls[:3])
    assert calls[3]["skip_reason"] == CAPTURE_OFF_REASON and calls[3]["new_output"] is None
    for c in calls[:3]:
        assert c["url"] == llm.base_url + "/chat/completions" and c["http_status"] == 200
        assert c["original_input_tokens"] == c["new_input_tokens"] > 0
        assert c["original_output_tokens"] == c["new_output_tokens"] > 0
        assert c["original_finish_reasons"] == c["new_finish_reasons"] == ["stop"]
        assert c["new_latency_ms"] > 0 and c["original_latency_ms"] > 0
        assert len(c["new_span_id"]) == 16 and c["new_span_id"] != c["original_span_id"]
    totals = report["totals"]
    assert totals["calls"] == 4 and totals["replayed"] == 3 and totals["skipped"] == 1
    assert totals["errors"] == 0 and totals["changed"] == 0
    assert (
        totals["new_output_tokens"]
        == totals["original_output_tokens"]
        == sum(c["original_output_tokens"] for c in calls[:3])
    )
    assert report["export"]["ok"] is True and report["warnings"] == []

    # the exact recorded bytes were re-sent, with the credential from the environment only
    sent = llm.requests[before:]
    assert sorted(r.body for r in sent) == sorted(recorded.bodies[:3])  # sent concurrently
    assert all(r.header("authorization") == "Bearer sk-from-the-environment" for r in sent)

    # the new trace is stored: root "replay debate" linked to the original root, LLM spans linked
    # to their original spans
    db = recorded.db
    wait_for(lambda: count_rows(db, "SELECT count(*) FROM llm_calls WHERE trace_id = ?", [new_trace]) == 3)
    rows = run_query(
        "SELECT name, parent_span_id, service_name, attributes, links FROM spans "
        "WHERE trace_id = ? AND (parent_span_id IS NULL OR operation IS NOT NULL) ORDER BY start_time",
        db,
        [new_trace],
    ).rows
    root = rows[0]
    assert root[0] == "replay debate" and root[1] is None and root[2] == "spanreel-replay"
    assert json.loads(root[3])[SPANREEL_REPLAY_ORIGINAL_TRACE_ID] == recorded.trace_id
    (root_link,) = json.loads(root[4])
    assert (root_link["trace_id"], root_link["span_id"]) == (recorded.trace_id, recorded.root_span_id)
    for row, call in zip(rows[1:], calls[:3], strict=True):
        attrs, links = json.loads(row[3]), json.loads(row[4])
        assert attrs[SPANREEL_REPLAY_ORIGINAL_TRACE_ID] == recorded.trace_id
        assert attrs[SPANREEL_REPLAY_ORIGINAL_SPAN_ID] == call["original_span_id"]
        assert {(lk["trace_id"], lk["span_id"]) for lk in links} == {
            (recorded.trace_id, call["original_span_id"])
        }


def test_edited_system_prompt_changes_outputs_and_report(recorded: Recorded) -> None:
    llm = recorded.llm
    before = len(llm.requests)
    res = cli(
        "replay", recorded.trace_id, "--db", str(recorded.db), "--base-url", llm.base_url,
        "--system", "Answer like a pirate.", "--model", "gpt-4.1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"replay of {recorded.trace_id}" in out
    assert "changed" in out and "skipped" in out and "content capture was off" in out
    assert "totals: 3/4 calls replayed, 0 failed, 3 changed, 1 skipped" in out
    assert "replay trace: " in out
    new_trace = out.split("replay trace: ")[1].split()[0]
    assert len(new_trace) == 32
    # the first words of each original output appear in the table (side by side with new output)
    for original in recorded.outputs:
        assert original.split()[0] in out
    sent = [r.json for r in llm.requests[before:]]
    assert [b["model"] for b in sent] == ["gpt-4.1"] * 3
    assert sent[0]["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert sent[2]["messages"][0] == {"role": "system", "content": "Answer like a pirate."}  # inserted
    assert sent[2]["messages"][1]["role"] == "user"

    # the replay shows up in `traces` and `show`
    wait_for(
        lambda: count_rows(recorded.db, "SELECT count(*) FROM traces WHERE trace_id = ?", [new_trace]) == 1
    )
    traces = json.loads(cli("traces", "--db", str(recorded.db), "--json").stdout)
    mine = next(t for t in traces if t["trace_id"] == new_trace)
    assert mine["root_name"] == "replay debate" and mine["service_name"] == "spanreel-replay"
    shown = cli("show", new_trace, "--db", str(recorded.db)).stdout
    assert "replay debate" in shown and "chat gpt-4.1" in shown


def test_api_result_and_failed_calls_exit_1(recorded: Recorded) -> None:
    result = replay_trace(
        recorded.trace_id,
        recorded.db,
        base_url=recorded.llm.base_url,
        model="fake-error-500",
        retry=RetryPolicy(max_retries=1, base_delay=0.01),
    )
    assert not result.ok and result.errors == 3
    assert [c.status for c in result.calls] == ["error", "error", "error", "skipped"]
    assert all(
        c.http_status == 500 and (c.replay and "HTTP 500" in (c.replay.error or "")) for c in result.calls[:3]
    )
    assert all(c.attempts == 2 for c in result.calls[:3])  # 5xx is retried (bounded)
    res = cli("replay", recorded.trace_id, "--db", str(recorded.db), "--base-url", recorded.llm.base_url,
              "--model", "fake-error-429", "--retries", "0", "--json")  # fmt: skip
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["totals"]["errors"] == 3 and all("429" in (c["error"] or "") for c in report["calls"][:3])


def test_unreachable_host_is_a_call_error_not_a_crash(recorded: Recorded) -> None:
    res = cli(
        "replay", recorded.trace_id, "--db", str(recorded.db), "--base-url", "http://127.0.0.1:9/v1",
        "--retries", "0", "--json",
    )  # fmt: skip
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert [c["status"] for c in report["calls"]] == ["error", "error", "error", "skipped"]
    assert all("ConnectError" in c["error"] for c in report["calls"][:3])


def test_export_failure_is_a_warning(
    recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same spans in a file no collector serves: the replay trace has nowhere to go.
    copy = write_db(tmp_path / "copy.duckdb", load_trace(recorded.trace_id, recorded.db))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    res = cli("replay", recorded.trace_id, "--db", str(copy), "--base-url", recorded.llm.base_url, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [c["status"] for c in report["calls"]] == ["ok", "ok", "ok", "skipped"]
    assert [c["new_output"] for c in report["calls"][:3]] == recorded.outputs
    assert report["export"]["ok"] is False and "127.0.0.1:9" in report["export"]["endpoint"]
    assert "could not be exported" in res.stderr and "Traceback" not in res.stderr
