"""Attribute names that spanreel defines itself (everything else comes from the OTel semantic conventions).

GenAI names (``gen_ai.*``), ``server.*``, ``session.id`` and ``error.type`` are imported from
``opentelemetry.semconv`` where they are used; this module only holds the ``spanreel.*``
namespace, documented in README.md ("Recorded attributes").
"""

from __future__ import annotations

from typing import Final

#: HTTP method of the recorded LLM request, e.g. ``"POST"``.
SPANREEL_REQUEST_METHOD: Final = "spanreel.request.method"
#: Full request URL as sent, with credential query parameters (``key``, ``api-key``, …) removed.
SPANREEL_REQUEST_URL: Final = "spanreel.request.url"
#: The exact request body as sent (UTF-8 JSON text). Only recorded when content capture is on.
SPANREEL_REQUEST_BODY: Final = "spanreel.request.body"
#: On a replayed span: hex trace id (32 chars) of the original trace.
SPANREEL_REPLAY_ORIGINAL_TRACE_ID: Final = "spanreel.replay.original_trace_id"
#: On a replayed span: hex span id (16 chars) of the original span.
SPANREEL_REPLAY_ORIGINAL_SPAN_ID: Final = "spanreel.replay.original_span_id"
#: Baggage / attribute key for the session id (same name as the semconv ``session.id``).
SESSION_ID: Final = "session.id"
