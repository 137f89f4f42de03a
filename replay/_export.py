"""``spanreel export``: recorded spans as fine-tuning JSONL, Parquet or OTLP JSON.

Input everywhere is a list of span rows in the collector's ``SpanRow`` shape
(:mod:`spanreel.collector._decode`: the ``spans`` columns of docs/internals.md §2, times as int
nanoseconds in ``start_time_unix_nano`` / ``end_time_unix_nano``, ``attributes`` /
``resource_attributes`` as dicts, ``events`` / ``links`` as lists; optionally ``received_at`` in
int microseconds). :func:`fetch_span_rows` reads them from the DuckDB store through the read-only
query path; :func:`spanreel.replay._otlp_file.read_trace_file` reads them from an OTLP JSON file.

Formats (pure converters, then a writer):

- ``openai-jsonl`` — :func:`finetune_records`: one line per recorded LLM call in OpenAI's chat
  fine-tuning format (https://platform.openai.com/docs/guides/supervised-fine-tuning):
  ``{"messages": [...request messages..., {"role": "assistant", ...recorded output...}],
  "tools": [...]}``; tool calls and tool results stay in OpenAI form
  (``tool_calls[].function.arguments`` as a JSON string, ``{"role": "tool", "tool_call_id"}``).
  Messages come from the recorded request body (OpenAI bodies as sent — ``developer`` becomes
  ``system`` —, Anthropic bodies converted), else the request body another instrumentation
  recorded (OpenInference ``input.value``, MLflow ``mlflow.spanInputs``, as replay reads them), else
  ``gen_ai.input.messages`` / ``gen_ai.system_instructions``, else the row's ``input_messages``
  (the collector's normalised messages, any peer convention); the answer from
  ``gen_ai.output.messages``, else the row's ``output_messages``; tools from the body, else
  ``gen_ai.tool.definitions``. Failed calls, calls without recorded input or output, calls with
  a recorded input message without any part (its content left out by the instrumentation, as
  openai-v2 does with images and lists of parts), and calls whose recorded messages hold a blob
  placeholder instead of the image or file sent (the default capture, without
  ``SPANREEL_CAPTURE_BLOBS``) and answers cut off (no finish reason: the app stopped reading the
  stream) are skipped, each with a reason.
- ``parquet`` — :func:`spans_to_arrow`: the span rows with the ``spans`` table's columns;
  ``start_time`` / ``end_time`` ``timestamp[ns, UTC]``, ``received_at`` ``timestamp[us, UTC]``,
  JSON columns with Arrow's JSON extension type (Parquet's JSON logical type; DuckDB reads them as
  ``JSON``). Written in this process with pyarrow (the collector's DuckDB has external access
  disabled, so ``COPY … TO`` is not used).
- ``otlp-json`` — :func:`spans_to_otlp_json`: an OTLP/JSON ``ExportTraceServiceRequest``
  (opentelemetry-proto JSON mapping with OTLP's rules: hex ids, integer enums, lowerCamelCase
  keys, int64 as decimal strings), spans grouped by resource (its attributes) then by scope
  (name, version) in order of first appearance. It loads back with ``--from-file`` /
  :func:`spanreel.replay.load_trace_file` and is accepted by any OTLP/HTTP JSON receiver.
  Limits of the stored form: ``bytes`` values come back as their base64 strings and non-finite
  doubles as the strings ``"NaN"`` / ``"Infinity"``; resource/scope schema URLs and dropped
  counts are not stored.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from spanreel._attributes import NO_FINISH_REASON, SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_URL
from spanreel._trace_sql import SESSION_SPANS, TRACE_SPANS
from spanreel.instrumentation._content import BLOB_PLACEHOLDER

from ._load import QueryFn, default_query, parse_json, resolve_trace_id
from ._messages import ApiShape, detect_shape
from ._peer import recorded_body, tool_response_text
from ._recorded import openai_assistant_message

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "FineTuneResult",
    "export_text",
    "fetch_span_rows",
    "finetune_records",
    "spans_to_arrow",
    "spans_to_otlp_json",
    "write_parquet",
]

#: ``--format`` values.
EXPORT_FORMATS: tuple[str, ...] = ("openai-jsonl", "parquet", "otlp-json")

#: GenAI operations that are one model call with messages (fine-tuning candidates).
_CHAT_OPERATIONS = frozenset(
    {ga.GenAiOperationNameValues.CHAT.value, ga.GenAiOperationNameValues.TEXT_COMPLETION.value}
)

_ROW_COLUMNS = (
    "trace_id, span_id, parent_span_id, trace_state, name, kind, service_name, scope_name, "
    "scope_version, epoch_ns(start_time) AS start_time_unix_nano, "
    "epoch_ns(end_time) AS end_time_unix_nano, duration_ns, status_code, status_message, attributes, "
    "resource_attributes, events, links, operation, provider, request_model, response_model, "
    "input_tokens, output_tokens, finish_reasons, session_id, conversation_id, input_messages, "
    "output_messages, cost_usd, "
    "epoch_us(received_at) AS received_at"
)
_JSON_COLUMNS = ("attributes", "resource_attributes", "events", "links")
#: An inline blob replaced at capture (``[spanreel: image/png base64 omitted, 3072 bytes]``).
_BLOB_PLACEHOLDER = re.compile(
    re.escape(BLOB_PLACEHOLDER).replace(r"\{what\}", r"[^\]\[]{1,200}").replace(r"\{size\}", r"\d+")
)


class ExportError(ValueError):
    """The export cannot be made (bad ``--where`` clause, nothing selected, unwritable file)."""


# ---------------------------------------------------------------------------------------------
# Reading span rows (through the read-only query path)
# ---------------------------------------------------------------------------------------------


def _row_from_result(columns: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    row = dict(zip(columns, values, strict=True))
    for key in _JSON_COLUMNS:
        value = row.get(key)
        if isinstance(value, str | bytes):
            try:
                row[key] = json.loads(value)
            except ValueError:
                row[key] = None
        if row.get(key) is None:
            row[key] = [] if key in ("events", "links") else {}
    row["trace_state"] = row.get("trace_state") or ""
    return row


def _check_single_statement(sql: str) -> None:
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ExportError(f"--where: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise ExportError("--where must be one boolean expression (no ';', no extra statements)")


def fetch_span_rows(
    db_path: str | Path,
    *,
    trace_id: str | None = None,
    session_id: str | None = None,
    where: str | None = None,
    query: QueryFn | None = None,
) -> list[dict[str, Any]]:
    """Span rows selected by exactly one of ``trace_id`` (full id or unique prefix ≥ 8 hex),
    ``session_id`` (the session's spans as :func:`~spanreel.replay.load_session` selects them:
    whole traces, except that a trace shared with other sessions gives only this session's spans
    and their ancestors; leading and trailing whitespace ignored) or
    ``where`` (a DuckDB boolean expression over the columns of ``spans`` — which are also all the
    columns of ``llm_calls``), ordered by start time then span id.

    Reads through :func:`spanreel.collector.run_query` (the running collector's read-only query
    API, else the file opened read-only). Raises :class:`ExportError` (nothing matched, bad
    ``where``), ``TraceLookupError`` subclasses for a bad trace id, and the collector's
    ``NoDatabaseError`` / ``QueryError``.
    """
    if sum(x is not None for x in (trace_id, session_id, where)) != 1:
        raise ValueError("give exactly one of trace_id, session_id, where")
    path = Path(db_path)
    run = query or default_query
    params: list[Any]
    if trace_id is not None:
        source, params = TRACE_SPANS, [resolve_trace_id(trace_id, path, query=run)]
        what = f"trace {params[0]}"
    elif session_id is not None:
        source = SESSION_SPANS  # stripped, as the collector stores it (see load_session)
        params, what = [session_id.strip()], f"session {session_id!r}"
    else:
        assert where is not None
        source, params, what = f"spans WHERE ({where}\n)", [], f"--where {where!r}"
    sql = f"SELECT {_ROW_COLUMNS} FROM {source} ORDER BY start_time, trace_id, span_id"
    if where is not None:
        _check_single_statement(sql)
    result = run(sql, path, params or None)
    rows = [_row_from_result(list(result.columns), values) for values in result.rows]
    if not rows:
        raise ExportError(f"no spans match {what} in {path}")
    return rows


# ---------------------------------------------------------------------------------------------
# openai-jsonl
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FineTuneResult:
    """``records``: one fine-tuning example per exported LLM call (``{"messages", "tools"?,
    "parallel_tool_calls"?}``); ``skipped``: ``(span_id, reason)`` for LLM calls left out."""

    records: list[dict[str, Any]]
    skipped: list[tuple[str, str]]


def _text_blocks(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text") or "") for b in content if isinstance(b, Mapping) and b.get("type") == "text"
        )
    return ""


def _anthropic_image(block: Mapping[str, Any]) -> dict[str, Any] | None:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return None
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url"))
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _from_anthropic(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Anthropic Messages request → OpenAI chat messages (system, text, images, tool use/results)."""
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _text_blocks(system)})
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        role, content = message.get("role"), message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
        if role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": _text_blocks(blocks) or None}
            calls = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {
                        "name": b.get("name"),
                        "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False),
                    },
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
            continue
        for b in blocks:
            if b.get("type") == "tool_result":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": b.get("tool_use_id"),
                        "content": _text_blocks(b.get("content")),
                    }
                )
        parts: list[dict[str, Any]] = []
        for b in blocks:
            if b.get("type") == "text":
                parts.append({"type": "text", "text": str(b.get("text") or "")})
            elif b.get("type") == "image":
                image = _anthropic_image(b)
                if image is not None:
                    parts.append(image)
        if parts:
            only_text = all(p["type"] == "text" for p in parts)
            out.append({"role": role, "content": "".join(p["text"] for p in parts) if only_text else parts})
    return out


