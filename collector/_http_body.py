"""Undo an OTLP/HTTP request's ``Content-Encoding`` chunk by chunk, with a limit on the
decompressed size (so a gzip bomb is refused after at most ``limit`` bytes of output). Pure.

OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#otlphttp-request) lets clients compress the
body with ``gzip`` (one member or several, RFC 1952 §2.2); ``deflate`` (zlib stream, or raw
deflate as some clients send it) and ``identity`` are accepted too. Anything else is
:class:`UnsupportedEncoding` (the receiver answers 415), rather than being read as uncompressed
bytes.
"""

from __future__ import annotations

import zlib
from typing import Final

__all__ = ["SUPPORTED_ENCODINGS", "BodyDecoder", "BodyTooLarge", "MalformedBody", "UnsupportedEncoding"]

#: ``Content-Encoding`` values accepted (lower case; empty means none).
SUPPORTED_ENCODINGS: Final = ("gzip", "x-gzip", "deflate", "identity", "")


class UnsupportedEncoding(ValueError):
    """The ``Content-Encoding`` is not one of :data:`SUPPORTED_ENCODINGS`."""


class BodyTooLarge(ValueError):
    """The decompressed body would exceed the limit."""


class MalformedBody(ValueError):
    """The body is not valid for its ``Content-Encoding`` (corrupt or truncated stream)."""


class BodyDecoder:
    """``BodyDecoder(content_encoding, limit)``; :meth:`feed` each raw chunk (returns decoded
    bytes), then :meth:`finish`. ``limit``: the most decoded bytes allowed, in total.

    Raises :class:`UnsupportedEncoding` (constructor), :class:`BodyTooLarge`, :class:`MalformedBody`.
    """

    def __init__(self, content_encoding: str, limit: int) -> None:
        encoding = content_encoding.strip().lower()
        if encoding not in SUPPORTED_ENCODINGS:
            raise UnsupportedEncoding(
                f"unsupported Content-Encoding {content_encoding!r}: send gzip, deflate or no encoding"
            )
        self._encoding = encoding
        self._limit = limit
        self._size = 0
        self._z: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._started = False

    def feed(self, chunk: bytes) -> bytes:
        """Decoded bytes for ``chunk`` (possibly empty)."""
        if not chunk:
            return b""
        if self._encoding == "deflate" and not self._started:
            # zlib-wrapped (RFC 1950, what "deflate" means) unless the first byte says raw deflate.
            wbits = zlib.MAX_WBITS if chunk[0] & 0x0F == 8 else -zlib.MAX_WBITS
            self._z = zlib.decompressobj(wbits=wbits)
        self._started = True
        if self._z is None:
            return self._count(chunk)
        out: list[bytes] = []
        data = chunk
        while data:
            if self._z.eof:
                if self._encoding == "deflate":
                    raise MalformedBody("data after the end of the deflate stream")
                # gzip is a series of members (RFC 1952 §2.2): the next one starts here.
                self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            try:
                piece = self._z.decompress(data, self._limit - self._size + 1)
            except zlib.error as exc:
                raise MalformedBody(f"the body is not valid {self._encoding} data: {exc}") from None
            if self._z.unconsumed_tail:
                raise BodyTooLarge(f"decompressed body exceeds {self._limit} bytes")
            out.append(self._count(piece))
            data = self._z.unused_data
        return b"".join(out)

    def finish(self) -> bytes:
        """The decoded rest; raises :class:`MalformedBody` for a truncated stream."""
        if self._z is None or not self._started:
            return b""
        if not self._z.eof:
            raise MalformedBody(f"the {self._encoding} stream is truncated")
        return self._count(self._z.flush())

    def _count(self, data: bytes) -> bytes:
        self._size += len(data)
        if self._size > self._limit:
            raise BodyTooLarge(f"body exceeds {self._limit} bytes")
        return data
