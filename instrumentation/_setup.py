"""Zero-code set-up behind ``SPANREEL_ENABLED=1`` (run by the ``spanreel-autoinstrument.pth``
start-up hook through :mod:`spanreel._autostart`).

Configuration is the standard OpenTelemetry environment
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):

- resource: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` (``Resource.create()``);
- exporter: ``OTEL_TRACES_EXPORTER`` = ``otlp`` (default), ``console`` or ``none``;
  protocol ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` =
  ``http/protobuf`` (default, ``http://localhost:4318``) or ``grpc`` (``localhost:4317``); the
  exporters read ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT``, ``…_HEADERS``, ``…_TIMEOUT`` themselves.
  Only the chosen exporter module is imported.
- ``OTEL_SDK_DISABLED=true`` turns it all off; content capture:
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (spanreel default: on).

Spans go through a ``BatchSpanProcessor``; the SDK's exit handler flushes them when the process
exits normally. If a global tracer provider is already set it is used as is. A
``BaggageSpanProcessor`` copies ``session.id`` / ``gen_ai.conversation.id`` from baggage onto
every span (see :func:`spanreel.session`).
"""

from __future__ import annotations

import os
import sys
import threading

from opentelemetry import trace

from spanreel._attributes import SESSION_ID

_lock = threading.Lock()
_done = False

#: Baggage keys copied onto every span by the auto-setup's BaggageSpanProcessor.
BAGGAGE_SPAN_KEYS = frozenset({SESSION_ID, "gen_ai.conversation.id"})


class SetupError(Exception):
    """The environment asks for something spanreel cannot set up (the message says what)."""


def _exporter_protocol() -> str:
    value = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    return value.strip().lower()


def _make_exporter() -> object | None:
    """The span exporter the environment asks for, or ``None`` for ``OTEL_TRACES_EXPORTER=none``."""
    names = [
        n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()
    ]
    name = names[0] if names else "otlp"
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise SetupError(f"OTEL_TRACES_EXPORTER={name!r} is not supported (use otlp, console or none)")
    protocol = _exporter_protocol()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise SetupError(
        f"OTLP protocol {protocol!r} is not supported by the Python exporter (use grpc or http/protobuf)"
    )


def configure_tracer_provider() -> trace.TracerProvider:
    """The global tracer provider, creating and registering an SDK one from the environment when
    none is set yet. Raises :class:`SetupError` for unsupported exporter settings."""
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    from opentelemetry.processor.baggage import BaggageSpanProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter = _make_exporter()
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key in BAGGAGE_SPAN_KEYS))
    if exporter is not None:
        assert isinstance(exporter, SpanExporter)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()


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
        provider = configure_tracer_provider()
        from ._instrumentor import Instrumentor

        Instrumentor().instrument(tracer_provider=provider)
    except Exception as exc:
        print(f"spanreel: auto-instrumentation disabled: {exc}", file=sys.stderr)
