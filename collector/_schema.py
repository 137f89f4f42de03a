"""DuckDB schema: migrations, the ``spans`` Arrow layout, and span rows → Arrow.

The tables and views are those of docs/internals.md §2. Schema changes are **migrations**: an
append-only list of numbered, named steps (:data:`MIGRATIONS`); each applied step is recorded in
``schema_migrations(version, name, applied_at)`` in the same transaction as its DDL. Never edit or
reorder a released step — append a new one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa

from spanreel._attributes import MODEL_CALL_OPERATIONS
from spanreel._trace_sql import SESSIONS_SELECT

__all__ = [
    "DESCRIPTIONS",
    "JSON_COLUMNS",
    "MIGRATIONS",
    "SPANS_SCHEMA",
    "Migration",
    "NotSpanreelDatabaseError",
    "SchemaError",
    "foreign_schema_reason",
    "migrate",
    "not_spanreel_message",
    "rows_to_arrow",
]


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of spanreel."""


class NotSpanreelDatabaseError(SchemaError):
    """The database is not spanreel's: it has no ``schema_migrations`` table, or another
    application's (:func:`foreign_schema_reason`), so spanreel neither migrates nor writes it."""


def not_spanreel_message(path: object, reason: str = "no schema_migrations table") -> str:
    """The error text for a database at ``path`` that is not spanreel's (``reason``: from
    :func:`foreign_schema_reason`)."""
    return (
        f"not a spanreel database: {path} ({reason}); spanreel neither reads "
        "nor writes other databases: give --db the file the collector writes"
    )


