"""Export request bytes → an Arrow batch for the writer, computed off the event loop.

:func:`prepare_batch` is the pure pipeline (decode → normalise, LLM calls' messages and cost →
Arrow, and the per-trace summary the writer needs). :class:`DecodePool` runs
it where it does not block the receivers: requests of at least ``process_threshold`` bytes go to a
pool of worker processes (so decoding uses every core instead of contending for one GIL), smaller
ones to a thread (a round trip to a process costs more than decoding a handful of spans).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from spanreel.collector._decode import decode_request
from spanreel.collector._normalise import (
    GENAI_COLUMNS,
    normalise_cost,
    normalise_messages,
    normalise_row,
)
from spanreel.collector._schema import rows_to_arrow
from spanreel.collector._trace_rows import trace_rows

__all__ = [
    "DecodePool",
    "PreparedBatch",
    "add_llm_content",
    "default_decode_workers",
    "derive_genai_columns",
    "prepare_batch",
]

#: Requests smaller than this (decompressed bytes) are decoded in a thread of the collector process.
DEFAULT_PROCESS_THRESHOLD: Final = 64 * 1024


@dataclass(frozen=True)
class PreparedBatch:
    """One decoded export request."""

    #: the valid spans as a :data:`~spanreel.collector._schema.SPANS_SCHEMA` table
    table: pa.Table
    #: their per-trace summary (:data:`~spanreel.collector._trace_rows.TRACE_ROWS_SCHEMA`), for the writer
    traces: pa.Table
    #: spans dropped as invalid (OTLP ``partial_success.rejected_spans``)
    rejected_spans: int
    #: why they were dropped, and warnings about spans stored without their GenAI columns;
    #: ``""`` when there is nothing to say (OTLP ``partial_success.error_message``)
    error_message: str

    def __reduce__(self) -> tuple[Any, ...]:
        # Back from a decode worker process as Arrow IPC streams: ~15x cheaper to pickle than
        # the tables themselves (pyarrow pickles them buffer by buffer).
        return (
            _from_ipc,
            (_to_ipc(self.table), _to_ipc(self.traces), self.rejected_spans, self.error_message),
        )


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _from_ipc(table: bytes, traces: bytes, rejected_spans: int, error_message: str) -> PreparedBatch:
    return PreparedBatch(
        pa.ipc.open_stream(table).read_all(),
        pa.ipc.open_stream(traces).read_all(),
        rejected_spans,
        error_message,
    )


def prepare_batch(payload: bytes, json_encoded: bool) -> PreparedBatch:
    """Decode one ``ExportTraceServiceRequest`` (OTLP/JSON when ``json_encoded``, else protobuf),
    derive the GenAI columns, build the Arrow batch and its per-trace summary. Pure.

    A span whose GenAI columns cannot be derived is still stored (attributes unchanged, those
    columns NULL) and named in ``error_message``: a warning with ``rejected_spans`` 0, as the OTLP
    partial-success rules allow. Raises :class:`~spanreel.collector._decode.DecodeError` for a
    payload that cannot be parsed.
    """
    result = decode_request(payload, json_encoded=json_encoded)
    warnings = derive_genai_columns(result.rows)
    table = rows_to_arrow(result.rows)
    message = "; ".join(filter(None, (result.error_message, _summarise(warnings))))
    return PreparedBatch(table, trace_rows(table), result.rejected_spans, message)


#: Underived spans named one by one in ``error_message`` (the rest are counted).
_MAX_WARNINGS: Final = 5

#: The columns :func:`derive_genai_columns` fills.
_DERIVED_COLUMNS: Final = (*GENAI_COLUMNS, "input_messages", "output_messages", "cost_usd")


def derive_genai_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Fill the GenAI columns of each decoded span row in place: :data:`GENAI_COLUMNS` by
    :func:`~spanreel.collector._normalise.normalise_row`, then (for LLM calls) ``input_messages``,
    ``output_messages`` and ``cost_usd`` by :func:`add_llm_content`.

    Never raises for a span's content: a row whose derivation fails (a peer's attribute shaped in
    a way no normaliser expects) gets ``None`` in every derived column and is kept. Returns one
    description per such row (span name, hex trace and span ids, the error)."""
    warnings: list[str] = []
    for row in rows:
        try:
            _add_llm_content(normalise_row(row))
        except Exception as exc:  # one odd span must not fail its whole request
            for column in _DERIVED_COLUMNS:
                row[column] = None
            warnings.append(
                f"span {row['name']!r} (trace {row['trace_id']}, span {row['span_id']}): "
                f"stored without GenAI columns ({type(exc).__name__}: {exc})"
            )
    return warnings


def _summarise(warnings: list[str]) -> str:
    if not warnings:
        return ""
    more = len(warnings) - _MAX_WARNINGS
    suffix = f"; and {more} more" if more > 0 else ""
    return "; ".join(warnings[:_MAX_WARNINGS]) + suffix


def add_llm_content(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``input_messages``, ``output_messages`` (JSON text) and ``cost_usd`` (USD) of the
    normalised rows that are LLM calls (``operation`` set), in place, from
    :func:`~spanreel.collector._normalise.normalise_messages` and
    :func:`~spanreel.collector._normalise.normalise_cost`; other rows get ``None``. Returns ``rows``."""
    for row in rows:
        _add_llm_content(row)
    return rows


def _add_llm_content(row: dict[str, Any]) -> None:
    if row["operation"] is None:
        row["input_messages"] = row["output_messages"] = row["cost_usd"] = None
    else:
        attributes = row["attributes"]
        row["input_messages"], row["output_messages"] = normalise_messages(attributes)
        row["cost_usd"] = normalise_cost(attributes)


def default_decode_workers() -> int:
    """Worker processes used by default: one per CPU (at most 4); 0 (threads only) on one CPU."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cpus < 2 else min(cpus, 4)


def _worker_init() -> None:
    # Ctrl-C in a terminal signals the whole process group: the collector itself drains and stops
    # the pool; a worker must not die with a KeyboardInterrupt traceback first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # If the collector is killed (SIGKILL, OOM killer) nobody shuts the pool down: follow it.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), name="parent-watch", daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)


class DecodePool:
    """Runs :func:`prepare_batch` off the event loop (see the module docstring).

    ``workers`` is the number of worker processes (0: decode in threads only). Processes are
    spawned (never forked: the collector has running threads) on first use.
    """

    def __init__(self, workers: int, *, process_threshold: int = DEFAULT_PROCESS_THRESHOLD) -> None:
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spanreel-decode")
        self._processes: ProcessPoolExecutor | None = None
        self._workers = workers
        if workers > 0:
            self._processes = self._new_process_pool()
        self._threshold = process_threshold

    def _new_process_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
        )

    async def prepare(self, payload: bytes, json_encoded: bool) -> PreparedBatch:
        """:func:`prepare_batch` in a worker; raises what it raises."""
        loop = asyncio.get_running_loop()
        executor: Executor = self._threads
        if self._processes is not None and len(payload) >= self._threshold:
            executor = self._processes
        try:
            return await loop.run_in_executor(executor, prepare_batch, payload, json_encoded)
        except BrokenProcessPool:
            # A worker died (the OOM killer, say): decode this one here, replace the pool, keep serving.
            if executor is self._processes:
                executor.shutdown(wait=False, cancel_futures=True)
                self._processes = self._new_process_pool()
            return await loop.run_in_executor(self._threads, prepare_batch, payload, json_encoded)

    def shutdown(self) -> None:
        """Wait for running decodes, then stop the threads and worker processes."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
