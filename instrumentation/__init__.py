"""spanreel.instrumentation: one OpenTelemetry GenAI span per LLM HTTP call, recorded at the
httpx / httpx2 transport so any SDK built on them (``openai`` 3.x and ``anthropic`` on httpx2,
older SDKs on httpx, raw clients) is covered without code changes.

Use it with ``SPANREEL_ENABLED=1 python app.py`` (start-up hook, configured from the standard
``OTEL_*`` variables, see :mod:`spanreel.instrumentation._setup`), through
``opentelemetry-instrument`` (entry point ``spanreel``), or explicitly::

    from spanreel.instrumentation import Instrumentor
    Instrumentor().instrument(tracer_provider=provider)

Span contract (docs/internals.md §1): name ``{operation} {model}``, kind CLIENT, scope ``spanreel``;
``gen_ai.*`` request/response/usage attributes per the OpenTelemetry GenAI semantic
conventions; ``spanreel.request.method`` / ``.url`` (credential query parameters removed) /
``.body`` (exact JSON sent); the opentelemetry-instrumentation-httpx HTTP span is its child; the
span covers the whole response body, streamed or not. HTTP status ≥ 400 → status ERROR with
``error.type`` (the provider's error code, else the status code); a transport exception → ERROR
with ``error.type`` = the exception class name, re-raised unchanged. Headers are never recorded.

Content capture — ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``: **spanreel's default is
ON** (unlike the OpenTelemetry default), because a call can only be replayed if its request body
was recorded. ``true``/``SPAN_ONLY``/``SPAN_AND_EVENT`` → on; ``false``/``NO_CONTENT``/
``EVENT_ONLY`` → off: then ``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.tool.definitions`` and ``spanreel.request.body`` are not recorded and the call
**cannot be replayed**.

Recognised APIs (see :mod:`._apis`): OpenAI chat completions, Responses, legacy completions and
embeddings at any OpenAI-compatible base URL, Azure OpenAI deployments, Anthropic Messages and
Gemini ``generateContent`` / ``streamGenerateContent``; every other request passes through
untouched. Content shaping and redaction: :mod:`._content`; cost: :mod:`._cost`; metrics:
:mod:`._metrics`; coexistence with other GenAI instrumentations (one span per call):
:mod:`._call`.
Telemetry never breaks the app: failures inside spanreel are logged once at debug level
(logger ``spanreel.instrumentation``) and the call proceeds uninstrumented.
"""

from __future__ import annotations

from ._capture import CAPTURE_ENV, content_capture_enabled
from ._content import ContentPolicy
from ._context import Session, current_replay, replay_of, session
from ._http import provider_for_host, sanitize_url
from ._instrumentor import Instrumentor
from ._openai import ChatStreamAccumulator, extract_output_text, input_messages, response_attributes
from ._sse import SSEDecoder, SSEEvent

__all__ = [
    "CAPTURE_ENV",
    "ChatStreamAccumulator",
    "ContentPolicy",
    "Instrumentor",
    "SSEDecoder",
    "SSEEvent",
    "Session",
    "content_capture_enabled",
    "current_replay",
    "extract_output_text",
    "input_messages",
    "provider_for_host",
    "replay_of",
    "response_attributes",
    "sanitize_url",
    "session",
]
