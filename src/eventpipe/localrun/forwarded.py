"""The client's address behind `eventpipe up`: the peer, or what trusted proxies say it is.

`X-Forwarded-For` is a list any client can write; only the entries appended by proxies we trust
(`EVENTPIPE_TRUSTED_PROXIES`) are worth anything. So the list is read from the right, each hop
trusted only while the address that handed it over is a trusted proxy: the first address that
is not one is the client. A peer that is not a trusted proxy is the client, whatever it forwards.

    peer 10.0.0.5 (trusted), X-Forwarded-For: 1.2.3.4, 198.51.100.7  ->  198.51.100.7
    peer 203.0.113.9 (not trusted), X-Forwarded-For: 1.2.3.4         ->  203.0.113.9
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["client_address"]

MAX_HOPS = 32  # a longer list is read only this far from the right


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address to attribute the request to (see the module's docstring)."""
    if not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    client = peer
    for entry in reversed(forwarded_for.split(",")[-MAX_HOPS:]):
        address = _address(entry)
        if address is None:  # garbage in the list: believe nothing further left
            return client
        client = address
        if not _is_trusted(address, trusted):
            return address
    return client


def _address(text: str) -> str | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
