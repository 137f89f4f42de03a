"""``Instrumentor``: installs the GenAI transport wrappers on httpx and httpx2.

Order matters: opentelemetry-instrumentation-httpx is instrumented first (its wrapper becomes
the inner one) and ours is wrapped around it, so the GenAI span is the parent of the HTTP span.
Its instrumentors are singletons, so a later ``instrument()`` (e.g. by ``opentelemetry-instrument``)
is a no-op and cannot reverse the order.

Libraries are instrumented when imported (wrapt post-import hooks), so enabling spanreel at
interpreter start-up does not import httpx/httpx2 in processes that never use them.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from spanreel import __version__

from ._call import CallSettings, log_once
from ._capture import content_capture_enabled
from ._content import ContentPolicy, Redactor, chain, guarded
from ._context import TRACER_NAME, set_redactor, set_tracer_provider
from ._metrics import GenAIMetrics
from ._processor import deactivate_processors, ensure_processor
from ._setup import metrics_enabled
from ._transport import async_wrapper, sync_wrapper

#: Libraries whose transports are wrapped, with their opentelemetry-instrumentation-httpx class.
LIBRARIES: dict[str, str] = {"httpx": "HTTPXClientInstrumentor", "httpx2": "HTTPX2ClientInstrumentor"}
_HTTP_MODULE = "opentelemetry.instrumentation.httpx"


def _initializing(module_name: str) -> bool:
    """Whether ``module_name`` is being imported right now (in ``sys.modules``, not complete)."""
    module = sys.modules.get(module_name)
    spec = getattr(module, "__spec__", None) if module is not None else None
    return bool(getattr(spec, "_initializing", False))


_TARGETS = (("HTTPTransport", "handle_request", False), ("AsyncHTTPTransport", "handle_async_request", True))


def disabled_instrumentations() -> frozenset[str]:
    """Entry-point names listed in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (comma-separated,
    spaces ignored; ``*`` means all), as ``opentelemetry-instrument`` reads them. spanreel adds no
    HTTP child spans for a library listed there (``httpx``, ``httpx2``); its GenAI spans stay."""
    return frozenset(
        name.strip() for name in os.environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(",")
    )


@dataclass
class _Installed:
    wrappers: list[tuple[type, str, Any]]  # (class, method name, our wrapper object)
    enabled_http_instrumentor: bool


class _State:
    """Process-wide state shared by all ``Instrumentor`` instances (it is a singleton anyway)."""

    def __init__(self) -> None:
        self.tracer: Tracer | None = None
        self.capture_content = True
        self.tracer_provider: TracerProvider | None = None
        self.http_spans = True
        self.settings: CallSettings | None = None
        self.installed: dict[str, _Installed] = {}
        self.hooks: set[str] = set()
        self._lock = threading.Lock()
        self._pending = False
        #: opentelemetry-instrumentation-httpx has run to its end (its post-import hook fired; the
        #: import system still calls it initialising until the hooks return)
        self._http_module_done = False
        #: The span processor still waits for an SDK tracer provider (see :meth:`call_settings`).
        self.processor_missing = False

    def call_settings(self) -> CallSettings | None:
        """What the transport wrappers record calls with (``None`` when not active)."""
        settings = self.settings
        if self.processor_missing and settings is not None:
            self._attach_processor(settings.policy.redactor)
        return settings

    def _attach_processor(self, redactor: Callable[[str], str] | None) -> None:
        """Add the span processor to the global tracer provider, if it is an SDK one by now
        (``instrument()`` may run before the app sets its provider: then each call tries again,
        before it starts its spans)."""
        if ensure_processor(trace.get_tracer_provider(), redactor) is not None:
            self.processor_missing = False

    # -- activation ------------------------------------------------------------------------------

    def activate(
        self,
        tracer_provider: TracerProvider | None,
        capture_content: bool,
        *,
        policy: ContentPolicy | None = None,
        metrics: GenAIMetrics | None = None,
        http_spans: bool = True,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.capture_content = capture_content
        self.http_spans = http_spans
        set_tracer_provider(tracer_provider)
        self.tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
        policy = policy or ContentPolicy()
        set_redactor(policy.redactor)
        self.processor_missing = False
        if ensure_processor(tracer_provider or trace.get_tracer_provider(), policy.redactor) is None:
            self.processor_missing = tracer_provider is None  # the app may set its provider later
            log_once(
                "processor",
                "spanreel: no OpenTelemetry SDK tracer provider to add its span processor to yet; "
                "it is added at the first LLM call after the app sets one (until then session "
                "baggage is not copied onto other instrumentations' spans and their URLs are not "
                "cleaned)",
            )
        self.settings = CallSettings(self.tracer, capture_content, policy, metrics)
        # opentelemetry-instrumentation-httpx too, before anything imports it: an app importing it
        # first imports httpx from inside it, and spanreel must install once it is complete (a
        # hook registered while a module is still initialising fires at once, too early).
        for name in (*LIBRARIES, _HTTP_MODULE) if http_spans else LIBRARIES:
            if name in sys.modules:
                continue
            if name not in self.hooks:
                self.hooks.add(name)
                wrapt.register_post_import_hook(self._on_import, name)
        self.process()

    def deactivate(self) -> None:
        with self._lock:
            self.tracer = None
            self.settings = None
            for name, installed in list(self.installed.items()):
                self._uninstall(name, installed)
            self.installed.clear()
        deactivate_processors()
        set_tracer_provider(None)
        set_redactor(None)

    def _on_import(self, module: ModuleType) -> None:
        try:
            if getattr(module, "__name__", None) == _HTTP_MODULE:
                self._http_module_done = True
            self.process()
        except Exception:  # never break the application's import
            log_once("hook", "spanreel: could not instrument %s", getattr(module, "__name__", module))

    def process(self) -> None:
        """Install on every imported, not yet instrumented library. Re-entrant (an import made
        while installing triggers hooks) and non-blocking across threads (the lock holder
        picks up work flagged by others), so it cannot deadlock with the import system."""
        self._pending = True
        while self._pending:
            if not self._lock.acquire(blocking=False):
                return
            try:
                while self._pending:
                    self._pending = False
                    if self.tracer is None:
                        continue
                    if self.http_spans and not self._http_module_done and _initializing(_HTTP_MODULE):
                        # httpx/httpx2 imported by opentelemetry-instrumentation-httpx itself, e.g.
                        # when opentelemetry-instrument loads it after spanreel: install once it
                        # is complete, so its wrapper stays inside ours.
                        if _HTTP_MODULE not in self.hooks:
                            self.hooks.add(_HTTP_MODULE)
                            wrapt.register_post_import_hook(self._on_import, _HTTP_MODULE)
                        continue
                    for name in LIBRARIES:
                        if name in sys.modules and name not in self.installed:
                            self._install(name)
            finally:
                self._lock.release()

    # -- per library -----------------------------------------------------------------------------

    def _install(self, name: str) -> None:
        lib = sys.modules[name]
        try:
            http_module = importlib.import_module(_HTTP_MODULE)
            http_instrumentor = getattr(http_module, LIBRARIES[name])()
            enabled = False
            disabled = disabled_instrumentations()
            wanted = self.http_spans and name not in disabled and "*" not in disabled
            if wanted and not http_instrumentor.is_instrumented_by_opentelemetry:
                # Its spans' URLs are cleaned of credentials by SpanreelProcessor (see _processor).
                http_instrumentor.instrument(tracer_provider=self.tracer_provider)
                enabled = http_instrumentor.is_instrumented_by_opentelemetry
            elif http_instrumentor.is_instrumented_by_opentelemetry and self.tracer_provider is not None:
                # The app instrumented httpx itself, most likely on the global provider, while
                # spanreel records on another: the processor must see those HTTP spans too.
                settings = self.settings
                ensure_processor(trace.get_tracer_provider(), settings.policy.redactor if settings else None)
        except Exception:
            log_once(f"http:{name}", "spanreel: opentelemetry-instrumentation-httpx unavailable for %s", name)
            enabled = False
        wrappers: list[tuple[type, str, Any]] = []
        try:
            for cls_name, method, is_async in _TARGETS:
                cls = getattr(lib, cls_name)
                fn = async_wrapper if is_async else sync_wrapper
                wrapper = functools.partial(fn, settings=self, lib=lib)
                wrapt.wrap_function_wrapper(cls, method, wrapper)
                wrappers.append((cls, method, wrapper))
        except Exception:
            log_once(f"wrap:{name}", "spanreel: could not wrap the %s transport", name)
        self.installed[name] = _Installed(wrappers, enabled)

    @staticmethod
    def _uninstall(name: str, installed: _Installed) -> None:
        for cls, method, wrapper in installed.wrappers:
            current = cls.__dict__.get(method)
            if (
                isinstance(current, wrapt.FunctionWrapper)
                and getattr(current, "_self_wrapper", None) is wrapper
            ):
                setattr(cls, method, current.__wrapped__)
            else:
                log_once(f"unwrap:{name}", "spanreel: %s.%s was re-wrapped by someone else", cls, method)
        if installed.enabled_http_instrumentor:
            try:
                http_module = importlib.import_module(_HTTP_MODULE)
                getattr(http_module, LIBRARIES[name])().uninstrument()
            except Exception:
                log_once(f"uninstrument:{name}", "spanreel: could not uninstrument httpx for %s", name)


_STATE = _State()


class Instrumentor(BaseInstrumentor):  # type: ignore[misc]
    """OpenTelemetry instrumentor for LLM calls over httpx / httpx2 (entry point ``spanreel`` in
    ``opentelemetry_instrumentor``, so ``opentelemetry-instrument`` loads it too).

    ``Instrumentor().instrument(**options)``, every option optional:

    - ``tracer_provider`` — default: the global one;
    - ``capture_content`` (``bool``) — overrides ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
      (spanreel's default: on; see :func:`content_capture_enabled`);
    - ``redact`` (``str -> str``) — applied to every captured string after the built-in
      ``SPANREEL_REDACT`` patterns and the ``SPANREEL_REDACT_HOOK`` function;
    - ``max_content_bytes`` (``int``, 0 = no cap) and ``capture_blobs`` (``bool``) — override
      ``SPANREEL_CAPTURE_MAX_BYTES`` / ``SPANREEL_CAPTURE_BLOBS`` (see :mod:`._content`);
    - ``meter_provider`` / ``metrics`` (``bool``) — GenAI client metrics (``gen_ai.client.token.usage``,
      ``gen_ai.client.operation.duration``) are recorded when ``metrics=True`` (on the given or
      the global meter provider), when a ``meter_provider`` is given, or, with neither option
      (as under ``opentelemetry-instrument``), when ``SPANREEL_METRICS`` is true (global provider);
    - ``http_spans`` (``bool``, default ``True``) — also instrument the HTTP client spans with
      opentelemetry-instrumentation-httpx unless that was already done; a library named in
      ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (``httpx``, ``httpx2``, or ``*``) gets none either
      way (see :func:`disabled_instrumentations`);
    - ``content_policy`` (:class:`ContentPolicy`) — used instead of reading the ``SPANREEL_*``
      content settings from the environment (the ``redact``/``max_content_bytes``/``capture_blobs``
      options still apply on top).

    A malformed ``SPANREEL_CAPTURE_MAX_BYTES`` / ``SPANREEL_REDACT`` / ``SPANREEL_REDACT_HOOK``
    value (or a missing redaction hook module) is reported in one line on stderr and nothing is
    instrumented; it is not raised, because under ``opentelemetry-instrument`` that would stop
    every instrumentor loaded after this one.
    ``uninstrument()`` removes the wrappers and the HTTP instrumentation if spanreel enabled it.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        # httpx and httpx2 are both optional: whichever is imported gets instrumented.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        capture = kwargs.get("capture_content")
        try:
            # content_policy: the environment's, read by autostart already (the hook imported once)
            policy = kwargs.get("content_policy") or ContentPolicy.from_env()
        except (ValueError, ImportError) as exc:
            # Reported, not raised: under opentelemetry-instrument an exception here would stop
            # every instrumentor loaded after this one.
            print(f"spanreel: not instrumenting: {exc}", file=sys.stderr)
            return
        user_redact: Redactor | None = kwargs.get("redact")
        max_bytes = kwargs.get("max_content_bytes")
        blobs = kwargs.get("capture_blobs")
        policy = ContentPolicy(
            max_bytes=policy.max_bytes if max_bytes is None else int(max_bytes),
            keep_blobs=policy.keep_blobs if blobs is None else bool(blobs),
            redactor=chain(policy.redactor, guarded(user_redact, "redact=") if user_redact else None),
        )
        meter_provider: MeterProvider | None = kwargs.get("meter_provider")
        wanted = kwargs.get("metrics")
        if wanted is None:  # opentelemetry-instrument passes no options: the environment decides
            wanted = meter_provider is not None or metrics_enabled()
        metrics = GenAIMetrics(meter_provider) if wanted else None
        _STATE.activate(
            kwargs.get("tracer_provider"),
            content_capture_enabled() if capture is None else bool(capture),
            policy=policy,
            metrics=metrics,
            http_spans=bool(kwargs.get("http_spans", True)),
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        _STATE.deactivate()