def _from_semconv(messages: Any, system_instructions: Any) -> list[dict[str, Any]]:
    """``gen_ai.input.messages`` (+ ``gen_ai.system_instructions``) → OpenAI chat messages."""
    out: list[dict[str, Any]] = []
    if isinstance(system_instructions, list):
        text = "".join(str(p.get("content") or "") for p in system_instructions if isinstance(p, Mapping))
        if text:
            out.append({"role": "system", "content": text})
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        parts = [p for p in message.get("parts") or () if isinstance(p, Mapping)]
        if role == "assistant":
            out.append({k: v for k, v in openai_assistant_message(message).items() if v is not None})
            continue
        responses = [p for p in parts if p.get("type") == "tool_call_response"]
        for p in responses:
            content = tool_response_text(p.get("response"))
            out.append({"role": "tool", "tool_call_id": p.get("id"), "content": content})
        text = "".join(str(p.get("content") or "") for p in parts if p.get("type") == "text")
        if text or not responses:
            out.append({"role": "system" if role == "developer" else role, "content": text})
    return out


def _tools(body: Mapping[str, Any] | None, definitions: Any) -> list[dict[str, Any]]:
    tools = body.get("tools") if body is not None else None
    out: list[dict[str, Any]] = []
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, Mapping):
                continue
            if isinstance(tool.get("function"), Mapping):
                out.append(dict(tool))
            elif "input_schema" in tool:  # Anthropic tool
                fn = {
                    "name": tool.get("name"),
                    "description": tool.get("description"),
                    "parameters": tool.get("input_schema"),
                }
                out.append({"type": "function", "function": {k: v for k, v in fn.items() if v is not None}})
        return out
    for d in definitions if isinstance(definitions, list) else ():
        if isinstance(d, Mapping) and d.get("name"):
            fn = {k: d[k] for k in ("name", "description", "parameters") if d.get(k) is not None}
            out.append({"type": "function", "function": fn})
    return out


