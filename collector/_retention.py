"""Retention: delete traces that ended before a cutoff (``exporters.duckdb.ttl``, ``spanreel prune``).

Whole traces are deleted, never parts of one: a trace expires when its latest span end
(``trace_index.end_time``) is older than the cutoff, and its spans and its ``trace_index`` row go
in one transaction, so every query sees either the whole trace or none of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

__all__ = ["PruneResult", "cutoff_ns", "prune"]

_COUNT = """
SELECT count(*), coalesce(sum(span_count), 0) FROM trace_index WHERE end_time < make_timestamp_ns(?)
"""
_EXPIRED = "CREATE OR REPLACE TEMP TABLE __spanreel_expired AS " + (
    "SELECT trace_id FROM trace_index WHERE end_time < make_timestamp_ns(?)"
)


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


def prune(con: duckdb.DuckDBPyConnection, cutoff_unix_nano: int, *, dry_run: bool = False) -> PruneResult:
    """Delete every trace whose spans all ended before ``cutoff_unix_nano`` (ns since the epoch, UTC)
    from ``spans`` and ``trace_index``, in one transaction, on a read-write connection.

    With ``dry_run`` nothing is deleted. Raises ``duckdb.Error`` (the transaction is rolled back).
    """
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(_COUNT, [cutoff_unix_nano]).fetchone()
        traces, spans = (int(row[0]), int(row[1])) if row else (0, 0)
        if traces and not dry_run:
            con.execute(_EXPIRED, [cutoff_unix_nano])
            con.execute("DELETE FROM spans WHERE trace_id IN (SELECT trace_id FROM __spanreel_expired)")
            con.execute("DELETE FROM trace_index WHERE trace_id IN (SELECT trace_id FROM __spanreel_expired)")
            con.execute("DROP TABLE __spanreel_expired")
        con.execute("ROLLBACK" if dry_run else "COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return PruneResult(traces=traces, spans=spans, cutoff_unix_nano=cutoff_unix_nano, dry_run=dry_run)
