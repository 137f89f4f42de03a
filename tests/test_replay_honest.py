"""A replay report that does not claim more than it saw, as a new user meets it: traces recorded
with the real ``openai`` SDK against ``FakeLLMServer`` and replayed through the ``spanreel`` CLI.

- an answer that holds no model output (an HTML page, ``{}``) is a failed call, not "0 changed";
- a call whose recorded body spanreel modified at record time (blob placeholders, masked
  credentials) says it is not replayed verbatim;
- totals compare only the calls with a figure on both sides, and say how many that is;
- a recording cut at record time says so, and a replay that sent nothing fails the check;
- a trace still being written (its root not exported yet) is replayed with a warning.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import CollectorProcess, count_rows, recording_into
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import set_span_in_context
from test_replay_support import wait_for

from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor
from spanreel.replay._cost import format_usd
from spanreel.replay._plan import TRUNCATED_REASON


@dataclass
class Recorded:
    db: Path
    trace_id: str
    llm: FakeLLMServer


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "220", "OPENAI_API_KEY": "sk-test"})


def ask(question: str | list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The arguments of a ``chat.completions.create`` call asking ``question``."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}], **extra}


def record(
    collector: CollectorProcess,
    llm: FakeLLMServer,
    root: str,
    requests: list[dict[str, Any]],
    **options: Any,
) -> Recorded:
    """A trace ``root`` with one captured chat call per request, stored by the collector;
    ``options`` go to ``Instrumentor().instrument``."""
    with (
        recording_into(collector, **options) as provider,
        provider.get_tracer("test").start_as_current_span(root) as span,
    ):
        client = OpenAI(base_url=llm.base_url, api_key="sk-test")
        for request in requests:
            answer = client.chat.completions.create(**request)
            if request.get("stream"):
                for _ in answer:  # the call ends with its stream
                    pass
    trace_id = format(span.get_span_context().trace_id, "032x")
    wait_for(
        lambda: (
            count_rows(collector.db, "SELECT count(*) FROM llm_calls WHERE trace_id = ?", [trace_id])
            == len(requests)
        ),
        what="the recorded LLM calls",
    )
    return Recorded(collector.db, trace_id, llm)


@pytest.fixture(scope="module")
def recorded(collector: CollectorProcess, llm: FakeLLMServer) -> Recorded:
    return record(collector, llm, "app", [ask("Tabs or spaces?"), ask("Vim or Emacs?")])


class Canned:
    """A loopback server that answers every POST with HTTP 200, ``content_type`` and ``body``:
    what a wrong ``--base-url`` (a web page, another API) or a broken proxy answers."""

    def __init__(self, content_type: str, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Canned:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def replay(recorded: Recorded, *extra: str) -> Result:
    return cli("replay", recorded.trace_id, "--db", str(recorded.db), "--retries", "0", *extra)


# --------------------------------------------------------------------------- 1. no model output


@pytest.mark.parametrize(
    ("content_type", "body", "shown"),
    [
        ("text/html; charset=utf-8", b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        ("application/json", b"{}", "application/json"),
    ],
)
def test_an_answer_without_model_output_is_a_failed_call(
    recorded: Recorded, content_type: str, body: bytes, shown: str
) -> None:
    """A 200 answer with no model output counted as "replayed, 0 changed", and even
    ``--fail-on changed`` exited 0: it is a failed call now, so the default check fails."""
    with Canned(content_type, body) as server:
        tried = f"POST {server.base_url}/chat/completions"
        text = replay(recorded, "--base-url", server.base_url)
        assert text.exit_code == 1, text.output
        assert "totals: 0/2 calls replayed, 2 failed" in text.output
        assert "FAILED (--fail-on error)" in text.output
        for fail_on in ("error", "changed"):
            res = replay(recorded, "--base-url", server.base_url, "--fail-on", fail_on, "--json")
            assert res.exit_code == 1, res.output
            report = json.loads(res.stdout)
            reason = f"the answer holds no model output (HTTP 200, {shown}; {tried})"
            assert [(c["status"], c["error"]) for c in report["calls"]] == [("error", reason)] * 2
            assert all(c["http_status"] == 200 and c["original_output"] for c in report["calls"])
            assert report["totals"]["errors"] == 2 and report["totals"]["replayed"] == 0
            assert report["verdict"]["failed"] is True
        assert replay(recorded, "--base-url", server.base_url, "--fail-on", "never").exit_code == 0


def test_the_same_answers_still_pass(recorded: Recorded) -> None:
    res = replay(recorded, "--base-url", recorded.llm.base_url, "--fail-on", "changed", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [c["status"] for c in report["calls"]] == ["ok", "ok"]
    assert report["totals"]["changed"] == 0 and report["verdict"]["failed"] is False


# --------------------------------------------------------------------------- 2. modified bodies

IMAGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 3000).decode()
MCP = [
    {"type": "url", "url": "https://mcp.example.com/sse", "name": "x", "authorization_token": "tok-12345678"}
]


@pytest.fixture(scope="module")
def modified(collector: CollectorProcess, llm: FakeLLMServer) -> Recorded:
    """Three calls: an inline image (recorded as a placeholder), an MCP server's token (recorded
    masked), and one recorded as sent."""
    picture = [{"type": "text", "text": "What is in it?"}, {"type": "image_url", "image_url": {"url": IMAGE}}]
    return record(
        collector,
        llm,
        "modified",
        [ask(picture), ask("Which tools?", extra_body={"mcp_servers": MCP}), ask("Plain question?")],
    )


def test_a_body_modified_at_record_time_is_reported_as_not_verbatim(modified: Recorded) -> None:
    """The recorded placeholders were re-sent without a word: each such call has a note now, and
    a warning names them; with a --hook the note says the hook got the recorded body."""
    llm = modified.llm
    before = len(llm.requests)
    res = replay(modified, "--base-url", llm.base_url, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    sent = sorted(r.body.decode() for r in llm.requests[before:])
    assert any("[spanreel: image/png base64 omitted" in b for b in sent)  # what was recorded, sent
    notes = [c["notes"] for c in report["calls"]]
    assert notes[0] == [
        "the recorded request body was modified at record time (blob placeholders): it was sent as "
        "recorded, not as the app sent it, so the output may differ (a --hook can restore the body)"
    ]
    assert "credentials masked as [REDACTED:credential]" in notes[1][0] and notes[2] == []
    (warning,) = report["warnings"]
    assert warning.startswith("2 of 3 calls (calls 1, 2) are not replayed verbatim")
    assert "blob placeholders; credentials masked as [REDACTED:credential]" in warning
    assert "--hook" in warning and f"warning: {warning[:40]}" in " ".join(res.stderr.split())

    text = replay(modified, "--base-url", llm.base_url)
    assert text.exit_code == 0, text.output
    assert "! the recorded request body was modified at record time (blob placeholders)" in text.stdout

    plan = json.loads(replay(modified, "--base-url", llm.base_url, "--dry-run", "--json").stdout)
    assert [c["body_modified"] for c in plan["calls"]] == [
        ["blob placeholders"],
        ["credentials masked as [REDACTED:credential]"],
        [],
    ]
    assert plan["warnings"] == [warning]
    shown = replay(modified, "--base-url", llm.base_url, "--dry-run").stdout
    assert "body modified at record time: blob placeholders" in " ".join(shown.split())

    hooked = replay(modified, "--base-url", llm.base_url, "--hook", f"{__file__}:same_body", "--json")
    report = json.loads(hooked.stdout)
    assert report["warnings"] == []
    assert report["calls"][0]["notes"] == [
        "the recorded request body was modified at record time (blob placeholders): "
        "the --hook got the body as recorded"
    ]


def same_body(body: dict[str, Any]) -> dict[str, Any]:
    """A --hook that sends the body as it gets it."""
    return body


# --------------------------------------------------------------------------- 3. honest totals


@pytest.fixture(scope="module")
def two_models(collector: CollectorProcess, llm: FakeLLMServer) -> Recorded:
    """A gpt-4o-mini call and a streamed gpt-4.1 call with usage."""
    streamed = ask("Summarise the debate.", stream=True, stream_options={"include_usage": True})
    return record(collector, llm, "two models", [ask("Tabs or spaces?"), {**streamed, "model": "gpt-4.1"}])


def test_totals_compare_only_calls_known_on_both_sides(two_models: Recorded) -> None:
    """The new cost of a call edited to a model without a price is unknown: the totals compared
    both calls' original cost with one call's new cost (an invented saving). Likewise tokens of a
    streamed replay without usage."""
    base = ("--base-url", two_models.llm.base_url, "--only", "chat gpt-4.1")
    res = replay(two_models, *base, "--model", "fake-gpt", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    first, second = report["calls"]
    assert first["original_cost_usd"] > 0 and second["original_cost_usd"] > 0
    assert second["new_cost_usd"] is None and second["cost_delta_usd"] is None
    totals = report["totals"]
    assert totals["original_cost_usd"] == first["original_cost_usd"]
    assert totals["new_cost_usd"] == first["new_cost_usd"] and totals["cost_delta_usd"] == 0
    assert totals["replayed"] == 2 and totals["compared_calls"]["cost_usd"] == 1
    assert totals["compared_calls"]["input_tokens"] == 2

    text = replay(two_models, *base, "--model", "fake-gpt")
    cost = format_usd(first["original_cost_usd"])
    assert f"; cost {cost} (1 of 2 calls)" in text.stdout, text.stdout

    res = replay(two_models, *base, "--set", "stream_options.include_usage=false", "--json")
    totals = json.loads(res.stdout)["totals"]
    first, second = json.loads(res.stdout)["calls"]
    assert second["new_output_tokens"] is None and second["original_output_tokens"] > 0
    assert totals["original_output_tokens"] == first["original_output_tokens"]
    assert totals["output_tokens_delta"] == 0 and totals["compared_calls"]["output_tokens"] == 1
    text = replay(two_models, *base, "--set", "stream_options.include_usage=false")
    out = first["original_output_tokens"]
    assert f", out {out} (1 of 2 calls)" in text.stdout, text.stdout


# --------------------------------------------------------------------------- 4. truncated recording


@pytest.fixture(scope="module")
def truncated(collector: CollectorProcess, llm: FakeLLMServer) -> Recorded:
    """One call recorded with a 200-byte cap on each content attribute (SPANREEL_CAPTURE_MAX_BYTES)."""
    return record(collector, llm, "truncated", [ask("hello there " * 40)], max_content_bytes=200)


def test_a_truncated_recording_says_so_and_replaying_nothing_fails(truncated: Recorded) -> None:
    """The skip reason said "is not JSON", the recorded output "(not recorded)", and a replay that
    could send none of its calls exited 0."""
    res = replay(truncated, "--base-url", truncated.llm.base_url, "--json")
    report = json.loads(res.stdout)
    (call,) = report["calls"]
    assert call["status"] == "skipped" and call["skip_reason"] == TRUNCATED_REASON
    assert "SPANREEL_CAPTURE_MAX_BYTES" in TRUNCATED_REASON
    assert call["original_output"] is None and call["original_output_truncated"] is True
    assert res.exit_code == 1, res.output
    assert report["verdict"]["reasons"] == [f"nothing was replayed: 1 of 1 call skipped ({TRUNCATED_REASON})"]

    text = replay(truncated, "--base-url", truncated.llm.base_url)
    shown = " ".join(text.stdout.split())
    assert "(recorded, but truncated at record time: SPANREEL_CAPTURE_MAX_BYTES)" in shown
    assert "FAILED (--fail-on error): nothing was replayed" in shown and text.exit_code == 1
    assert replay(truncated, "--base-url", truncated.llm.base_url, "--fail-on", "changed").exit_code == 1
    assert replay(truncated, "--base-url", truncated.llm.base_url, "--fail-on", "never").exit_code == 0


# --------------------------------------------------------------------------- 5. incomplete trace


@pytest.fixture(scope="module")
def unfinished(collector: CollectorProcess, llm: FakeLLMServer) -> Iterator[Recorded]:
    """A trace still being written: its root span "session" is open (not exported) while the
    step span around a call has ended and reached the collector."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url)))
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=provider, capture_content=True)
    tracer = provider.get_tracer("test")
    root = tracer.start_span("session")
    try:
        with tracer.start_as_current_span("step", context=set_span_in_context(root)):
            OpenAI(base_url=llm.base_url, api_key="sk-test").chat.completions.create(**ask("Still there?"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        wait_for(
            lambda: (
                count_rows(collector.db, "SELECT count(*) FROM spans WHERE trace_id = ?", [trace_id]) >= 3
            ),
            what="the step span and the call's spans",
        )
        yield Recorded(collector.db, trace_id, llm)
    finally:
        instrumentor.uninstrument()
        root.end()
        provider.shutdown()


def test_a_trace_still_being_written_is_replayed_with_a_warning(unfinished: Recorded) -> None:
    """`spanreel show` draws the missing root as a placeholder; replay said nothing."""
    step = run_query(  # the parent the step span names: the root, not stored yet
        "SELECT parent_span_id FROM spans WHERE trace_id = ? AND name = 'step'",
        unfinished.db,
        [unfinished.trace_id],
    ).rows
    (root_id,) = step[0]
    expected = (
        f"trace {unfinished.trace_id} looks incomplete: 1 span names a parent span that is not stored "
        f"({root_id})"
    )
    res = replay(unfinished, "--base-url", unfinished.llm.base_url, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [c["status"] for c in report["calls"]] == ["ok"]
    (warning,) = report["warnings"]
    assert warning.startswith(expected) and "still be being written" in warning
    text = replay(unfinished, "--base-url", unfinished.llm.base_url)
    assert text.exit_code == 0 and f"warning: {expected}" in " ".join(text.stderr.split())
    plan = json.loads(replay(unfinished, "--dry-run", "--json").stdout)
    assert plan["warnings"] == [warning]
    assert "missing parent" in cli("show", unfinished.trace_id, "--db", str(unfinished.db)).stdout
