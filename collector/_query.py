"""Read-only SQL over the spans database, with JSON-safe results (shared by the query API and the
direct DuckDB path of :func:`spanreel.collector.run_query`, so both give identical values).

Allowed: statements DuckDB classifies as SELECT (``SELECT``, ``WITH``, ``FROM``, ``VALUES``,
``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``UNPIVOT``, ``PIVOT … ON col IN (…)`` …) and ``EXPLAIN``;
several statements only if all are. A ``PIVOT`` without its ``IN`` list is refused: DuckDB runs it
as several statements, one creating a type, to find the columns first. They run inside a
``READ ONLY`` transaction, which also stops ``EXPLAIN ANALYZE INSERT``.

Value mapping (docs/internals.md §3), inside lists, structs and maps too: timestamps → ISO-8601
UTC strings ending in ``Z`` with the column's precision (``TIMESTAMP_NS`` keeps nanoseconds);
dates/times → ISO-8601 (years outside 0000–9999 signed, DuckDB's infinities ``"infinity"`` /
``"-infinity"``); JSON columns → strings; lists → lists; structs and maps → objects; BLOBs →
base64; HUGEINT / DECIMAL → int when integral, else float; non-finite floats → ``"NaN"`` /
``"Infinity"`` / ``"-Infinity"``; intervals → ISO-8601 durations. A value no mapping covers is a
:class:`QueryError`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import duckdb
import pyarrow as pa

__all__ = [
    "DATABASE_SETTINGS",
    "NoDatabaseError",
    "QueryError",
    "QueryResult",
    "check_read_only",
    "connect",
    "execute_read_only",
    "json_rows",
    "read_only_table",
    "restrict",
    "rows_within",
]

#: DuckDB settings for every connection spanreel opens, applied to the database instance (``SET
#: GLOBAL``: its cursors too) in this order by :func:`restrict`: SQL cannot read or write files or
#: reach the network (``read_csv``, ``COPY``, ``ATTACH``, extensions …; registered Arrow tables
#: still work); times are UTC whatever the machine's zone (the stored times are UTC: a
#: ``TIMESTAMPTZ`` cast, ``now()``, "the last hour" gave other answers in Tokyo than in New York,
#: and the collector's query API others than a direct read); and the configuration is then locked,
#: so no statement can change the database's settings — the table functions that do so in a
#: ``SELECT`` (``enable_logging``, which aborted the process with a file storage,
#: ``enable_profiling``…) included. (``TimeZone`` cannot be given to ``duckdb.connect``: the ICU
#: extension is loaded with the first connection, hence ``SET`` after it.)
DATABASE_SETTINGS: Final[tuple[tuple[str, str | bool], ...]] = (
    ("enable_external_access", False),
    ("TimeZone", "UTC"),
    ("lock_configuration", True),
)
_READ_ONLY_TYPES: Final = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
_UNIT_NS: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_UNIT_DIGITS: Final = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def restrict(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Apply :data:`DATABASE_SETTINGS` to ``con``'s database instance; return ``con``."""
    for name, value in DATABASE_SETTINGS:
        con.execute(f"SET GLOBAL {name} = ?", [value])
    return con


