"""The DuckDB writer: one thread owns the read-write connection and commits span batches.

- **Group commit**: every batch waiting when the thread wakes (up to ``max_group_rows`` spans) is
  written in ONE transaction by a bulk insert from one Arrow table (never row by row).
- **Duplicates** (retried exports) are ignored: ``INSERT OR IGNORE`` on the (trace_id, span_id)
  primary key; only newly stored spans update ``trace_index``, in the same transaction.
- **Ack after commit**: :meth:`SpanWriter.submit` returns a future resolved only after COMMIT.
- **Bounded**: the queue holds at most ``max_queue_bytes`` of Arrow data; beyond that
  :class:`QueueFullError` (the receivers answer UNAVAILABLE / 503 so clients retry later).
- **Clean drain**: :meth:`SpanWriter.close` refuses new batches, writes what is queued, checkpoints
  and closes the database.
- **Maintenance** (retention pruning) runs on the same thread between two groups
  (:meth:`SpanWriter.run_exclusive`), so it never races a commit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from spanreel.collector._query import DATABASE_CONFIG
from spanreel.collector._schema import migrate

__all__ = [
    "DatabaseLockedError",
    "QueueFullError",
    "SpanWriter",
    "WriteResult",
    "WriterClosedError",
    "open_database",
]


#: WAL size that triggers an automatic checkpoint (DuckDB setting ``checkpoint_threshold``).
CHECKPOINT_THRESHOLD = "512MB"


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


def open_database(path: Path) -> duckdb.DuckDBPyConnection:
    """Open (creating folders and file as needed) the collector's read-write database and migrate it.

    Raises :class:`DatabaseLockedError` if another process has it open,
    :class:`~spanreel.collector._schema.SchemaError` for a schema from a newer spanreel.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), config=DATABASE_CONFIG)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseLockedError(
                f"the database {path} is in use by another process ({exc}). Stop that process, "
                "or give this collector its own file with --db PATH"
            ) from exc
        raise
    try:
        # DuckDB rewrites the table's last (partly filled) row group at every checkpoint; with the
        # default 16 MB WAL threshold that happens every few thousand spans and dominates the cost
        # of ingest. A larger WAL is replayed at the next start after a crash (a few seconds).
        con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con


_INSERT_SPANS = """
INSERT OR IGNORE INTO spans BY NAME
SELECT *, ?::TIMESTAMP AS received_at FROM __spanreel_batch
RETURNING trace_id, span_id, parent_span_id, name, service_name, start_time, end_time, operation,
          input_tokens, output_tokens, session_id
"""

# One row per trace of the newly stored spans, merged into the existing row if any.
# Token sums and llm_calls cover the spans of the llm_calls view (operation IS NOT NULL).
_UPSERT_TRACE_INDEX = """
INSERT INTO trace_index
SELECT trace_id,
       min(start_time),
       max(end_time),
       arg_min(span_id, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL),
       coalesce(arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),
                arg_min(service_name, start_time)),
       count(*),
       count(operation),
       sum(input_tokens) FILTER (WHERE operation IS NOT NULL),
       sum(output_tokens) FILTER (WHERE operation IS NOT NULL),
       arg_min(session_id, start_time) FILTER (WHERE session_id IS NOT NULL)
FROM __spanreel_new
GROUP BY trace_id
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
    session_id = coalesce(trace_index.session_id, excluded.session_id)
"""


@dataclass
class _Pending:
    table: pa.Table
    future: Future[WriteResult]
    nbytes: int


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
    ) -> None:
        self._con = con
        # Cursors for readers are made from this handle, never from ``con`` (used by the thread).
        self._cursor_root = con.cursor()
        self._cursor_lock = threading.Lock()
        self._max_queue_bytes = max_queue_bytes
        self._max_group_rows = max_group_rows
        self._pending: deque[_Pending] = deque()
        self._tasks: deque[tuple[Callable[[duckdb.DuckDBPyConnection], Any], Future[Any]]] = deque()
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
            return self._cursor_root.cursor()

    def submit(self, table: pa.Table) -> Future[WriteResult]:
        """Queue a :data:`~spanreel.collector._schema.SPANS_SCHEMA` table; the future resolves after COMMIT.

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
            self._pending.append(_Pending(table, future, nbytes))
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
            self._tasks.append((task, future))
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

    def _run_tasks(self) -> None:
        while True:
            with self._cond:
                if not self._tasks:
                    return
                task, future = self._tasks.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(task(self._con))
                except BaseException as exc:
                    future.set_exception(exc)

    def _take_group(self) -> list[_Pending] | None:
        """The next group to write; runs maintenance tasks first. ``None`` once closed and drained."""
        while True:
            with self._cond:
                while not self._pending and not self._tasks and not self._closing:
                    self._cond.wait()
                has_tasks = bool(self._tasks)
            if has_tasks:
                self._run_tasks()
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
                self._write(group)
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

    def _write(self, group: list[_Pending]) -> None:
        con = self._con
        tables = [item.table for item in group]
        batch = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        received_at = datetime.now(UTC).replace(tzinfo=None)
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("__spanreel_batch", batch)
            new = con.sql(_INSERT_SPANS, params=[received_at]).to_arrow_table()
            if new.num_rows:
                con.register("__spanreel_new", new)
                con.execute(_UPSERT_TRACE_INDEX)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("__spanreel_batch")
            con.unregister("__spanreel_new")
        for item in group:
            item.future.set_result(WriteResult(item.table.num_rows))
        self.stored_spans += new.num_rows
        self.duplicate_spans += batch.num_rows - new.num_rows
