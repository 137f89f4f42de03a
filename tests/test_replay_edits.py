"""Replay edits on the calls they fit, end to end.

Recording: the real ``openai`` and ``anthropic`` SDKs under
``spanreel.instrumentation.Instrumentor`` against ``FakeLLMServer`` — one trace with an OpenAI chat
call whose system message is a list of parts, an embeddings call, a legacy completions call and an
Anthropic messages call whose system prompt is two text blocks (one with ``cache_control``). The
spans are written as OTLP JSON (what ``--from-file`` reads). Replays run through the ``spanreel``
CLI; the requests are checked as the fake server received them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anthropic import Anthropic
from click.testing import CliRunner, Result
from openai import OpenAI
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_replay_support import otlp_dict, write_db

from spanreel.cli import main
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor
from spanreel.replay import ReplayEdits, load_trace_file, replay_trace

CHAT_SYSTEM = [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Use British spelling."}]
ANTHROPIC_SYSTEM = [
    {"type": "text", "text": "You are a librarian.", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "Answer in French."},
]
#: span names, in recorded order
NAMES = [
    "chat gpt-4o-mini",
    "embeddings text-embedding-3-small",
    "text_completion gpt-3.5-turbo-instruct",
    "chat claude-3-5-haiku-latest",
]


@dataclass
class Recording:
    llm: FakeLLMServer
    file: Path  # the whole trace
    embeddings_file: Path  # a trace with only the embeddings call
    bodies: list[dict[str, Any]]  # as the fake server received them, in order


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    tmp = tmp_path_factory.mktemp("edits")
    with FakeLLMServer(port=0) as llm:
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "edits-app"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("app")
        openai = OpenAI(base_url=llm.base_url, api_key="sk-recording", max_retries=0)
        anthropic = Anthropic(base_url=llm.base_url.removesuffix("/v1"), api_key="sk-ant", max_retries=0)
        first = len(llm.requests)
        instrumentor = Instrumentor()
        instrumentor.instrument(tracer_provider=provider, capture_content=True)
        try:
            with tracer.start_as_current_span("app"):
                openai.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[
                        {"role": "system", "content": CHAT_SYSTEM},  # type: ignore[typeddict-item]
                        {"role": "user", "content": "Colour or color?"},
                    ],
                )
                openai.embeddings.create(model="text-embedding-3-small", input="embed me")
                openai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon a time")
                anthropic.messages.create(
                    model="claude-3-5-haiku-latest",
                    max_tokens=50,
                    system=ANTHROPIC_SYSTEM,  # type: ignore[arg-type]
                    messages=[{"role": "user", "content": "hi"}],
                )
            with tracer.start_as_current_span("indexer"):
                openai.embeddings.create(model="text-embedding-3-small", input="index me")
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
        bodies = [r.json for r in llm.requests[first:]]
        spans = list(memory.get_finished_spans())
        indexer = next(s for s in spans if s.name == "indexer")
        assert indexer.context is not None
        mine = [s for s in spans if s.context is not None and s.context.trace_id == indexer.context.trace_id]
        file = tmp / "trace.json"
        file.write_text(json.dumps(otlp_dict([s for s in spans if s not in mine], hex_ids=True)))
        embeddings_file = tmp / "embeddings.json"
        embeddings_file.write_text(json.dumps(otlp_dict(mine, hex_ids=True)))
        yield Recording(llm, file, embeddings_file, bodies)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-replay")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-replay")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nowhere: a warning only
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def replay(recording: Recording, *args: str, file: Path | None = None) -> tuple[dict[str, Any], list[Any]]:
    """Replay the trace file one call at a time: the JSON report and the bodies the server got."""
    before = len(recording.llm.requests)
    res = cli("replay", "--from-file", str(file or recording.file), "--concurrency", "1", "--json", *args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    return report, [r.json for r in recording.llm.requests[before:]]


def edit_warnings(report: dict[str, Any]) -> list[str]:
    return [w for w in report["warnings"] if "could not be exported" not in w]


def test_system_and_model_edits_leave_embeddings_and_completions_alone(recording: Recording) -> None:
    report, sent = replay(recording, "--system", "NEW SYS", "--model", "gpt-4.1")
    assert [c["name"] for c in report["calls"]] == NAMES
    assert [c["status"] for c in report["calls"]] == ["ok"] * 4
    assert [c["edited"] for c in report["calls"]] == [True, False, True, True]
    chat, embeddings, completions, anthropic = sent
    assert chat["model"] == "gpt-4.1" and chat["messages"][0] == {"role": "system", "content": "NEW SYS"}
    assert embeddings == recording.bodies[1]  # no "instructions", the embeddings model kept
    assert completions == {**recording.bodies[2], "model": "gpt-4.1"}  # no system prompt to edit
    assert anthropic["system"] == "NEW SYS" and anthropic["model"] == "gpt-4.1"
    assert edit_warnings(report) == []


def test_system_edit_that_fits_no_call_is_a_warning(recording: Recording) -> None:
    report, sent = replay(recording, "--system-append", "Be brief.", file=recording.embeddings_file)
    assert [c["edited"] for c in report["calls"]] == [False]
    assert sent == [recording.bodies[4]]
    (warning,) = edit_warnings(report)
    assert warning.startswith("--system/--system-append changed no call") and "embeddings" in warning
    # an embeddings model is changed with --set, --model leaves it alone (and says so)
    report, sent = replay(recording, "--model", "gpt-4.1", file=recording.embeddings_file)
    assert sent == [recording.bodies[4]] and [c["edited"] for c in report["calls"]] == [False]
    assert edit_warnings(report) == [
        "--model changed no call: it leaves embeddings calls alone "
        "(use --set model=M --only 'embeddings *' to change an embeddings model)"
    ]
    report, sent = replay(
        recording, "--set", "model=text-embedding-3-large", "--only", "embeddings *",
        file=recording.embeddings_file,
    )  # fmt: skip
    assert sent == [{**recording.bodies[4], "model": "text-embedding-3-large"}]
    assert edit_warnings(report) == []


def test_system_append_adds_a_block_to_a_system_prompt_made_of_blocks(recording: Recording) -> None:
    report, sent = replay(recording, "--system-append", "Be brief.")
    assert [c["status"] for c in report["calls"]] == ["ok"] * 4
    assert [c["edited"] for c in report["calls"]] == [True, False, False, True]
    chat, _, _, anthropic = sent
    appended = {"type": "text", "text": "Be brief."}
    # the recorded blocks kept as they were (cache_control too), the appended text a block of its own
    assert anthropic["system"] == [*ANTHROPIC_SYSTEM, appended]
    assert chat["messages"][0] == {"role": "system", "content": [*CHAT_SYSTEM, appended]}
    assert chat["messages"][1:] == recording.bodies[0]["messages"][1:]
    # --system replaces the blocks by its text; --system-append then follows it after a blank line
    _, sent = replay(recording, "--system", "New.", "--system-append", "Be brief.", "--only", "chat claude-*")
    assert sent[3]["system"] == "New.\n\nBe brief."


def test_replay_trace_refuses_model_or_system_beside_edits(recording: Recording, tmp_path: Path) -> None:
    db = write_db(tmp_path / "spans.duckdb", load_trace_file(recording.file))
    trace_id = load_trace_file(recording.file)[0].trace_id
    before = len(recording.llm.requests)
    edits = ReplayEdits(params=(("temperature", 0),))
    with pytest.raises(TypeError, match=r"got edits and model: put them in the ReplayEdits"):
        replay_trace(trace_id, db, model="gpt-4.1", edits=edits)
    with pytest.raises(TypeError, match=r"ReplayEdits\(model=…, system=…, …\)"):
        replay_trace(trace_id, db, model="gpt-4.1", system="S", edits=edits)
    assert len(recording.llm.requests) == before  # nothing was sent
    # the shorthands alone still work
    result = replay_trace(trace_id, db, system="S", concurrency=1, span_exporter=InMemorySpanExporter())
    assert [c.edited for c in result.calls] == [True, False, False, True]
    sent = [r.json for r in recording.llm.requests[before:]]  # concurrency=1: in recorded order
    assert sent[0]["messages"][0] == {"role": "system", "content": "S"} and sent[3]["system"] == "S"


def test_only_matching_no_call_is_a_warning_in_text_and_json(recording: Recording) -> None:
    report, sent = replay(recording, "--model", "gpt-4.1", "--only", "nomatch*")
    assert not any(c["edited"] for c in report["calls"]) and sent == recording.bodies[:4]
    only = (
        "--only 'nomatch*' matched no replayable call (by span name, tree path or "
        "spanreel.session.path): nothing was edited"
    )
    assert edit_warnings(report) == [only]
    text = cli("replay", "--from-file", str(recording.file), "--model", "gpt-4.1", "--only", "nomatch*")
    assert text.exit_code == 0 and f"warning: {only}" in " ".join(text.stderr.split())
    dry = cli(
        "replay", "--from-file", str(recording.file), "--dry-run", "--json", "--model", "x", "--only", "no*"
    )
    assert dry.exit_code == 0 and json.loads(dry.stdout)["warnings"] == [only.replace("nomatch*", "no*")]
    assert "warning: --only 'no*' matched no replayable call" in dry.stderr


def test_dry_run_applies_the_edits_and_shows_those_that_do_not_fit(recording: Recording) -> None:
    before = len(recording.llm.requests)
    args = ["replay", "--from-file", str(recording.file), "--dry-run"]
    res = cli(*args, "--json", "--set", "messages.0.content=hi", "--only", "chat *")
    assert res.exit_code == 1, res.output  # the replay of those calls would fail
    calls = json.loads(res.stdout)["calls"]
    error = "cannot set messages.0.content: 'messages' is not an object in the request body"
    assert [c["edit_error"] for c in calls] == [error, None, None, error]
    text = cli(*args, "--set", "messages.0.content=hi", "--only", "chat *")
    assert text.exit_code == 1 and "edit failed: cannot set messages.0.content" in text.stdout
    assert cli(*args, "--set", "messages.0.content=hi", "--fail-on", "never").exit_code == 0
    # edits that fit: the plan shows the model that would be sent
    res = cli(*args, "--json", "--model", "gpt-4.1", "--set", "temperature=0")
    assert res.exit_code == 0, res.output
    calls = json.loads(res.stdout)["calls"]
    assert [c["model"] for c in calls] == ["gpt-4.1", "text-embedding-3-small", "gpt-4.1", "gpt-4.1"]
    assert all(c["edit_error"] is None for c in calls)
    assert len(recording.llm.requests) == before  # nothing was sent


def test_option_ranges_and_help(recording: Recording) -> None:
    for timeout in ("0", "-1"):
        res = cli("replay", "--from-file", str(recording.file), "--timeout", timeout)
        assert res.exit_code == 2 and f"{float(timeout)} is not in the range x>0" in res.output
    assert cli("replay", "--from-file", str(recording.file), "--timeout", "0.5", "--dry-run").exit_code == 0
    text = " ".join(cli("replay", "--help").stdout.split())
    assert "Retries of a request that failed with HTTP 429 or 5xx, a connection error or a timeout" in text
    assert "tree path (span names from the trace root down to the call" in text
    assert "or spanreel.session.path" in text
