"""SQL for reading one trace's spans from the collector's DuckDB database (docs/internals.md §2).

Shared by ``spanreel show``/``replay`` (replay/_load.py), ``spanreel export`` and the storage
benchmark, so they all read a trace the fast way.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TRACE_SPANS"]

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
