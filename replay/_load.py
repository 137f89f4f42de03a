"""Load one stored trace as :class:`SpanRecord` objects (storage contract: docs/internals.md §2, §3).

All reads go through :func:`spanreel.collector.run_query`, which asks a running collector's
read-only query API or opens the DuckDB file read-only, so loading works whether or not a
collector is writing to the file.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spanreel._trace_sql import SESSION_SPANS, TRACE_SPANS

from ._otlp_file import TraceFileError, read_trace_file

__all__ = [
    "AmbiguousTraceId",
    "InvalidTraceId",
    "QueryFn",
    "QueryResultLike",
    "SessionNotFound",
    "SpanRecord",
    "TraceFileError",
    "TraceLookupError",
    "TraceNotFound",
    "default_query",
    "load_session",
    "load_trace",
    "load_trace_file",
    "normalize_trace_id",
    "order_spans",
    "parse_json",
    "record_from_span_row",
]

#: Shortest trace-id prefix accepted in place of the full 32 hex characters.
MIN_PREFIX_LEN = 8
_HEX = re.compile(r"^[0-9a-f]+$")


class QueryResultLike(Protocol):
    """What :func:`spanreel.collector.run_query` returns: column names and JSON-safe rows."""

    @property
    def columns(self) -> Sequence[str]: ...

    @property
    def rows(self) -> Sequence[Sequence[Any]]: ...


#: Signature of :func:`spanreel.collector.run_query` (``sql``, ``db_path``, ``params``).
QueryFn = Callable[[str, Path, "Sequence[Any] | None"], QueryResultLike]


class TraceLookupError(LookupError):
    """Base class: the trace id given by the user could not be resolved to one stored trace."""


class TraceNotFound(TraceLookupError):
    """No trace with this id (or id prefix) is stored in the database at ``db_path``."""

    def __init__(self, trace_id: str, db_path: Path) -> None:
        self.trace_id = trace_id
        self.db_path = db_path
        super().__init__(f"trace {trace_id} not found in {db_path} (`spanreel traces` lists them)")


class AmbiguousTraceId(TraceLookupError):
    """A trace-id prefix matches more than one stored trace; ``candidates`` holds some of them."""

    def __init__(self, prefix: str, candidates: Sequence[str], db_path: Path) -> None:
        self.prefix = prefix
        self.candidates = list(candidates)
        self.db_path = db_path
        shown = ", ".join(self.candidates)
        super().__init__(f"trace id prefix {prefix!r} is ambiguous in {db_path} (matches {shown}, …)")


class SessionNotFound(TraceLookupError):
    """No stored span carries this ``session.id`` in the database at ``db_path``."""

    def __init__(self, session_id: str, db_path: Path) -> None:
        self.session_id = session_id
        self.db_path = db_path
        super().__init__(f"session {session_id!r} not found in {db_path} (no span has this session.id)")


class InvalidTraceId(TraceLookupError, ValueError):
    """The text is not a trace id: 32 hex characters, or a unique prefix of at least 8."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(
            f"invalid trace id {text!r}: expected 32 hex characters (or a unique prefix of "
            f"at least {MIN_PREFIX_LEN})"
        )


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One stored span (a row of the ``spans`` table, docs/internals.md §2).

    Ids are lowercase hex (trace 32 chars, span 16 chars). Times are **integer nanoseconds since
    the Unix epoch (UTC)**; :attr:`start_datetime` gives an aware :class:`datetime.datetime`
    (microsecond precision). ``attributes``/``resource_attributes`` are the parsed JSON objects,
    ``events``/``links`` the parsed JSON lists. The GenAI columns (``operation`` …
    ``conversation_id``) are the collector's normalised values and ``None`` for non-LLM spans.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service_name: str | None
    start_time_ns: int
    end_time_ns: int
    status_code: str = "UNSET"
    status_message: str = ""
    scope_name: str | None = None
    scope_version: str | None = None
    trace_state: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    resource_attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()
    links: Sequence[Mapping[str, Any]] = ()
    operation: str | None = None
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: Sequence[str] = ()
    session_id: str | None = None
    conversation_id: str | None = None

    @property
    def duration_ns(self) -> int:
        """``end_time_ns - start_time_ns`` (never negative)."""
        return max(0, self.end_time_ns - self.start_time_ns)

    @property
    def duration_ms(self) -> float:
        """Duration in milliseconds."""
        return self.duration_ns / 1e6

    @property
    def start_datetime(self) -> _dt.datetime:
        """Start time as an aware UTC datetime (nanoseconds truncated to microseconds)."""
        return _ns_to_datetime(self.start_time_ns)

    @property
    def model(self) -> str | None:
        """Response model if known, else request model."""
        return self.response_model or self.request_model

    @property
    def is_error(self) -> bool:
        return self.status_code == "ERROR"