def connect(
    database: str | os.PathLike[str] = ":memory:", *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(database, read_only=…)``, :func:`restrict`-ed. Raises ``duckdb.Error``."""
    con = duckdb.connect(str(database), read_only=read_only)
    try:
        return restrict(con)
    except BaseException:
        con.close()
        raise


class QueryError(Exception):
    """DuckDB rejected the SQL, or the SQL is not read-only. The message is DuckDB's or ours."""


class NoDatabaseError(Exception):
    """There is no spanreel database at the given path: no file (and no collector serving it), or
    a file without spanreel's ``schema_migrations`` table (another application's DuckDB file, even
    one with a ``schema_migrations`` table of its own)."""


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
    table, truncated = read_only_table(con, sql, params, max_rows=max_rows)
    result = QueryResult(columns=list(table.column_names), rows=json_rows(table))
    return replace(result, truncated=True) if truncated else result


def json_rows(table: pa.Table) -> list[list[Any]]:
    """The rows of ``table`` with JSON-safe values (:func:`arrow_to_result`); raises
    :class:`QueryError` for a value no JSON mapping covers (the user's error, not the server's)."""
    try:
        return arrow_to_result(table).rows
    except Exception as exc:
        raise QueryError(f"cannot convert the result to JSON: {type(exc).__name__}: {exc}") from exc


def read_only_table(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> tuple[pa.Table, bool]:
    """:func:`execute_read_only`'s result as Arrow, and whether it was cut: at most ``max_rows``
    rows and, with ``max_bytes``, the rows that fit in that many bytes of Arrow data (DuckDB's
    result is streamed and no longer read past them: a query returning one 500 MB value took the
    collector's memory from 150 MB to 1.6 GB). Raises :class:`QueryError`."""
    statements = check_read_only(sql)
    if params and len(statements) > 1:
        raise QueryError("query parameters need a single SQL statement")
    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        start = 0  # where the statement being run starts in ``sql``
        for i, statement in enumerate(statements):
            query, last = statement.query, i == len(statements) - 1
            try:
                relation = con.sql(query, params=list(params) if params and last else None)
            except duckdb.Error as exc:
                raise QueryError(_renumber(str(exc), _lines_before(sql, start, query, None))) from exc
            lines_before = _lines_before(sql, start, query, relation)
            if last:
                # +1: were there more?
                table, cut = _read(
                    relation, None if max_rows is None else max_rows + 1, lines_before, max_bytes
                )
            else:
                # Run (its errors count), its result is not returned: read at most max_rows of it
                # (a first statement of millions of rows used to be read whole, past the row cap).
                _read(relation, max_rows, lines_before, max_bytes)
            start += len(query)
    finally:
        con.execute("ROLLBACK")
    if max_rows is not None and table.num_rows > max_rows:
        return table.slice(0, max_rows), True
    return table, cut


#: Rows per Arrow batch read from DuckDB under a byte limit (the reading stops after the batch
#: that reaches it).
_BATCH_ROWS: Final = 64


def _read(
    relation: duckdb.DuckDBPyRelation | None,
    max_rows: int | None,
    lines_before: int = 0,
    max_bytes: int | None = None,
) -> tuple[pa.Table, bool]:
    """The relation's rows as Arrow, at most ``max_rows`` (all when ``None``): through a
    ``LIMIT`` (DuckDB then sorts only the top rows of an ``ORDER BY``), or, where wrapping the
    statement in one breaks it (a trailing ``; -- comment``), by streaming and stopping there.
    With ``max_bytes``, streamed in batches and cut after the rows that fit in that many bytes of
    Arrow data (then ``True``: there was more).

    Raises :class:`QueryError` with DuckDB's message, its ``LINE n:`` counted in the user's SQL,
    where the relation's query starts after ``lines_before`` lines (not in the ``LIMIT`` wrapper)."""
    if relation is None:
        return pa.table({}), False
    shift = lines_before
    try:
        if max_rows is not None:
            query = relation.sql_query()
            if _limit_wraps(query):
                relation = relation.limit(max_rows)
                shift -= _text_lines_before(relation.sql_query(), query)
                max_rows = None  # DuckDB stops there
        if max_rows is None and max_bytes is None:
            return relation.to_arrow_table(), False
        batch_rows = _BATCH_ROWS if max_bytes is not None else min(max_rows or 1, 1_000_000)
        reader = relation.to_arrow_reader(batch_rows)
        batches: list[pa.RecordBatch] = []
        rows = size = 0
        cut = False
        try:
            while max_rows is None or rows < max_rows:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                if max_bytes is not None and size + batch.nbytes > max_bytes:
                    batch = batch.slice(0, rows_within(batch, max_bytes - size))
                    cut = True
                batches.append(batch)
                rows += batch.num_rows
                size += batch.nbytes
                if cut:
                    break
        finally:
            reader.close()
        table = pa.Table.from_batches(batches, schema=reader.schema)
        return (table if max_rows is None else table.slice(0, max_rows)), cut
    except duckdb.Error as exc:
        raise QueryError(_renumber(str(exc), shift)) from exc


def rows_within(batch: pa.RecordBatch | pa.Table, budget: int) -> int:
    """How many of the first rows of ``batch`` take at most ``budget`` bytes of Arrow data."""
    low, high = 0, batch.num_rows  # low rows fit; high + 1 do not (binary search on prefixes)
    while low < high:
        middle = (low + high + 1) // 2
        if batch.slice(0, middle).nbytes <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def _text_lines_before(text: str, part: str) -> int:
    """Newlines in ``text`` before ``part`` (0 when ``part`` is not in it)."""
    return text[: max(text.find(part), 0)].count("\n")


def _lines_before(sql: str, start: int, query: str, relation: duckdb.DuckDBPyRelation | None) -> int:
    """Lines of ``sql`` before the text DuckDB runs for ``query`` (the statement at ``start`` in
    ``sql``): DuckDB counts its ``LINE n`` from the statement's own text, without the statements
    before it and the blank lines that lead it (``relation.sql_query()``)."""
    text = relation.sql_query() if relation is not None else query.lstrip()
    return sql[:start].count("\n") + _text_lines_before(query, text)


_LINE: Final = re.compile(r"^LINE (\d+):", re.MULTILINE)


def _renumber(message: str, shift: int) -> str:
    """DuckDB's error ``message`` with the line number of its (last) ``LINE n:`` context moved by
    ``shift``, kept when that would not be a line (< 1)."""
    found = list(_LINE.finditer(message))
    if not shift or not found or int(found[-1][1]) + shift < 1:
        return message
    last = found[-1]
    return f"{message[: last.start(1)]}{int(last[1]) + shift}{message[last.end(1) :]}"


def _limit_wraps(query: str) -> bool:
    """Whether ``query`` still parses wrapped in a subquery, as ``relation.limit`` wraps it (a
    trailing ``;`` or comment does not; parsing here, outside the transaction, which a parser
    error would abort)."""
    try:
        return len(duckdb.extract_statements(f"FROM ({query}\n) LIMIT 1")) == 1
    except duckdb.Error:
        return False


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


#: DuckDB's ``infinity`` / ``-infinity``: the extreme values of the column's integer type.
_INFINITE_DAYS: Final = 2**31 - 1
_INFINITE_TIME: Final = 2**63 - 1


def _civil(days: int) -> str:
    """ISO-8601 date of ``days`` since 1970-01-01, any year (Python's dates stop at 9999):
    H. Hinnant's ``civil_from_days``; years outside 0000–9999 are written with a sign."""
    z = days + 719_468
    era, doe = divmod(z, 146_097)
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day, month = doy - (153 * mp + 2) // 5 + 1, mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{text}-{month:02d}-{day:02d}"


def _format_timestamp(value: int, unit: str) -> str:
    if abs(value) == _INFINITE_TIME:
        return "infinity" if value > 0 else "-infinity"
    ns = value * _UNIT_NS[unit]
    seconds, frac = divmod(ns, 1_000_000_000)
    days, second = divmod(seconds, 86_400)
    text = f"{_civil(days)}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    digits = _UNIT_DIGITS[unit]
    if digits:
        text += "." + f"{frac:09d}"[:digits]
    return text + "Z"


def _format_date(days: int) -> str:
    if abs(days) == _INFINITE_DAYS:
        return "infinity" if days > 0 else "-infinity"
    return _civil(days)


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    values: list[Any] = []
    for chunk in column.chunks:
        values += _array_values(chunk)
    return values


def _array_values(array: pa.Array) -> list[Any]:
    """JSON-safe values of one Arrow array, nested types included (a timestamp inside a list or
    a struct is formatted like a top-level one: ``to_pylist`` refuses nanoseconds without pandas,
    and dates Python cannot hold)."""
    typ = array.type
    if pa.types.is_timestamp(typ):
        # Arrow stores tz-aware timestamps as UTC instants, naive ones as UTC wall time.
        raw = array.cast(pa.int64()).to_pylist()
        return [None if v is None else _format_timestamp(v, typ.unit) for v in raw]
    if pa.types.is_date32(typ):
        return [None if v is None else _format_date(v) for v in array.cast(pa.int32()).to_pylist()]
    if not _has_special(typ):
        return [_json_safe(v) for v in array.to_pylist()]
    valid = array.is_valid().to_pylist()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_map(typ):
        offsets = array.offsets.to_pylist()
        base, size = offsets[0], offsets[-1] - offsets[0]
        children: list[Any]
        if pa.types.is_map(typ):
            keys = _array_values(array.keys.slice(base, size))
            items = _array_values(array.items.slice(base, size))
            children = [(str(k), v) for k, v in zip(keys, items, strict=True)]
        else:
            children = _array_values(array.values.slice(base, size))
        parts = [children[offsets[i] - base : offsets[i + 1] - base] for i in range(len(array))]
        if pa.types.is_map(typ):
            return [dict(part) if ok else None for ok, part in zip(valid, parts, strict=True)]
        return [part if ok else None for ok, part in zip(valid, parts, strict=True)]
    if pa.types.is_fixed_size_list(typ):  # DuckDB's ARRAY types (array_value(…), INT[3])
        n = typ.list_size
        values = _array_values(array.values.slice(array.offset * n, len(array) * n))
        return [values[i * n : (i + 1) * n] if ok else None for i, ok in enumerate(valid)]
    if pa.types.is_struct(typ):  # (at least one field: it holds a timestamp or a date)
        fields = [typ.field(i).name for i in range(typ.num_fields)]
        rows = zip(*(_array_values(array.field(i)) for i in range(typ.num_fields)), strict=True)
        return [
            dict(zip(fields, row, strict=True)) if ok else None for ok, row in zip(valid, rows, strict=True)
        ]
    return [_json_safe(v) for v in array.to_pylist()]


def _has_special(typ: pa.DataType) -> bool:
    """Whether ``typ`` is or holds a timestamp, a date or a map (converted by :func:`_array_values`)."""
    if pa.types.is_timestamp(typ) or pa.types.is_date32(typ):
        return True
    if pa.types.is_map(typ):  # an empty map is {} only when its type is known (to_pylist: [])
        return True
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return _has_special(typ.value_type)
    if pa.types.is_struct(typ):
        return any(_has_special(typ.field(i).type) for i in range(typ.num_fields))
    return False


def _seconds(ns: int) -> str:
    """``ns`` nanoseconds as exact decimal seconds for an ISO 8601 duration: ``1.000001``, ``-0.5``,
    ``3`` (``ns / 1e9`` gave ``1e-06`` and lost digits past a day)."""
    whole, frac = divmod(abs(ns), 1_000_000_000)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    return f"-{text}" if ns < 0 else text


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, pa.MonthDayNano):
        return f"P{value.months}M{value.days}DT{_seconds(value.nanoseconds)}S"
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
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return f"PT{_seconds(micros * 1_000)}S"
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)
