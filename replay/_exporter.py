"""Where the replay trace is exported (the OTLP exporter), and noticing when export fails.

Export goes to the collector running on the same DuckDB file (its discovery file
``<db>.collector.json``, OTLP/HTTP endpoint preferred, else gRPC); without one, to the standard
``OTEL_EXPORTER_OTLP_*`` variables (``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` /
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` (default) or ``grpc``) and the SDK defaults.
Export failures never raise: :class:`RecordingExporter` remembers them so the report can warn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["LastError", "RecordingExporter", "make_otlp_exporter", "quiet_exporter_logs"]

#: Export timeout (s) when falling back to the SDK's default endpoint without any configuration.
_FALLBACK_EXPORT_TIMEOUT = 3.0
_OTLP_LOGGERS = ("opentelemetry.exporter", "opentelemetry.sdk.trace.export")


class RecordingExporter(SpanExporter):
    """Wraps the OTLP exporter and remembers whether any batch failed."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self.failed_spans = 0
        self.exported_spans = 0
        self.last_error: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # an exporter must not raise; be safe anyway
            self.last_error = f"{type(exc).__name__}: {exc}"
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported_spans += len(spans)
        else:
            self.failed_spans += len(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class LastError(logging.Handler):
    """Keeps the exporter's last error log line instead of printing a traceback to the user."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or self.message is None:
            self.message = record.getMessage()


@contextmanager
def quiet_exporter_logs() -> Iterator[LastError]:
    handler = LastError()
    saved: list[tuple[logging.Logger, bool]] = []
    for name in _OTLP_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate


def _endpoint_value(info: Any, key: str) -> str | None:
    value = info.get(key) if isinstance(info, Mapping) else getattr(info, key, None)
    return str(value) if value else None


def _running_collector_info(db_path: Path) -> Any:
    """The running collector's :class:`~spanreel.collector.CollectorInfo` for ``db_path``, or ``None``."""
    from spanreel.collector import running_collector

    try:
        return running_collector(db_path)
    except Exception:  # discovery problems must not stop a replay; fall back to OTEL_* variables
        return None


def _with_scheme(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"http://{endpoint}"


def make_otlp_exporter(db_path: Path) -> tuple[SpanExporter, str]:
    """The OTLP exporter for the replay trace and a description of where it sends (see module
    docstring, *Export*)."""
    info = _running_collector_info(db_path)
    if info is not None:
        http_ep = _endpoint_value(info, "http_endpoint")
        if http_ep:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HTTPExporter,
            )

            url = _with_scheme(http_ep).rstrip("/") + "/v1/traces"
            return HTTPExporter(endpoint=url), url
        grpc_ep = _endpoint_value(info, "grpc_endpoint")
        if grpc_ep:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GRPCExporter,
            )

            return GRPCExporter(endpoint=grpc_ep, insecure=True), f"grpc://{grpc_ep}"

    env = os.environ
    configured = any(k in env for k in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))
    timeout_set = any(k in env for k in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"))
    timeout = None if (configured or timeout_set) else _FALLBACK_EXPORT_TIMEOUT
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if (protocol or "http/protobuf").strip() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GRPCExporter,
        )

        return GRPCExporter(timeout=timeout), endpoint or "localhost:4317 (gRPC default)"
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter

    exporter = HTTPExporter(timeout=timeout)
    return exporter, endpoint or "http://localhost:4318/v1/traces (default)"
