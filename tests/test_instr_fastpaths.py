"""The per-call fast paths keep exactly the behaviour of the slow, obvious code: the cost
(affine form vs the genai-prices library), the SSE decoder (vs a line-by-line reference), the
JSON loader (vs ``json.loads``) and the blob pre-check (vs always walking the document)."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from spanreel._attributes import (
    SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS,
    SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS,
    SPANREEL_USAGE_INPUT_AUDIO_TOKENS,
    SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS,
)
from spanreel.instrumentation import _cost
from spanreel.instrumentation._call import STREAM_BATCH_BYTES, CallSettings, LLMCall
from spanreel.instrumentation._common import dumps, loads
from spanreel.instrumentation._content import BLOB_MIN_CHARS, ContentPolicy
from spanreel.instrumentation._openai import CHAT
from spanreel.instrumentation._sse import SSEDecoder, SSEEvent

_ATTRS = {
    "input_tokens": ga.GEN_AI_USAGE_INPUT_TOKENS,
    "output_tokens": ga.GEN_AI_USAGE_OUTPUT_TOKENS,
    "cache_read_tokens": ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_write_tokens": ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "input_audio_tokens": SPANREEL_USAGE_INPUT_AUDIO_TOKENS,
    "output_audio_tokens": SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS,
    "cache_audio_read_tokens": SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS,
    "cache_write_1h_tokens": SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS,
}


def _library(
    provider_id: str,
    model: str,
    usage: dict[str, int],
    at: datetime | None = None,
    context: dict[str, str] | None = None,
) -> float | None:
    """genai-prices' own price of ``usage`` (``context``: e.g. a service tier)."""
    try:
        price = calc_price(
            Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=at, price_context=context
        )
    except LookupError:
        return None
    return float(price.total_price)


@pytest.mark.parametrize(
    ("provider", "provider_id", "model"),
    [
        ("openai", "openai", "gpt-4o-mini"),  # flat, cached input
        ("anthropic", "anthropic", "claude-sonnet-4-6"),  # flat, cache reads and writes
        ("anthropic", "anthropic", "claude-haiku-4-5"),  # flat, 5-minute and 1-hour cache writes
        ("anthropic", "anthropic", "claude-sonnet-4-5"),  # tiered, 1-hour cache writes
        ("gcp.gemini", "google", "gemini-1.5-pro"),  # tiered by input size: never affine
        ("gcp.gemini", "google", "gemini-2.5-pro"),
        ("openai", "openai", "no-such-model-xyz"),  # unknown: no cost
    ],
)
def test_cost_equals_the_library_for_every_usage(provider: str, provider_id: str, model: str) -> None:
    rnd = random.Random(f"{provider}/{model}")
    for _ in range(150):
        usage = {"input_tokens": rnd.randint(0, 400_000), "output_tokens": rnd.randint(0, 8_000)}
        if rnd.random() < 0.5:
            usage["cache_read_tokens"] = rnd.randint(0, usage["input_tokens"])
        if rnd.random() < 0.3:
            usage["cache_write_tokens"] = rnd.randint(
                0, usage["input_tokens"] - usage.get("cache_read_tokens", 0)
            )
            if rnd.random() < 0.5:
                usage["cache_write_1h_tokens"] = rnd.randint(0, usage["cache_write_tokens"])
        attrs = {_ATTRS[k]: v for k, v in usage.items()}
        assert _cost.cost_usd(provider, model, attrs) == _library(provider_id, model, usage), usage


@pytest.mark.parametrize(
    ("provider", "provider_id", "model"),
    [
        ("openai", "openai", "gpt-audio"),  # audio in and out at their own rates, no cache price
        ("gcp.gemini", "google", "gemini-2.5-flash"),  # audio in, cached audio at its own rate
        ("openai", "openai", "gpt-4o-mini"),  # no audio rates: audio is input and output
    ],
)
def test_cost_with_audio_tokens_equals_the_library(provider: str, provider_id: str, model: str) -> None:
    """Audio counts are parts of the input, output and cached counts: the affine form (per reported
    kinds) prices them as the library does wherever it applies, and is used for most usages."""
    rnd = random.Random(f"audio/{provider}/{model}")
    _cost._forms.clear()
    for _ in range(150):
        usage = {"input_tokens": rnd.randint(0, 400_000), "output_tokens": rnd.randint(0, 8_000)}
        usage["input_audio_tokens"] = rnd.randint(0, usage["input_tokens"])
        if rnd.random() < 0.5:
            usage["output_audio_tokens"] = rnd.randint(0, usage["output_tokens"])
        if rnd.random() < 0.5:  # cached: within the input, maybe overlapping the audio
            usage["cache_read_tokens"] = rnd.randint(0, usage["input_tokens"])
            if rnd.random() < 0.5:
                top = min(usage["cache_read_tokens"], usage["input_audio_tokens"])
                usage["cache_audio_read_tokens"] = rnd.randint(0, top)
        attrs = {_ATTRS[k]: v for k, v in usage.items()}
        if "cache_read_tokens" in usage:
            usage.setdefault("cache_audio_read_tokens", 0)  # the library wants it then (see cost_usd)
        try:
            expected = _library(provider_id, model, usage)
        except ValueError:  # cached and audio input overlap less than they exceed the input
            expected = None
        assert _cost.cost_usd(provider, model, attrs) == expected, usage
    assert any(form is not None for _, form in _cost._forms.values())  # the fast path was taken


