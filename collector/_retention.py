"""Retention: delete traces that ended before a cutoff (``exporters.duckdb.ttl``, ``spanreel prune``).

Whole traces are deleted, never parts of one: a trace expires when its latest span end
(``trace_index.end_time``) is older than the cutoff, and its spans and its ``trace_index`` row go
in the same transaction, so every query sees either the whole trace or none of it.

The deletion is incremental (:class:`Pruner`): the expired traces go oldest first, in chunks of
at most :data:`CHUNK_TRACES` traces and :data:`CHUNK_SPANS` spans, each chunk its own short
transaction. In the collector every chunk is one step on the writer thread
(:meth:`~spanreel.collector._writer.SpanWriter.run_in_steps`), and the exports queued meanwhile
are committed between two chunks: one transaction over a million expired spans held every
acknowledgement for 37 s, past the exporters' 10 s timeout. A crash between chunks leaves the
chunks committed so far deleted, each whole; the next prune (or ttl pass) deletes the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import duckdb

__all__ = ["CHUNK_SPANS", "CHUNK_TRACES", "PruneResult", "Pruner", "cutoff_ns", "prune"]

#: The most traces one prune transaction deletes.
CHUNK_TRACES: Final = 5000
#: The most spans one prune transaction deletes (a chunk holds at least one trace, whatever its size).
CHUNK_SPANS: Final = 50_000

_COUNT = """
SELECT count(*), coalesce(sum(span_count), 0) FROM trace_index WHERE end_time < make_timestamp_ns(?)
"""
# The next chunk: the oldest expired traces, as many as fit in the span budget (at least one).
_NEXT_CHUNK = """
SELECT trace_id, start_time, end_time FROM (
    SELECT trace_id, start_time, end_time,
           sum(span_count) OVER (ORDER BY end_time, trace_id ROWS UNBOUNDED PRECEDING) AS spans_so_far,
           row_number() OVER (ORDER BY end_time, trace_id) AS n
    FROM (SELECT trace_id, start_time, end_time, span_count FROM trace_index
          WHERE end_time < make_timestamp_ns(?) ORDER BY end_time, trace_id LIMIT ?)
) WHERE n = 1 OR spans_so_far <= ?
"""
# A span starts within its trace's [start_time, end_time] (ingestion refuses end before start), so
# the chunk's time range bounds the scan of spans: zone maps skip every other row group.
_DELETE_SPANS = """
DELETE FROM spans
WHERE start_time BETWEEN (SELECT min(start_time) FROM __spanreel_expired)
                     AND (SELECT max(end_time) FROM __spanreel_expired)
  AND trace_id IN (SELECT trace_id FROM __spanreel_expired)
"""
_DELETE_TRACES = """
DELETE FROM trace_index
WHERE end_time BETWEEN (SELECT min(end_time) FROM __spanreel_expired)
                   AND (SELECT max(end_time) FROM __spanreel_expired)
  AND trace_id IN (SELECT trace_id FROM __spanreel_expired)
"""


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` deleted (or, with ``dry_run``, would delete)."""

    traces: int
    spans: int
    #: the cutoff, nanoseconds since the Unix epoch (UTC): traces that ended before it
    cutoff_unix_nano: int
    dry_run: bool = False


_MIN_NS, _MAX_NS = -(2**63), 2**63 - 1


def cutoff_ns(older_than_s: float, now_s: float | None = None) -> int:
    """``now - older_than_s`` as nanoseconds since the Unix epoch (``now_s`` defaults to the clock),
    clamped to signed 64 bits (span times are ``TIMESTAMP_NS``: 1677–2262), so that a very long
    duration means "everything before 1677" — nothing — instead of a value SQL cannot bind."""
    now = time.time() if now_s is None else now_s
    return max(_MIN_NS, min(_MAX_NS, int((now - older_than_s) * 1_000_000_000)))


def _deleted(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


class Pruner:
    """Deletes the traces that ended before ``cutoff_unix_nano`` one chunk per :meth:`step`
    (oldest first), on a read-write connection; :meth:`result` adds up what the steps deleted.

    With ``dry_run`` the single step counts what would be deleted and deletes nothing.
    """

    def __init__(
        self,
        cutoff_unix_nano: int,
        *,
        dry_run: bool = False,
        chunk_traces: int = CHUNK_TRACES,
        chunk_spans: int = CHUNK_SPANS,
    ) -> None:
        if chunk_traces < 1 or chunk_spans < 1:
            raise ValueError("a prune chunk holds at least one trace and one span")
        self.cutoff_unix_nano = cutoff_unix_nano
        self.dry_run = dry_run
        self.chunk_traces = chunk_traces
        self.chunk_spans = chunk_spans
        self.traces = 0
        self.spans = 0
        #: transactions that deleted something
        self.chunks = 0
        self.done = False

    def step(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Delete the next chunk in one transaction; ``True`` once nothing is left to delete.
        Raises ``duckdb.Error`` (that chunk is rolled back; the earlier ones stay deleted)."""
        if self.done:
            return True
        con.execute("BEGIN TRANSACTION")
        try:
            if self.dry_run:
                row = con.execute(_COUNT, [self.cutoff_unix_nano]).fetchone()
                self.traces, self.spans = (int(row[0]), int(row[1])) if row else (0, 0)
                self.done = True
            else:
                self._delete_chunk(con)
            con.execute("ROLLBACK" if self.dry_run else "COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("__spanreel_expired")
        return self.done

    def _delete_chunk(self, con: duckdb.DuckDBPyConnection) -> None:
        chunk = con.sql(
            _NEXT_CHUNK, params=[self.cutoff_unix_nano, self.chunk_traces, self.chunk_spans]
        ).to_arrow_table()
        if chunk.num_rows == 0:
            self.done = True
            return
        con.register("__spanreel_expired", chunk)
        self.spans += _deleted(con, _DELETE_SPANS)
        self.traces += _deleted(con, _DELETE_TRACES)
        self.chunks += 1

    def result(self) -> PruneResult:
        """The traces and spans deleted so far (with ``dry_run``: that would be deleted)."""
        return PruneResult(
            traces=self.traces, spans=self.spans, cutoff_unix_nano=self.cutoff_unix_nano, dry_run=self.dry_run
        )


def prune(
    con: duckdb.DuckDBPyConnection,
    cutoff_unix_nano: int,
    *,
    dry_run: bool = False,
    chunk_traces: int = CHUNK_TRACES,
    chunk_spans: int = CHUNK_SPANS,
) -> PruneResult:
    """Delete every trace whose spans all ended before ``cutoff_unix_nano`` (ns since the epoch, UTC)
    from ``spans`` and ``trace_index``, chunk by chunk (see :class:`Pruner`), on a read-write
    connection nothing else writes to meanwhile.

    With ``dry_run`` nothing is deleted. Raises ``duckdb.Error`` (the failing chunk is rolled back).
    """
    pruner = Pruner(cutoff_unix_nano, dry_run=dry_run, chunk_traces=chunk_traces, chunk_spans=chunk_spans)
    while not pruner.step(con):
        pass
    return pruner.result()
