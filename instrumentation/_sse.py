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
        """Decode ``chunk``; return the events it completes (possibly none).

        The complete lines are decoded in one go (a newline byte never occurs inside a UTF-8
        sequence, so this equals decoding line by line; invalid bytes become U+FFFD) and the
        common ``data:`` line takes the shortest path."""
        if not chunk:
            return []
        if (
            chunk[-2:] == b"\n\n"
            and chunk[:5] == b"data:"
            and chunk.count(b"\n") == 2
            and chunk[-3:-2] != b"\r"
            and not (self._buffer or self._has_data or self._event)
        ):  # one whole single-line event: what LLM servers send, one per network read
            start = 6 if chunk[5:6] == b" " else 5
            return [SSEEvent("message", chunk[start:-2].decode("utf-8", errors="replace"))]
        buffer = self._buffer + chunk if self._buffer else chunk
        end = buffer.rfind(b"\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 1 :]
        text = buffer[: end + 1].decode("utf-8", errors="replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        events: list[SSEEvent] = []
        if not (self._has_data or self._event):
            # Whole events (a batch of chunks): a single-line ``data:`` event needs no line walk.
            *blocks, text = text.split("\n\n")
            for block in blocks:
                if block[:5] == "data:" and "\n" not in block:
                    events.append(SSEEvent("message", block[6:] if block[5:6] == " " else block[5:]))
                else:
                    self._lines([*block.split("\n"), ""], events)  # "" : the blank line ending it
            if not text:
                return events
        self._lines(text[:-1].split("\n"), events)
        return events

    def _lines(self, lines: list[str], events: list[SSEEvent]) -> None:
        """Process complete lines, appending the events they dispatch to ``events``."""
        data = self._data
        for line in lines:
            if not line:
                if self._has_data:
                    events.append(SSEEvent(self._event or "message", "\n".join(data)))
                    data.clear()
                    self._has_data = False
                self._event = ""
            elif line.startswith("data:"):
                data.append(line[6:] if line.startswith(" ", 5) else line[5:])
                self._has_data = True
            elif line[0] != ":":
                self._field(line)

    def flush(self) -> list[SSEEvent]:
        """End of stream: per the spec an event without its terminating blank line is discarded,
        so this only clears the state and returns ``[]`` (kept for symmetry and future use)."""
        self._buffer = b""
        self._data.clear()
        self._event = ""
        self._has_data = False
        return []

    def _field(self, line: str) -> None:
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