def test_cost_outside_the_affine_domain_and_bad_values() -> None:
    # More cached tokens than input tokens: outside the affine form's domain; the library rejects
    # it (ValueError), so no cost rather than a number.
    odd = {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 50}
    with pytest.raises(ValueError):
        calc_price(Usage(**odd), "gpt-4o-mini", provider_id="openai")
    attrs: dict[str, Any] = {_ATTRS[k]: v for k, v in odd.items()}
    assert _cost.cost_usd("openai", "gpt-4o-mini", attrs) is None
    # Booleans and negative counts are not token counts: ignored, as before.
    attrs = {ga.GEN_AI_USAGE_INPUT_TOKENS: 100, ga.GEN_AI_USAGE_OUTPUT_TOKENS: True}
    expected = _library("openai", "gpt-4o-mini", {"input_tokens": 100})
    assert expected is not None and _cost.cost_usd("openai", "gpt-4o-mini", attrs) == expected
    assert _cost.cost_usd("openai", "gpt-4o-mini", {ga.GEN_AI_USAGE_INPUT_TOKENS: -1}) is None
    assert _cost.cost_usd("openai", None, {ga.GEN_AI_USAGE_INPUT_TOKENS: 1}) is None
    assert _cost.cost_usd("not-a-provider", "gpt-4o-mini", {ga.GEN_AI_USAGE_INPUT_TOKENS: 1}) is None
    # A part larger than what it is part of: the library rejects it, also after the affine form of
    # the same kinds was measured on a valid usage.
    kinds = ("input_tokens", "output_tokens", "input_audio_tokens", "output_audio_tokens")
    for valid, odd in [
        ((1000, 100, 500, 50), (1000, 100, 500, 150)),  # audio output > output
        ((1000, 100, 500, 50), (1000, 100, 1500, 50)),  # audio input > input
    ]:
        attrs = {_ATTRS[k]: v for k, v in zip(kinds, valid, strict=True)}
        assert _cost.cost_usd("openai", "gpt-audio", attrs) is not None
        attrs = {_ATTRS[k]: v for k, v in zip(kinds, odd, strict=True)}
        assert _cost.cost_usd("openai", "gpt-audio", attrs) is None
    cached = ("input_tokens", "output_tokens", "cache_read_tokens", "input_audio_tokens")
    cached += ("cache_audio_read_tokens",)
    for values in [(100_000, 10, 50_000, 40_000, 30_000), (100_000, 10, 50_000, 20_000, 30_000)]:
        usage = dict(zip(cached, values, strict=True))
        attrs = {_ATTRS[k]: v for k, v in usage.items()}
        expected = None if values[4] > values[3] else _library("google", "gemini-2.5-flash", usage)
        assert _cost.cost_usd("gcp.gemini", "gemini-2.5-flash", attrs) == expected  # cached audio > audio


def test_cost_follows_the_price_in_force_at_the_time_of_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """deepseek-chat has an off-peak price (16:30–00:30 UTC): the form is per price, not per day."""
    now = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return now

    monkeypatch.setattr(_cost, "datetime", Clock)
    usage = {"input_tokens": 120_000, "output_tokens": 3_000}
    attrs = {_ATTRS[k]: v for k, v in usage.items()}
    peak = _cost.cost_usd("deepseek", "deepseek-chat", attrs)
    assert peak == _library("deepseek", "deepseek-chat", usage, now)
    now = datetime(2025, 6, 2, 20, 0, tzinfo=UTC)
    off_peak = _cost.cost_usd("deepseek", "deepseek-chat", attrs)
    assert off_peak == _library("deepseek", "deepseek-chat", usage, now)
    assert off_peak != peak


