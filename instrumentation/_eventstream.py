"""AWS event stream bodies (``application/vnd.amazon.eventstream``) → the model events inside.

Amazon Bedrock's ``InvokeModelWithResponseStream`` (``…/model/{modelId}/invoke-with-response-stream``,
what ``AnthropicBedrock`` calls for a stream) frames each model event as one binary event-stream
message: header ``:message-type`` ``event``, ``:event-type`` ``chunk``, payload
``{"bytes": "<base64 of the event's JSON>"}``. A failed stream ends with an ``exception`` message
(``:exception-type`` such as ``throttlingException``, payload ``{"message": …}``). The binary
framing (lengths, headers, CRCs) is decoded by botocore's ``EventStreamBuffer`` — botocore is what
the Bedrock clients sign and decode with; without it these bodies are passed through unparsed.
Source: the AWS event stream encoding as botocore implements it (``botocore/eventstream.py``) and
the Bedrock Runtime API reference (``ResponseStream``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any

from ._http import _optional_module
from ._sse import SSEEvent

__all__ = ["CONTENT_TYPE", "EventStreamDecoder", "make_event_stream_decoder"]

#: The ``Content-Type`` of an AWS event stream response.
CONTENT_TYPE = "application/vnd.amazon.eventstream"


class EventStreamDecoder:
    """Feed raw body bytes with :meth:`feed` (chunks of any size); it returns the model events
    completed by that chunk as :class:`~._sse.SSEEvent` (``message`` events holding the event's
    JSON text; an ``exception`` message becomes an ``error`` event holding Anthropic's error shape,
    ``{"type": "error", "error": {"type", "message"}}``). Raises botocore's parser errors for a
    corrupt frame (bad length or CRC)."""

    __slots__ = ("_buffer",)

    def __init__(self, buffer_class: Any) -> None:
        self._buffer = buffer_class()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return the events it completes (possibly none)."""
        self._buffer.add_data(chunk)
        events: list[SSEEvent] = []
        for message in self._buffer:
            headers = message.headers
            kind = headers.get(":message-type")
            if kind == "event" and headers.get(":event-type") == "chunk":
                data = _chunk_event(message.payload)
                if data is not None:
                    events.append(SSEEvent("message", data))
            elif kind in ("exception", "error"):
                error_type = headers.get(":exception-type") or headers.get(":error-code") or "exception"
                events.append(SSEEvent("error", _error_event(str(error_type), message.payload)))
        return events


def _chunk_event(payload: bytes) -> str | None:
    try:
        encoded = json.loads(payload)["bytes"]
        return base64.b64decode(encoded, validate=True).decode("utf-8", errors="replace")
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def _error_event(error_type: str, payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    error = {"type": error_type, "message": message if isinstance(message, str) else ""}
    return json.dumps({"type": "error", "error": error})


@functools.cache
def _buffer_class() -> Any:
    module = _optional_module("botocore.eventstream")
    return getattr(module, "EventStreamBuffer", None)


def make_event_stream_decoder() -> EventStreamDecoder | None:
    """A decoder for one response body, or ``None`` when botocore is not installed."""
    buffer_class = _buffer_class()
    return None if buffer_class is None else EventStreamDecoder(buffer_class)