def foreign_schema_reason(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the connection's default database is not spanreel's, or ``None`` when it is.

    Spanreel's is one whose ``schema_migrations`` table records migration 1 under spanreel's name
    for it (:data:`MIGRATIONS`), or, after a crash between creating that table and committing
    migration 1, holds that empty table and nothing else. Another application's
    ``schema_migrations`` (other columns, or other names for its versions) is not spanreel's.
    """
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND table_name = 'schema_migrations'"
    ).fetchone()
    if row is None or row[0] == 0:
        return "no schema_migrations table"
    foreign = "its schema_migrations table is another application's"
    try:
        first = con.execute("SELECT name FROM schema_migrations WHERE version = 1").fetchall()
    except duckdb.Error:  # no version or name column
        return foreign
    if first:
        return None if first[0][0] == MIGRATIONS[0].name else foreign
    others = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name <> 'schema_migrations'"
    ).fetchone()
    return None if others is not None and others[0] == 0 else foreign


def _is_empty(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's default database holds no table and no view (a new file)."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()) "
        "+ (SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() AND NOT internal)"
    ).fetchone()
    return row is not None and row[0] == 0


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (1, 2, …), a short ``name``, and its SQL statements."""

    version: int
    name: str
    statements: tuple[str, ...]


_CREATE_SPANS = """
CREATE TABLE spans (
    trace_id            VARCHAR NOT NULL,
    span_id             VARCHAR NOT NULL,
    parent_span_id      VARCHAR,
    trace_state         VARCHAR,
    name                VARCHAR,
    kind                VARCHAR,
    service_name        VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    start_time          TIMESTAMP_NS,
    end_time            TIMESTAMP_NS,
    duration_ns         BIGINT,
    status_code         VARCHAR,
    status_message      VARCHAR,
    attributes          JSON,
    resource_attributes JSON,
    events              JSON,
    links               JSON,
    operation           VARCHAR,
    provider            VARCHAR,
    request_model       VARCHAR,
    response_model      VARCHAR,
    input_tokens        BIGINT,
    output_tokens       BIGINT,
    finish_reasons      VARCHAR[],
    session_id          VARCHAR,
    conversation_id     VARCHAR,
    received_at         TIMESTAMP,
    PRIMARY KEY (trace_id, span_id)
)
"""

_CREATE_TRACE_INDEX = """
CREATE TABLE trace_index (
    trace_id      VARCHAR PRIMARY KEY,
    start_time    TIMESTAMP_NS,
    end_time      TIMESTAMP_NS,
    root_span_id  VARCHAR,
    root_name     VARCHAR,
    service_name  VARCHAR,
    span_count    BIGINT NOT NULL,
    llm_calls     BIGINT NOT NULL,
    input_tokens  BIGINT,
    output_tokens BIGINT,
    session_id    VARCHAR
)
"""

_CREATE_LLM_CALLS = """
CREATE VIEW llm_calls AS
SELECT trace_id, span_id, parent_span_id, name, service_name, start_time, end_time, duration_ns,
       status_code, operation, provider, request_model, response_model, input_tokens, output_tokens,
       finish_reasons, session_id, conversation_id, attributes
FROM spans
WHERE operation IS NOT NULL
"""

_CREATE_TRACES = """
CREATE VIEW traces AS
SELECT trace_id, start_time, end_time, root_span_id, root_name, service_name, span_count, llm_calls,
       input_tokens, output_tokens, session_id,
       epoch_ns(end_time) - epoch_ns(start_time) AS duration_ns
FROM trace_index
"""

# -- migration 3: no per-span index; normalised messages and cost ---------------------------------
#
# The (trace_id, span_id) PRIMARY KEY made every insert probe and grow an index with one entry per
# span (a third of the writer's time, and memory that grows with the table). Duplicates are now
# suppressed per trace: ``trace_index`` (still keyed by trace_id) records the span ids stored for
# each trace (``span_ids``), and the writer stores only spans whose id is not there yet, in the
# same transaction (collector/_writer.py). DuckDB cannot drop a primary key, so ``spans`` is
# rebuilt (rows copied in their order, so the start_time zone maps stay tight).

_V3_SPANS_COLUMNS = """
    trace_id            VARCHAR NOT NULL,
    span_id             VARCHAR NOT NULL,
    parent_span_id      VARCHAR,
    trace_state         VARCHAR,
    name                VARCHAR,
    kind                VARCHAR,
    service_name        VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    start_time          TIMESTAMP_NS,
    end_time            TIMESTAMP_NS,
    duration_ns         BIGINT,
    status_code         VARCHAR,
    status_message      VARCHAR,
    attributes          JSON,
    resource_attributes JSON,
    events              JSON,
    links               JSON,
    operation           VARCHAR,
    provider            VARCHAR,
    request_model       VARCHAR,
    response_model      VARCHAR,
    input_tokens        BIGINT,
    output_tokens       BIGINT,
    finish_reasons      VARCHAR[],
    session_id          VARCHAR,
    conversation_id     VARCHAR,
    input_messages      JSON,
    output_messages     JSON,
    cost_usd            DOUBLE,
    received_at         TIMESTAMP
"""

_V3_TRACE_INDEX_COLUMNS = """
    trace_id      VARCHAR PRIMARY KEY,
    start_time    TIMESTAMP_NS,
    end_time      TIMESTAMP_NS,
    root_span_id  VARCHAR,
    root_name     VARCHAR,
    service_name  VARCHAR,
    span_count    BIGINT NOT NULL,
    llm_calls     BIGINT NOT NULL,
    input_tokens  BIGINT,
    output_tokens BIGINT,
    session_id    VARCHAR,
    cost_usd      DOUBLE,
    span_ids      UBIGINT[] NOT NULL
"""

#: SQL for a span id (16 hex characters) as the UBIGINT kept in ``trace_index.span_ids``.
SPAN_ID_AS_UBIGINT: Final = "('0x' || {column})::UBIGINT"

_MIGRATION_3: Final = (
    "DROP VIEW llm_calls",
    "DROP VIEW traces",
    f"CREATE TABLE spans_v3 ({_V3_SPANS_COLUMNS})",
    "INSERT INTO spans_v3 BY NAME SELECT * FROM spans",
    f"CREATE TABLE trace_index_v3 ({_V3_TRACE_INDEX_COLUMNS})",
    "INSERT INTO trace_index_v3 BY NAME "
    "SELECT ti.*, ids.span_ids FROM trace_index ti JOIN ("
    f"  SELECT trace_id, list({SPAN_ID_AS_UBIGINT.format(column='span_id')}) AS span_ids"
    "   FROM spans GROUP BY trace_id) ids USING (trace_id)",
    "DROP TABLE spans",
    "DROP TABLE trace_index",
    "ALTER TABLE spans_v3 RENAME TO spans",
    "ALTER TABLE trace_index_v3 RENAME TO trace_index",
    """
CREATE VIEW llm_calls AS
SELECT trace_id, span_id, parent_span_id, name, service_name, start_time, end_time, duration_ns,
       status_code, operation, provider, request_model, response_model, input_tokens, output_tokens,
       finish_reasons, session_id, conversation_id, attributes, input_messages, output_messages,
       cost_usd
FROM spans
WHERE operation IS NOT NULL
""",
    """
CREATE VIEW traces AS
SELECT trace_id, start_time, end_time, root_span_id, root_name, service_name, span_count, llm_calls,
       input_tokens, output_tokens, session_id,
       epoch_ns(end_time) - epoch_ns(start_time) AS duration_ns, cost_usd
FROM trace_index
""",
)

_TIME = "TIMESTAMP_NS, UTC (no time zone stored)"
_TOKENS = "summed over the trace's LLM calls (spans with an operation); NULL when none reported"

#: Descriptions stored in the catalog (``COMMENT ON``; read them with ``duckdb_columns()``) and
#: rendered into docs/schema.md: object → (what it holds, {column: meaning}). Migrations 2 and 3
#: apply them; after changing one, append a migration that runs :func:`_describe_statements` again
#: (``COMMENT ON`` overwrites), so existing databases get the new text too.
DESCRIPTIONS: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "spans": (
        "One row per span, unique on (trace_id, span_id): retried exports are stored once "
        "(checked against trace_index.span_ids when written).",
        {
            "trace_id": "32 lowercase hex characters",
            "span_id": "16 lowercase hex characters",
            "parent_span_id": "16 hex characters; NULL for a root span",
            "trace_state": "W3C tracestate; may be empty",
            "name": "span name, e.g. `chat gpt-4o-mini`",
            "kind": "UNSPECIFIED, INTERNAL, SERVER, CLIENT, PRODUCER or CONSUMER",
            "service_name": "resource attribute `service.name`",
            "scope_name": "instrumentation scope name",
            "scope_version": "instrumentation scope version",
            "start_time": _TIME,
            "end_time": _TIME,
            "duration_ns": "end_time - start_time, nanoseconds",
            "status_code": "UNSET, OK or ERROR",
            "status_message": "status description (errors)",
            "attributes": "span attributes as a JSON object (bytes as base64, kvlists as objects)",
            "resource_attributes": "resource attributes as a JSON object",
            "events": 'JSON list of {"time_unix_nano", "name", "attributes"}',
            "links": 'JSON list of {"trace_id", "span_id", "trace_state", "attributes"}',
            "operation": "model-call `gen_ai.operation.name` (chat, text_completion, generate_content, "
            "embeddings) or a peer convention's equivalent; NULL for other spans (agents, tools …)",
            "provider": "normalised `gen_ai.provider.name` (deprecated `gen_ai.system` and peers mapped)",
            "request_model": "`gen_ai.request.model` or a peer convention's equivalent",
            "response_model": "`gen_ai.response.model` or a peer convention's equivalent",
            "input_tokens": "`gen_ai.usage.input_tokens` (or `prompt_tokens`, or a peer's)",
            "output_tokens": "`gen_ai.usage.output_tokens` (or `completion_tokens`, or a peer's)",
            "finish_reasons": "`gen_ai.response.finish_reasons`",
            "session_id": "`session.id` (or a peer's session attribute)",
            "conversation_id": "`gen_ai.conversation.id`",
            "input_messages": "LLM calls: the input messages in the OTel GenAI message schema "
            '(`[{"role", "parts": [...]}]`), from `gen_ai.input.messages` or a peer convention; '
            "NULL when not captured (and for spans stored before migration 3)",
            "output_messages": "LLM calls: the output messages, same schema plus `finish_reason`; "
            "NULL when not captured (and for spans stored before migration 3)",
            "cost_usd": "LLM calls: cost in US dollars as recorded by the instrumentation "
            "(`spanreel.cost.usd`, OpenInference `llm.cost.total`, OpenLIT `gen_ai.usage.cost`, "
            "MLflow `mlflow.llm.cost`); NULL when none was recorded",
            "received_at": "when the collector committed the span, UTC",
        },
    ),
    "trace_index": (
        "Per-trace lookup, written in the same transaction as the spans (only newly stored spans count).",
        {
            "trace_id": "32 lowercase hex characters",
            "start_time": "earliest span start, " + _TIME,
            "end_time": "latest span end, " + _TIME + "; retention compares it with the cutoff",
            "root_span_id": "the earliest span without a parent; NULL until one arrives",
            "root_name": "that span's name",
            "service_name": "the root's service, else the earliest span's",
            "span_count": "spans stored for the trace",
            "llm_calls": "spans with an operation (the rows of llm_calls)",
            "input_tokens": _TOKENS,
            "output_tokens": _TOKENS,
            "session_id": "the first session id seen in the trace",
            "cost_usd": "summed cost_usd of the trace's LLM calls; NULL when none reported",
            "span_ids": "the span ids stored for the trace, as 64-bit integers (the writer "
            "suppresses duplicates with them)",
        },
    ),
    "schema_migrations": (
        "The schema steps applied to this file, in order.",
        {
            "version": "migration number (collector/_schema.py MIGRATIONS)",
            "name": "what the step did",
            "applied_at": "when it was applied, UTC",
        },
    ),
    "llm_calls": ("One row per LLM call: the spans with an operation.", {}),
    "traces": (
        "One row per trace: trace_index (without span_ids) plus its duration.",
        {"duration_ns": "end_time - start_time, ns"},
    ),
    "sessions": (
        "One row per session: the spans carrying that session_id, over all their traces "
        "(a session may span several traces, and a trace hold several sessions).",
        {
            "session_id": "`session.id` (or a peer's session attribute), as in spans.session_id",
            "session_name": "`spanreel.session.name` of the session's earliest span that has one "
            "(the name given to `spanreel.session(name)`); NULL for sessions from other instrumentations",
            "user_id": "`user.id` of the session's earliest span that has one; NULL when none",
            "service_name": "the service of the session's earliest span",
            "start_time": "earliest span start, " + _TIME,
            "end_time": "latest span end, " + _TIME,
            "duration_ns": "end_time - start_time, nanoseconds",
            "trace_count": "traces holding spans of the session",
            "span_count": "spans carrying the session id",
            "llm_calls": "the session's LLM calls (its spans with an operation: rows of llm_calls)",
            "error_count": "the session's spans with status ERROR",
            "input_tokens": "summed over the session's LLM calls; NULL when none reported",
            "output_tokens": "summed over the session's LLM calls; NULL when none reported",
            "cost_usd": "summed cost_usd of the session's LLM calls; NULL when none reported",
        },
    ),
}


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: Columns added by migration 3 (migration 2 predates them and must not describe them).
_V3_NEW_COLUMNS: Final = {
    "spans": frozenset({"input_messages", "output_messages", "cost_usd"}),
    "trace_index": frozenset({"cost_usd", "span_ids"}),
}


