"""The OTLP/HTTP body decoder: gzip / deflate / identity chunk by chunk, the decompressed-size
limit, corrupt, truncated and unsupported encodings."""

from __future__ import annotations

import gzip
import zlib

import pytest

from spanreel.collector._http_body import BodyDecoder, BodyTooLarge, MalformedBody, UnsupportedEncoding

DATA = b"".join(b"span %d; " % i for i in range(20_000))


def _decode(encoding: str, body: bytes, limit: int = 10**9, chunk: int = 1000) -> bytes:
    decoder = BodyDecoder(encoding, limit)
    out = b"".join(decoder.feed(body[i : i + chunk]) for i in range(0, len(body), chunk))
    return out + decoder.finish()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(DATA)),
        ("x-gzip", gzip.compress(DATA)),
        (" Gzip ", gzip.compress(DATA)),
        ("deflate", zlib.compress(DATA)),  # zlib-wrapped, what the RFC calls deflate
        ("deflate", zlib.compress(DATA, wbits=-15)),  # raw deflate, as some clients send it
        ("identity", DATA),
        ("", DATA),
    ],
)
def test_round_trip_in_chunks(encoding: str, body: bytes) -> None:
    assert _decode(encoding, body) == DATA
    assert _decode(encoding, body, chunk=1) == DATA


def test_gzip_of_several_members_is_their_concatenation() -> None:
    """RFC 1952 §2.2: a gzip file is a series of members (``cat a.gz b.gz``, streaming
    compressors); it was refused with 'data after the end of the gzip stream'."""
    half = len(DATA) // 2
    body = gzip.compress(DATA[:half]) + gzip.compress(DATA[half:])
    assert _decode("gzip", body) == DATA
    assert _decode("gzip", body, chunk=7) == DATA
    assert _decode("gzip", body, chunk=len(body)) == DATA
    with pytest.raises(BodyTooLarge):  # the limit counts every member
        _decode("gzip", body, limit=len(DATA) - 1, chunk=len(body))


def test_limit_counts_decompressed_bytes() -> None:
    assert _decode("gzip", gzip.compress(DATA), limit=len(DATA)) == DATA
    with pytest.raises(BodyTooLarge):
        _decode("gzip", gzip.compress(DATA), limit=len(DATA) - 1)
    with pytest.raises(BodyTooLarge):
        _decode("identity", DATA, limit=len(DATA) - 1)


def test_bomb_stops_at_the_limit_without_inflating() -> None:
    bomb = gzip.compress(bytes(256 * 1024 * 1024), compresslevel=1)
    decoder = BodyDecoder("gzip", 1024)
    with pytest.raises(BodyTooLarge):
        decoder.feed(bomb)


@pytest.mark.parametrize(
    ("encoding", "body", "match"),
    [
        ("gzip", b"not gzip at all", "not valid gzip"),
        ("gzip", gzip.compress(DATA)[:-20], "truncated"),
        ("gzip", gzip.compress(DATA) + b"trailing", "not valid gzip"),  # not a next member
        ("gzip", gzip.compress(DATA) + gzip.compress(DATA)[:30], "truncated"),
        ("deflate", zlib.compress(DATA) + b"trailing", "after the end"),
        ("deflate", b"\x78\x9c garbage", "not valid deflate"),
    ],
)
def test_corrupt_streams(encoding: str, body: bytes, match: str) -> None:
    with pytest.raises(MalformedBody, match=match):
        _decode(encoding, body, chunk=len(body))


def test_empty_body_with_an_encoding_is_empty() -> None:
    assert _decode("gzip", b"") == b""


@pytest.mark.parametrize("encoding", ["zstd", "snappy", "br", "gzip, zstd", "compress"])
def test_unsupported_encodings(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding, match="gzip, deflate or no encoding"):
        BodyDecoder(encoding, 100)
