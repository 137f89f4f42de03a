"""Amazon Bedrock's streamed answer, encoded: an AWS event stream of ``chunk`` events (pure).

``InvokeModelWithResponseStream`` answers with ``application/vnd.amazon.eventstream``: binary
messages, each a prelude (total length, headers length, CRC32), string headers
(``:message-type: event``, ``:event-type: chunk``, ``:content-type: application/json``), a
payload and a CRC32 of the whole message. A chunk's payload is ``{"bytes": base64(event JSON)}``,
the event being an Anthropic Messages stream event. Sources: the event stream encoding as
botocore decodes it (``botocore/eventstream.py``) and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModelWithResponseStream.html
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = ["bedrock_chunk", "event_stream_message"]

_STRING_HEADER = 7
_CHUNK_HEADERS = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}


def event_stream_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event stream message with string ``headers`` (names < 256 bytes, values < 64 KiB) and
    ``payload``."""
    encoded = b"".join(
        bytes([len(name.encode())]) + name.encode() + bytes([_STRING_HEADER])
        + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )  # fmt: skip
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def bedrock_chunk(event: Mapping[str, Any]) -> bytes:
    """The ``chunk`` message carrying one stream ``event`` (a JSON object), as Bedrock sends it."""
    inner = base64.b64encode(json.dumps(event, ensure_ascii=False).encode()).decode("ascii")
    return event_stream_message(_CHUNK_HEADERS, json.dumps({"bytes": inner}).encode())
