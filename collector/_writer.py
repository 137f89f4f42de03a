"""The DuckDB writer: one thread owns the read-write connection and commits span batches.

- **Group commit**: every batch waiting when the thread wakes (up to ``max_group_rows`` spans) is
  written in ONE transaction by a bulk insert from one Arrow table (never row by row).
- **Duplicates** (retried exports) are ignored, per trace: ``trace_index`` (keyed by trace_id)
  keeps the ids of the spans stored for each trace (``span_ids``). A group's traces are inserted
  into it first; those that were new take all their spans (the common case: one indexed insert per
  trace, no per-span index to maintain). For the others, their rows are read through the key and
  only spans whose id they lack are stored and merged into the row. Spans, ``trace_index`` and the
  ids are written in the same transaction, so the guarantee survives a crash and a restart.
- **Ack after commit**: :meth:`SpanWriter.submit` returns a future resolved only after COMMIT.
- **Bounded**: the queue holds at most ``max_queue_bytes`` of Arrow data; beyond that
  :class:`QueueFullError` (the receivers answer UNAVAILABLE / 503 so clients retry later).
- **Clean drain**: :meth:`SpanWriter.close` refuses new batches, writes what is queued, checkpoints
  and closes the database.
- **Maintenance** runs on the same thread between two groups (:meth:`SpanWriter.run_exclusive`),
  so it never races a commit. Long maintenance (retention pruning) runs in short steps
  (:meth:`SpanWriter.run_in_steps`): when exports are waiting, a group of them is committed
  between two steps, so acknowledgements keep flowing while it runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from spanreel.collector._query import restrict
from spanreel.collector._schema import JSON_COLUMNS, SPAN_ID_AS_UBIGINT, migrate

__all__ = [
    "PRIVATE_UMASK",
    "DatabaseLockedError",
    "QueueFullError",
    "SpanWriter",
    "WriteResult",
    "WriterClosedError",
    "keep_files_private",
    "open_database",
]


class DatabaseLockedError(RuntimeError):
    """Another process holds the DuckDB file open for writing."""


class QueueFullError(RuntimeError):
    """The writer queue is at its byte limit; retry later."""


class WriterClosedError(RuntimeError):
    """The writer is shutting down and takes no more batches."""


@dataclass(frozen=True)
class WriteResult:
    """Outcome of one submitted batch, known after its transaction committed."""

    #: spans of the batch now durable (newly stored, or already present from an earlier retry)
    committed: int


#: Rows per DuckDB row group in the collector's database (DuckDB's default: 122,880). DuckDB writes
#: a committed group of spans straight to the database file, compressed, once it fills row groups
#: (its "optimistic writes"), and a checkpoint rewrites at most one partly filled row group; with the
#: default size neither happens at the collector's group sizes, so everything went through the WAL
#: and checkpoints (which block commits, hence acknowledgements) took seconds. DuckDB does not keep
#: the size in the file: it is given each time the collector opens the database (ATTACH option).
ROW_GROUP_SIZE: Final = 4096

#: Catalog name the collector's database is attached under (and made the default with ``USE``).
CATALOG: Final = "spanreel"


#: The collector process's umask: the files it creates are its owner's only (0600), DuckDB's WAL
#: included, which DuckDB deletes at each checkpoint and creates again at the next write (so a
#: chmod of it would not last). The database holds every captured prompt and response.
PRIVATE_UMASK: Final = 0o077


def keep_files_private(db_path: Path) -> str | None:
    """Set the process umask to :data:`PRIVATE_UMASK` (for a process that runs the collector; the
    decode workers inherit it); return a warning when the database file exists already and other
    users may read it (made by an earlier release, or by hand: its mode is left as it is)."""
    os.umask(PRIVATE_UMASK)
    try:
        mode = stat.S_IMODE(os.stat(db_path).st_mode)
    except OSError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return (
        f"{db_path} is readable by other users (mode {mode:04o}), and so is every captured prompt in "
        f"it; `chmod 600 {db_path}` unless that is meant (spanreel creates its files 0600)"
    )


def _make_private_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each ``0700`` (readable by the owner only);
    existing folders are left as they are."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            each.mkdir(mode=0o700)


def open_database(path: Path, *, allow_empty: bool = True) -> duckdb.DuckDBPyConnection:
    """Open (creating folders and file as needed) the collector's read-write database and migrate it.

    A folder it creates is ``0700``, a database file it creates ``0600`` (owner only).

    The file is attached as :data:`CATALOG` with :data:`ROW_GROUP_SIZE` rows per row group and made
    the connection's default catalog; :meth:`SpanWriter.cursor` does the same for reader cursors.
    External access (files, network) is disabled once it is attached. Raises
    :class:`DatabaseLockedError` if another process has it open,
    :class:`~spanreel.collector._schema.SchemaError` for a schema from a newer spanreel, and its
    subclass :class:`~spanreel.collector._schema.NotSpanreelDatabaseError`, writing nothing, for a
    file without spanreel's ``schema_migrations`` that holds tables or views (or, with
    ``allow_empty=False``, for any file without it).
    """
    _make_private_folders(path.parent)
    created = not path.exists()
    con = duckdb.connect(":memory:")
    try:
        quoted = str(path).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS {CATALOG} (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
        if created:
            os.chmod(path, 0o600)
    except duckdb.IOException as exc:
        con.close()
        if "lock" in str(exc).lower():
            raise DatabaseLockedError(
                f"the database {path} is in use by another process ({exc}). Stop that process, "
                "or give this collector its own file with --db PATH"
            ) from exc
        raise
    try:
        con.execute(f"USE {CATALOG}")
        restrict(con)
        migrate(con, name=path, allow_empty=allow_empty)
    except BaseException:
        con.close()
        raise
    return con


# The trace_index row of a set of spans (the columns of trace_index, plus ``distinct_spans`` to
# detect a span present twice in the group). Token sums, cost and llm_calls cover the spans of
# the llm_calls view (operation IS NOT NULL).
_AGGREGATE = f"""
SELECT trace_id,
       min(start_time) AS start_time,
       max(end_time) AS end_time,
       arg_min(span_id, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_span_id,
       arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_name,
       coalesce(arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),
                arg_min(service_name, start_time)) AS service_name,
       count(*) AS span_count,
       count(operation) AS llm_calls,
       sum(input_tokens) FILTER (WHERE operation IS NOT NULL) AS input_tokens,
       sum(output_tokens) FILTER (WHERE operation IS NOT NULL) AS output_tokens,
       arg_min(session_id, start_time) FILTER (WHERE session_id IS NOT NULL) AS session_id,
       sum(cost_usd) FILTER (WHERE operation IS NOT NULL) AS cost_usd,
       list({SPAN_ID_AS_UBIGINT.format(column="span_id")}) AS span_ids,
       count(DISTINCT span_id) AS distinct_spans