def _ns_to_datetime(ns: int) -> _dt.datetime:
    seconds, rest = divmod(ns, 1_000_000_000)
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC).replace(microsecond=rest // 1000)


# Column list of the load query; kept beside the row decoder below.
_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, trace_state, name, kind, service_name, scope_name, scope_version, "
    "epoch_ns(start_time) AS start_ns, epoch_ns(end_time) AS end_ns, status_code, status_message, "
    "attributes, resource_attributes, events, links, operation, provider, request_model, "
    "response_model, input_tokens, output_tokens, finish_reasons, session_id, conversation_id"
)


def parse_json(value: Any, default: Any = None) -> Any:
    """A JSON value stored as text, parsed: JSON columns arrive as strings (docs/internals.md §3)
    and GenAI attributes hold JSON strings (``gen_ai.input.messages`` …). Values that are already
    parsed are returned as they are; ``None`` and text that is not JSON give ``default``."""
    if value is None:
        return default
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _record_from_row(row: Mapping[str, Any]) -> SpanRecord:
    attributes = parse_json(row.get("attributes"), {})
    resource = parse_json(row.get("resource_attributes"), {})
    events = parse_json(row.get("events"), [])
    links = parse_json(row.get("links"), [])
    finish = row.get("finish_reasons")
    if isinstance(finish, str):
        finish = parse_json(finish, [finish])
    return SpanRecord(
        trace_id=str(row["trace_id"]),
        span_id=str(row["span_id"]),
        parent_span_id=row.get("parent_span_id") or None,
        name=str(row.get("name") or ""),
        kind=str(row.get("kind") or "UNSPECIFIED"),
        service_name=row.get("service_name"),
        scope_name=row.get("scope_name"),
        scope_version=row.get("scope_version") or None,
        trace_state=str(row.get("trace_state") or ""),
        start_time_ns=int(row.get("start_ns") or 0),
        end_time_ns=int(row.get("end_ns") or 0),
        status_code=str(row.get("status_code") or "UNSET"),
        status_message=str(row.get("status_message") or ""),
        attributes=attributes if isinstance(attributes, dict) else {},
        resource_attributes=resource if isinstance(resource, dict) else {},
        events=tuple(events) if isinstance(events, list) else (),
        links=tuple(links) if isinstance(links, list) else (),
        operation=row.get("operation"),
        provider=row.get("provider"),
        request_model=row.get("request_model"),
        response_model=row.get("response_model"),
        input_tokens=_opt_int(row.get("input_tokens")),
        output_tokens=_opt_int(row.get("output_tokens")),
        finish_reasons=tuple(str(f) for f in finish) if isinstance(finish, list) else (),
        session_id=row.get("session_id"),
        conversation_id=row.get("conversation_id"),
    )


def default_query(sql: str, db_path: Path, params: Sequence[Any] | None = None) -> QueryResultLike:
    """:func:`spanreel.collector.run_query` (imported lazily: the collector pulls in DuckDB)."""
    from spanreel.collector import QueryError, run_query

    result = run_query(sql, db_path, params=list(params) if params is not None else None)
    if result.truncated:  # cut by the running collector's exporters.duckdb.query_max_rows / _bytes
        raise QueryError(
            f"the collector's exporters.duckdb.query_max_rows or query_max_bytes cut the answer at "
            f"{len(result.rows):,} rows: raise them in otel-config.yaml, or select less"
        )
    loaded: QueryResultLike = result
    return loaded


def normalize_trace_id(text: str) -> str:
    """Lowercase, strip whitespace and an optional ``0x``; check it is hex of a usable length.

    Returns the normalised id or prefix. Raises :class:`InvalidTraceId`.
    """
    tid = text.strip().lower()
    if tid.startswith("0x"):
        tid = tid[2:]
    if not (MIN_PREFIX_LEN <= len(tid) <= 32) or not _HEX.match(tid):
        raise InvalidTraceId(text)
    return tid


def resolve_trace_id(text: str, db_path: Path, *, query: QueryFn | None = None) -> str:
    """The full 32-char trace id for ``text`` (a full id or a unique prefix ≥ 8 hex chars).

    A full id is returned as is (existence is checked by :func:`load_trace`). A prefix is looked
    up in ``trace_index``. Raises :class:`InvalidTraceId`, :class:`TraceNotFound`,
    :class:`AmbiguousTraceId`, and the collector's ``NoDatabaseError`` / ``QueryError``.
    """
    tid = normalize_trace_id(text)
    if len(tid) == 32:
        return tid
    run = query or default_query
    # Validated hex: no LIKE wildcards can sneak in.
    result = run(
        "SELECT trace_id FROM trace_index WHERE trace_id LIKE ? ORDER BY start_time DESC LIMIT 3",
        db_path,
        [tid + "%"],
    )
    matches = [str(r[0]) for r in result.rows]
    if not matches:
        raise TraceNotFound(tid, db_path)
    if len(matches) > 1:
        raise AmbiguousTraceId(tid, matches, db_path)
    return matches[0]


