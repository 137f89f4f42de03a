"""Stand-ins that mask a request's credentials out of the error text a span records (pure
OpenTelemetry API use: ``record_exception`` and ``set_status`` replaced on the span instance).

A transport error quotes the header it refused (an API key read with a trailing newline); a
provider's error message quotes the key it refused ("Incorrect API key provided: sk-…"). Another
instrumentation records that text on its own span (opentelemetry-instrumentation-httpx's HTTP
span, the GenAI span spanreel adopts from openai-v2): these stand-ins mask it first.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import Attributes

from ._http import mask_credentials, masked_exception

__all__ = ["UNMASKABLE", "mask_error_text"]

#: What is recorded instead of text whose credentials could not be masked.
UNMASKABLE: Final = "[spanreel: text not recorded: its credentials could not be masked]"


#: How many proxies deep :func:`_span_itself` looks for the span a proxy wraps.
_MAX_PROXY_DEPTH: Final = 8


def mask_error_text(span: Any, credentials: Callable[[], list[str]]) -> None:
    """Mask ``credentials()`` (the request's, longest first; called only when there is text)
    out of the exception and status text ``span`` (an SDK span, or a proxy of one) records from now
    on. ``credentials`` must not refer to ``span`` (the span holds it: a reference cycle, left to
    the garbage collector)."""
    target = _span_itself(span)
    if target is None:
        return
    # Stand-ins on the instance, holding the span weakly: a span referring to itself would be a
    # reference cycle too.
    try:
        own, ref = vars(target), weakref.ref(target)
    except TypeError:  # no instance dict: nothing it records is ours to mask
        return
    own["record_exception"] = functools.partial(_record_exception, credentials, ref)
    own["set_status"] = functools.partial(_set_status, credentials, ref)


def _span_itself(span: Any) -> trace.Span | None:
    """The span whose class implements ``record_exception`` / ``set_status``: ``span`` itself, or
    the one a proxy (a ``wrapt.ObjectProxy``, e.g. OpenInference's ``OpenInferenceSpan``) wraps.

    The stand-ins go on that span's instance dict and call its class's methods. A proxy's
    ``vars()`` is the wrapped span's dict and its type lacks those methods: stand-ins holding the
    proxy raised ``AttributeError`` on every call, which OpenInference swallows, so its span lost
    its status and exception event. (A proxy forwards both calls to the span it wraps, so they
    still pass through the stand-ins.) ``None`` when no span is found."""
    for _ in range(_MAX_PROXY_DEPTH):
        # issubclass of the real type: a proxy passes isinstance (it reports the wrapped __class__)
        if issubclass(type(span), trace.Span):
            return span  # type: ignore[no-any-return]
        span = getattr(span, "__wrapped__", None)
        if span is None:
            return None
    return None


def _record_exception(
    credentials: Callable[[], list[str]],
    ref: weakref.ref[trace.Span],
    exception: BaseException,
    attributes: Attributes = None,
    timestamp: int | None = None,
    escaped: bool = False,
) -> None:
    span = ref()
    if span is None:
        return
    try:
        masked = masked_exception(exception, credentials())
    except Exception:  # fail closed: no text rather than a key
        masked = {EXCEPTION_MESSAGE: UNMASKABLE, EXCEPTION_STACKTRACE: UNMASKABLE}
    if masked:
        attributes = {**(attributes or {}), **masked}
    type(span).record_exception(span, exception, attributes, timestamp, escaped)


def _set_status(
    credentials: Callable[[], list[str]],
    ref: weakref.ref[trace.Span],
    status: Any,
    description: str | None = None,
) -> None:
    span = ref()
    if span is None:
        return
    try:
        has_text = isinstance(status, Status) and status.description
        if has_text or description:  # (every call sets a status: credentials only for text)
            found = credentials()
            if has_text:
                status = Status(status.status_code, mask_credentials(status.description, found))
            if description:
                description = mask_credentials(description, found)
    except Exception:  # fail closed
        status, description = Status(StatusCode.ERROR, UNMASKABLE), None
    type(span).set_status(span, status, description)