def _body_messages(body: Mapping[str, Any], shape: ApiShape | None) -> list[dict[str, Any]]:
    if shape is ApiShape.ANTHROPIC_MESSAGES:
        return _from_anthropic(body)
    messages = [
        {**m, "role": "system"} if isinstance(m, Mapping) and m.get("role") == "developer" else m
        for m in body["messages"]
    ]
    return [dict(m) for m in messages if isinstance(m, Mapping)]


def _request_messages(row: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Mapping[str, Any] | None]:
    attrs: Mapping[str, Any] = row.get("attributes") or {}
    body = parse_json(attrs.get(SPANREEL_REQUEST_BODY))
    if isinstance(body, Mapping) and isinstance(body.get("messages"), list):
        url = attrs.get(SPANREEL_REQUEST_URL)
        return _body_messages(body, detect_shape(body, url if isinstance(url, str) else None)), body
    peer = recorded_body(attrs)  # OpenInference input.value, MLflow spanInputs: the request itself
    if peer is not None and isinstance(peer[0].get("messages"), list):
        body, _, anthropic, _ = peer
        provider = "anthropic" if anthropic else row.get("provider")
        return _body_messages(body, detect_shape(body, None, provider)), body
    messages = parse_json(attrs.get(ga.GEN_AI_INPUT_MESSAGES))
    if messages is None:  # another convention: the collector's normalised messages
        messages = parse_json(row.get("input_messages"))
    return _from_semconv(messages, parse_json(attrs.get(ga.GEN_AI_SYSTEM_INSTRUCTIONS))), None