#: The objects each migration up to 5 described (migration 6 adds ``sessions``).
_OBJECTS_UP_TO_5: Final = ("spans", "trace_index", "schema_migrations", "llm_calls", "traces")
_VIEWS: Final = frozenset({"llm_calls", "traces", "sessions"})


def _describe_statements(
    objects: Sequence[str] = _OBJECTS_UP_TO_5, *, skip: dict[str, frozenset[str]] | None = None
) -> tuple[str, ...]:
    """``COMMENT ON`` statements for the ``objects`` of :data:`DESCRIPTIONS` (without the columns
    in ``skip``)."""
    statements: list[str] = []
    for name in objects:
        summary, columns = DESCRIPTIONS[name]
        kind = "VIEW" if name in _VIEWS else "TABLE"
        statements.append(f"COMMENT ON {kind} {name} IS {_sql_text(summary)}")
        skipped = (skip or {}).get(name, frozenset())
        statements.extend(
            f"COMMENT ON COLUMN {name}.{col} IS {_sql_text(text)}"
            for col, text in columns.items()
            if col not in skipped
        )
    return tuple(statements)


#: The views' columns (as migration 3 creates them) and the table each reads.
_VIEW_COLUMNS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "llm_calls": (
        "spans",
        (
            "trace_id", "span_id", "parent_span_id", "name", "service_name", "start_time", "end_time",
            "duration_ns", "status_code", "operation", "provider", "request_model", "response_model",
            "input_tokens", "output_tokens", "finish_reasons", "session_id", "conversation_id",
            "attributes", "input_messages", "output_messages", "cost_usd",
        ),
    ),
    "traces": (
        "trace_index",
        (
            "trace_id", "start_time", "end_time", "root_span_id", "root_name", "service_name",
            "span_count", "llm_calls", "input_tokens", "output_tokens", "session_id", "duration_ns",
            "cost_usd",
        ),
    ),
    "sessions": ("spans", tuple(DESCRIPTIONS["sessions"][1])),
}  # fmt: skip


