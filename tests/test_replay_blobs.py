"""Calls with inline images recorded with the default capture (blobs replaced by placeholders,
``spanreel.request.body_modified``): served, the recorded placeholder matches a request's blob
of the same media type and decoded size; exported as fine-tuning examples, they are skipped
(the placeholder is not the image). Recorded through the real ``openai`` and ``anthropic`` SDKs
into a collector, then served to the same SDKs."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import openai
import pytest
from click.testing import CliRunner
from conftest import CollectorProcess, recording_into
from test_replay_support import wait_for

import spanreel
from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_BODY_MODIFIED
from spanreel.cli import main
from spanreel.collector import run_query
from spanreel.fakellm import FakeLLMServer
from spanreel.replay import load_session
from spanreel.replay._recorded import RecordedExchange, exchanges_from_spans
from spanreel.replay._serve import NO_MATCH_CODE, RecordedServer

SESSION = "image-calls"
IMAGE = base64.b64encode(bytes(range(256)) * 12).decode()  # 3,072 bytes
OTHER_IMAGE = base64.b64encode(bytes(range(255, -1, -1)) * 12).decode()  # same size, other bytes
BIGGER_IMAGE = base64.b64encode(bytes(range(256)) * 13).decode()


def _openai_kwargs(image: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}},
                ],
            }
        ],
    }


def _anthropic_kwargs(image: str, media_type: str = "image/png") -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": image}},
                    {"type": "text", "text": "Describe"},
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def recorded(
    collector: CollectorProcess, llm: FakeLLMServer
) -> tuple[list[RecordedExchange], openai.types.chat.ChatCompletion, anthropic.types.Message]:
    """One OpenAI and one Anthropic call with an inline PNG, recorded with blobs replaced."""
    with recording_into(collector, "image-app", capture_blobs=False):
        oa = openai.OpenAI(base_url=llm.base_url, api_key="sk-rec", max_retries=0)
        an = anthropic.Anthropic(base_url=llm.base_url.removesuffix("/v1"), api_key="sk-rec", max_retries=0)
        with spanreel.session("images", SESSION):
            completion = oa.chat.completions.create(**_openai_kwargs(IMAGE))
            message = an.messages.create(**_anthropic_kwargs(IMAGE))
    wait_for(
        lambda: (
            run_query("SELECT count(*) FROM llm_calls WHERE session_id = ?", collector.db, [SESSION]).rows[0][
                0
            ]
            >= 2
        ),
        what="the image calls stored",
    )
    exchanges, unservable = exchanges_from_spans(load_session(SESSION, collector.db))
    assert unservable == [] and len(exchanges) == 2
    for ex in exchanges:  # what this module is about: the blobs were not recorded
        assert ex.span.attributes[SPANREEL_REQUEST_BODY_MODIFIED] is True
        body = ex.span.attributes[SPANREEL_REQUEST_BODY]
        assert IMAGE not in body and "[spanreel: image/png base64 omitted, 3072 bytes]" in body
    return exchanges, completion, message


def test_a_placeholder_matches_a_blob_of_the_same_media_type_and_size(recorded: Any) -> None:
    exchanges, completion, message = recorded
    with RecordedServer(exchanges) as server:
        oa = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        an = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
        assert oa.chat.completions.create(**_openai_kwargs(IMAGE)).choices[0].message.content == (
            completion.choices[0].message.content
        )
        assert an.messages.create(**_anthropic_kwargs(IMAGE)).content == message.content
        # the recording kept only the media type and size: other bytes of that size match too
        assert oa.chat.completions.create(**_openai_kwargs(OTHER_IMAGE)).id == completion.id
        assert [s.status for s in server.served] == [200, 200, 200]


@pytest.mark.parametrize(
    "kwargs",
    [_openai_kwargs(BIGGER_IMAGE), _anthropic_kwargs(BIGGER_IMAGE), _anthropic_kwargs(IMAGE, "image/jpeg")],
    ids=["openai-other-size", "anthropic-other-size", "anthropic-other-media-type"],
)
def test_a_blob_of_another_size_or_media_type_does_not_match(recorded: Any, kwargs: dict[str, Any]) -> None:
    exchanges, _, _ = recorded
    with RecordedServer(exchanges) as server:
        if "max_tokens" in kwargs:
            client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
            with pytest.raises(anthropic.NotFoundError) as caught:
                client.messages.create(**kwargs)
            error = caught.value.body["error"]  # type: ignore[index]
        else:
            oa = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
            with pytest.raises(openai.NotFoundError) as no_match:
                oa.chat.completions.create(**kwargs)
            error = no_match.value.body
    assert error["code"] == NO_MATCH_CODE
    differences = error["closest"]["differences"]
    assert any('omitted, 3072 bytes]" vs received "' in d for d in differences), differences
    assert "record with SPANREEL_CAPTURE_BLOBS=true" in error["message"]
    assert json.dumps(error).count(BIGGER_IMAGE) == 0  # the 404 quotes the placeholder, not the blob


def test_export_skips_calls_whose_blobs_were_replaced(recorded: Any, collector: CollectorProcess) -> None:
    """A fine-tuning example must not show the model a placeholder as an image URL."""
    res = CliRunner().invoke(
        main,
        ["export", "--session", SESSION, "--db", str(collector.db), "--format", "openai-jsonl"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    skipped = [line for line in res.stderr.splitlines() if line.startswith("skipped LLM call")]
    assert len(skipped) == 2
    for line in skipped:
        assert "the recorded request holds a blob placeholder, not the data sent" in line
        assert "[spanreel: image/png base64 omitted, 3072 bytes]" in line
        assert "record with SPANREEL_CAPTURE_BLOBS=true" in line
    assert "wrote 0 fine-tuning examples to stdout (2 LLM calls skipped, listed above)" in res.stderr
