"""Zero-code set-up behind ``SPANREEL_ENABLED=1`` (run by the ``spanreel-autoinstrument.pth``
start-up hook through :mod:`spanreel._autostart`).

Configuration is the standard OpenTelemetry environment
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):

- resource: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` (``Resource.create()``);
- exporters: ``OTEL_TRACES_EXPORTER`` = a comma-separated list of ``otlp`` (default),
  ``otlp_proto_grpc``, ``otlp_proto_http``, ``console``, ``none`` or other installed
  ``opentelemetry_traces_exporter`` entry points;
  protocol ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` =
  ``http/protobuf`` (default, ``http://localhost:4318``) or ``grpc`` (``localhost:4317``); the
  exporters read ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT``, ``…_HEADERS``, ``…_TIMEOUT`` themselves.
  Only the chosen exporter module is imported.
- ``OTEL_SDK_DISABLED=true`` turns it all off; content capture:
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (spanreel default: on); content shaping
  and redaction: ``SPANREEL_CAPTURE_MAX_BYTES``, ``SPANREEL_CAPTURE_BLOBS``, ``SPANREEL_REDACT``,
  ``SPANREEL_REDACT_HOOK`` (see :mod:`._content`).
- GenAI metrics are opt-in: ``SPANREEL_METRICS=true`` sets up a ``MeterProvider`` (unless a
  global one is set) whose exporter follows ``OTEL_METRICS_EXPORTER`` (``otlp`` default,
  ``console``, ``none``), ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``,
  ``OTEL_EXPORTER_OTLP[_METRICS]_ENDPOINT`` and ``OTEL_METRIC_EXPORT_INTERVAL`` (ms).

Spans go through a ``BatchSpanProcessor``; the SDK's exit handler flushes them when the process
exits normally, and a forked ``multiprocessing`` child flushes them when it exits. If a global
tracer provider is already set it is used as is. The instrumentor adds its
:class:`~spanreel.instrumentation._processor.SpanreelProcessor` (session baggage onto every
span, see :func:`spanreel.session`; credentials out of span URLs) to either.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from spanreel._env import env_flag

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

_lock = threading.Lock()
_done = False
_fork_flush = False


class SetupError(Exception):
    """The environment asks for something spanreel cannot set up (the message says what)."""


METRICS_ENV = "SPANREEL_METRICS"


def _exporter_protocol(signal: str = "TRACES") -> str:
    value = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    return value.strip().lower()


def metrics_enabled() -> bool:
    """Whether ``SPANREEL_METRICS`` asks for the GenAI metrics."""
    return env_flag(METRICS_ENV)


def _make_metric_exporters() -> list[object]:
    """The metric exporters ``OTEL_METRICS_EXPORTER`` asks for (none for ``none``)."""

    def console() -> object:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()

    def grpc() -> object:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()

    def http() -> object:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()

    return _select_exporters("METRICS", console, grpc, http)


def _select_exporters(
    signal: str, console: Callable[[], object], grpc: Callable[[], object], http: Callable[[], object]
) -> list[object]:
    """The exporters ``OTEL_{signal}_EXPORTER`` lists (comma-separated, as the OTel specification
    says; ``otlp`` by default): ``otlp`` (by the protocol variables), ``otlp_proto_grpc``,
    ``otlp_proto_http``, ``console``; ``none`` adds none; any other name is looked up in the
    ``opentelemetry_{signal}_exporter`` entry points, as ``opentelemetry-instrument`` does. Only
    the chosen exporters are imported. Raises :class:`SetupError` for an unknown name or protocol."""
    variable = f"OTEL_{signal}_EXPORTER"
    names = [n.strip().lower() for n in os.environ.get(variable, "otlp").split(",") if n.strip()]
    exporters: list[object] = []
    for name in dict.fromkeys(names or ["otlp"]):
        if name == "none":
            continue
        if name == "otlp":
            protocol = _exporter_protocol(signal)
            if protocol not in ("grpc", "http/protobuf"):
                raise SetupError(
                    f"OTLP protocol {protocol!r} is not supported by the Python exporter "
                    "(use grpc or http/protobuf)"
                )
            name = "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
        known = {"console": console, "otlp_proto_grpc": grpc, "otlp_proto_http": http}.get(name)
        exporters.append(known() if known is not None else _entry_point_exporter(variable, signal, name))
    return exporters


def _entry_point_exporter(variable: str, signal: str, name: str) -> object:
    from importlib.metadata import entry_points

    group = f"opentelemetry_{signal.lower()}_exporter"
    found = entry_points(group=group, name=name)
    if not found:
        raise SetupError(
            f"{variable}: no exporter named {name!r} (otlp, otlp_proto_grpc, otlp_proto_http, console, "
            f"none, or an installed {group} entry point)"
        )
    exporter_class = next(iter(found)).load()
    return exporter_class()


def configure_meter_provider() -> MeterProvider | None:
    """The global meter provider, creating and registering an SDK one from the environment when
    none is set yet; ``None`` for ``OTEL_METRICS_EXPORTER=none``. Raises :class:`SetupError`."""
    from opentelemetry import metrics
    from opentelemetry.metrics import _internal as metrics_internal

    current = metrics.get_meter_provider()
    if not isinstance(current, metrics_internal._ProxyMeterProvider):
        return current
    exporters = _make_metric_exporters()
    if not exporters:
        return None
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    readers = []
    for exporter in exporters:
        assert isinstance(exporter, MetricExporter)
        readers.append(PeriodicExportingMetricReader(exporter))
    provider = SdkMeterProvider(resource=Resource.create(), metric_readers=readers)
    metrics.set_meter_provider(provider)
    return metrics.get_meter_provider()


def _make_exporters() -> list[object]:
    """The span exporters the environment asks for (none for ``OTEL_TRACES_EXPORTER=none``)."""

    def console() -> object:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()

    def grpc() -> object:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()

    def http() -> object:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()

    return _select_exporters("TRACES", console, grpc, http)


def configure_tracer_provider() -> trace.TracerProvider:
    """The global tracer provider, creating and registering an SDK one from the environment when
    none is set yet. Raises :class:`SetupError` for unsupported exporter settings."""
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporters = _make_exporters()
    provider = TracerProvider(resource=Resource.create())
    for exporter in exporters:
        assert isinstance(exporter, SpanExporter)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=lambda: _flush_in_multiprocessing_children(provider))
    return trace.get_tracer_provider()


def _flush_in_multiprocessing_children(provider: trace.TracerProvider) -> None:
    """Before a fork: once ``multiprocessing`` is in use, make its forked children (``fork``,
    ``forkserver``; ``Pool`` workers that are closed and joined) flush the spans when they exit.
    Such a child ends with ``os._exit``, so the SDK's ``atexit`` flush never runs there;
    ``multiprocessing``'s exit finalizers do (registered after its fork clean-up, which clears
    any registered before)."""
    global _fork_flush
    mp_util = sys.modules.get("multiprocessing.util")
    if _fork_flush or mp_util is None or not hasattr(provider, "force_flush"):
        return
    _fork_flush = True

    def in_child(tracer_provider: Any) -> None:
        mp_util.Finalize(None, tracer_provider.force_flush, exitpriority=100)

    with contextlib.suppress(Exception):  # telemetry never breaks the app
        mp_util.register_after_fork(provider, in_child)


def autostart() -> None:
    """Configure the SDK from the environment and instrument httpx/httpx2. Idempotent.

    Never raises: a failure is reported as one line on stderr and the program continues
    uninstrumented. Does nothing when ``OTEL_SDK_DISABLED`` is ``true``.
    """
    global _done
    with _lock:
        if _done:
            return
        _done = True
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    try:
        from ._content import ContentPolicy

        try:
            policy = ContentPolicy.from_env()
        except (ValueError, ImportError) as exc:
            # Before any provider is set: an app running uninstrumented keeps the global tracer
            # provider its own to set (a provider set here could not be replaced by the app's).
            print(f"spanreel: not instrumenting: {exc}", file=sys.stderr)
            return
        provider = configure_tracer_provider()
        meter_provider = configure_meter_provider() if metrics_enabled() else None
        from ._instrumentor import Instrumentor

        Instrumentor().instrument(
            tracer_provider=provider, meter_provider=meter_provider, content_policy=policy
        )
    except Exception as exc:
        print(f"spanreel: auto-instrumentation disabled: {exc}", file=sys.stderr)
