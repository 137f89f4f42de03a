"""The trace viewer's data: read-only, parameterised SQL over the spans database, shaped as JSON.

Everything here is synchronous and takes a :data:`QueryFn` (``(sql, params) -> QueryResult``, the
collector runs it on its own connection through :func:`spanreel.collector._query.execute_read_only`),
so it can be tested without a server. User input is only ever bound as a query parameter; the few
SQL fragments built here come from constants of this module.

Storage contract: docs/internals.md §2 (``spans``, ``trace_index``). Message content follows the
OpenTelemetry GenAI semantic conventions (``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
``gen_ai.system_instructions``: JSON strings of ``{"role", "parts": [{"type": "text" | "tool_call" |
"tool_call_response" | …}]}``). Times in responses are ISO-8601 UTC strings (``…Z``, nanosecond
precision) and durations/offsets are integer **nanoseconds**.

Scale: the traces list reads ``trace_index`` (one row per trace) ordered by ``(start_time,
trace_id)`` with keyset pagination; filters that need spans are ``EXISTS`` semi-joins; per-row
totals that need spans (errors, cost) are computed for the page's traces only, with a time window
on ``spans.start_time`` so DuckDB's zone maps skip the rest of the table. The sessions list picks
a page of session ids from two columns of ``spans`` (grouped on every page: sessions have no
index table; a keyset on ``(min(start_time), session_id)``) and reads the ``sessions`` view's
aggregates, JSON attributes included, for those ids only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_DEFINITIONS,
)
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_STATUS_CODE
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_RESEND_COUNT,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from spanreel._attributes import (
    SESSION_ID,
    SPANREEL_REPLAY_ORIGINAL_SPAN_ID,
    SPANREEL_REPLAY_ORIGINAL_TRACE_ID,
    SPANREEL_REQUEST_BODY,
    SPANREEL_REQUEST_METHOD,
    SPANREEL_REQUEST_URL,
)
from spanreel._trace_sql import (
    RECENT_SESSIONS_AFTER_SQL,
    RECENT_SESSIONS_SQL,
    SESSION_SPANS,
    SESSIONS_BY_ID_SQL,
)
from spanreel.collector._query import QueryResult

__all__ = [
    "BadRequest",
    "NotFound",
    "QueryFn",
    "TraceFilters",
    "compare_replay",
    "conversation",
    "decode_cursor",
    "encode_cursor",
    "filter_options",
    "list_sessions",
    "list_traces",
    "output_text",
    "session_detail",
    "trace_detail",
]

#: ``(sql, params) -> QueryResult``: a read-only query on the spans database.
QueryFn = Callable[[str, list[Any]], QueryResult]


DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
#: Most spans returned for one trace, traces listed for one session, LLM calls shown per session.
MAX_TRACE_SPANS: Final = 5000
MAX_SESSION_TRACES: Final = 500
MAX_SESSION_CALLS: Final = 5000
MAX_SEARCH_LENGTH: Final = 200

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_GENAI_NAMESPACE: Final = "gen_ai."
#: Content attributes: rendered as the conversation, not in the GenAI attribute table.
_CONTENT_KEYS: Final = frozenset(
    {GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_SYSTEM_INSTRUCTIONS, GEN_AI_TOOL_DEFINITIONS}
)
_GENAI_EXTRA_KEYS: Final = (SERVER_ADDRESS, SERVER_PORT, SESSION_ID, ERROR_TYPE)
_STATUSES: Final = ("ok", "error")


class BadRequest(ValueError):
    """A request parameter is invalid; the message says which and why (HTTP 400)."""


class NotFound(LookupError):
    """The trace, session or replay asked for is not stored (HTTP 404)."""


# -- small helpers ------------------------------------------------------------------------------


def _json_path(key: str) -> str:
    """A DuckDB JSON path for a top-level attribute key (keys contain dots, so they are quoted).

    Only used with this module's constants; the check keeps any other text out of the SQL.
    """
    if not _ATTRIBUTE_KEY.match(key):
        raise ValueError(f"not an attribute key: {key!r}")
    return f"'$.\"{key}\"'"


def _attr(key: str, alias: str = "s") -> str:
    return f"{alias}.attributes->>{_json_path(key)}"


def _records(result: QueryResult) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def _loads(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return default if value is None else value


def check_trace_id(text: str) -> str:
    """Lowercase ``text``; raise :class:`BadRequest` unless it is 32 hex characters."""
    tid = text.strip().lower()
    if not _TRACE_ID.match(tid):
        raise BadRequest(f"invalid trace id {text[:64]!r}: expected 32 hex characters")
    return tid


def _parse_time(text: str, name: str) -> str:
    """ISO-8601 (``Z`` or an offset; naive means UTC) → naive UTC ISO text for ``CAST(? AS TIMESTAMP_NS)``."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(
            f"{name} must be an ISO-8601 time such as 2026-11-21T20:07:00Z, got {text[:64]!r}"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


# -- cursor -------------------------------------------------------------------------------------