def test_cost_skips_the_clock_only_for_a_price_that_never_changes() -> None:
    usage = {ga.GEN_AI_USAGE_INPUT_TOKENS: 1200, ga.GEN_AI_USAGE_OUTPUT_TOKENS: 80}
    _cost._constant.clear()
    assert _cost.cost_usd("openai", "gpt-4o-mini", usage) == _library(
        "openai", "gpt-4o-mini", {"input_tokens": 1200, "output_tokens": 80}
    )
    assert [key[1:] for key in _cost._constant] == [
        ("openai", "gpt-4o-mini", None, ("input_tokens", "output_tokens"))
    ]
    # a service tier's price (price variants) is one memoised object per tier and variants in force
    flex = {**usage, "openai.response.service_tier": "flex"}
    for _ in range(2):
        assert _cost.cost_usd("openai", "gpt-5", flex) == _library(
            "openai", "gpt-5", {"input_tokens": 1200, "output_tokens": 80}, context={"service_tier": "flex"}
        )
    assert len([key for key in _cost._tiers if key[1] == "flex"]) == 1
    _cost.cost_usd("deepseek", "deepseek-chat", usage)  # off-peak prices: resolved per call
    assert all(key[2] != "deepseek-chat" for key in _cost._constant)


# ------------------------------------------------------------------------------------ SSE


def _reference_sse(stream: bytes) -> list[SSEEvent]:
    """The WHATWG event-stream algorithm, line by line (``\\n`` / ``\\r\\n`` line ends)."""
    events: list[SSEEvent] = []
    data: list[str] = []
    name = ""
    has_data = False
    *lines, _rest = stream.split(b"\n")
    for raw in lines:
        line = (raw[:-1] if raw.endswith(b"\r") else raw).decode("utf-8", errors="replace")
        if not line:
            if has_data:
                events.append(SSEEvent(name or "message", "\n".join(data)))
            data, name, has_data = [], "", False
            continue
        if line.startswith(":"):
            continue
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
            has_data = True
        elif field == "event":
            name = value
    return events


_LINE = st.one_of(
    st.builds(lambda v: b"data: " + v, st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))),
    st.builds(lambda v: b"data:" + v.encode(), st.text(max_size=20).map(lambda t: t.replace("\n", ""))),
    st.sampled_from([b"event: delta", b"event:x", b": comment", b"data", b"id: 7", b"retry: 10", b"", b"\r"]),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(_LINE, max_size=25),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_sse_decoder_matches_the_line_by_line_reference(
    lines: list[bytes], crlf: bool, cuts: list[int]
) -> None:
    end = b"\r\n" if crlf else b"\n"
    stream = b"".join(line + end for line in lines) + b"data: tail-without-blank-line" + end
    decoder = SSEDecoder()
    got: list[SSEEvent] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        got.extend(decoder.feed(stream[start:cut]))
        start = cut
    assert got == _reference_sse(stream)


def test_sse_single_event_fast_path_keeps_pending_state() -> None:
    d = SSEDecoder()
    assert d.feed(b"event: message_start\n") == []
    assert d.feed(b"data: {}\n\n") == [SSEEvent("message_start", "{}")]
    assert d.feed(b"data: a\n") == []  # an event spread over two chunks
    assert d.feed(b"data: b\n\n") == [SSEEvent("message", "a\nb")]
    assert d.feed(b"data:x\r\n\n") == [SSEEvent("message", "x")]
    assert d.feed(b"data: \xff\n\n") == [SSEEvent("message", "\ufffd")]