FROM {{source}}
{{where}}
GROUP BY trace_id
"""

# Traces seen for the first time get their whole row; the others are left alone here.
_INSERT_NEW_TRACES = """
INSERT INTO trace_index BY NAME SELECT * EXCLUDE (distinct_spans) FROM __spanreel_agg
ON CONFLICT (trace_id) DO NOTHING
RETURNING trace_id
"""

# The stored span ids of the traces that were there already. DuckDB reads a table through its
# primary-key index for ON CONFLICT, not for a join (a join scans all of trace_index): a no-op
# update of the conflicting rows is an indexed lookup of them.
_READ_KNOWN_TRACES = """
INSERT INTO trace_index BY NAME SELECT * EXCLUDE (distinct_spans) FROM __spanreel_agg
WHERE trace_id NOT IN (SELECT trace_id FROM __spanreel_new_traces)
ON CONFLICT (trace_id) DO UPDATE SET span_ids = trace_index.span_ids
RETURNING trace_id, span_ids
"""

# The spans of the group whose id their trace does not have yet.
_UNSEEN_SPANS = f"""
SELECT b.* FROM __spanreel_batch b
ANTI JOIN (SELECT trace_id, unnest(span_ids) AS span_key FROM __spanreel_known) k
       ON k.trace_id = b.trace_id AND k.span_key = {SPAN_ID_AS_UBIGINT.format(column="b.span_id")}
