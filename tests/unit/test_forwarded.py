"""localrun/forwarded.py: the client's address, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from eventpipe.localrun.forwarded import client_address

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("203.0.113.9", "1.2.3.4", "203.0.113.9", id="untrusted peer: its header is a forgery"),
        pytest.param("10.0.0.5", None, "10.0.0.5", id="trusted peer, no header"),
        pytest.param("10.0.0.5", "198.51.100.7", "198.51.100.7", id="one trusted hop"),
        pytest.param("10.0.0.5", "1.2.3.4, 198.51.100.7", "198.51.100.7", id="client-written entries are ignored"),
        pytest.param("10.0.0.5", "198.51.100.7, 10.1.1.1", "198.51.100.7", id="two trusted hops"),
        pytest.param("10.0.0.5", "10.2.2.2, 10.1.1.1", "10.2.2.2", id="all trusted: the leftmost"),
        pytest.param("10.0.0.5", "nonsense, 10.1.1.1", "10.1.1.1", id="garbage stops the walk"),
        pytest.param("10.0.0.5", "198.51.100.7:4711", "198.51.100.7", id="with a port"),
        pytest.param("2001:db8::1", "[2001:db8:1::5]:443, 2a00::1", "2a00::1", id="IPv6"),
        pytest.param("10.0.0.5", "", "10.0.0.5", id="empty header"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == expected


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.5", "198.51.100.7", ()) == "10.0.0.5"


def test_a_long_header_is_read_only_so_far() -> None:
    forwarded = ", ".join(["10.9.9.9"] * 10_000)
    assert client_address("10.0.0.5", forwarded, TRUSTED) == "10.9.9.9"