def _describe_view_columns(views: Sequence[str] = ("llm_calls", "traces")) -> tuple[str, ...]:
    """``COMMENT ON COLUMN`` for every column of ``views``: the view's own text for it, else the
    text of the same column of the table it reads."""
    statements: list[str] = []
    for view in views:
        table, columns = _VIEW_COLUMNS[view]
        own, source = DESCRIPTIONS[view][1], DESCRIPTIONS[table][1]
        for column in columns:
            text = own.get(column) or source[column]
            statements.append(f"COMMENT ON COLUMN {view}.{column} IS {_sql_text(text)}")
    return tuple(statements)


#: Migration 5: spans whose operation is not a model call (agents, tools) leave llm_calls; the
#: call counts, tokens and cost of their traces are recounted over the model calls.
_MODEL_CALLS_SQL: Final = ", ".join(_sql_text(op) for op in sorted(MODEL_CALL_OPERATIONS))
_NOT_A_CALL: Final = f"operation NOT IN ({_MODEL_CALLS_SQL})"
_MIGRATION_5: Final = (
    f"""
UPDATE trace_index SET llm_calls = fixed.llm_calls, input_tokens = fixed.input_tokens,
       output_tokens = fixed.output_tokens, cost_usd = fixed.cost_usd
FROM (
    SELECT trace_id,
           count(*) FILTER (WHERE operation IN ({_MODEL_CALLS_SQL})) AS llm_calls,
           sum(input_tokens) FILTER (WHERE operation IN ({_MODEL_CALLS_SQL})) AS input_tokens,
           sum(output_tokens) FILTER (WHERE operation IN ({_MODEL_CALLS_SQL})) AS output_tokens,
           sum(cost_usd) FILTER (WHERE operation IN ({_MODEL_CALLS_SQL})) AS cost_usd
    FROM spans
    WHERE trace_id IN (SELECT trace_id FROM spans WHERE {_NOT_A_CALL})
    GROUP BY trace_id
) AS fixed
WHERE trace_index.trace_id = fixed.trace_id
""",
    f"UPDATE spans SET operation = NULL, input_messages = NULL, output_messages = NULL, cost_usd = NULL "
    f"WHERE {_NOT_A_CALL}",
)

