"""Attribute names that spanreel defines itself (everything else comes from the OTel semantic conventions).

GenAI names (``gen_ai.*``), ``server.*``, ``session.id`` and ``error.type`` are imported from
``opentelemetry.semconv`` where they are used; this module only holds the ``spanreel.*``
namespace, documented in README.md ("Recorded attributes"), and which GenAI operations are model
calls.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _semconv_gen_ai
from opentelemetry.semconv._incubating.attributes import user_attributes as _semconv_user

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
#: On a replay's root span: the replay mode, ``"verbatim"`` or ``"cascade"``.
SPANREEL_REPLAY_MODE: Final = "spanreel.replay.mode"
#: On a replay's root span when a whole session was replayed: the original ``session.id``.
SPANREEL_REPLAY_ORIGINAL_SESSION_ID: Final = "spanreel.replay.original_session_id"
#: ``true`` when ``spanreel.request.body`` is not byte for byte what was sent: inline blobs were
#: replaced by placeholders, content was redacted, or the body was truncated.
SPANREEL_REQUEST_BODY_MODIFIED: Final = "spanreel.request.body_modified"
#: The provider's error response body of a failed call (an HTTP status of 400 or more), or the
#: data of the error event that failed a stream answered 200, as received (JSON text), when
#: content capture is on and it is at most ``MAX_ERROR_BODY_BYTES``; the request's
#: credentials are masked in it and the redactor applied. ``spanreel serve-recorded`` answers with it.
SPANREEL_RESPONSE_ERROR_BODY: Final = "spanreel.response.error_body"
#: Error bodies longer than this (bytes) are not recorded (``error.type`` and the status message are).
MAX_ERROR_BODY_BYTES: Final = 16384
#: The call's cost in US dollars (float), from the genai-prices library; absent when the model or
#: its price is unknown, or the response reported no token usage.
SPANREEL_COST_USD: Final = "spanreel.cost.usd"
#: Web searches the provider ran for the call and bills per search (int): Anthropic's
#: ``usage.server_tool_use.web_search_requests``, the Responses API's ``web_search_call`` items.
#: The GenAI conventions have no usage attribute for server tools; the cost includes them.
SPANREEL_USAGE_WEB_SEARCHES: Final = "spanreel.usage.web_searches"
#: Input tokens that were audio (int), part of ``gen_ai.usage.input_tokens``: OpenAI chat's
#: ``usage.prompt_tokens_details.audio_tokens``, Gemini's ``AUDIO`` entries of
#: ``usageMetadata.promptTokensDetails`` (and ``toolUsePromptTokensDetails``). Recorded when the
#: provider reports a count above zero. Billed at their own rate; the GenAI conventions (v1.41) have
#: no per-modality usage attribute.
SPANREEL_USAGE_INPUT_AUDIO_TOKENS: Final = "spanreel.usage.input_audio_tokens"
#: Output tokens that were audio (int), part of ``gen_ai.usage.output_tokens``: OpenAI chat's
#: ``usage.completion_tokens_details.audio_tokens``, Gemini's ``AUDIO`` entry of
#: ``usageMetadata.candidatesTokensDetails``. Recorded when above zero.
SPANREEL_USAGE_OUTPUT_AUDIO_TOKENS: Final = "spanreel.usage.output_audio_tokens"
#: Cached input tokens that were audio (int), part of ``gen_ai.usage.cache_read.input_tokens``
#: and of ``spanreel.usage.input_audio_tokens``: Gemini's ``AUDIO`` entry of
#: ``usageMetadata.cacheTokensDetails``. Recorded when above zero.
SPANREEL_USAGE_CACHE_READ_AUDIO_TOKENS: Final = "spanreel.usage.cache_read_audio_tokens"
#: Input tokens written to a 1-hour cache (int), part of ``gen_ai.usage.cache_creation.input_tokens``
#: (the rest went to the 5-minute cache): Anthropic's ``usage.cache_creation.ephemeral_1h_input_tokens``.
#: Recorded when above zero. Billed at a higher rate than 5-minute writes; the GenAI conventions
#: (v1.41) have no attribute for the split.
SPANREEL_USAGE_CACHE_CREATION_1H_TOKENS: Final = "spanreel.usage.cache_creation_1h_tokens"
#: Names of the content attributes cut to ``SPANREEL_CAPTURE_MAX_BYTES`` (list of strings); each
#: cut value ends with the marker ``…[spanreel: truncated, N bytes]``.
SPANREEL_CONTENT_TRUNCATED: Final = "spanreel.content.truncated"
#: Baggage / attribute key for the session id (same name as the semconv ``session.id``).
SESSION_ID: Final = "session.id"
#: Baggage / attribute key for the end user of a session: the semconv ``user.id``.
USER_ID: Final = _semconv_user.USER_ID
#: Baggage / attribute key for the session's name (``spanreel.session(name)``).
SPANREEL_SESSION_NAME: Final = "spanreel.session.name"
#: Baggage / attribute key for the Helicone-style session path, e.g. ``/debate/round-2``.
SPANREEL_SESSION_PATH: Final = "spanreel.session.path"

#: The ``finish_reason`` of an output message (``gen_ai.output.messages``) whose provider gave none
#: (a stream cut off, failed or abandoned): the GenAI conventions' output message schema requires
#: one, and ``error`` is what opentelemetry-instrumentation-openai-v2 writes then.
#: ``gen_ai.response.finish_reasons`` keeps only what the provider sent.
NO_FINISH_REASON: Final = "error"

#: ``gen_ai.operation.name`` values that are one model call (an LLM call: what the collector's
#: ``llm_calls`` view holds, what replay re-sends, what instrumentations adopt); agent and tool
#: operations (``invoke_agent``, ``create_agent``, ``execute_tool``) are not.
MODEL_CALL_OPERATIONS: Final = frozenset(
    op.value
    for op in (
        _semconv_gen_ai.GenAiOperationNameValues.CHAT,
        _semconv_gen_ai.GenAiOperationNameValues.TEXT_COMPLETION,
        _semconv_gen_ai.GenAiOperationNameValues.GENERATE_CONTENT,
        _semconv_gen_ai.GenAiOperationNameValues.EMBEDDINGS,
    )
)
