"""Unit tests: OTLP decoding (protobuf + OTLP/JSON) and GenAI normalisation."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanreel.collector._decode import DecodeError, decode_json, decode_protobuf
from spanreel.collector._normalise import normalise_row

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("b7ad6b7169203331")
PARENT = bytes.fromhex("00f067aa0ba902b7")


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _request(*spans: trace_pb2.Span) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", AnyValue(string_value="svc")))
    rs.resource.attributes.append(_kv("session.id", AnyValue(string_value="resource-session")))
    ss = rs.scope_spans.add()
    ss.scope.name = "spanreel"
    ss.scope.version = "0.1.0"
    ss.spans.extend(spans)
    return req


def _span(**kw: object) -> trace_pb2.Span:
    base: dict[str, object] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": PARENT,
        "name": "chat gpt-4o-mini",
        "kind": trace_pb2.Span.SPAN_KIND_CLIENT,
        "start_time_unix_nano": 1_700_000_000_000_000_001,
        "end_time_unix_nano": 1_700_000_000_500_000_002,
    }
    base.update(kw)
    return trace_pb2.Span(**base)  # type: ignore[arg-type]


def test_protobuf_span_fields_and_any_values() -> None:
    kvlist = AnyValue()
    kvlist.kvlist_value.values.append(_kv("inner", AnyValue(int_value=7)))
    arr = AnyValue()
    arr.array_value.values.extend([AnyValue(string_value="a"), AnyValue(bool_value=True)])
    span = _span(
        attributes=[
            _kv("s", AnyValue(string_value="x")),
            _kv("i", AnyValue(int_value=-5)),
            _kv("d", AnyValue(double_value=1.5)),
            _kv("nan", AnyValue(double_value=float("nan"))),
            _kv("b", AnyValue(bytes_value=b"\x00\xff")),
            _kv("kv", kvlist),
            _kv("arr", arr),
            _kv("empty", AnyValue()),
        ],
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
        trace_state="k=v",
    )
    ev = span.events.add(time_unix_nano=1_700_000_000_100_000_000, name="ev")
    ev.attributes.append(_kv("e", AnyValue(int_value=1)))
    span.links.add(trace_id=TRACE, span_id=PARENT, trace_state="t")
    result = decode_protobuf(_request(span).SerializeToString())
    assert result.rejected_spans == 0 and result.error_message == ""
    [row] = result.rows
    assert row["trace_id"] == TRACE.hex() and row["span_id"] == SPAN.hex()
    assert row["parent_span_id"] == PARENT.hex()
    assert row["kind"] == "CLIENT" and row["status_code"] == "ERROR" and row["status_message"] == "boom"
    assert (
        row["service_name"] == "svc" and row["scope_name"] == "spanreel" and row["scope_version"] == "0.1.0"
    )
    assert row["duration_ns"] == 500_000_001
    assert row["trace_state"] == "k=v"
    assert row["attributes"] == {
        "s": "x",
        "i": -5,
        "d": 1.5,
        "nan": "NaN",
        "b": "AP8=",
        "kv": {"inner": 7},
        "arr": ["a", True],
        "empty": None,
    }
    json.dumps(row["attributes"], allow_nan=False)  # JSON-safe
    assert row["events"] == [
        {"time_unix_nano": 1_700_000_000_100_000_000, "name": "ev", "attributes": {"e": 1}}
    ]
    assert row["links"] == [
        {"trace_id": TRACE.hex(), "span_id": PARENT.hex(), "trace_state": "t", "attributes": {}}
    ]
    assert row["resource_attributes"]["service.name"] == "svc"


def test_root_span_has_null_parent() -> None:
    [row] = decode_protobuf(_request(_span(parent_span_id=b"")).SerializeToString()).rows
    assert row["parent_span_id"] is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"trace_id": bytes(16)}, "trace_id"),
        ({"trace_id": b"\x01" * 8}, "trace_id"),
        ({"span_id": bytes(8)}, "span_id"),
        ({"parent_span_id": b"\x01\x02"}, "parent_span_id"),
        ({"end_time_unix_nano": 1}, "end_time_unix_nano"),
        # fixed64 in OTLP, signed 64-bit nanoseconds in storage
        ({"start_time_unix_nano": 2**64 - 2, "end_time_unix_nano": 2**64 - 1}, "end_time_unix_nano"),
        ({"end_time_unix_nano": 2**63}, "2262"),
    ],
)
def test_invalid_span_rejected_good_span_kept(bad: dict[str, object], reason: str) -> None:
    good = _span(span_id=b"\x02" * 8)
    result = decode_protobuf(_request(_span(name="bad one", **bad), good).SerializeToString())
    assert [r["span_id"] for r in result.rows] == ["02" * 8]
    assert result.rejected_spans == 1
    assert reason in result.error_message and "bad one" in result.error_message


def test_malformed_protobuf_raises() -> None:
    with pytest.raises(DecodeError, match="protobuf"):
        decode_protobuf(b"\xff\xff\xff\xff garbage")


def _json_request(**span_overrides: object) -> dict[str, object]:
    span: dict[str, object] = {
        "traceId": TRACE.hex(),
        "spanId": SPAN.hex(),
        "parentSpanId": "",
        "name": "chat m",
        "kind": 3,
        "startTimeUnixNano": "1700000000000000001",
        "endTimeUnixNano": 1700000000000000100,
        "attributes": [
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
            {"key": "big", "value": {"intValue": "9007199254740993"}},
        ],
        "status": {"code": 1},
        "links": [{"traceId": TRACE.hex(), "spanId": PARENT.hex()}],
        "someFutureField": {"x": 1},
    }
    span.update(span_overrides)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]},
                "scopeSpans": [{"scope": {"name": "sc"}, "spans": [span]}],
            }
        ]
    }


def test_json_hex_ids_string_int64_integer_enums() -> None:
    result = decode_json(json.dumps(_json_request()).encode())
    [row] = result.rows
    assert row["trace_id"] == TRACE.hex() and row["span_id"] == SPAN.hex() and row["parent_span_id"] is None
    assert row["kind"] == "CLIENT" and row["status_code"] == "OK"
    assert row["start_time_unix_nano"] == 1700000000000000001 and row["duration_ns"] == 99
    assert row["attributes"] == {"gen_ai.usage.input_tokens": 12, "big": 9007199254740993}
    assert row["links"][0]["span_id"] == PARENT.hex()
    assert row["service_name"] == "j"


def test_json_invalid_span_counted() -> None:
    doc = _json_request(spanId="0000000000000000")
    result = decode_json(json.dumps(doc).encode())
    assert result.rows == [] and result.rejected_spans == 1 and "span_id" in result.error_message


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"traceId": "zz"}, "traceId is not hex"),
        ({"parentSpanId": 7}, "parentSpanId must be a hex string"),
        ({"links": [{"traceId": TRACE.hex(), "spanId": "not-hex!"}]}, "links[0].spanId is not hex"),
    ],
)
def test_json_span_with_non_hex_id_rejected_alone(bad: dict[str, object], reason: str) -> None:
    doc = _json_request(**bad)
    good = _json_request(spanId=PARENT.hex(), name="good")["resourceSpans"]  # type: ignore[index]
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(good[0]["scopeSpans"][0]["spans"][0])  # type: ignore[index]
    result = decode_json(json.dumps(doc).encode())
    assert [r["name"] for r in result.rows] == ["good"]
    assert result.rejected_spans == 1
    assert reason in result.error_message and "spans[0]" in result.error_message


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "object"),
        (json.dumps(_json_request(startTimeUnixNano="soon")).encode(), "OTLP/JSON"),
        (json.dumps({"resourceSpans": {"a": 1}}).encode(), "array"),
    ],
)
def test_malformed_json_raises(payload: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_json(payload)


# -- normalisation -------------------------------------------------------------------------------


def _row(attrs: dict[str, object], resource: dict[str, object] | None = None) -> dict[str, object]:
    return normalise_row({"attributes": attrs, "resource_attributes": resource or {}})


def test_normalise_current_genai_names() -> None:
    attrs: dict[str, object] = {
        gen_ai.GEN_AI_OPERATION_NAME: "chat",
        gen_ai.GEN_AI_PROVIDER_NAME: "openai",
        gen_ai.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        gen_ai.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 10,
        gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        gen_ai.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        gen_ai.GEN_AI_CONVERSATION_ID: "conv-1",
        "session.id": "s-1",
    }
    row = _row(dict(attrs))
    assert row["attributes"] == attrs  # originals untouched
    assert (row["operation"], row["provider"], row["request_model"], row["response_model"]) == (
        "chat",
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert (row["input_tokens"], row["output_tokens"]) == (10, 5)
    assert row["finish_reasons"] == ["stop"]
    assert (row["session_id"], row["conversation_id"]) == ("s-1", "conv-1")


def test_normalise_deprecated_names_and_fallbacks() -> None:
    row = _row(
        {
            gen_ai.GEN_AI_SYSTEM: "Anthropic",
            gen_ai.GEN_AI_USAGE_PROMPT_TOKENS: "7",
            gen_ai.GEN_AI_USAGE_COMPLETION_TOKENS: 3.0,
            gen_ai.GEN_AI_RESPONSE_FINISH_REASONS: "length",
        },
        resource={"session.id": "from-resource"},
    )
    assert row["provider"] == "anthropic"
    assert (row["input_tokens"], row["output_tokens"]) == (7, 3)
    assert row["finish_reasons"] == ["length"]
    assert row["session_id"] == "from-resource"
    assert row["operation"] is None  # no operation name: not an LLM call


def test_normalise_provider_alias_and_precedence() -> None:
    row = _row({gen_ai.GEN_AI_SYSTEM: "az.ai.openai"})
    assert row["provider"] == "azure.ai.openai"
    row = _row({gen_ai.GEN_AI_PROVIDER_NAME: "gcp.gemini", gen_ai.GEN_AI_SYSTEM: "openai"})
    assert row["provider"] == "gcp.gemini"


def test_normalise_rejects_unusable_values() -> None:
    row = _row(
        {gen_ai.GEN_AI_USAGE_INPUT_TOKENS: True, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: -1, "session.id": 5}
    )
    assert row["input_tokens"] is None and row["output_tokens"] is None and row["session_id"] is None


def test_normalise_token_counts_must_be_plausible() -> None:
    row = _row({gen_ai.GEN_AI_USAGE_INPUT_TOKENS: "9" * 30, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 2**63 - 1})
    assert row["input_tokens"] is None and row["output_tokens"] is None
    row = _row({gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 2**32 - 1, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 2**32})
    assert row["input_tokens"] == 2**32 - 1 and row["output_tokens"] is None


def test_a_span_whose_genai_columns_cannot_be_derived_is_stored_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The safety net under every normaliser: whatever one span's attributes make a normaliser
    raise, that span is kept (attributes as sent, GenAI columns NULL) and named in the OTLP
    partial-success message as a warning; the other spans are derived as usual."""
    from spanreel.collector import _batch

    def choke_on_second(row: dict[str, object]) -> dict[str, object]:
        if row["name"] == "second":
            raise TypeError("unhashable type: 'list'")
        return normalise_row(row)

    monkeypatch.setattr(_batch, "normalise_row", choke_on_second)
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i, name in enumerate(("first", "second"), start=1):
        span = spans.add(trace_id=bytes([7]) * 16, span_id=bytes([i]) * 8, name=name)
        span.start_time_unix_nano, span.end_time_unix_nano = 10, 20
        chat = AnyValue(string_value="chat")
        span.attributes.append(KeyValue(key=gen_ai.GEN_AI_OPERATION_NAME, value=chat))
    batch = _batch.prepare_batch(request.SerializeToString(), json_encoded=False)
    rows = batch.table.select(["name", "operation", "attributes"]).to_pylist()
    assert [(r["name"], r["operation"]) for r in rows] == [("first", "chat"), ("second", None)]
    assert json.loads(rows[1]["attributes"]) == {gen_ai.GEN_AI_OPERATION_NAME: "chat"}
    assert batch.rejected_spans == 0
    assert batch.error_message == (
        f"span 'second' (trace {'07' * 16}, span {'02' * 8}): "
        "stored without GenAI columns (TypeError: unhashable type: 'list')"
    )