def test_stream_parsed_in_bounded_batches_equals_chunk_by_chunk() -> None:
    """After the first chunk a stream is parsed in batches: same attributes as adding every event
    to the accumulator as it comes, never more than one batch of bytes held back."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = CallSettings(provider.get_tracer("test"), True, ContentPolicy(), None, cost=False)
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [
        {**base, "choices": [{"index": 0, "delta": {"content": f"word{i} " * 5}}]} for i in range(2000)
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {"refusal": "no"}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2002}})
    events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
    assert sum(map(len, events)) > 3 * STREAM_BATCH_BYTES

    call = LLMCall(provider.get_tracer("test").start_span("chat"), CHAT, settings, {}, stream=True)
    call.on_response(200, "text/event-stream", "")
    for event in events:
        call.feed(event)
        assert call._pending_size < STREAM_BATCH_BYTES  # bounded, not the whole stream
    call.finish()

    reference = CHAT.stream()
    for c in chunks:
        reference.add(json.dumps(c))
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs
    del attrs[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    expected = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in reference.attributes(capture_content=True).items()
    }
    assert attrs == expected
    assert attrs[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 2002
    assert "word1999 " in str(attrs[ga.GEN_AI_OUTPUT_MESSAGES])


# ------------------------------------------------------------------------------------ JSON


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # orjson's integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda value, left, right: left + json.dumps(value, ensure_ascii=False) + right,
            _JSON_VALUES,
            st.sampled_from(["", " ", "\n\t", "\r\n ", "\u00a0", "\x0b"]),
            st.sampled_from(["", " ", "\r\n", "x", " 1", "\u00a0", "\x0c"]),
        ),
        st.sampled_from(['"\\ud800"', "[NaN, -Infinity]", '{"a": 1, "a": 2}', "1e400", "\ufeff{}"]),
    ),
    st.sampled_from(["str", "utf-8", "utf-16"]),
)
def test_loads_is_json_loads(text: str, form: str) -> None:
    """orjson first, json for what it refuses: the same values and the same errors as
    ``json.loads``, for text and bytes (lone surrogate escapes, NaN included), integers within
    64 bits (see test_loads_reads_integers_beyond_64_bits_as_floats)."""
    data: str | bytes = text if form == "str" else text.encode(form, errors="surrogatepass")
    if any(len(run) >= 19 for run in re.findall(r"\d+", text)):
        return  # possibly beyond 64 bits: documented to differ
    try:
        expected: Any = ("ok", json.loads(data))
    except ValueError:
        expected = ("error", None)
    try:
        got: Any = ("ok", loads(data))
    except ValueError:
        got = ("error", None)
    if expected[0] == "ok" and "NaN" in text:
        assert json.dumps(got[1]) == json.dumps(expected[1])  # NaN != NaN
    else:
        assert got == expected


def test_loads_reads_integers_beyond_64_bits_as_floats() -> None:
    """Hypothesis found it (the docstring claimed json's exact integers): orjson turns an integer
    outside [-2**63, 2**64) into the nearest float. Documented; no LLM API sends one."""
    assert loads("[18446744073709551615, -9223372036854775808]") == [2**64 - 1, -(2**63)]
    assert loads("[19000000000000000001, -9223372036854775809]") == [1.9e19, -9.223372036854775809e18]


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    return isinstance(value, list) and any(_has_float(v) for v in value)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES | st.dictionaries(st.integers(), st.integers(), max_size=2))
def test_dumps_is_compact_json_of_the_same_value(value: Any) -> None:
    """orjson writes what ``json.dumps`` writes (compact, non-ASCII kept as is; json takes over
    for huge integers and non-string keys); only the spelling of a float may differ, not its value."""
    text = dumps(value)
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _has_float(value):
        assert json.loads(text) == json.loads(expected)
    else:
        assert text == expected


# ------------------------------------------------------------------------------------ blobs

_B64 = "QUJD" * 400  # 1600 base64 characters


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": _B64}]},
        {"image": "data:image/png;base64," + _B64[: BLOB_MIN_CHARS - 10]},  # payload < 1024, string ≥ 1024
        {"x": "data:image/png;name=a.png;base64," + "AB/+" * 260},
    ],
)
@pytest.mark.parametrize("escape", [False, True])
def test_blob_precheck_never_misses_a_blob(body: dict[str, Any], escape: bool) -> None:
    """The pre-check on the raw text must say "walk" whenever the walk would change something,
    even when the sender escapes ``/`` and ``;`` (legal JSON some serialisers produce)."""
    raw = json.dumps(body)
    if escape:
        raw = raw.replace("/", "\\/").replace(";", "\\u003b")
    assert json.loads(raw) == body
    policy = ContentPolicy()
    assert policy.scrub(body) is not body
    assert policy.needs_scrub(raw.encode()) and policy.needs_scrub(raw)


def test_blob_precheck_skips_the_walk_for_ordinary_text() -> None:
    policy = ContentPolicy()
    prose = {
        "messages": [{"role": "user", "content": "tea " * 2000}, {"role": "user", "content": "b" * 1000}]
    }
    raw = json.dumps(prose)
    assert len(raw) > BLOB_MIN_CHARS
    assert not policy.needs_scrub(raw) and not policy.needs_scrub(raw.encode())
    assert policy.scrub(prose) is prose  # the walk would not have changed anything either
    assert ContentPolicy(redactor=str.upper).needs_scrub("short")  # a redactor always walks
    assert not ContentPolicy(keep_blobs=True).needs_scrub(json.dumps({"b": _B64}))
