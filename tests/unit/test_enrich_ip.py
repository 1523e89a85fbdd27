"""`ip`: anonymisation, and the raw address removed from the event."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest

from eventpipe.core.enrich.ip import IpEnricher, anonymise_ip
from eventpipe.core.errors import EnrichmentError


def enrich(event: dict[str, Any]) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    IpEnricher().enrich(event, enrichment)
    return enrichment


@pytest.mark.parametrize(
    ("raw", "anonymised"),
    [
        ("203.0.113.57", "203.0.113.0"),
        ("10.0.0.255", "10.0.0.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("2001:DB8:0:1::1", "2001:db8::"),
        ("::ffff:203.0.113.57", "203.0.113.0"),
        ("fe80::1%eth0", "fe80::"),
        ("::1", "::"),
    ],
)
def test_anonymised_and_raw_ip_removed(raw: str, anonymised: str) -> None:
    # GIVEN an event with a raw IP
    event = {"context": {"ip": raw, "locale": "en-US"}}
    # WHEN enriched
    enrichment = enrich(event)
    # THEN the anonymised form is written and the raw IP is gone from the event
    assert enrichment == {"ip": anonymised}
    assert event["context"] == {"locale": "en-US"}


@pytest.mark.parametrize("raw", ["999.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4 ", "gibberish", "1::2::3", "12345::", 42])
def test_invalid_ip_is_an_error_and_is_still_removed(raw: object) -> None:
    # GIVEN an event with something that is not an IP address
    event = {"context": {"ip": raw}}
    # WHEN / THEN enriching raises at $.context.ip, without echoing the value
    with pytest.raises(EnrichmentError) as caught:
        enrich(event)
    assert caught.value.path == "$.context.ip"
    assert str(raw) not in str(caught.value)
    # AND the raw value has already left the event
    assert "ip" not in event["context"]


@pytest.mark.parametrize("event", [{}, {"context": {}}, {"context": {"ip": None}}, {"context": {"ip": ""}}])
def test_missing_ip_writes_nothing(event: dict[str, Any]) -> None:
    # GIVEN no IP
    # WHEN / THEN nothing is written and nothing is raised
    assert enrich(event) == {}
    assert "ip" not in event.get("context", {})


def test_ipv6_fast_path_agrees_with_ipaddress() -> None:
    # GIVEN many random IPv6 addresses, in compressed and exploded form, some IPv4-mapped
    rng = random.Random(7)
    for _ in range(2000):
        value = rng.getrandbits(128)
        if rng.random() < 0.2:
            value &= rng.choice([0xFFFF << 112, (1 << 64) - 1, ((1 << 48) - 1) << 80])
        if rng.random() < 0.1:
            value = 0xFFFF_0000_0000 | rng.getrandbits(32)
        address = ipaddress.IPv6Address(value)
        mapped = address.ipv4_mapped
        if mapped is not None:
            expected = str(ipaddress.IPv4Address(int(mapped) & 0xFFFF_FF00))
        else:
            expected = ipaddress.IPv6Address(value & (((1 << 48) - 1) << 80)).compressed
        # WHEN anonymised
        # THEN the result is what ipaddress gives, for both spellings
        assert anonymise_ip(address.compressed) == expected
        assert anonymise_ip(address.exploded) == expected