"""

# Merge the newly stored spans of known traces into their rows.
_MERGE_KNOWN_TRACES = """
INSERT INTO trace_index BY NAME SELECT * EXCLUDE (distinct_spans) FROM __spanreel_agg
ON CONFLICT (trace_id) DO UPDATE SET
    start_time = least(trace_index.start_time, excluded.start_time),
    end_time = greatest(trace_index.end_time, excluded.end_time),
    root_span_id = coalesce(trace_index.root_span_id, excluded.root_span_id),
    root_name = CASE WHEN trace_index.root_span_id IS NULL THEN excluded.root_name
                     ELSE trace_index.root_name END,
    service_name = CASE WHEN trace_index.root_span_id IS NULL AND excluded.root_span_id IS NOT NULL
                        THEN coalesce(excluded.service_name, trace_index.service_name)
                        ELSE coalesce(trace_index.service_name, excluded.service_name) END,
    span_count = trace_index.span_count + excluded.span_count,
    llm_calls = trace_index.llm_calls + excluded.llm_calls,
    input_tokens = CASE WHEN trace_index.input_tokens IS NULL THEN excluded.input_tokens
                        WHEN excluded.input_tokens IS NULL THEN trace_index.input_tokens
                        ELSE trace_index.input_tokens + excluded.input_tokens END,
    output_tokens = CASE WHEN trace_index.output_tokens IS NULL THEN excluded.output_tokens
                         WHEN excluded.output_tokens IS NULL THEN trace_index.output_tokens
                         ELSE trace_index.output_tokens + excluded.output_tokens END,
    session_id = coalesce(trace_index.session_id, excluded.session_id),
    cost_usd = CASE WHEN trace_index.cost_usd IS NULL THEN excluded.cost_usd
                    WHEN excluded.cost_usd IS NULL THEN trace_index.cost_usd
                    ELSE trace_index.cost_usd + excluded.cost_usd END,
    span_ids = list_concat(trace_index.span_ids, excluded.span_ids)
