"""Incremental Server-Sent Events decoder (pure), per the WHATWG HTML "event stream" format.

Bytes go in as they arrive from the network, in chunks of any size; complete events come out.
Only what LLM APIs use is kept: the ``event`` name and the ``data`` (multi-line data joined with
``\\n``). Comments (``:…``), ``id`` and ``retry`` are ignored. Lines end in ``\\n`` or ``\\r\\n``
(a lone ``\\r`` line ending, allowed by the spec but unused by LLM APIs, is not supported).
"""

from __future__ import annotations

from typing import NamedTuple


class SSEEvent(NamedTuple):
    """One dispatched event: ``event`` (``"message"`` when the stream gave none) and ``data``."""

    event: str
    data: str


class SSEDecoder:
    """Feed bytes with :meth:`feed`; it returns the events completed by that chunk."""

    __slots__ = ("_buffer", "_data", "_event", "_has_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._has_data = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return the events it completes (possibly none)."""
        if not chunk:
            return []
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\n" not in chunk:
            self._buffer = buffer
            return []
        *lines, self._buffer = buffer.split(b"\n")
        events: list[SSEEvent] = []
        for raw in lines:
            event = self._line(raw[:-1] if raw.endswith(b"\r") else raw)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: per the spec an event without its terminating blank line is discarded,
        so this only clears the state and returns ``[]`` (kept for symmetry and future use)."""
        self._buffer = b""
        self._data.clear()
        self._event = ""
        self._has_data = False
        return []

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            if not self._has_data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._data.clear()
            self._event = ""
            self._has_data = False
            return event
        if raw[:1] == b":":
            return None
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        return None
