"""OTLP JSON trace files → span rows (pure decoding; the file read is in :func:`read_trace_file`).

Accepted documents (one file):

- an OTLP/JSON ``ExportTraceServiceRequest`` — ``{"resourceSpans": [{"resource", "scopeSpans":
  [{"scope", "spans": [...]}]}]}`` — as written by spanreel's ``export --format otlp-json``, the
  OpenTelemetry Collector's ``file`` exporter and most OTLP backends' "download trace" buttons;
- the same with the older or backend-specific spellings: ``resource_spans`` / ``scope_spans``
  (snake case), ``instrumentationLibrarySpans`` (OTLP < 0.15), ``batches`` (Grafana Tempo's
  ``/api/traces`` answer) and a top-level ``{"trace": {...}}`` wrapper;
- several such documents: a JSON array of them, or JSON Lines (one per line — the Collector's
  file exporter format).

Ids: OTLP/JSON says trace and span ids are hex (opentelemetry-proto ``docs/specification.md``,
*JSON Protobuf Encoding*), but some backends (Tempo, Jaeger's ``/api/v3``) write protobuf's
default base64 instead. Each id is read as hex when it is 32 (trace) / 16 (span) hex characters,
else as base64 of 16 / 8 bytes. Spans are then decoded by the collector's own OTLP decoder and
normalised by its GenAI normaliser, so a file yields exactly the rows the collector would store.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["TraceFileError", "decode_trace_document", "read_trace_file"]

_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
_ID_LENGTHS = {
    "traceId": _TRACE_ID_BYTES,
    "trace_id": _TRACE_ID_BYTES,
    "spanId": _SPAN_ID_BYTES,
    "span_id": _SPAN_ID_BYTES,
    "parentSpanId": _SPAN_ID_BYTES,
    "parent_span_id": _SPAN_ID_BYTES,
}
_RESOURCE_SPANS_KEYS = ("resourceSpans", "resource_spans", "batches")
_SCOPE_SPANS_KEYS = (
    "scopeSpans",
    "scope_spans",
    "instrumentationLibrarySpans",
    "instrumentation_library_spans",
)


class TraceFileError(ValueError):
    """The file is not OTLP JSON trace data; the message names the file and what is wrong."""


def _id_to_hex(value: Any, size: int, where: str) -> str:
    """An id (hex, or base64 of ``size`` bytes) as lowercase hex. Empty stays empty."""
    if not isinstance(value, str):
        raise TraceFileError(f"{where} must be a string, got {type(value).__name__}")
    text = value.strip()
    if text == "":
        return ""
    if len(text) == 2 * size:
        try:
            return bytes.fromhex(text).hex()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == size:
        return raw.hex()
    raise TraceFileError(
        f"{where} is neither {2 * size} hex characters nor base64 of {size} bytes: {text[:64]!r}"
    )


def _normalise_ids(obj: dict[str, Any], where: str) -> None:
    for key, size in _ID_LENGTHS.items():
        if key in obj:
            obj[key] = _id_to_hex(obj[key], size, f"{where}.{key}")


def _first_list(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> list[Any]:
    for key in keys:
        if key in obj and obj[key] is not None:
            value = obj[key]
            if not isinstance(value, list):
                raise TraceFileError(f"{where}.{key} must be an array")
            return value
    return []


def _canonical_request(doc: Any, where: str) -> dict[str, Any]:
    """One document → an OTLP/JSON ``ExportTraceServiceRequest`` dict with hex ids."""
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("trace"), dict)
        and not any(k in doc for k in _RESOURCE_SPANS_KEYS)
    ):
        doc = doc["trace"]
    if not isinstance(doc, dict) or not any(k in doc for k in _RESOURCE_SPANS_KEYS):
        raise TraceFileError(f"{where}: not OTLP trace data (expected an object with resourceSpans)")
    resource_spans: list[Any] = []
    for i, rs in enumerate(_first_list(doc, _RESOURCE_SPANS_KEYS, where)):
        w_rs = f"{where}resourceSpans[{i}]"
        if not isinstance(rs, dict):
            raise TraceFileError(f"{w_rs} must be an object")
        scope_spans: list[Any] = []
        for j, ss in enumerate(_first_list(rs, _SCOPE_SPANS_KEYS, w_rs)):
            w_ss = f"{w_rs}.scopeSpans[{j}]"
            if not isinstance(ss, dict):
                raise TraceFileError(f"{w_ss} must be an object")
            spans = _first_list(ss, ("spans",), w_ss)
            for k, span in enumerate(spans):
                w_span = f"{w_ss}.spans[{k}]"
                if not isinstance(span, dict):
                    raise TraceFileError(f"{w_span} must be an object")
                _normalise_ids(span, w_span)
                for m, link in enumerate(_first_list(span, ("links",), w_span)):
                    if isinstance(link, dict):
                        _normalise_ids(link, f"{w_span}.links[{m}]")
            scope = ss.get("scope", ss.get("instrumentationLibrary", {}))
            scope_spans.append({"scope": scope, "spans": spans})
        resource_spans.append({"resource": rs.get("resource", {}), "scopeSpans": scope_spans})
    return {"resourceSpans": resource_spans}


def _documents(text: str) -> Iterator[tuple[str, Any]]:
    """(location prefix, parsed document) for a JSON document, a JSON array or JSON Lines."""
    try:
        doc = json.loads(text)
    except ValueError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(lines) < 2:
            raise TraceFileError(f"not JSON: {whole_error}") from None
        for n, line in lines:
            try:
                yield f"line {n}: ", json.loads(line)
            except ValueError as exc:
                raise TraceFileError(f"line {n}: not JSON: {exc}") from None
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield f"[{i}].", item
    else:
        yield "", doc


def decode_trace_document(text: str) -> list[dict[str, Any]]:
    """Decode OTLP JSON trace text (formats in the module docstring) into normalised span rows.

    Returns :data:`spanreel.collector._decode.SpanRow` dicts with the GenAI columns added (times
    are int nanoseconds since the Unix epoch, ids lowercase hex). Raises :class:`TraceFileError`
    for text that is not OTLP JSON trace data, for an invalid span (the collector would reject
    it) and when the file holds no spans.
    """
    from spanreel.collector._batch import derive_genai_columns
    from spanreel.collector._decode import DecodeError, decode_json

    rows: list[dict[str, Any]] = []
    for where, doc in _documents(text):
        request = _canonical_request(doc, where)
        try:
            result = decode_json(json.dumps(request).encode("utf-8"))
        except DecodeError as exc:
            raise TraceFileError(f"{where}{exc}") from exc
        if result.rejected_spans:
            raise TraceFileError(f"{where}{result.error_message}")
        rows.extend(result.rows)
    if not rows:
        raise TraceFileError("no spans in the file")
    derive_genai_columns(rows)  # a span it cannot derive keeps NULL GenAI columns, as stored
    return rows


def read_trace_file(path: str | Path) -> list[dict[str, Any]]:
    """Read and decode an OTLP JSON trace file (see :func:`decode_trace_document`).

    Raises :class:`TraceFileError` (message starts with the path) for unreadable or invalid files.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFileError(f"{file}: cannot read: {exc}") from exc
    try:
        return decode_trace_document(text)
    except TraceFileError as exc:
        raise TraceFileError(f"{file}: {exc}") from exc