def _contentless(attrs: Mapping[str, Any], row: Mapping[str, Any]) -> int | None:
    """The index of the first recorded input message without any part (its content left out by
    the instrumentation: openai-v2 records only string content), ``None`` when there is none."""
    if isinstance(parse_json(attrs.get(SPANREEL_REQUEST_BODY)), Mapping):
        return None
    messages = parse_json(attrs.get(ga.GEN_AI_INPUT_MESSAGES))
    if messages is None:
        messages = parse_json(row.get("input_messages"))
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        if isinstance(message, Mapping) and not message.get("parts"):
            return i
    return None


def _exact_arguments(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """tool-call id → exact ``arguments`` text sent back in a later OpenAI request body."""
    found: dict[str, str] = {}
    for row in rows:
        body = parse_json((row.get("attributes") or {}).get(SPANREEL_REQUEST_BODY))
        for m in body.get("messages") or () if isinstance(body, Mapping) else ():
            for call in m.get("tool_calls") or () if isinstance(m, Mapping) else ():
                fn = call.get("function") if isinstance(call, Mapping) else None
                if (
                    isinstance(fn, Mapping)
                    and isinstance(call.get("id"), str)
                    and isinstance(fn.get("arguments"), str)
                ):
                    found.setdefault(call["id"], fn["arguments"])
    return found


def _is_llm_call(row: Mapping[str, Any]) -> bool:
    attrs = row.get("attributes") or {}
    return SPANREEL_REQUEST_BODY in attrs or (row.get("operation") or "") in _CHAT_OPERATIONS


def finetune_records(rows: Sequence[Mapping[str, Any]]) -> FineTuneResult:
    """One OpenAI chat fine-tuning example per LLM call in ``rows`` (in row order); see the module
    docstring. Pure."""
    exact = _exact_arguments(rows)
    records: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for row in rows:
        if not _is_llm_call(row):
            continue
        span_id = str(row.get("span_id"))
        attrs: Mapping[str, Any] = row.get("attributes") or {}
        if row.get("operation") == ga.GenAiOperationNameValues.EMBEDDINGS.value:
            # (it was "no output recorded (…content capture off?)", with capture on)
            skipped.append((span_id, "an embeddings call, not a conversation"))
            continue
        if row.get("status_code") == "ERROR":
            skipped.append((span_id, "the call failed (status ERROR)"))
            continue
        outputs = parse_json(attrs.get(ga.GEN_AI_OUTPUT_MESSAGES))
        if outputs is None:  # another convention: the collector's normalised messages
            outputs = parse_json(row.get("output_messages"))
        first = (
            outputs[0] if isinstance(outputs, list) and outputs and isinstance(outputs[0], Mapping) else None
        )
        if first is None:
            skipped.append(
                (span_id, f"no output recorded ({ga.GEN_AI_OUTPUT_MESSAGES}; content capture off?)")
            )
            continue
        if (
            not (attrs.get(ga.GEN_AI_RESPONSE_FINISH_REASONS) or row.get("finish_reasons"))
            and first.get("finish_reason") == NO_FINISH_REASON
        ):
            # An output message's finish_reason "error" without a recorded finish reason: the
            # instrumentation's stand-in for none (a failed stream is status ERROR, skipped above).
            skipped.append(
                (span_id, "the answer was cut off: the app stopped reading the stream (no finish reason)")
            )
            continue
        messages, body = _request_messages(row)
        empty = _contentless(attrs, row) if body is None else None
        if empty is not None:
            skipped.append(
                (
                    span_id,
                    f"input message {empty} was recorded without its content (the instrumentation "
                    "left it out: some record only text, not images or lists of parts)",
                )
            )
            continue
        placeholder = _BLOB_PLACEHOLDER.search(json.dumps(messages, ensure_ascii=False))
        if placeholder is not None:
            skipped.append(
                (
                    span_id,
                    "the recorded request holds a blob placeholder, not the data sent "
                    f"({placeholder.group(0)}): record with SPANREEL_CAPTURE_BLOBS=true to export it",
                )
            )
            continue
        if not messages:
            skipped.append(
                (
                    span_id,
                    f"no input messages recorded ({SPANREEL_REQUEST_BODY} / {ga.GEN_AI_INPUT_MESSAGES})",
                )
            )
            continue
        answer = openai_assistant_message(first, exact)
        if answer["content"] is None and "tool_calls" not in answer:
            skipped.append((span_id, "the recorded output has no text and no tool call"))
            continue
        if answer["content"] is None:
            del answer["content"]
        record: dict[str, Any] = {"messages": [*messages, answer]}
        tools = _tools(body, parse_json(attrs.get(ga.GEN_AI_TOOL_DEFINITIONS)))
        if tools:
            record["tools"] = tools
        if body is not None and isinstance(body.get("parallel_tool_calls"), bool):
            record["parallel_tool_calls"] = body["parallel_tool_calls"]
        records.append(record)
    return FineTuneResult(records, skipped)


# ---------------------------------------------------------------------------------------------
# parquet
# ---------------------------------------------------------------------------------------------


def spans_to_arrow(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Span rows → an Arrow table with the ``spans`` columns (types in the module docstring)."""
    import pyarrow as pa

    from spanreel.collector._schema import rows_to_arrow

    base = rows_to_arrow([dict(r) for r in rows])
    utc_ns = pa.timestamp("ns", tz="UTC")
    columns: dict[str, Any] = {}
    for name in base.column_names:
        column = base.column(name).combine_chunks()
        if name in ("start_time", "end_time"):
            column = column.cast(utc_ns)
        elif name in _JSON_COLUMNS:
            column = pa.ExtensionArray.from_storage(pa.json_(pa.string()), column)
        columns[name] = column
    received = [r.get("received_at") for r in rows]
    columns["received_at"] = pa.array(received, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


# ---------------------------------------------------------------------------------------------
# otlp-json
# ---------------------------------------------------------------------------------------------

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@functools.cache
def _enum_numbers() -> tuple[dict[str, int], dict[str, int]]:
    """OTLP enum numbers by the names stored in ``spans`` (opentelemetry-proto ``trace.proto``:
    ``Span.SpanKind`` without ``SPAN_KIND_``, ``Status.StatusCode`` without ``STATUS_CODE_``)."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    kinds = {n.removeprefix("SPAN_KIND_"): int(v) for n, v in trace_pb2.Span.SpanKind.items()}
    statuses = {n.removeprefix("STATUS_CODE_"): int(v) for n, v in trace_pb2.Status.StatusCode.items()}
    return kinds, statuses


def _any_value(value: Any) -> dict[str, Any]:
    """A JSON-safe Python value → an OTLP/JSON ``AnyValue`` (``None`` → ``{}``, the empty value)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return {"intValue": str(value)}
    if isinstance(value, int | float):
        return {"doubleValue": float(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _key_values(value)}}
    return {} if value is None else {"stringValue": str(value)}


def _key_values(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": _any_value(v)} for k, v in attrs.items()]


def _hex_id(value: Any, size: int, what: str) -> str:
    text = str(value or "").lower()
    if len(text) != 2 * size:
        raise ValueError(f"{what} must be {2 * size} hex characters, got {text!r}")
    bytes.fromhex(text)  # raises ValueError when not hex
    return text


def _otlp_span(row: Mapping[str, Any]) -> dict[str, Any]:
    kinds, statuses = _enum_numbers()
    kind, status = str(row.get("kind") or "UNSPECIFIED"), str(row.get("status_code") or "UNSET")
    if kind not in kinds or status not in statuses:
        raise ValueError(f"span {row.get('span_id')}: unknown kind {kind!r} or status code {status!r}")
    span: dict[str, Any] = {
        "traceId": _hex_id(row.get("trace_id"), 16, "trace_id"),
        "spanId": _hex_id(row.get("span_id"), 8, "span_id"),
    }
    if row.get("parent_span_id"):
        span["parentSpanId"] = _hex_id(row["parent_span_id"], 8, "parent_span_id")
    if row.get("trace_state"):
        span["traceState"] = str(row["trace_state"])
    span["name"] = str(row.get("name") or "")
    span["kind"] = kinds[kind]
    span["startTimeUnixNano"] = str(int(row.get("start_time_unix_nano") or 0))
    span["endTimeUnixNano"] = str(int(row.get("end_time_unix_nano") or 0))
    span["attributes"] = _key_values(row.get("attributes") or {})
    span["events"] = [
        {
            "timeUnixNano": str(int(e.get("time_unix_nano") or 0)),
            "name": str(e.get("name") or ""),
            "attributes": _key_values(e.get("attributes") or {}),
        }
        for e in row.get("events") or ()
    ]
    span["links"] = [
        {
            "traceId": _hex_id(link.get("trace_id"), 16, "link trace_id"),
            "spanId": _hex_id(link.get("span_id"), 8, "link span_id"),
            "traceState": str(link.get("trace_state") or ""),
            "attributes": _key_values(link.get("attributes") or {}),
        }
        for link in row.get("links") or ()
    ]
    span["status"] = {"code": statuses[status], "message": str(row.get("status_message") or "")}
    return span


def spans_to_otlp_json(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Span rows → an OTLP/JSON ``ExportTraceServiceRequest`` dict (rules in the module docstring).

    Raises ``ValueError`` for a row with a malformed id or an unknown kind / status code."""
    resource_spans: list[dict[str, Any]] = []
    resources: dict[str, dict[str, Any]] = {}
    scopes: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        resource_attrs = row.get("resource_attributes") or {}
        rkey = json.dumps(resource_attrs, sort_keys=True, ensure_ascii=False)
        resource = resources.get(rkey)
        if resource is None:
            resource = {"resource": {"attributes": _key_values(resource_attrs)}, "scopeSpans": []}
            resources[rkey] = resource
            resource_spans.append(resource)
        name, version = str(row.get("scope_name") or ""), str(row.get("scope_version") or "")
        spans = scopes.get((rkey, name, version))
        if spans is None:
            spans = scopes[(rkey, name, version)] = []
            resource["scopeSpans"].append({"scope": {"name": name, "version": version}, "spans": spans})
        spans.append(_otlp_span(row))
    return {"resourceSpans": resource_spans}


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def export_text(rows: Sequence[Mapping[str, Any]], fmt: str) -> tuple[str, int, list[tuple[str, str]]]:
    """``rows`` as the text of a text format (``openai-jsonl`` or ``otlp-json``): returns (text,
    items — JSONL lines or spans —, skipped LLM calls as ``(span_id, reason)``). Pure.

    Raises :class:`ExportError` for another format."""
    if fmt == "openai-jsonl":
        result = finetune_records(rows)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records)
        return text, len(result.records), result.skipped
    if fmt == "otlp-json":
        return json.dumps(spans_to_otlp_json(rows), ensure_ascii=False) + "\n", len(rows), []
    raise ExportError(f"{fmt!r} is not a text format (text formats: openai-jsonl, otlp-json)")


def write_parquet(rows: Sequence[Mapping[str, Any]], output: Path) -> int:
    """Write ``rows`` as a Parquet file (see :func:`spans_to_arrow`); returns the row count.

    Raises :class:`ExportError` when the file cannot be written."""
    import pyarrow.parquet as pq

    try:
        pq.write_table(spans_to_arrow(rows), output)
    except OSError as exc:
        raise ExportError(f"cannot write {output}: {exc}") from exc
    return len(rows)
