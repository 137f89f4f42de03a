"""Read-only SQL over the spans database, with JSON-safe results (shared by the query API and the
direct DuckDB path of :func:`spanreel.collector.run_query`, so both give identical values).

Allowed: statements DuckDB classifies as SELECT (``SELECT``, ``WITH``, ``FROM``, ``VALUES``,
``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``UNPIVOT``, ``PIVOT … ON col IN (…)`` …) and ``EXPLAIN``;
several statements only if all are. A ``PIVOT`` without its ``IN`` list is refused: DuckDB runs it
as several statements, one creating a type, to find the columns first. They run inside a
``READ ONLY`` transaction, which also stops ``EXPLAIN ANALYZE INSERT``.

Value mapping (docs/internals.md §3): timestamps → ISO-8601 UTC strings ending in ``Z`` with the
column's precision (``TIMESTAMP_NS`` keeps nanoseconds); dates/times → ISO-8601; JSON columns →
strings; lists → lists; structs and maps → objects; BLOBs → base64; HUGEINT / DECIMAL → int when
integral, else float; non-finite floats → ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``;
intervals → ISO-8601 durations.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import duckdb
import pyarrow as pa

__all__ = ["NoDatabaseError", "QueryError", "QueryResult", "check_read_only", "execute_read_only"]

#: DuckDB settings for every connection spanreel opens: SQL cannot read or write files or reach the
#: network (``read_csv``, ``COPY``, ``ATTACH``, extensions …). Registered Arrow tables still work.
DATABASE_CONFIG: Final[dict[str, str | bool | int | float | list[str]]] = {"enable_external_access": False}
_READ_ONLY_TYPES: Final = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
_EPOCH: Final = dt.datetime(1970, 1, 1)
_UNIT_NS: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_UNIT_DIGITS: Final = {"s": 0, "ms": 3, "us": 6, "ns": 9}


class QueryError(Exception):
    """DuckDB rejected the SQL, or the SQL is not read-only. The message is DuckDB's or ours."""


class NoDatabaseError(Exception):
    """There is no database file at the given path (and no collector serving it)."""


@dataclass(frozen=True)
class QueryResult:
    """Result of :func:`spanreel.collector.run_query`: column names and rows of JSON-safe values."""

    columns: list[str]
    rows: list[list[Any]]
    #: ``True`` when the query had more rows than the ``max_rows`` asked for (``rows`` holds that many)
    truncated: bool = False


def check_read_only(sql: str) -> list[duckdb.Statement]:
    """Parse ``sql``; return its statements if all are read-only, else raise :class:`QueryError`."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
    if not statements:
        raise QueryError("no SQL statement given")
    for statement in statements:
        if statement.type not in _READ_ONLY_TYPES:
            text = " ".join(statement.query.split())[:80]
            hint = ""
            if statement.type == duckdb.StatementType.MULTI and "pivot" in text.lower():
                hint = " (spell out the PIVOT's columns: PIVOT … ON col IN ('a', 'b') USING …)"
            raise QueryError(
                f"only read-only queries are allowed (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); "
                f"got a {statement.type.name} statement: {text}{hint}"
            )
    return statements


def execute_read_only(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    max_rows: int | None = None,
) -> QueryResult:
    """Run read-only ``sql`` (``?`` / ``$1`` placeholders bound from ``params``) on ``con``.

    Returns the last statement's result: at most ``max_rows`` rows (DuckDB stops there; the
    result says ``truncated``), all of them when ``None``. Raises :class:`QueryError`.
    """
    statements = check_read_only(sql)
    if params and len(statements) > 1:
        raise QueryError("query parameters need a single SQL statement")
    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        for statement in statements[:-1]:  # run (its errors count), its result is not returned
            con.execute(statement.query).fetchall()
        relation = con.sql(statements[-1].query, params=list(params) if params else None)
        if relation is not None and max_rows is not None:
            relation = relation.limit(max_rows + 1)  # one more: tells whether there were more
        table = relation.to_arrow_table() if relation is not None else pa.table({})
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
    finally:
        con.execute("ROLLBACK")
    if max_rows is not None and table.num_rows > max_rows:
        return replace(arrow_to_result(table.slice(0, max_rows)), truncated=True)
    return arrow_to_result(table)


#: Rows converted per step: each step holds the GIL briefly, so a large result converted on a
#: query thread leaves the collector's event loop (the OTLP receivers) room to run.
CONVERT_ROWS: Final = 4096


def arrow_to_result(table: pa.Table) -> QueryResult:
    """A result table → :class:`QueryResult` with JSON-safe values (see module docstring),
    converted :data:`CONVERT_ROWS` rows at a time."""
    rows: list[list[Any]] = []
    if table.num_columns:
        for start in range(0, table.num_rows, CONVERT_ROWS):
            part = table.slice(start, CONVERT_ROWS)
            columns = [_column_values(part.column(i)) for i in range(part.num_columns)]
            rows.extend(list(row) for row in zip(*columns, strict=True))
    return QueryResult(columns=list(table.column_names), rows=rows)


def _format_timestamp(value: int, unit: str) -> str:
    ns = value * _UNIT_NS[unit]
    seconds, frac = divmod(ns, 1_000_000_000)
    try:
        text = (_EPOCH + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")
    except OverflowError:  # DuckDB's ±infinity timestamps
        return "infinity" if value > 0 else "-infinity"
    digits = _UNIT_DIGITS[unit]
    if digits:
        text += "." + f"{frac:09d}"[:digits]
    return text + "Z"


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    typ = column.type
    if pa.types.is_timestamp(typ):
        # Arrow stores tz-aware timestamps as UTC instants, naive ones as UTC wall time.
        raw = column.cast(pa.int64()).to_pylist()
        return [None if v is None else _format_timestamp(v, typ.unit) for v in raw]
    return [_json_safe(v) for v in column.to_pylist()]


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, pa.MonthDayNano):
        return f"P{value.months}M{value.days}DT{value.nanoseconds / 1e9}S"
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value) and isinstance(value, list):
            # Arrow maps come back as [(key, value), …]; lists of 2-tuples only arise from maps.
            return {str(k): _json_safe(v) for k, v in value}
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"PT{value.total_seconds()}S"
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)
