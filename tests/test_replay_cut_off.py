"""An answer the app stopped reading part-way (it broke out of the stream): recorded with no finish
reason (span status UNSET, the output message's ``finish_reason`` ``error``), it is served as far
as it was recorded and never labelled finished, and ``export --format openai-jsonl`` skips it.
Recorded through the real ``openai`` and ``anthropic`` SDKs into a collector."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from click.testing import CliRunner
from conftest import CollectorProcess, recording_into
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_replay_support import wait_for

import spanreel
from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.replay import load_session
from spanreel.replay._recorded import RecordedExchange, exchanges_from_spans
from spanreel.replay._serve import RecordedServer

SESSION = "cut-off-streams"
OPENAI_CALL: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "break early"}],
}
ANTHROPIC_CALL: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "break early"}],
}


@pytest.fixture(scope="module")
def recorded(collector: CollectorProcess, llm: FakeLLMServer) -> list[RecordedExchange]:
    """Each app reads three chunks (events) of a streamed answer, then closes the stream."""
    with recording_into(collector, "impatient-app"):
        oa = openai.OpenAI(base_url=llm.base_url, api_key="sk-rec", max_retries=0)
        an = anthropic.Anthropic(base_url=llm.base_url.removesuffix("/v1"), api_key="sk-rec", max_retries=0)
        with spanreel.session("impatient", SESSION):
            stream = oa.chat.completions.create(**OPENAI_CALL, stream=True)
            for n, _ in enumerate(stream):
                if n == 2:
                    break
            stream.close()
            events = an.messages.create(**ANTHROPIC_CALL, stream=True)
            for n, _ in enumerate(events):
                if n == 4:  # message_start, a content_block_start and three text deltas
                    break
            events.close()
    wait_for(
        lambda: (
            run_query("SELECT count(*) FROM llm_calls WHERE session_id = ?", collector.db, [SESSION]).rows[0][
                0
            ]
            >= 2
        ),
        what="the cut-off calls stored",
    )
    exchanges, unservable = exchanges_from_spans(load_session(SESSION, collector.db))
    assert unservable == [] and len(exchanges) == 2
    for ex in exchanges:  # what this module is about: recorded as cut off, not failed
        assert ex.span.status_code == "UNSET" and ex.error is None
        assert ga.GEN_AI_RESPONSE_FINISH_REASONS not in ex.span.attributes
        assert [m["finish_reason"] for m in ex.output_messages] == ["error"]
    return exchanges


def _recorded_text(ex: RecordedExchange) -> str:
    return "".join(p["content"] for p in ex.output_messages[0]["parts"] if p["type"] == "text")


def test_a_cut_off_openai_stream_is_served_as_far_as_recorded_without_a_finish_reason(
    recorded: list[RecordedExchange],
) -> None:
    text = _recorded_text(recorded[0])
    assert text
    with RecordedServer(recorded) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        chunks = list(client.chat.completions.create(**OPENAI_CALL, stream=True))
        as_json = client.chat.completions.create(**OPENAI_CALL)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == []
    assert as_json.choices[0].message.content == text and as_json.choices[0].finish_reason is None


def test_a_cut_off_anthropic_stream_ends_without_a_stop_reason(recorded: list[RecordedExchange]) -> None:
    text = _recorded_text(recorded[1])
    assert text
    with RecordedServer(recorded) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
        events = list(client.messages.create(**ANTHROPIC_CALL, stream=True))
        as_json = client.messages.create(**ANTHROPIC_CALL)
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and "message_delta" not in kinds and "message_stop" not in kinds
    deltas = [
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert "".join(deltas) == text
    assert as_json.stop_reason is None


def test_export_skips_a_cut_off_answer(recorded: list[RecordedExchange], collector: CollectorProcess) -> None:
    res = CliRunner().invoke(
        main,
        ["export", "--session", SESSION, "--db", str(collector.db), "--format", "openai-jsonl"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    skipped = [line for line in res.stderr.splitlines() if line.startswith("skipped LLM call")]
    assert len(skipped) == 2
    assert all("the answer was cut off: the app stopped reading the stream" in line for line in skipped)
    assert json.dumps(res.stderr).count("wrote 0 fine-tuning examples") == 1
