"""Content capture setting: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``."""

from __future__ import annotations

import os

from spanreel._env import warn_setting

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

#: Values that put content on spans (case-insensitive). ``SPAN_AND_EVENT``: spanreel emits no
#: events, so only the span part applies.
_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})
#: Values that keep content off spans. ``EVENT_ONLY`` asks for content in events only; spanreel
#: emits no events, so no content is recorded at all.
_OFF = frozenset({"false", "0", "no", "off", "no_content", "event_only"})


def content_capture_enabled(value: str | None = None) -> bool:
    """Whether message content (and the exact request body) is recorded on spans.

    ``value`` defaults to the ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` environment
    variable. spanreel's default (unset or empty) is **on**, because a call can only be replayed
    when its request body was recorded. ``true``/``SPAN_ONLY``/``SPAN_AND_EVENT`` → on;
    ``false``/``NO_CONTENT``/``EVENT_ONLY`` → off. An unknown value (``none``, ``disabled``, a
    typo) turns capture **off**, with a warning saying so (:func:`~spanreel._env.warn_setting`):
    whoever set the variable may have meant to keep content out, and a privacy setting must fail
    closed.
    """
    raw = os.environ.get(CAPTURE_ENV) if value is None else value
    if raw is None or not raw.strip():
        return True
    norm = raw.strip().lower()
    if norm in _ON:
        return True
    if norm in _OFF:
        return False
    warn_setting(
        f"spanreel: unknown {CAPTURE_ENV}={raw!r} (true, false, SPAN_ONLY, SPAN_AND_EVENT, NO_CONTENT, "
        "EVENT_ONLY); content capture is off"
    )
    return False