#: The append-only list of schema steps.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "create spans, trace_index, llm_calls, traces",
        (_CREATE_SPANS, _CREATE_TRACE_INDEX, _CREATE_LLM_CALLS, _CREATE_TRACES),
    ),
    Migration(
        2,
        "describe tables, views and columns (COMMENT ON)",
        _describe_statements(skip=_V3_NEW_COLUMNS),
    ),
    Migration(
        3,
        "per-trace duplicate suppression (trace_index.span_ids, no span primary key); "
        "spans.input_messages, output_messages, cost_usd; trace_index.cost_usd",
        (*_MIGRATION_3, *_describe_statements()),
    ),
    Migration(4, "describe the views' columns (COMMENT ON COLUMN)", _describe_view_columns()),
    Migration(
        5,
        "agent and tool spans (invoke_agent, execute_tool …) are not LLM calls: operation NULL, "
        "their traces' call counts, tokens and cost recounted",
        (*_MIGRATION_5, *_describe_statements(), *_describe_view_columns()),
    ),
    Migration(
        6,
        "sessions view: one row per session",  # changing SESSIONS_SELECT needs a new migration
        (
            f"CREATE VIEW sessions AS {SESSIONS_SELECT}",
            *_describe_statements(["sessions"]),
            *_describe_view_columns(["sessions"]),
        ),
    ),
)


