"""zlib-compressed attributes read back with a bound: what is stored or streamed may be damaged, and
a small item must not expand into gigabytes."""

from __future__ import annotations

import zlib


def inflate(data: bytes, max_bytes: int) -> bytes:
    """`data` decompressed; ValueError when it is not zlib, is cut short or expands past `max_bytes`."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, max_bytes)
    except zlib.error as exc:
        raise ValueError(f"not zlib data: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ValueError(f"expands past {max_bytes} bytes")
    if not inflater.eof:
        raise ValueError("truncated zlib data")
    return text
