"""The spanreel collector: OTLP receivers (gRPC + HTTP) into DuckDB, and read access to the spans.

Public API:

- :class:`Collector` — run the collector in-process (``async with Collector(config) as c: …``);
  ``spanreel collector`` (:mod:`spanreel.collector._cli`) runs it as a command.
- :class:`CollectorConfig`, :func:`load_collector_config` — settings from ``otel-config.yaml``
  (OpenTelemetry Collector format) and CLI overrides.
- :func:`run_query` → :class:`QueryResult` — read-only SQL over the spans, through the running
  collector's query API or directly from the DuckDB file (docs/internals.md §3);
  errors :class:`QueryError`, :class:`NoDatabaseError`.
- :func:`running_collector` → :class:`CollectorInfo` — the collector serving a database, if any.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spanreel.collector._client import CollectorInfo, run_query, running_collector
from spanreel.collector._config import CollectorConfig, load_collector_config
from spanreel.collector._query import NoDatabaseError, QueryError, QueryResult

if TYPE_CHECKING:
    from spanreel.collector._server import Collector, CollectorStartError

__all__ = [
    "Collector",
    "CollectorConfig",
    "CollectorInfo",
    "CollectorStartError",
    "NoDatabaseError",
    "QueryError",
    "QueryResult",
    "load_collector_config",
    "run_query",
    "running_collector",
]


def __getattr__(name: str) -> Any:
    # The server pulls in grpc and aiohttp; query users (``spanreel sql``) should not pay for them.
    if name in ("Collector", "CollectorStartError"):
        from spanreel.collector import _server

        return getattr(_server, name)
    raise AttributeError(f"module 'spanreel.collector' has no attribute {name!r}")