def migrate(
    con: duckdb.DuckDBPyConnection, *, name: object = "the database", allow_empty: bool = True
) -> list[Migration]:
    """Apply the pending :data:`MIGRATIONS` (each in its own transaction) to the connection's
    default database; return those applied.

    Idempotent. A database without ``schema_migrations`` is created from scratch only when it
    holds no table and no view (a new file) and ``allow_empty``; otherwise
    :class:`NotSpanreelDatabaseError` (its message names the database as ``name``, e.g. its path)
    and nothing is written. Raises :class:`SchemaError` when the database records a version this
    spanreel does not know (it was written by a newer release).
    """
    reason = foreign_schema_reason(con)
    if reason is not None and not (allow_empty and _is_empty(con)):
        raise NotSpanreelDatabaseError(not_spanreel_message(name, reason))
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    applied = {int(v) for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    known = {m.version for m in MIGRATIONS}
    unknown = sorted(applied - known)
    if unknown:
        raise SchemaError(
            f"the database has schema version(s) {unknown} that this spanreel does not know; "
            "upgrade spanreel or use another --db"
        )
    done: list[Migration] = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.name, datetime.now(UTC).replace(tzinfo=None)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        done.append(migration)
    return done


#: Arrow layout of a batch for ``INSERT INTO spans BY NAME`` (JSON columns travel as strings; the
#: writer hands them to DuckDB as ``arrow.json``: :data:`JSON_COLUMNS`).
SPANS_SCHEMA: Final = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("trace_state", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("service_name", pa.string()),
        ("scope_name", pa.string()),
        ("scope_version", pa.string()),
        ("start_time", pa.timestamp("ns")),
        ("end_time", pa.timestamp("ns")),
        ("duration_ns", pa.int64()),
        ("status_code", pa.string()),
        ("status_message", pa.string()),
        ("attributes", pa.string()),
        ("resource_attributes", pa.string()),
        ("events", pa.string()),
        ("links", pa.string()),
        ("operation", pa.string()),
        ("provider", pa.string()),
        ("request_model", pa.string()),
        ("response_model", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("finish_reasons", pa.list_(pa.string())),
        ("session_id", pa.string()),
        ("conversation_id", pa.string()),
        ("input_messages", pa.string()),
        ("output_messages", pa.string()),
        ("cost_usd", pa.float64()),
    ]
)

_JSON_COLUMNS: Final = frozenset({"attributes", "resource_attributes", "events", "links"})
#: The JSON columns of :data:`SPANS_SCHEMA` (text produced by a JSON encoder: valid by construction).
JSON_COLUMNS: Final = frozenset({*_JSON_COLUMNS, "input_messages", "output_messages"})
#: Columns a row may lack (spans that are not LLM calls, rows built before migration 3): NULL.
_OPTIONAL_COLUMNS: Final = frozenset({"input_messages", "output_messages", "cost_usd"})
_ROW_KEYS: Final = {"start_time": "start_time_unix_nano", "end_time": "end_time_unix_nano"}
_encode_json_std = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _encode_json(value: Any) -> str:
    """Compact JSON text: orjson (the same text as the standard encoder, ~10× faster), else the
    standard encoder (integers beyond 64 bits), which raises ``ValueError`` / ``TypeError`` for
    what JSON cannot hold."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _encode_json_std(value)


def rows_to_arrow(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Normalised span rows → a :data:`SPANS_SCHEMA` table (``received_at`` is added by the writer).

    JSON columns are encoded once per distinct object: the spans of one resource share its
    attributes dict (see :func:`~spanreel.collector._decode.rows_from_request`), so it is encoded
    once per request, not once per span. ``input_messages`` / ``output_messages`` are JSON text
    already (or ``None``); they and ``cost_usd`` may be missing from a row (NULL). Raises
    ``ValueError`` / ``TypeError`` if a row holds a value that is not JSON-safe (a non-finite float
    is written as ``null``; the decoder's rows have none: OTLP's NaN/±Infinity ``double_value``
    arrives as proto3 JSON's strings ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``,
    :func:`~spanreel.collector._decode.any_value_to_python`).
    """
    shared: dict[int, str] = {}

    def encode_shared(value: Any) -> str:
        if not value:
            return "[]" if isinstance(value, list) else "{}"
        text = shared.get(id(value))  # ids are stable: ``rows`` keeps every value alive
        if text is None:
            text = shared[id(value)] = _encode_json(value)
        return text

    arrays = []
    for field in SPANS_SCHEMA:
        key = _ROW_KEYS.get(field.name, field.name)
        values: list[Any]
        if field.name == "attributes":  # distinct per span: no point caching
            values = [_encode_json(row[key]) for row in rows]
        elif field.name in _JSON_COLUMNS:
            values = [encode_shared(row[key]) for row in rows]
        elif field.name in _OPTIONAL_COLUMNS:
            values = [row.get(key) for row in rows]
        else:
            values = [row[key] for row in rows]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SPANS_SCHEMA)
