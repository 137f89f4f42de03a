"""OTLP trace payloads → span rows (pure: no I/O, no clock).

Follows the OTLP specification (opentelemetry-proto ``docs/specification.md``):

- protobuf: an ``ExportTraceServiceRequest`` message;
- OTLP/JSON: the same message in proto3 JSON with OTLP's differences — trace/span ids are
  **hex** strings (protobuf's JSON mapping would expect base64), enums are integers, int64 values
  may be decimal strings or numbers, unknown fields are ignored.

Each span becomes a :data:`SpanRow` (the columns of the ``spans`` table in docs/internals.md §2,
except the derived GenAI columns and ``received_at``). Invalid spans are dropped, counted and
described so the receiver can answer with an OTLP partial success; the good spans of the same
request are kept. A payload that cannot be parsed at all raises :class:`DecodeError`.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME

__all__ = [
    "DecodeError",
    "DecodeResult",
    "SpanRow",
    "any_value_to_python",
    "attributes_to_dict",
    "decode_json",
    "decode_protobuf",
    "decode_request",
    "drop_invalid_spans",
    "parse_json_request",
]

#: A span as a dict keyed by ``spans`` column name. ``attributes`` / ``resource_attributes`` are
#: dicts, ``events`` / ``links`` lists of dicts (JSON-safe values); times are int nanoseconds since
#: the Unix epoch (``start_time_unix_nano``, ``end_time_unix_nano``).
SpanRow = dict[str, Any]

_MAX_DESCRIBED = 5
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
#: Latest time a span may have: times are stored as signed 64-bit nanoseconds (TIMESTAMP_NS), while
#: OTLP's fixed64 reaches 2**64 - 1 (the year 2554).
_MAX_TIME_UNIX_NANO = 2**63 - 1

_KIND_NAMES: dict[int, str] = {
    value: name.removeprefix("SPAN_KIND_") for name, value in trace_pb2.Span.SpanKind.items()
}
_STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("STATUS_CODE_") for name, value in trace_pb2.Status.StatusCode.items()
}


class DecodeError(ValueError):
    """The payload is not a valid OTLP ``ExportTraceServiceRequest`` (HTTP 400 / gRPC INVALID_ARGUMENT)."""


@dataclass
class DecodeResult:
    """Decoded spans plus what was rejected, in the shape of OTLP's ``ExportTracePartialSuccess``."""

    rows: list[SpanRow] = field(default_factory=list)
    #: number of spans dropped as invalid (``partial_success.rejected_spans``)
    rejected_spans: int = 0
    #: human-readable reasons, empty when nothing was rejected (``partial_success.error_message``)
    error_message: str = ""


def _finite(value: float) -> float | str:
    # JSON has no NaN/Infinity: use proto3 JSON's string spellings.
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def any_value_to_python(value: Any) -> Any:
    """An OTLP ``AnyValue`` → JSON-safe Python: str, int, float (non-finite as ``"NaN"`` /
    ``"Infinity"`` / ``"-Infinity"``), bool, list (``array_value``), dict (``kvlist_value``),
    base64 str (``bytes_value``), ``None`` (empty)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return _finite(value.double_value)
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def attributes_to_dict(kvs: Iterable[Any]) -> dict[str, Any]:
    """Repeated OTLP ``KeyValue`` → ``{key: value}``; a repeated key keeps its last value."""
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        # Most values are non-empty strings: one field read instead of WhichOneof + a read.
        text = value.string_value
        out[kv.key] = text if text else any_value_to_python(value)
    return out


def _span_problem(span: Any) -> str | None:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE_ID:
        return "trace_id must be 16 bytes and not all zero"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN_ID:
        return "span_id must be 8 bytes and not all zero"
    if len(span.parent_span_id) not in (0, 8):
        return "parent_span_id must be empty or 8 bytes"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "end_time_unix_nano is before start_time_unix_nano"
    if span.end_time_unix_nano > _MAX_TIME_UNIX_NANO:
        return "end_time_unix_nano is after 2262-04-11 (beyond signed 64-bit nanoseconds)"
    return None


def drop_invalid_spans(request: Any) -> int:
    """Remove from a parsed ``ExportTraceServiceRequest``, in place, the spans the receiver rejects
    as invalid (see :func:`rows_from_request`); return how many were removed."""
    removed = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            kept = [span for span in scope_spans.spans if _span_problem(span) is None]
            if len(kept) != len(scope_spans.spans):
                removed += len(scope_spans.spans) - len(kept)
                del scope_spans.spans[:]
                scope_spans.spans.extend(kept)
    return removed


def _describe(span: Any, problem: str) -> str:
    name = span.name or "<unnamed>"
    return f"span {name!r} (trace {span.trace_id.hex() or '-'}, span {span.span_id.hex() or '-'}): {problem}"


def rows_from_request(request: Any, rejected: Sequence[str] = ()) -> DecodeResult:
    """Flatten a parsed ``ExportTraceServiceRequest`` into rows, validating each span.
    ``rejected``: descriptions of spans already taken out of the request as invalid (counted and
    described first)."""
    result = DecodeResult()
    result.rejected_spans = len(rejected)
    problems: list[str] = list(rejected[:_MAX_DESCRIBED])
    for resource_spans in request.resource_spans:
        resource_attrs = attributes_to_dict(resource_spans.resource.attributes)
        service = resource_attrs.get(SERVICE_NAME)
        service_name = service if isinstance(service, str) else None
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            for span in scope_spans.spans:
                problem = _span_problem(span)
                if problem is not None:
                    result.rejected_spans += 1
                    if len(problems) < _MAX_DESCRIBED:
                        problems.append(_describe(span, problem))
                    continue
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                parent = span.parent_span_id
                result.rows.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": parent.hex() if parent and parent != _ZERO_SPAN_ID else None,
                        "trace_state": span.trace_state,
                        "name": span.name,
                        "kind": _KIND_NAMES.get(span.kind, "UNSPECIFIED"),
                        "service_name": service_name,
                        "scope_name": scope_name,
                        "scope_version": scope_version,
                        "start_time_unix_nano": start,
                        "end_time_unix_nano": end,
                        "duration_ns": end - start,
                        "status_code": _STATUS_NAMES.get(span.status.code, "UNSET"),
                        "status_message": span.status.message,
                        "attributes": attributes_to_dict(span.attributes),
                        "resource_attributes": resource_attrs,
                        "events": [
                            {
                                "time_unix_nano": ev.time_unix_nano,
                                "name": ev.name,
                                "attributes": attributes_to_dict(ev.attributes),
                            }
                            for ev in span.events
                        ],
                        "links": [
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "trace_state": link.trace_state,
                                "attributes": attributes_to_dict(link.attributes),
                            }
                            for link in span.links
                        ],
                    }
                )
    if result.rejected_spans:
        more = result.rejected_spans - len(problems)
        suffix = f"; and {more} more" if more > 0 else ""
        result.error_message = (
            f"rejected {result.rejected_spans} invalid span(s): " + "; ".join(problems) + suffix
        )
    return result


def decode_protobuf(payload: bytes) -> DecodeResult:
    """Decode a binary protobuf ``ExportTraceServiceRequest``. Raises :class:`DecodeError`."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except (_ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"invalid protobuf ExportTraceServiceRequest: {exc}") from exc
    return rows_from_request(request)


