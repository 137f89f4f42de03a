"""Fuzzing both OTLP decoders with hypothesis: whatever the bytes, the whole ingest pipeline
(decode → normalise → Arrow) either returns a batch or raises DecodeError — no other exception, no
hang (pytest-timeout guards the run; examples are bounded so it stays fast)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanreel.collector._batch import PreparedBatch, prepare_batch
from spanreel.collector._decode import DecodeError
from spanreel.collector._normalise import normalise_messages, normalise_row
from spanreel.collector._schema import SPANS_SCHEMA

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _pipeline(payload: bytes, json_encoded: bool) -> PreparedBatch | None:
    try:
        batch = prepare_batch(payload, json_encoded)
    except DecodeError as exc:
        assert str(exc)  # a message the client can act on
        return None
    assert batch.table.schema == SPANS_SCHEMA
    assert batch.rejected_spans >= 0
    # Every stored row has valid ids, whatever came in.
    for trace_id, span_id in zip(
        batch.table.column("trace_id").to_pylist(), batch.table.column("span_id").to_pylist(), strict=True
    ):
        assert len(trace_id) == 32 and len(span_id) == 16
    for text in batch.table.column("attributes").to_pylist():
        assert isinstance(json.loads(text), dict)
    return batch


def _valid_request() -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(3):
        span = spans.add()
        span.trace_id = bytes([i + 1]) * 16
        span.span_id = bytes([i + 1]) * 8
        span.name = f"chat m{i}"
        span.start_time_unix_nano, span.end_time_unix_nano = 10, 20
        span.attributes.append(KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")))
        span.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=-5)))
        span.attributes.append(KeyValue(key="x", value=AnyValue(double_value=float("nan"))))
    return request.SerializeToString()


VALID = _valid_request()


@FUZZ
@given(st.binary(max_size=2048))
def test_protobuf_decoder_arbitrary_bytes(payload: bytes) -> None:
    _pipeline(payload, json_encoded=False)


@FUZZ
@given(st.data())
def test_protobuf_decoder_mutated_valid_request(data: st.DataObject) -> None:
    payload = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(payload) - 1))
        payload[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    _pipeline(bytes(payload[:cut]), json_encoded=False)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["00" * 16, "ab" * 8, "zz", "", "1700000000000000000", "-1", "NaN"]),
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
_keys = st.sampled_from(
    [
        "traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano",
        "attributes", "events", "links", "status", "traceState", "droppedAttributesCount", "flags",
    ]
)  # fmt: skip
_any_values = st.dictionaries(
    st.sampled_from(
        ["stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue", "bytesValue"]
    ),
    _json_values,
    max_size=2,
)
_attributes = st.lists(
    st.fixed_dictionaries({"key": st.text(max_size=10)}, optional={"value": _any_values}), max_size=4
)


def _span_strategy() -> st.SearchStrategy[dict[str, Any]]:
    fields = st.dictionaries(_keys, _json_values, max_size=6)
    shaped = st.fixed_dictionaries(
        {"traceId": st.just("5b8efff798038103d269b633813fc60c"), "spanId": st.just("eee19b7ec3c1b174")},
        optional={
            "attributes": _attributes,
            "startTimeUnixNano": _json_values,
            "endTimeUnixNano": _json_values,
        },
    )
    return st.one_of(fields, shaped)


_documents = st.one_of(
    _json_values,
    st.fixed_dictionaries(
        {
            "resourceSpans": st.lists(
                st.fixed_dictionaries(
                    {
                        "scopeSpans": st.lists(
                            st.fixed_dictionaries({"spans": st.lists(_span_strategy(), max_size=3)}),
                            max_size=2,
                        )
                    },
                    optional={"resource": st.fixed_dictionaries({"attributes": _attributes})},
                ),
                max_size=2,
            )
        }
    ),
)


@FUZZ
@given(_documents)
def test_json_decoder_arbitrary_documents(document: Any) -> None:
    _pipeline(json.dumps(document).encode(), json_encoded=True)


@FUZZ
@given(st.binary(max_size=512))
def test_json_decoder_arbitrary_bytes(payload: bytes) -> None:
    _pipeline(payload, json_encoded=True)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand (the API refuses to build what we test)."""
    length, size = b"", len(payload)
    while True:
        byte, size = size & 0x7F, size >> 7
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            break
    return bytes([number << 3 | 2]) + length + payload


def test_deeply_nested_payloads_are_refused_not_crashing() -> None:
    deep_json = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _pipeline(deep_json, json_encoded=True) is None
    # AnyValue{array_value: ArrayValue{values: [AnyValue{…}]}} nested 5,000 deep.
    value = _field(1, b"leaf")
    for _ in range(5000):
        value = _field(5, _field(1, value))
    span = _field(1, b"\x01" * 16) + _field(2, b"\x02" * 8) + _field(9, _field(1, b"deep") + _field(2, value))
    request = _field(1, _field(2, _field(2, span)))
    assert _pipeline(request, json_encoded=False) is None


# -- the normalisers over peers' JSON-valued attributes ------------------------------------------

_PART_KEYS = (
    "role",
    "content",
    "type",
    "text",
    "parts",
    "tool_calls",
    "function",
    "arguments",
    "name",
    "id",
    "messages",
    "choices",
    "message",
    "image_url",
    "url",
    "input_audio",
    "data",
    "source",
    "media_type",
    "finish_reason",
    "usage",
    "input_tokens",
)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(["text", "image_url", "input_audio", "file", "user", "tool", "tool_use", "image", ""]),
)
_JSON_SHAPES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_PART_KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Attributes whose string values the normalisers decode as JSON (OpenLLMetry, OpenInference,
#: MLflow, the OTel message attributes).
_JSON_ATTRIBUTES = (
    "gen_ai.prompt.0.content",
    "gen_ai.completion.0.content",
    "gen_ai.completion.0.tool_calls.0.arguments",
    "llm.input_messages.0.message.content",
    "llm.output_messages.0.message.contents.0.message_content.text",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "mlflow.spanInputs",
    "mlflow.spanOutputs",
)


@settings(FUZZ, max_examples=400)
@given(
    st.dictionaries(st.sampled_from(_JSON_ATTRIBUTES), _JSON_SHAPES.map(json.dumps), min_size=1, max_size=3),
    st.sampled_from(['"LLM"', '"CHAT_MODEL"']),
)
def test_normalisers_take_any_json_shape(attributes: dict[str, str], mlflow_type: str) -> None:
    """A content part whose ``type`` was a list or an object raised TypeError (unhashable) and
    failed the whole export request (HTTP 500, the good spans beside it lost)."""
    attributes |= {"gen_ai.operation.name": "chat", "mlflow.spanType": mlflow_type}
    row = normalise_row({"attributes": attributes, "resource_attributes": {}})
    assert row["operation"] is not None
    inputs, outputs = normalise_messages(attributes)
    for side in (inputs, outputs):
        assert side is None or isinstance(json.loads(side), list)
