"""`ip`: anonymise `context.ip` and drop the raw address from the event.

    "203.0.113.57"            -> "203.0.113.0"     (IPv4: last octet zeroed, a /24)
    "2001:db8:85a3:8d3::7334" -> "2001:db8:85a3::" (IPv6: last 80 bits zeroed, the /48 kept)
    "::ffff:203.0.113.57"     -> "203.0.113.0"     (IPv4-mapped IPv6 is IPv4)

The prefix still gives network and coarse location, which is what analytics uses, while no longer
naming one subscriber. `event["context"]["ip"]` is deleted, so the curated event never holds the
raw address. (A rejected event is quarantined with its original text; that is the pipeline's
concern, not this enricher's.)
"""

from __future__ import annotations

import re
import socket
import struct
from ipaddress import AddressValueError, IPv6Address
from typing import Any

from eventpipe.core.errors import EnrichmentError

__all__ = ["IpEnricher", "anonymise_ip"]

# A dotted-quad without leading zeros (which `ipaddress` also refuses: "010" is ambiguous, octal
# to some parsers). A match lets the common IPv4 case skip `ipaddress` (~0.3 µs instead of ~2 µs).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_V4_MAPPED = b"\0" * 10 + b"\xff\xff"  # ::ffff:0:0/96


def _prefix48(packed: bytes) -> str:
    """The compressed (RFC 5952) text of the /48 of a 16-byte IPv6 address, host bits zero.

    With the last five groups zero, that zero run is always the longest, so the form is the
    non-zero-trailing part of the first three groups followed by "::".
    """
    groups = [format(group, "x") for group in struct.unpack(">3H", packed[:6])]
    while groups and groups[-1] == "0":
        groups.pop()
    return ":".join(groups) + "::"


def anonymise_ip(address: str) -> str | None:
    """The anonymised form of an IPv4 or IPv6 address string, or None when it is not one."""
    if _IPV4.fullmatch(address) is not None:
        return address[: address.rfind(".")] + ".0"
    if ":" not in address:
        return None
    try:
        # inet_pton is a pure C text-to-bytes conversion (no network): ~0.1 µs where
        # ipaddress.IPv6Address takes ~8 µs. It refuses zone indexes ("fe80::1%eth0"); those
        # take the slow path, and the zone is dropped with the host bits.
        packed = socket.inet_pton(socket.AF_INET6, address)
    except (OSError, ValueError):
        try:
            packed = IPv6Address(address).packed
        except AddressValueError:
            return None
    if packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:15] + b"\0")
    return _prefix48(packed)


class IpEnricher:
    """Writes `enrichment["ip"]` and deletes `event["context"]["ip"]`; an invalid address is an error."""

    __slots__ = ()
    name = "ip"

    def enrich(self, event: dict[str, Any], enrichment: dict[str, Any]) -> None:
        context = event.get("context")
        if context is None:
            return
        if not isinstance(context, dict):
            raise EnrichmentError("context must be an object", "$.context")
        # Popped first, whatever it holds, so the raw value is gone even when we raise below.
        value = context.pop("ip", None)
        if value is None or value == "":
            return
        anonymised = anonymise_ip(value) if isinstance(value, str) else None
        if anonymised is None:
            # The value is not echoed: the message is stored and logged, the raw address must not be.
            raise EnrichmentError("context.ip is not a valid IPv4 or IPv6 address", "$.context.ip")
        enrichment["ip"] = anonymised