def _hex_to_b64(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DecodeError(f"{where}.{key} must be a hex string, got {type(value).__name__}")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise DecodeError(f"{where}.{key} is not hex: {value[:64]!r}") from None
        obj[key] = base64.b64encode(raw).decode("ascii")


def _items(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{where}.{camel} must be an array")
    return value


_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _ids_hex_to_base64(doc: Any) -> list[str]:
    """Rewrite the hex ids of ``doc`` (OTLP/JSON) as base64 in place, for ``json_format``. A span
    whose own or whose links' ids are not hex strings is removed from ``doc`` and described in the
    returned list (rejected alone, OTLP partial success); a malformed structure raises
    :class:`DecodeError`."""
    if not isinstance(doc, dict):
        raise DecodeError("OTLP/JSON body must be an object with resourceSpans")
    problems: list[str] = []
    for i, rs in enumerate(_items(doc, "resourceSpans", "resource_spans", "$")):
        if not isinstance(rs, dict):
            raise DecodeError(f"resourceSpans[{i}] must be an object")
        for j, ss in enumerate(_items(rs, "scopeSpans", "scope_spans", f"resourceSpans[{i}]")):
            if not isinstance(ss, dict):
                raise DecodeError(f"resourceSpans[{i}].scopeSpans[{j}] must be an object")
            where_ss = f"resourceSpans[{i}].scopeSpans[{j}]"
            spans = _items(ss, "spans", "spans", where_ss)
            kept = []
            for k, span in enumerate(spans):
                where = f"{where_ss}.spans[{k}]"
                if not isinstance(span, dict):
                    raise DecodeError(f"{where} must be an object")
                links = _items(span, "links", "links", where)
                for m, link in enumerate(links):
                    if not isinstance(link, dict):
                        raise DecodeError(f"{where}.links[{m}] must be an object")
                try:
                    _hex_to_b64(span, _ID_KEYS, where)
                    for m, link in enumerate(links):
                        _hex_to_b64(link, _ID_KEYS, f"{where}.links[{m}]")
                except DecodeError as exc:
                    problems.append(str(exc))
                    continue
                kept.append(span)
            if len(kept) != len(spans):
                ss.pop("spans", None)
                ss["spans"] = kept
    return problems


def parse_json_request(payload: bytes) -> tuple[ExportTraceServiceRequest, list[str]]:
    """Parse an OTLP/JSON ``ExportTraceServiceRequest`` (hex ids, lowerCamelCase or proto field
    names) into the message, without the spans whose ids are not hex strings; those are described
    in the returned list. Raises :class:`DecodeError` for a payload that is not such a request."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    except RecursionError:
        raise DecodeError("invalid OTLP/JSON: nested too deeply") from None
    bad_ids = _ids_hex_to_base64(doc)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"invalid OTLP/JSON ExportTraceServiceRequest: {exc}") from exc
    return request, bad_ids


def decode_json(payload: bytes) -> DecodeResult:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest`` (hex ids). Raises :class:`DecodeError`
    for a payload that is not such a request; spans with ids that are not hex are rejected in the
    result, like other invalid spans."""
    return rows_from_request(*parse_json_request(payload))


def decode_request(payload: bytes, *, json_encoded: bool) -> DecodeResult:
    """Decode ``payload`` as OTLP/JSON when ``json_encoded`` else as protobuf."""
    return decode_json(payload) if json_encoded else decode_protobuf(payload)