"""

_INSERT_SPANS = "INSERT INTO spans BY NAME SELECT *, ?::TIMESTAMP AS received_at FROM {source}"

_FIRST_OF_EACH_SPAN = """
SELECT * FROM __spanreel_batch QUALIFY row_number() OVER (PARTITION BY trace_id, span_id) = 1
"""

#: Arrow tables registered on the writer's connection during a write (unregistered after it).
_REGISTERED: Final = (
    "__spanreel_batch",
    "__spanreel_agg",
    "__spanreel_new_traces",
    "__spanreel_known",
    "__spanreel_unseen",
)

_JSON_TYPE = pa.json_(pa.string()) if hasattr(pa, "json_") else None


def _json_typed(table: pa.Table) -> pa.Table:
    """``table`` with its JSON text columns typed ``arrow.json`` (zero-copy), which DuckDB stores
    as JSON without parsing them again."""
    if _JSON_TYPE is None:
        return table
    for i, field in enumerate(table.schema):
        if field.name in JSON_COLUMNS and pa.types.is_string(field.type):
            chunks = [pa.ExtensionArray.from_storage(_JSON_TYPE, c) for c in table.column(i).chunks]
            table = table.set_column(i, field.name, pa.chunked_array(chunks, type=_JSON_TYPE))
    return table


@dataclass
class _Pending:
    table: pa.Table
    traces: pa.Table | None
    future: Future[WriteResult]
    nbytes: int


def _invalidated_text(message: str) -> bool:
    """Whether a DuckDB error says the database was invalidated (it must be attached again)."""
    return "invalidated" in message


def _storage_fault(exc: duckdb.Error) -> bool:
    """Whether a failed write is the storage's fault rather than the batch's: an I/O error, an
    invalidated database, or a COMMIT that could not write its log (DuckDB reports a full disk
    there as a ``TransactionException``: "Failed to commit: Could not write file …")."""
    message = str(exc)
    return (
        isinstance(exc, duckdb.IOException)
        or _invalidated_text(message)
        or "Could not write file" in message
        or "No space left on device" in message
    )


def _group_trace_rows(group: list[_Pending]) -> pa.Table | None:
    """The group's per-trace summary from its batches' own, when they were all given and no trace
    is in two batches (else ``None``: the writer summarises the concatenated spans with SQL)."""
    if any(item.traces is None for item in group):
        return None
    if len(group) == 1:
        return group[0].traces
    traces = pa.concat_tables([item.traces for item in group])
    if pc.count_distinct(traces["trace_id"]).as_py() != traces.num_rows:
        return None
    return traces


class SpanWriter:
    """Owns ``con`` (a read-write connection from :func:`open_database`) on its own thread.

    Thread-safe: :meth:`submit` and :meth:`cursor` may be called from any thread.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        max_queue_bytes: int = 256 * 1024 * 1024,
        max_group_rows: int = 100_000,
        reopen: Callable[[], duckdb.DuckDBPyConnection] | None = None,
    ) -> None:
        self._con = con
        #: opens the database again (:func:`open_database`) after DuckDB invalidated it
        self._reopen = reopen
        #: why the database cannot be written, until a group commits again (``None``: healthy)
        self.error: str | None = None
        self._needs_reattach = False
        # Cursors for readers are made from this handle, never from ``con`` (used by the thread).
        self._cursor_root = con.cursor()
        self._cursor_lock = threading.Lock()
        self._max_queue_bytes = max_queue_bytes
        self._max_group_rows = max_group_rows
        self._pending: deque[_Pending] = deque()
        #: maintenance: (task, its future, whether it runs in steps until it returns True)
        self._tasks: deque[tuple[Callable[[duckdb.DuckDBPyConnection], Any], Future[Any], bool]] = deque()
        #: a task (step) ran last: waiting exports get a group committed before the next one
        self._groups_turn = False
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._closing = False
        #: totals since start, updated by the writer thread (for health / logs)
        self.stored_spans = 0
        self.duplicate_spans = 0
        self._thread = threading.Thread(target=self._run, name="spanreel-duckdb-writer", daemon=True)
        self._thread.start()

    @property
    def queued_bytes(self) -> int:
        """Bytes of Arrow data submitted and not yet committed."""
        with self._cond:
            return self._queued_bytes

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the same database for a reader thread (close it when done)."""
        with self._cursor_lock:
            cursor = self._cursor_root.cursor()
        cursor.execute(f"USE {CATALOG}")
        return cursor

    def submit(self, table: pa.Table, traces: pa.Table | None = None) -> Future[WriteResult]:
        """Queue a :data:`~spanreel.collector._schema.SPANS_SCHEMA` table; the future resolves after COMMIT.

        ``traces`` is the table's per-trace summary from
        :func:`~spanreel.collector._trace_rows.trace_rows`, when the caller computed it (off the
        writer thread, which then need not); without it the writer computes it.

        Raises :class:`QueueFullError` when the queue is at its byte limit (an empty queue always
        accepts one batch, so a large request is never refused forever), :class:`WriterClosedError`
        after :meth:`close`.
        """
        future: Future[WriteResult] = Future()
        if table.num_rows == 0:
            future.set_result(WriteResult(0))
            return future
        nbytes = table.nbytes
        with self._cond:
            if self._closing:
                raise WriterClosedError("the collector is shutting down")
            if self._queued_bytes and self._queued_bytes + nbytes > self._max_queue_bytes:
                raise QueueFullError(
                    f"write queue full ({self._queued_bytes} bytes waiting, limit {self._max_queue_bytes})"
                )
            self._pending.append(_Pending(table, traces, future, nbytes))
            self._queued_bytes += nbytes
            self._cond.notify()
        return future

    def run_exclusive(self, task: Callable[[duckdb.DuckDBPyConnection], Any]) -> Future[Any]:
        """Run ``task(connection)`` on the writer thread between two groups; the future holds its
        result or exception. Raises :class:`WriterClosedError` after :meth:`close`."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closing:
                raise WriterClosedError("the collector is shutting down")
            self._tasks.append((task, future, False))
            self._cond.notify()
        return future

    def run_in_steps(self, step: Callable[[duckdb.DuckDBPyConnection], bool]) -> Future[None]:
        """Call ``step(connection)`` on the writer thread until it returns ``True`` (done), one call
        at a time between two groups: when exports are waiting, a group of them is committed before
        the next call. The future resolves after the last call, or holds the exception a call
        raised (no call follows it). Raises :class:`WriterClosedError` after :meth:`close`; once
        :meth:`close` is called no further step runs and the future holds that error.

        Each step should be one short transaction: exports wait for at most one step."""
        future: Future[None] = Future()
        with self._cond:
            if self._closing:
                raise WriterClosedError("the collector is shutting down")
            self._tasks.append((step, future, True))
            self._cond.notify()
        return future

    def close(self, timeout: float | None = None) -> None:
        """Stop taking batches, write everything queued, checkpoint and close the database."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        with self._cursor_lock:
            self._cursor_root.close()
        self._con.close()

    # -- writer thread -------------------------------------------------------------------------

    def _run_task(self) -> None:
        """Run the first maintenance task (one step of a stepped one, which then goes to the back
        of the queue unless it is done)."""
        with self._cond:
            task, future, stepped = self._tasks.popleft()
        if not stepped:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(task(self._con))
                except BaseException as exc:
                    future.set_exception(exc)
            return
        if not future.running() and not future.set_running_or_notify_cancel():
            return  # cancelled before its first step
        with self._cond:
            closing = self._closing
        if closing:  # a long task must not hold up the shutdown: it stops between two steps
            future.set_exception(WriterClosedError("the collector is shutting down"))
            return
        try:
            done = task(self._con)
        except BaseException as exc:
            future.set_exception(exc)
            return
        if done:
            future.set_result(None)
            return
        with self._cond:
            self._tasks.append((task, future, True))

    def _take_group(self) -> list[_Pending] | None:
        """The next group to write. Maintenance tasks run first, one at a time (a stepped one one
        step at a time), and after each a group of the exports waiting, if any, is written before
        the next. ``None`` once closed and drained."""
        while True:
            with self._cond:
                while not self._pending and not self._tasks and not self._closing:
                    self._cond.wait()
                run_task = bool(self._tasks) and not (self._pending and self._groups_turn)
                self._groups_turn = run_task
            if run_task:
                self._run_task()
                continue
            break
        with self._cond:
            if not self._pending:
                return None
            group = [self._pending.popleft()]
            rows = group[0].table.num_rows
            while self._pending and rows + self._pending[0].table.num_rows <= self._max_group_rows:
                item = self._pending.popleft()
                rows += item.table.num_rows
                group.append(item)
            return group

    def _run(self) -> None:
        while (group := self._take_group()) is not None:
            try:
                self._write_or_reopen(group)
            except Exception as exc:
                if len(group) == 1:
                    group[0].future.set_exception(exc)
                else:
                    # One bad batch must not fail its neighbours: retry each on its own.
                    for item in group:
                        try:
                            self._write([item])
                        except Exception as item_exc:
                            item.future.set_exception(item_exc)
            finally:
                with self._cond:
                    self._queued_bytes -= sum(item.nbytes for item in group)

    def _write_or_reopen(self, group: list[_Pending]) -> None:
        """:meth:`_write`; when DuckDB has invalidated the database (a checkpoint failed on a
        storage fault: every later statement fails until it is attached again), open it again
        and retry once, and again before each later group until that works. ``error`` says why
        the database cannot be written (a storage error), until a group commits."""
        try:
            if self._needs_reattach:
                self._reattach()
            self._write(group)
        except duckdb.Error as exc:
            invalidated = _invalidated_text(str(exc))
            if _storage_fault(exc):
                self.error = f"{type(exc).__name__}: {exc}"
            if self._reopen is None or not invalidated:
                raise
            self._needs_reattach = True
            self._reattach()
            self._write(group)
        self.error = None

    def _reattach(self) -> None:
        assert self._reopen is not None
        with self._cursor_lock:
            for old in (self._cursor_root, self._con):
                with contextlib.suppress(duckdb.Error):
                    old.close()
            try:
                con = self._reopen()
            except Exception as exc:
                self.error = f"cannot open the database again: {type(exc).__name__}: {exc}"
                raise
            self._con, self._cursor_root = con, con.cursor()
            self._needs_reattach = False

    def _write(self, group: list[_Pending]) -> None:
        con = self._con
        tables = [item.table for item in group]
        batch = _json_typed(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
        received_at = datetime.now(UTC).replace(tzinfo=None)
        con.execute("BEGIN TRANSACTION")
        try:
            stored = self._store(con, batch, received_at, _group_trace_rows(group))
            con.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) has ended the transaction already: then ROLLBACK raises
            # "no transaction is active", which must not hide the real error.
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        finally:
            for name in _REGISTERED:
                con.unregister(name)
        for item in group:
            item.future.set_result(WriteResult(item.table.num_rows))
        self.stored_spans += stored
        self.duplicate_spans += batch.num_rows - stored

    @staticmethod
    def _store(
        con: duckdb.DuckDBPyConnection, batch: pa.Table, received_at: datetime, agg: pa.Table | None
    ) -> int:
        """Insert the spans of ``batch`` that are not stored yet and update their traces' rows,
        inside the caller's transaction; return how many spans were inserted. ``agg``: the batch's
        per-trace summary (:data:`~spanreel.collector._trace_rows.TRACE_ROWS_SCHEMA`), or ``None``
        to compute it here."""
        con.register("__spanreel_batch", batch)
        if agg is None:
            agg = con.sql(_AGGREGATE.format(source="__spanreel_batch", where="")).to_arrow_table()
        if not pc.all(pc.equal(agg["span_count"], agg["distinct_spans"])).as_py():
            # The same span twice in the group (a retry queued next to its original): keep one.
            batch = con.sql(_FIRST_OF_EACH_SPAN).to_arrow_table()
            con.unregister("__spanreel_batch")
            con.register("__spanreel_batch", batch)
            agg = con.sql(_AGGREGATE.format(source="__spanreel_batch", where="")).to_arrow_table()
        con.register("__spanreel_agg", agg)
        new_traces = con.sql(_INSERT_NEW_TRACES).to_arrow_table()
        if new_traces.num_rows == agg.num_rows:
            # Every trace is new, so is every span (the common case: no lookup, no filtering).
            con.execute(_INSERT_SPANS.format(source="__spanreel_batch"), [received_at])
            stored: int = batch.num_rows
            return stored
        # Some traces have stored spans already (exported in parts, or a retried export).
        con.register("__spanreel_new_traces", new_traces)
        known = con.sql(_READ_KNOWN_TRACES).to_arrow_table()
        con.register("__spanreel_known", known)
        unseen = con.sql(_UNSEEN_SPANS).to_arrow_table()
        con.register("__spanreel_unseen", unseen)
        if unseen.num_rows:
            merge = con.sql(
                _AGGREGATE.format(
                    source="__spanreel_unseen",
                    where="WHERE trace_id IN (SELECT trace_id FROM __spanreel_known)",
                )
            ).to_arrow_table()
            con.unregister("__spanreel_agg")
            con.register("__spanreel_agg", merge)
            if merge.num_rows:
                con.execute(_MERGE_KNOWN_TRACES)
            con.execute(_INSERT_SPANS.format(source="__spanreel_unseen"), [received_at])
        inserted: int = unseen.num_rows
        return inserted
