"""SQL for reading one trace's spans from the collector's DuckDB database (docs/internals.md §2).

Shared by ``spanreel show``/``replay`` (replay/_load.py), ``spanreel export``, the viewer's
session page and the storage benchmark, so they all read a trace (or a session) the same way; and
the ``sessions`` view's query, shared by its migration (collector/_schema.py), ``spanreel
sessions``, the viewer's sessions list and the benchmark.
"""

from __future__ import annotations

from typing import Final

from spanreel._attributes import SPANREEL_SESSION_NAME, USER_ID

__all__ = [
    "RECENT_SESSIONS_AFTER_SQL",
    "RECENT_SESSIONS_SQL",
    "SESSIONS_BY_ID_SQL",
    "SESSIONS_SELECT",
    "SESSION_SPANS",
    "TRACE_SPANS",
]

#: ``FROM … WHERE …`` selecting the spans of the trace whose id (32 lowercase hex characters) is
#: the statement's parameter ``$1``. The trace's time range from ``trace_index`` bounds the scan of
#: ``spans`` (a span starts within [trace start, trace end]), so DuckDB reads only the row groups of
#: that time range (zone maps) instead of every row: ~4 ms instead of ~18 ms median at 3M spans,
#: ~10 ms at 10M (``python bench/storage.py``). Columns of ``spans`` may be named unqualified (the
#: joined range is ``ti.trace_start`` / ``ti.trace_end``). A trace missing from ``trace_index``
#: selects nothing (the collector writes both in one transaction).
TRACE_SPANS: Final = (
    "spans s, (SELECT start_time AS trace_start, end_time AS trace_end FROM trace_index "
    "WHERE trace_id = $1) ti "
    "WHERE s.trace_id = $1 AND s.start_time BETWEEN ti.trace_start AND ti.trace_end"
)

#: A ``FROM`` item (aliased ``spans``, with the columns of ``spans`` plus ``in_session``) holding
#: the spans of the session whose ``session_id`` is the statement's parameter ``$1``.
#:
#: A trace where ``$1`` is the only session id is taken whole, all ``in_session``, as it always
#: was: also spans without a session id (a root started before the session, an app span beside
#: it). A trace shared with other sessions (a batch job running one session per item under one
#: app span, a nested session with an id of its own) contributes only
#:
#: * ``in_session``: the spans whose ``session_id`` is ``$1``, and below them the spans without a
#:   session id (an HTTP span of an app without the baggage span processor) down to the first
#:   span of another session;
#: * not ``in_session``: their ancestors (e.g. the batch's app span, an enclosing session's root),
#:   kept so the tree has its structure; they may belong to another session or to none.
#:
#: Every span of a session carries its id (the instrumentation copies ``session.id`` from baggage),
#: so the span-level column scopes it exactly; a trace-level one would pull in other sessions'
#: calls. The spans of the session's traces are read once (``MATERIALIZED``); the scan for the
#: session's traces reads the ``session_id`` column of ``spans``.
SESSION_SPANS: Final = """(
WITH RECURSIVE
session_trace_spans AS MATERIALIZED (
    SELECT * FROM spans WHERE trace_id IN (SELECT DISTINCT trace_id FROM spans WHERE session_id = $1)
),
shared_traces AS (
    SELECT DISTINCT trace_id FROM session_trace_spans WHERE session_id <> $1
),
own_spans(trace_id, span_id) AS (
    SELECT trace_id, span_id FROM session_trace_spans WHERE session_id = $1
    UNION
    SELECT c.trace_id, c.span_id FROM session_trace_spans c
    JOIN own_spans o ON c.trace_id = o.trace_id AND c.parent_span_id = o.span_id
    WHERE c.session_id IS NULL
),
ancestors(trace_id, span_id, parent_span_id) AS (
    SELECT s.trace_id, s.span_id, s.parent_span_id
    FROM session_trace_spans s SEMI JOIN own_spans USING (trace_id, span_id)
    UNION
    SELECT p.trace_id, p.span_id, p.parent_span_id FROM session_trace_spans p
    JOIN ancestors a ON p.trace_id = a.trace_id AND p.span_id = a.parent_span_id
)
SELECT s.*,
       (s.trace_id NOT IN (SELECT trace_id FROM shared_traces)
        OR (s.trace_id, s.span_id) IN (SELECT (trace_id, span_id) FROM own_spans)) AS in_session
FROM session_trace_spans s
WHERE s.trace_id NOT IN (SELECT trace_id FROM shared_traces)
   OR (s.trace_id, s.span_id) IN (SELECT (trace_id, span_id) FROM ancestors)
) AS spans"""


#: The ``sessions`` view's query (migration 6): one row per ``session_id`` over the spans carrying
#: it. ``spanreel sessions`` runs it inline (:data:`SESSIONS_BY_ID_SQL`), so the command works on a
#: file an older collector wrote; changing it needs a migration that re-creates the view.
#: Model-call spans are the only ones with an operation (migration 5).
SESSIONS_SELECT: Final = f"""
SELECT session_id,
       arg_min(json_extract_string(attributes, '$."{SPANREEL_SESSION_NAME}"'), start_time) AS session_name,
       arg_min(json_extract_string(attributes, '$."{USER_ID}"'), start_time) AS user_id,
       arg_min(service_name, start_time) AS service_name,
       min(start_time) AS start_time,
       max(end_time) AS end_time,
       epoch_ns(max(end_time)) - epoch_ns(min(start_time)) AS duration_ns,
       count(DISTINCT trace_id) AS trace_count,
       count(*) AS span_count,
       count(operation) AS llm_calls,
       count(*) FILTER (WHERE status_code = 'ERROR') AS error_count,
       sum(input_tokens) FILTER (WHERE operation IS NOT NULL)::BIGINT AS input_tokens,
       sum(output_tokens) FILTER (WHERE operation IS NOT NULL)::BIGINT AS output_tokens,
       sum(cost_usd) FILTER (WHERE operation IS NOT NULL) AS cost_usd
FROM spans
WHERE session_id IS NOT NULL
GROUP BY session_id
"""

_RECENT_SESSIONS: Final = """
SELECT session_id FROM spans
WHERE session_id IS NOT NULL
GROUP BY session_id{having}
ORDER BY min(start_time) DESC, session_id
LIMIT $1
"""

#: The ``$1`` sessions that started last (cheap: two columns of ``spans``, no JSON).
RECENT_SESSIONS_SQL: Final = _RECENT_SESSIONS.format(having="")

#: The next ``$1`` sessions in :data:`RECENT_SESSIONS_SQL`'s order after the session ``$3`` that
#: started at ``$2`` (a timestamp as text): a keyset page. It reads what the first page reads
#: (the aggregate is filtered, not skipped through), so a later page costs what the first does.
RECENT_SESSIONS_AFTER_SQL: Final = _RECENT_SESSIONS.format(
    having="\nHAVING min(start_time) < CAST($2 AS TIMESTAMP_NS)"
    " OR (min(start_time) = CAST($2 AS TIMESTAMP_NS) AND session_id > $3)"
)

#: The ``sessions`` view's rows for the session ids in ``$1`` (a list), newest first. The view's
#: query is inlined, so a file an older collector wrote (without the view) answers too; the
#: filter on ``session_id`` is applied before the JSON attributes are read.
SESSIONS_BY_ID_SQL: Final = (
    f"SELECT * FROM ({SESSIONS_SELECT}) AS sessions WHERE list_contains($1, session_id) "
    "ORDER BY start_time DESC, session_id"
)