def load_trace(trace_id: str, db_path: str | Path, *, query: QueryFn | None = None) -> list[SpanRecord]:
    """All spans of one trace, ordered by start time (then span id).

    ``trace_id``: 32 hex chars, or a unique prefix of at least 8. ``db_path``: the DuckDB file.
    ``query``: defaults to :func:`spanreel.collector.run_query` (injectable for tests/embedding).

    Raises :class:`InvalidTraceId`, :class:`TraceNotFound` (message names the DB path),
    :class:`AmbiguousTraceId`; ``spanreel.collector.NoDatabaseError`` when the file does not
    exist and ``spanreel.collector.QueryError`` when the database rejects the query.
    """
    path = Path(db_path)
    run = query or default_query
    tid = resolve_trace_id(trace_id, path, query=run)
    result = run(
        f"SELECT {_SPAN_COLUMNS} FROM {TRACE_SPANS} ORDER BY start_time, span_id",
        path,
        [tid],
    )
    columns = list(result.columns)
    spans = [_record_from_row(dict(zip(columns, row, strict=True))) for row in result.rows]
    if not spans:
        raise TraceNotFound(tid, path)
    return spans


# The session's spans (see SESSION_SPANS), traces in order of their earliest loaded span.
_SESSION_SQL = f"""
SELECT {_SPAN_COLUMNS}
FROM {SESSION_SPANS}
ORDER BY min(start_time) OVER (PARTITION BY trace_id), trace_id, start_time, span_id
"""


def load_session(session_id: str, db_path: str | Path, *, query: QueryFn | None = None) -> list[SpanRecord]:
    """The spans of a session (its LLM calls and the structure around them), traces in
    start-time order.

    ``session_id`` is matched against the collector's ``session_id`` column (the normalised
    ``session.id``, docs/internals.md §2) without its leading and trailing whitespace, which the
    collector strips from the stored value too. A trace in which it is the only session id is returned
    whole, also spans without the attribute (e.g. a root span started before the session). From
    a trace that holds other sessions too (a batch job with one session per item in one trace, a
    nested session with its own id) only the session's spans, the spans without a session id
    below them, and their ancestors (for the tree) are returned, so other sessions' LLM calls are
    left out: :data:`spanreel._trace_sql.SESSION_SPANS`.
    Order: trace start time, then within a trace span start time, then span id.

    Raises :class:`SessionNotFound`, and the collector's ``NoDatabaseError`` / ``QueryError``.
    """
    path = Path(db_path)
    run = query or default_query
    result = run(_SESSION_SQL, path, [session_id.strip()])
    columns = list(result.columns)
    spans = [_record_from_row(dict(zip(columns, row, strict=True))) for row in result.rows]
    if not spans:
        raise SessionNotFound(session_id, path)
    return spans


def record_from_span_row(row: Mapping[str, Any]) -> SpanRecord:
    """A :class:`SpanRecord` from a decoded, normalised span row (the collector's ``SpanRow``:
    ``start_time_unix_nano`` / ``end_time_unix_nano`` int ns, parsed attribute dicts)."""
    return _record_from_row(
        {**row, "start_ns": row.get("start_time_unix_nano"), "end_ns": row.get("end_time_unix_nano")}
    )


def order_spans(spans: Sequence[SpanRecord]) -> list[SpanRecord]:
    """Spans grouped by trace, traces in order of their earliest span, spans by (start, span id);
    duplicate (trace id, span id) pairs keep the first occurrence."""
    seen: set[tuple[str, str]] = set()
    unique: list[SpanRecord] = []
    for span in spans:
        key = (span.trace_id, span.span_id)
        if key not in seen:
            seen.add(key)
            unique.append(span)
    trace_start: dict[str, int] = {}
    for span in unique:
        trace_start[span.trace_id] = min(
            trace_start.get(span.trace_id, span.start_time_ns), span.start_time_ns
        )
    return sorted(unique, key=lambda s: (trace_start[s.trace_id], s.trace_id, s.start_time_ns, s.span_id))


def load_trace_file(path: str | Path) -> list[SpanRecord]:
    """All spans of an OTLP JSON trace file (formats: :mod:`spanreel.replay._otlp_file`), ordered
    like :func:`load_session`: traces by their earliest span, spans by start time then span id.

    The file may hold several traces (e.g. an exported session). Each span is decoded and
    normalised exactly as the collector would store it (GenAI columns included). Duplicated
    spans keep their first occurrence.

    Raises :class:`TraceFileError` (message names the file) when the file cannot be read, is not
    OTLP JSON trace data, holds an invalid span or holds no spans.
    """
    return order_spans([record_from_span_row(row) for row in read_trace_file(path)])