def encode_cursor(start_time: str, row_id: str) -> str:
    """Opaque keyset cursor for "rows older than this one": base64url of ``[start_time, row_id]``
    (a trace id in the traces list, a session id in the sessions list)."""
    raw = json.dumps([start_time, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_keyset(cursor: str) -> tuple[str, str]:
    """``(start_time, row_id)`` of an :func:`encode_cursor` value; raises :class:`BadRequest`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start, row_id = json.loads(raw)
        if not isinstance(start, str) or not isinstance(row_id, str) or not row_id:
            raise TypeError
        datetime.fromisoformat(start)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("invalid cursor: use the next_cursor value of a previous page") from None
    return start, row_id


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Inverse of :func:`encode_cursor` for the traces list (the id must be a trace id); raises
    :class:`BadRequest` for anything else."""
    start, tid = _decode_keyset(cursor)
    return start, check_trace_id(tid)


# -- traces list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceFilters:
    """Filters of the traces list. All optional; combined with AND.

    ``service``: the trace's (root) service name. ``model``: any LLM span's request or response
    model. ``session``: any span's ``session.id``. ``status``: ``"error"`` (some span has status
    ERROR) or ``"ok"`` (none has). ``since`` / ``until``: trace start time bounds (ISO-8601, UTC
    when naive; ``until`` exclusive). ``text``: case-insensitive substring of an LLM span's
    ``gen_ai.input.messages`` or ``gen_ai.output.messages``.
    """

    service: str | None = None
    model: str | None = None
    session: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None
    text: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TraceFilters:
        """From URL query parameters (``service, model, session, status, since, until, q``).

        Empty values mean "no filter". Raises :class:`BadRequest`.
        """

        def get(name: str) -> str | None:
            value = params.get(name, "").strip()
            return value or None

        status = get("status")
        if status is not None and status not in _STATUSES:
            raise BadRequest(f"status must be 'ok' or 'error', got {status[:32]!r}")
        since, until = get("since"), get("until")
        text = get("q")
        if text is not None and len(text) > MAX_SEARCH_LENGTH:
            raise BadRequest(f"search text is longer than {MAX_SEARCH_LENGTH} characters")
        return cls(
            service=get("service"),
            model=get("model"),
            session=get("session"),
            status=status,
            since=_parse_time(since, "since") if since else None,
            until=_parse_time(until, "until") if until else None,
            text=text,
        )

    def where(self) -> tuple[list[str], list[Any]]:
        """SQL conditions on ``trace_index ti`` and their parameters."""
        conds: list[str] = []
        params: list[Any] = []
        if self.service is not None:
            conds.append("ti.service_name = ?")
            params.append(self.service)
        if self.since is not None:
            conds.append("ti.start_time >= CAST(? AS TIMESTAMP_NS)")
            params.append(self.since)
        if self.until is not None:
            conds.append("ti.start_time < CAST(? AS TIMESTAMP_NS)")
            params.append(self.until)
        if self.session is not None:
            conds.append("EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.trace_id AND s.session_id = ?)")
            params.append(self.session)
        if self.model is not None:
            conds.append(
                "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.trace_id AND s.operation IS NOT NULL "
                "AND (s.request_model = ? OR s.response_model = ?))"
            )
            params += [self.model, self.model]
        if self.status is not None:
            exists = (
                "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.trace_id AND s.status_code = 'ERROR')"
            )
            conds.append(exists if self.status == "error" else f"NOT {exists}")
        if self.text is not None:
            # The normalised message columns (every convention's messages, as semconv JSON text;
            # spans stored before they existed: spanreel's message attributes): the needle as it
            # appears in a JSON string, matched by a case-insensitive regular expression over the
            # text (no JSON parsing; RE2 is faster than ILIKE here).
            pattern = _literal_regex(_json_escape(self.text))
            inputs = f"coalesce(s.input_messages::VARCHAR, {_attr(GEN_AI_INPUT_MESSAGES)})"
            outputs = f"coalesce(s.output_messages::VARCHAR, {_attr(GEN_AI_OUTPUT_MESSAGES)})"
            conds.append(
                "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.trace_id AND s.operation IS NOT NULL "
                f"AND (regexp_matches({inputs}, ?) OR regexp_matches({outputs}, ?)))"
            )
            params += [pattern, pattern]
        return conds, params


def _json_escape(text: str) -> str:
    """``text`` as it appears between the quotes of a JSON string (spanreel writes non-ASCII as is)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _literal_regex(text: str) -> str:
    """A case-insensitive RE2 pattern matching ``text`` literally: every character that is not a
    letter or digit is written as an RE2 ``\\x{HEX}`` escape, so none can act as an operator."""
    return "(?i)" + "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


_TRACE_COLUMNS: Final = (
    "ti.trace_id, ti.root_span_id, ti.root_name, ti.service_name, ti.start_time, ti.end_time, "
    "epoch_ns(ti.end_time) - epoch_ns(ti.start_time) AS duration_ns, ti.span_count, ti.llm_calls, "
    "ti.input_tokens, ti.output_tokens, ti.session_id"
)


def _span_totals(query: QueryFn, traces: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per trace id: ``errors`` (spans with status ERROR), ``cost_usd`` (sum of
    the spans' ``cost_usd`` column, ``None`` when no span has a cost) and ``replay_of`` (the original trace id
    when the trace is a replay), for the given trace rows only."""
    if not traces:
        return {}
    ids = [str(t["trace_id"]) for t in traces]
    starts = [str(t["start_time"]) for t in traces if t.get("start_time")]
    ends = [str(t["end_time"]) for t in traces if t.get("end_time")]
    window = ""
    params: list[Any] = list(ids)
    if starts and ends and len(starts) == len(ends) == len(ids):
        # spans of a trace lie within its [start, end]; lets DuckDB skip row groups by zone maps.
        window = " AND s.start_time BETWEEN CAST(? AS TIMESTAMP_NS) AND CAST(? AS TIMESTAMP_NS)"
        params += [min(starts), max(ends)]
    placeholders = ", ".join("?" for _ in ids)
    sql = (
        "SELECT s.trace_id, count(*) FILTER (WHERE s.status_code = 'ERROR') AS errors, "
        "sum(s.cost_usd) AS cost_usd, "
        f"any_value({_attr(SPANREEL_REPLAY_ORIGINAL_TRACE_ID)}) FILTER (WHERE s.parent_span_id IS NULL) "
        "AS replay_of "
        f"FROM spans s WHERE s.trace_id IN ({placeholders}){window} GROUP BY s.trace_id"
    )
    return {str(r["trace_id"]): r for r in _records(query(sql, params))}


def _trace_sessions(query: QueryFn, traces: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Per trace id: every session id its spans carry, in order of first appearance (a batch job
    may run one session per item in one trace), for the given trace rows only."""
    if not traces:
        return {}
    ids = [str(t["trace_id"]) for t in traces]
    placeholders = ", ".join("?" for _ in ids)
    sql = (
        "SELECT s.trace_id, s.session_id, min(s.start_time) AS first FROM spans s "
        f"WHERE s.trace_id IN ({placeholders}) AND s.session_id IS NOT NULL "
        "AND s.start_time BETWEEN CAST(? AS TIMESTAMP_NS) AND CAST(? AS TIMESTAMP_NS) "
        "GROUP BY s.trace_id, s.session_id ORDER BY first, s.session_id"
    )
    start = min(str(t["start_time"]) for t in traces)
    end = max(str(t["end_time"]) for t in traces)
    out: dict[str, list[str]] = {}
    for row in _records(query(sql, [*ids, start, end])):
        out.setdefault(str(row["trace_id"]), []).append(str(row["session_id"]))
    return out


def _trace_row(row: Mapping[str, Any], totals: Mapping[str, Any] | None) -> dict[str, Any]:
    totals = totals or {}
    inp, out = row.get("input_tokens"), row.get("output_tokens")
    return {
        "trace_id": row["trace_id"],
        "root_span_id": row.get("root_span_id"),
        "root_name": row.get("root_name"),
        "service_name": row.get("service_name"),
        "start_time": row.get("start_time"),
        "end_time": row.get("end_time"),
        "duration_ns": row.get("duration_ns"),
        "span_count": row.get("span_count"),
        "llm_calls": row.get("llm_calls"),
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": None if inp is None and out is None else (inp or 0) + (out or 0),
        "cost_usd": totals.get("cost_usd"),
        "errors": totals.get("errors", 0),
        "session_id": row.get("session_id"),
        "session_ids": totals.get("session_ids") or ([row["session_id"]] if row.get("session_id") else []),
        "replay_of": totals.get("replay_of"),
    }


def list_traces(
    query: QueryFn, filters: TraceFilters, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
) -> dict[str, Any]:
    """One page of traces, newest first (by start time, then trace id descending).

    Returns ``{"traces": [trace…], "next_cursor": str | None, "limit": int}``; each trace has
    ``trace_id, root_span_id, root_name, service_name, start_time, end_time, duration_ns,
    span_count, llm_calls, input_tokens, output_tokens, total_tokens, cost_usd, errors,
    session_id, session_ids, replay_of`` (``session_id``: the first session id seen in the trace;
    ``session_ids``: every session id its spans carry, in order of first appearance). Pass
    ``next_cursor`` back as ``cursor`` for the next (older) page; it is ``None`` on the last page.
    Raises :class:`BadRequest`.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    conds, params = filters.where()
    if cursor:
        start, tid = decode_cursor(cursor)
        conds.append(
            "(ti.start_time < CAST(? AS TIMESTAMP_NS) "
            "OR (ti.start_time = CAST(? AS TIMESTAMP_NS) AND ti.trace_id < ?))"
        )
        params += [start, start, tid]
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    sql = (
        f"SELECT {_TRACE_COLUMNS} FROM trace_index ti {where} "
        "ORDER BY ti.start_time DESC, ti.trace_id DESC LIMIT ?"
    )
    rows = _records(query(sql, [*params, limit + 1]))
    more = len(rows) > limit
    rows = rows[:limit]
    totals = _span_totals(query, rows)
    for tid, ids in _trace_sessions(query, rows).items():
        totals.setdefault(tid, {})["session_ids"] = ids
    last = rows[-1] if rows else None
    next_cursor = (
        encode_cursor(str(last["start_time"]), str(last["trace_id"])) if more and last is not None else None
    )
    return {
        "traces": [_trace_row(r, totals.get(str(r["trace_id"]))) for r in rows],
        "next_cursor": next_cursor,
        "limit": limit,
    }


# -- sessions list ------------------------------------------------------------------------------


def list_sessions(
    query: QueryFn, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
) -> dict[str, Any]:
    """One page of sessions, newest first (by start time, then session id ascending, as
    ``spanreel sessions`` lists them).

    Returns ``{"sessions": [session…], "next_cursor": str | None, "limit": int}``; each session
    is a row of the ``sessions`` view (docs/schema.md): ``session_id, session_name, user_id,
    service_name, start_time, end_time, duration_ns, trace_count, span_count, llm_calls,
    error_count, input_tokens, output_tokens, cost_usd``. As in ``spanreel sessions``, the page's
    ids come from two columns of ``spans`` (:data:`~spanreel._trace_sql.RECENT_SESSIONS_SQL`, or
    :data:`~spanreel._trace_sql.RECENT_SESSIONS_AFTER_SQL` after a cursor) and only their rows are
    aggregated (:data:`~spanreel._trace_sql.SESSIONS_BY_ID_SQL`), so a file written before the
    view existed answers too. Pass ``next_cursor`` back as ``cursor`` for the next (older) page;
    it is ``None`` on the last page. Raises :class:`BadRequest`.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    if cursor:
        start, after = _decode_keyset(cursor)
        found = query(RECENT_SESSIONS_AFTER_SQL, [limit + 1, start, after])
    else:
        found = query(RECENT_SESSIONS_SQL, [limit + 1])
    ids = [str(row[0]) for row in found.rows]
    more = len(ids) > limit
    ids = ids[:limit]
    rows = _records(query(SESSIONS_BY_ID_SQL, [ids])) if ids else []
    last = rows[-1] if rows else None
    next_cursor = (
        encode_cursor(str(last["start_time"]), str(last["session_id"])) if more and last is not None else None
    )
    return {"sessions": rows, "next_cursor": next_cursor, "limit": limit}


def filter_options(query: QueryFn) -> dict[str, list[str]]:
    """Values for the filter menus: ``{"services": […], "models": […]}`` (sorted, distinct)."""
    services = query(
        "SELECT DISTINCT service_name FROM trace_index WHERE service_name IS NOT NULL ORDER BY 1", []
    )
    models = query(
        "SELECT DISTINCT m FROM (SELECT request_model AS m FROM spans WHERE operation IS NOT NULL "
        "UNION SELECT response_model FROM spans WHERE operation IS NOT NULL) WHERE m IS NOT NULL ORDER BY 1",
        [],
    )
    return {"services": [str(r[0]) for r in services.rows], "models": [str(r[0]) for r in models.rows]}


# -- conversation -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def _arguments(value: Any) -> str:
    """Tool-call arguments as indented JSON text (kept as is when they are not JSON)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return json.dumps(parsed, ensure_ascii=False, indent=2, sort_keys=True)
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


_BLOB_PREVIEW = 120


def _part(part: Any) -> dict[str, Any]:
    """One semconv message part → ``{"type", …}`` with display-ready strings."""
    if not isinstance(part, Mapping):
        return {"type": "text", "content": _text(part)}
    kind = str(part.get("type") or "")
    if kind in ("text", "reasoning"):
        return {"type": kind, "content": _text(part.get("content", ""))}
    if kind == "tool_call":
        return {
            "type": "tool_call",
            "id": part.get("id"),
            "name": str(part.get("name") or "?"),
            "arguments": _arguments(part.get("arguments")),
        }
    if kind == "tool_call_response":
        return {"type": "tool_call_response", "id": part.get("id"), "response": _text(part.get("response"))}
    # uri / blob / file / generic parts: a summary, never megabytes of base64
    shown = {k: v for k, v in part.items() if k != "type"}
    if isinstance(shown.get("content"), str) and len(shown["content"]) > _BLOB_PREVIEW:
        shown["content"] = shown["content"][:_BLOB_PREVIEW] + f"… ({len(part['content'])} chars)"
    return {"type": kind or "unknown", "content": _text(shown)}


def _messages(value: Any, direction: str) -> list[dict[str, Any]]:
    parsed = _loads(value, None)
    if parsed is None:
        if isinstance(value, str):  # not JSON: show it as it is
            return [
                {"role": "unknown", "direction": direction, "parts": [{"type": "text", "content": value}]}
            ]
        return []
    if isinstance(parsed, Mapping):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return [{"role": "unknown", "direction": direction, "parts": [_part(parsed)]}]
    out: list[dict[str, Any]] = []
    for message in parsed:
        if not isinstance(message, Mapping):
            out.append({"role": "unknown", "direction": direction, "parts": [_part(message)]})
            continue
        entry: dict[str, Any] = {
            "role": str(message.get("role") or ("assistant" if direction == "output" else "user")),
            "direction": direction,
            "parts": [_part(p) for p in message.get("parts") or ()],
        }
        if message.get("name"):
            entry["name"] = str(message["name"])
        if message.get("finish_reason"):
            entry["finish_reason"] = str(message["finish_reason"])
        out.append(entry)
    return out


def conversation(
    attributes: Mapping[str, Any], input_messages: Any = None, output_messages: Any = None
) -> list[dict[str, Any]]:
    """The chat of one LLM span, in order: system instructions, input messages, output messages.

    ``input_messages`` / ``output_messages``: the span's normalised columns (JSON text in the
    semconv message schema, whichever convention recorded the call); where ``None``, the span's
    own ``gen_ai.input.messages`` / ``gen_ai.output.messages`` attributes are read.

    Each message is ``{"role", "direction": "input" | "output", "parts": [...], "name"?,
    "finish_reason"?}``; parts are ``{"type": "text" | "reasoning", "content"}``, ``{"type":
    "tool_call", "id", "name", "arguments"}`` (arguments as indented JSON text),
    ``{"type": "tool_call_response", "id", "response"}``, or another semconv type with a
    ``content`` summary. Unparseable attribute values are shown as one text part.
    Empty when the span recorded no content (capture off, or not an LLM span).
    """
    out: list[dict[str, Any]] = []
    system = _loads(attributes.get(GEN_AI_SYSTEM_INSTRUCTIONS), None)
    if system is not None:
        parts = system if isinstance(system, list) else [system]
        out.append({"role": "system", "direction": "input", "parts": [_part(p) for p in parts]})
    if input_messages is None:
        input_messages = attributes.get(GEN_AI_INPUT_MESSAGES)
    if output_messages is None:
        output_messages = attributes.get(GEN_AI_OUTPUT_MESSAGES)
    out += _messages(input_messages, "input")
    out += _messages(output_messages, "output")
    return out


def output_text(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """Plain text of the output messages of :func:`conversation`: text parts joined by newlines,
    tool calls as ``name(arguments)``, choices separated by ``\\n---\\n``; ``None`` if none."""
    texts: list[str] = []
    for message in messages:
        if message.get("direction") != "output":
            continue
        lines: list[str] = []
        for part in message.get("parts", ()):
            if part["type"] == "text":
                lines.append(part["content"])
            elif part["type"] == "tool_call":
                lines.append(f"{part['name']}({part['arguments']})")
        texts.append("\n".join(lines))
    return "\n---\n".join(texts) if texts else None


def _tools(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    defs = _loads(attributes.get(GEN_AI_TOOL_DEFINITIONS), None)
    if not isinstance(defs, list):
        return []
    return [
        {"name": str(d.get("name") or d.get("type") or "?"), "description": d.get("description")}
        for d in defs
        if isinstance(d, Mapping)
    ]


# -- one trace ----------------------------------------------------------------------------------

_SPAN_COLUMNS: Final = (
    "s.span_id, s.parent_span_id, s.name, s.kind, s.service_name, s.scope_name, s.scope_version, "
    "s.start_time, s.end_time, s.duration_ns, s.status_code, s.status_message, s.attributes, "
    "s.resource_attributes, s.events, s.links, s.operation, s.provider, s.request_model, "
    "s.response_model, s.input_tokens, s.output_tokens, s.finish_reasons, s.session_id, "
    "s.conversation_id, s.input_messages, s.output_messages, s.cost_usd"
)


def _trace_header(query: QueryFn, trace_id: str) -> dict[str, Any]:
    rows = _records(query(f"SELECT {_TRACE_COLUMNS} FROM trace_index ti WHERE ti.trace_id = ?", [trace_id]))
    if not rows:
        raise NotFound(f"trace {trace_id} is not stored")
    return rows[0]


def _trace_spans(
    query: QueryFn, header: Mapping[str, Any], *, llm_only: bool = False
) -> list[dict[str, Any]]:
    """Spans of one trace in start order, each with ``offset_ns`` from the trace start; the
    trace's time range bounds the scan (zone maps)."""
    llm = f" AND (s.operation IS NOT NULL OR {_attr(SPANREEL_REQUEST_BODY)} IS NOT NULL)" if llm_only else ""
    sql = (
        f"SELECT {_SPAN_COLUMNS}, epoch_ns(s.start_time) - epoch_ns(CAST(? AS TIMESTAMP_NS)) AS offset_ns "
        "FROM spans s WHERE s.trace_id = ? "
        "AND s.start_time BETWEEN CAST(? AS TIMESTAMP_NS) AND CAST(? AS TIMESTAMP_NS)"
        f"{llm} ORDER BY s.start_time, s.span_id LIMIT ?"
    )
    start, end = header["start_time"], header["end_time"]
    rows = _records(query(sql, [start, header["trace_id"], start, end, MAX_TRACE_SPANS + 1]))
    return [_span_view(r) for r in rows]


def _span_view(row: Mapping[str, Any]) -> dict[str, Any]:
    attributes = _loads(row.get("attributes"), {})
    attributes = attributes if isinstance(attributes, dict) else {}
    genai = {
        k: v
        for k, v in sorted(attributes.items())
        if (k.startswith(_GENAI_NAMESPACE) and k not in _CONTENT_KEYS) or k in _GENAI_EXTRA_KEYS
    }
    chat = conversation(attributes, row.get("input_messages"), row.get("output_messages"))
    is_llm = row.get("operation") is not None or SPANREEL_REQUEST_BODY in attributes
    return {
        "span_id": row["span_id"],
        "parent_span_id": row.get("parent_span_id"),
        "name": row.get("name"),
        "kind": row.get("kind"),
        "service_name": row.get("service_name"),
        "scope_name": row.get("scope_name"),
        "scope_version": row.get("scope_version"),
        "start_time": row.get("start_time"),
        "end_time": row.get("end_time"),
        "offset_ns": row.get("offset_ns"),
        "duration_ns": row.get("duration_ns"),
        "status_code": row.get("status_code"),
        "status_message": row.get("status_message"),
        "is_llm": is_llm,
        "operation": row.get("operation"),
        "provider": row.get("provider"),
        "request_model": row.get("request_model"),
        "response_model": row.get("response_model"),
        "input_tokens": row.get("input_tokens"),
        "output_tokens": row.get("output_tokens"),
        "finish_reasons": row.get("finish_reasons") or [],
        "session_id": row.get("session_id"),
        "conversation_id": row.get("conversation_id"),
        "cost_usd": row.get("cost_usd"),
        "genai": genai,
        "conversation": chat,
        "output_text": output_text(chat),
        "tools": _tools(attributes),
        "attributes": attributes,
        "resource_attributes": _loads(row.get("resource_attributes"), {}),
        "events": _loads(row.get("events"), []),
        "links": _loads(row.get("links"), []),
        "replay_of_span_id": attributes.get(SPANREEL_REPLAY_ORIGINAL_SPAN_ID),
    }


def _replays_of(query: QueryFn, header: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Traces whose root span says it replays ``header``'s trace, oldest first (they start later
    than the original, which bounds the scan)."""
    sql = (
        "SELECT s.trace_id, s.start_time, s.name FROM spans s "
        f"WHERE s.parent_span_id IS NULL AND s.start_time >= CAST(? AS TIMESTAMP_NS) "
        f"AND {_attr(SPANREEL_REPLAY_ORIGINAL_TRACE_ID)} = ? ORDER BY s.start_time LIMIT 100"
    )
    return _records(query(sql, [header["start_time"], header["trace_id"]]))


def trace_detail(query: QueryFn, trace_id: str) -> dict[str, Any]:
    """One trace: ``{"trace": trace (as in :func:`list_traces`), "spans": [span…], "truncated":
    bool, "replays": [{"trace_id", "start_time", "name"}…], "replay_of": str | None}``.

    A span has its stored columns plus ``offset_ns`` (start − trace start, ns), ``is_llm``,
    ``cost_usd``, ``genai`` (the GenAI/server/session/error attributes), ``conversation`` (see
    :func:`conversation`), ``output_text``, ``tools`` (``[{"name", "description"}]``), parsed
    ``attributes`` / ``resource_attributes`` / ``events`` / ``links``, and ``replay_of_span_id``.
    At most :data:`MAX_TRACE_SPANS` spans (``truncated`` says so).
    Raises :class:`BadRequest` (not a trace id), :class:`NotFound`.
    """
    tid = check_trace_id(trace_id)
    header = _trace_header(query, tid)
    spans = _trace_spans(query, header)
    truncated = len(spans) > MAX_TRACE_SPANS
    spans = spans[:MAX_TRACE_SPANS]
    root = next((s for s in spans if s["span_id"] == header.get("root_span_id")), None)
    replay_of = root["attributes"].get(SPANREEL_REPLAY_ORIGINAL_TRACE_ID) if root else None
    if truncated:  # the trace's figures are over all its spans, as in the list, not the cut ones
        totals = _span_totals(query, [header]).get(tid, {})
        errors, cost = totals.get("errors", 0), totals.get("cost_usd")
        sessions = _trace_sessions(query, [header]).get(tid, [])
    else:
        errors = sum(1 for s in spans if s["status_code"] == "ERROR")
        costs = [s["cost_usd"] for s in spans if s["cost_usd"] is not None]
        cost = sum(costs) if costs else None
        first_seen: dict[str, None] = {}  # every session id, in order of first appearance
        for span in spans:
            if span["session_id"] is not None:
                first_seen.setdefault(str(span["session_id"]))
        sessions = list(first_seen)
    trace = _trace_row(
        header,
        {"errors": errors, "cost_usd": cost, "replay_of": replay_of, "session_ids": sessions},
    )
    return {
        "trace": trace,
        "spans": spans,
        "truncated": truncated,
        "replays": _replays_of(query, header),
        "replay_of": replay_of,
    }


# -- session ------------------------------------------------------------------------------------


def session_detail(query: QueryFn, session_id: str) -> dict[str, Any]:
    """The traces of one session in time order with the session's totals per trace, and its
    LLM calls.

    Returns ``{"session_id", "traces": [trace… (as in :func:`list_traces`) + "calls": [{"span_id",
    "name", "model", "start_time", "duration_ns", "input_tokens", "output_tokens", "status_code",
    "output_preview"}…] + "other_sessions": [id…]], "totals": {"traces", "llm_calls",
    "input_tokens", "output_tokens", "cost_usd", "errors", "duration_ns"}, "truncated": bool}``.

    The session's spans are those of :data:`spanreel._trace_sql.SESSION_SPANS`: a trace where this
    is the only session counts whole (its row is the trace's, as in the list); in a trace shared
    with other sessions (``other_sessions``: their ids, in order of first appearance) only the
    spans of this session count, so its ``calls``, ``llm_calls``, tokens, ``cost_usd``, ``errors``
    and ``start_time`` / ``end_time`` / ``duration_ns`` cover this session's part of the trace. The
    ``totals`` sum the traces' rows. Raises :class:`BadRequest` (empty id), :class:`NotFound` (no
    span has this ``session.id``).
    """
    sid = session_id.strip()
    if not sid:
        raise BadRequest("session id is empty")
    sql = (
        f"SELECT {_TRACE_COLUMNS} FROM trace_index ti "
        "WHERE EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.trace_id AND s.session_id = ?) "
        "ORDER BY ti.start_time, ti.trace_id LIMIT ?"
    )
    rows = _records(query(sql, [sid, MAX_SESSION_TRACES + 1]))
    if not rows:
        raise NotFound(f"no stored span has session.id {sid!r}")
    truncated = len(rows) > MAX_SESSION_TRACES
    rows = rows[:MAX_SESSION_TRACES]
    totals = _span_totals(query, rows)
    traces = [_trace_row(r, totals.get(str(r["trace_id"]))) for r in rows]
    sessions = _trace_sessions(query, traces)
    scoped = _session_scoped_totals(query, sid)
    calls = _session_calls(query, sid)
    for trace in traces:
        tid = trace["trace_id"]
        trace["session_ids"] = sessions.get(tid, [sid])
        trace["other_sessions"] = [other for other in trace["session_ids"] if other != sid]
        if trace["other_sessions"] and tid in scoped:
            part = scoped[tid]
            inp, out = part["input_tokens"], part["output_tokens"]
            trace.update(
                start_time=part["start_time"],
                end_time=part["end_time"],
                duration_ns=part["duration_ns"],
                llm_calls=part["llm_calls"],
                input_tokens=inp,
                output_tokens=out,
                total_tokens=None if inp is None and out is None else (inp or 0) + (out or 0),
                cost_usd=part["cost_usd"],
                errors=part["errors"],
            )
        trace["calls"] = calls.get(tid, [])
    costs = [t["cost_usd"] for t in traces if t["cost_usd"] is not None]
    return {
        "session_id": sid,
        "traces": traces,
        "truncated": truncated,
        "totals": {
            "traces": len(traces),
            "llm_calls": sum(t["llm_calls"] or 0 for t in traces),
            "input_tokens": sum(t["input_tokens"] or 0 for t in traces),
            "output_tokens": sum(t["output_tokens"] or 0 for t in traces),
            "cost_usd": sum(costs) if costs else None,
            "errors": sum(t["errors"] or 0 for t in traces),
            "duration_ns": sum(t["duration_ns"] or 0 for t in traces),
        },
    }


_PREVIEW_CHARS = 160


def _session_scoped_totals(query: QueryFn, session_id: str) -> dict[str, dict[str, Any]]:
    """Per trace id: time range, LLM calls, tokens, cost and error count of the session's own
    spans (``in_session`` of :data:`SESSION_SPANS`)."""
    sql = (
        "SELECT trace_id, min(start_time) AS start_time, max(end_time) AS end_time, "
        "epoch_ns(max(end_time)) - epoch_ns(min(start_time)) AS duration_ns, "
        "count(operation) AS llm_calls, "
        "sum(input_tokens) FILTER (WHERE operation IS NOT NULL) AS input_tokens, "
        "sum(output_tokens) FILTER (WHERE operation IS NOT NULL) AS output_tokens, "
        "sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE status_code = 'ERROR') AS errors "
        f"FROM {SESSION_SPANS} WHERE in_session GROUP BY trace_id"
    )
    return {str(r["trace_id"]): r for r in _records(query(sql, [session_id]))}


def _session_calls(query: QueryFn, session_id: str) -> dict[str, list[dict[str, Any]]]:
    """Per trace id: the session's LLM calls (``in_session`` spans with an operation), in order."""
    sql = (
        "SELECT trace_id, span_id, name, coalesce(response_model, request_model) AS model, "
        "start_time, duration_ns, input_tokens, output_tokens, status_code, "
        f"coalesce(output_messages::VARCHAR, {_attr(GEN_AI_OUTPUT_MESSAGES, 'spans')}) AS output_messages "
        f"FROM {SESSION_SPANS} WHERE in_session AND operation IS NOT NULL "
        "ORDER BY start_time, span_id LIMIT $2"
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in _records(query(sql, [session_id, MAX_SESSION_CALLS])):
        text = output_text(_messages(row.pop("output_messages"), "output"))
        if text and len(text) > _PREVIEW_CHARS:
            text = text[:_PREVIEW_CHARS].rstrip() + "…"
        row["output_preview"] = text
        out.setdefault(str(row.pop("trace_id")), []).append(row)
    return out


# -- replay comparison --------------------------------------------------------------------------


def _call_side(span: Mapping[str, Any]) -> dict[str, Any]:
    chat = span["conversation"]
    return {
        "span_id": span["span_id"],
        "name": span["name"],
        "model": span["response_model"] or span["request_model"],
        "status_code": span["status_code"],
        "status_message": span["status_message"],
        "duration_ns": span["duration_ns"],
        "input_tokens": span["input_tokens"],
        "output_tokens": span["output_tokens"],
        "cost_usd": span["cost_usd"],
        "finish_reasons": span["finish_reasons"],
        "input": [m for m in chat if m["direction"] == "input"],
        "output_text": span["output_text"],
        "url": span["attributes"].get(SPANREEL_REQUEST_URL),
        "method": span["attributes"].get(SPANREEL_REQUEST_METHOD),
    }


def _input_key(side: Mapping[str, Any]) -> str:
    return json.dumps(side["input"], sort_keys=True)


#: The figures totalled over the calls known on both sides (a call side's key, in ``totals``
#: ``original_<key>`` / ``new_<key>`` and ``compared_calls[<key>]``).
COMPARED_FIGURES: Final = ("input_tokens", "output_tokens", "duration_ns", "cost_usd")


def compare_replay(query: QueryFn, trace_id: str) -> dict[str, Any]:
    """A replay trace beside its original, call by call.

    ``trace_id`` may name either side: a replay (its root carries
    ``spanreel.replay.original_trace_id``) is compared with its original; an original is compared
    with its latest replay. Returns ``{"original": trace, "replay": trace, "calls": [{"index",
    "original": side | None, "replay": side | None, "failed": bool, "error": str | None,
    "output_changed": bool | None, "input_changed": bool | None}…], "totals": {"calls",
    "replayed", "failed", "changed", "skipped", "original_input_tokens", "new_input_tokens",
    "original_output_tokens", "new_output_tokens", "original_duration_ns", "new_duration_ns",
    "original_cost_usd", "new_cost_usd", "compared_calls": {"input_tokens", "output_tokens",
    "duration_ns", "cost_usd": int}}}`` where a side is ``{"span_id", "name", "model",
    "status_code", "status_message", "duration_ns", "input_tokens", "output_tokens", "cost_usd",
    "finish_reasons", "input": [message…], "output_text", "url", "method"}``; calls follow the
    original's order (replayed calls are paired through ``spanreel.replay.original_span_id``),
    ``replay`` is ``None`` for a call that was not replayed.

    As in the ``spanreel replay`` report, a replayed call *failed* when its span has status ERROR
    (``error``: its status message) or when the original has an output and the replay's answer
    holds none (an HTML page or ``{}`` with HTTP 200 — a wrong ``--base-url``; its span is not an
    error): ``error`` is ``the answer holds no model output (HTTP 200; POST <url>)``, the status
    read from the call's HTTP client span when stored. A failed call has no ``output_changed``
    (``None``) and counts in ``failed``, not ``replayed`` nor ``changed``. Each total sums the
    calls replayed (not failed) that have the figure on both sides only, so original and new
    compare like with like; ``compared_calls`` says how many calls each covers (the figures are
    ``None`` when it is 0). ``trace`` rows keep their whole-trace figures.
    Raises :class:`BadRequest`, :class:`NotFound` (unknown trace, or a trace with no replay).
    """
    tid = check_trace_id(trace_id)
    header = _trace_header(query, tid)
    root_rows = _records(
        query(
            f"SELECT {_attr(SPANREEL_REPLAY_ORIGINAL_TRACE_ID)} AS original FROM spans s "
            "WHERE s.trace_id = ? AND s.span_id = ? "
            "AND s.start_time BETWEEN CAST(? AS TIMESTAMP_NS) AND CAST(? AS TIMESTAMP_NS)",
            [tid, header.get("root_span_id"), header["start_time"], header["end_time"]],
        )
    )
    original_id = root_rows[0]["original"] if root_rows else None
    if original_id:
        replay_header = header
        original_header = _trace_header(query, check_trace_id(str(original_id)))
    else:
        replays = _replays_of(query, header)
        if not replays:
            raise NotFound(f"trace {tid} is not a replay and has not been replayed")
        original_header = header
        replay_header = _trace_header(query, str(replays[-1]["trace_id"]))
    originals = _calls(_trace_spans(query, original_header, llm_only=True))
    replayed = _trace_spans(query, replay_header, llm_only=True)  # a retried call's last attempt wins
    by_original = {s["replay_of_span_id"]: s for s in replayed if s["replay_of_span_id"]}
    sides: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
    for span in originals:
        new = by_original.pop(span["span_id"], None)
        sides.append((_call_side(span), _call_side(new) if new else None))
    for span in replayed:  # replayed calls whose original is not stored (should not happen)
        if span["replay_of_span_id"] in by_original:
            sides.append((None, _call_side(span)))
    statuses = _http_statuses(
        query,
        replay_header,
        [r["span_id"] for o, r in sides if r is not None and o is not None and _lost_output(o, r)],
    )
    calls = [_pair(i, o, r, statuses) for i, (o, r) in enumerate(sides, 1)]
    totals = _span_totals(query, [original_header, replay_header])
    failed = sum(1 for c in calls if c["failed"])
    return {
        "original": _trace_row(original_header, totals.get(original_header["trace_id"])),
        "replay": _trace_row(replay_header, totals.get(replay_header["trace_id"])),
        "calls": calls,
        "totals": {
            "calls": len(calls),
            "replayed": sum(1 for c in calls if c["replay"] is not None) - failed,  # successfully
            "failed": failed,
            "changed": sum(1 for c in calls if c["output_changed"]),
            "skipped": sum(1 for c in calls if c["replay"] is None),
            **_compared_totals(calls),
        },
    }


def _lost_output(original: Mapping[str, Any], replay: Mapping[str, Any]) -> bool:
    """The original call has an output and its replay, not an error span, none: its answer was
    not an LLM answer (an HTML page, ``{}``)."""
    return (
        replay["status_code"] != "ERROR"
        and original["output_text"] is not None
        and replay["output_text"] is None
    )


def _http_statuses(query: QueryFn, header: Mapping[str, Any], span_ids: list[str]) -> dict[str, int]:
    """Per span id of ``span_ids`` (GenAI spans of the trace ``header``): the HTTP status its HTTP
    client span (a child, e.g. opentelemetry-instrumentation-httpx's) recorded, when stored."""
    if not span_ids:
        return {}
    placeholders = ", ".join("?" for _ in span_ids)
    status = f"coalesce({_attr(HTTP_RESPONSE_STATUS_CODE)}, {_attr(HTTP_STATUS_CODE)})"
    sql = (
        f"SELECT s.parent_span_id, {status} AS status FROM spans s WHERE s.trace_id = ? "
        "AND s.start_time BETWEEN CAST(? AS TIMESTAMP_NS) AND CAST(? AS TIMESTAMP_NS) "
        f"AND s.parent_span_id IN ({placeholders}) AND {status} IS NOT NULL ORDER BY s.start_time"
    )
    params = [header["trace_id"], header["start_time"], header["end_time"], *span_ids]
    out: dict[str, int] = {}
    for row in _records(query(sql, params)):
        try:
            out[str(row["parent_span_id"])] = int(row["status"])  # the last attempt's status wins
        except (TypeError, ValueError):
            continue
    return out


def _no_output_error(replay: Mapping[str, Any], http_status: int | None) -> str:
    """The reason of a replayed call whose answer holds no model output, worded as the replay
    report's (which adds the content type: no span records it)."""
    facts: list[str] = []
    if http_status is not None:
        facts.append(f"HTTP {http_status}")
    if replay["url"]:
        facts.append(f"{replay['method'] or 'POST'} {replay['url']}")
    return "the answer holds no model output" + (f" ({'; '.join(facts)})" if facts else "")


def _compared_totals(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``original_<figure>`` / ``new_<figure>`` sums and ``compared_calls``: over the calls
    replayed (not failed) with the figure known on both sides — a call whose new cost or tokens
    are unknown left out of one side only would invent a saving."""
    out: dict[str, Any] = {}
    compared: dict[str, int] = {}
    done = [c for c in calls if c["original"] is not None and c["replay"] is not None and not c["failed"]]
    for key in COMPARED_FIGURES:
        pairs = [
            (c["original"][key], c["replay"][key])
            for c in done
            if c["original"][key] is not None and c["replay"][key] is not None
        ]
        compared[key] = len(pairs)
        out[f"original_{key}"] = _total(a for a, _ in pairs) if pairs else None
        out[f"new_{key}"] = _total(b for _, b in pairs) if pairs else None
    out["compared_calls"] = compared
    return out


def _total(values: Iterable[int | float]) -> int | float:
    """A sum; of floats (costs) rounded to 12 places, so no float noise (0.1 + 0.2) shows."""
    total = sum(values)
    return round(total, 12) if isinstance(total, float) else total


def _calls(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The LLM calls among ``spans`` (in start order): the attempts of a call its client retried
    (a span with ``http.request.resend_count`` ≥ 1 after one of the same name under the same
    parent) are one call, shown by its last attempt — what the app got, and what a replay of it
    is linked to."""
    calls: list[dict[str, Any]] = []
    latest: dict[tuple[Any, Any], int] = {}
    for span in spans:
        key = (span["parent_span_id"], span["name"])
        resend = span["attributes"].get(HTTP_REQUEST_RESEND_COUNT)
        if isinstance(resend, int) and resend > 0 and key in latest:
            calls[latest[key]] = span
            continue
        latest[key] = len(calls)
        calls.append(span)
    return calls


def _pair(
    index: int,
    original: dict[str, Any] | None,
    replay: dict[str, Any] | None,
    http_statuses: Mapping[str, int],
) -> dict[str, Any]:
    error: str | None = None
    output_changed: bool | None = None
    input_changed: bool | None = None
    if replay is not None and replay["status_code"] == "ERROR":
        error = replay["status_message"] or "the replayed call failed"
    elif original is not None and replay is not None and _lost_output(original, replay):
        error = _no_output_error(replay, http_statuses.get(replay["span_id"]))
    if original is not None and replay is not None:
        input_changed = _input_key(original) != _input_key(replay)
        if error is None:  # a failed call has nothing to compare
            output_changed = original["output_text"] != replay["output_text"]
    return {
        "index": index,
        "original": original,
        "replay": replay,
        "failed": error is not None,
        "error": error,
        "output_changed": output_changed,
        "input_changed": input_changed,
    }
