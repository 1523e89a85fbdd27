"""`geo`: country, region and city from a MaxMind-format database, looked up before the IP is anonymised.

The database is written here with `mmdb-writer` in the GeoLite2 City layout (and a Country one):
small, made by the test, never downloaded.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from eventpipe.core.enrich import EnrichmentConfig, build_enrichers
from eventpipe.core.enrich.geo import GeoEnricher, open_geo_database, summarise
from eventpipe.core.errors import ConfigError
from eventpipe.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

BERLIN = {
    "country": {"iso_code": "DE", "names": {"en": "Germany"}},
    "subdivisions": [{"iso_code": "BE", "names": {"en": "Land Berlin"}}],
    "city": {"names": {"en": "Berlin"}},
}
PARIS = {"country": {"iso_code": "FR", "names": {"en": "France"}}, "city": {"names": {"en": "Paris"}}}
ONLY_COUNTRY = {"country": {"iso_code": "JP", "names": {"en": "Japan"}}}
V6 = {"country": {"iso_code": "NL"}}


def write_city_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
    writer.insert_network(IPSet(["203.0.113.0/24"]), BERLIN)
    writer.insert_network(IPSet(["198.51.100.0/24"]), PARIS)
    writer.insert_network(IPSet(["192.0.2.0/24"]), ONLY_COUNTRY)
    writer.insert_network(IPSet(["2001:db8::/32"]), V6)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    return write_city_db(tmp_path / "city.mmdb")


def enrichment_of(enrichers: list[Any], event: dict[str, Any]) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    for enricher in enrichers:
        enricher.enrich(event, enrichment)
    return enrichment


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.57", {"country": "DE", "region": "Land Berlin", "city": "Berlin"}),
        ("198.51.100.9", {"country": "FR", "city": "Paris"}),
        ("192.0.2.1", {"country": "JP"}),
        ("2001:db8:85a3::7334", {"country": "NL"}),
        ("::ffff:203.0.113.57", {"country": "DE", "region": "Land Berlin", "city": "Berlin"}),
    ],
)
def test_the_address_is_located_before_it_is_anonymised(city_db: Path, ip: str, expected: dict[str, str]) -> None:
    # GIVEN the whole chain with a database WHEN an event with an address is enriched
    enrichers = build_enrichers(EnrichmentConfig(geoip_db=city_db, enabled=frozenset({"geo", "ip"})))
    event = {"context": {"ip": ip}}
    enrichment = enrichment_of(enrichers, event)
    # THEN it has the location of the full address, and only the anonymised address is left
    assert enrichment["geo"] == expected
    assert "ip" not in event["context"]
    assert enrichment["ip"] != ip


@pytest.mark.parametrize("ip", ["10.1.2.3", None, ""])
def test_an_unknown_or_missing_address_gives_no_geo(city_db: Path, ip: str | None) -> None:
    enricher = GeoEnricher(open_geo_database(city_db))
    enrichment: dict[str, Any] = {}
    enricher.enrich({"context": {"ip": ip}}, enrichment)
    assert "geo" not in enrichment


def test_garbage_is_left_to_the_ip_enricher(city_db: Path) -> None:
    enricher = GeoEnricher(open_geo_database(city_db))
    enrichment: dict[str, Any] = {}
    enricher.enrich({"context": {"ip": "not-an-ip"}}, enrichment)
    assert enrichment == {}


def test_without_a_database_geo_is_off_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="eventpipe"):
        enrichers = build_enrichers(EnrichmentConfig())
    assert "geo" not in [e.name for e in enrichers]
    assert [r.message for r in caplog.records if "geo" in r.message] == [
        "geo enricher off: no GeoIP database (set EVENTPIPE_GEOIP_DB to a GeoLite2 or DB-IP .mmdb file)"
    ]


@pytest.mark.parametrize("content", [None, b"not a maxmind database at all"])
def test_a_missing_or_broken_database_stops_start_up(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "geo.mmdb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match="EVENTPIPE_GEOIP_DB"):
        build_enrichers(EnrichmentConfig(geoip_db=path))


def test_the_setting_names_the_database(city_db: Path) -> None:
    settings = Settings.from_env({"EVENTPIPE_GEOIP_DB": str(city_db)})
    assert settings.enrichment.geoip_db == city_db
    assert replace(settings.enrichment, geoip_db=None).geoip_db is None


@pytest.mark.parametrize(
    "record",
    [None, "text", {}, {"country": "DE"}, {"country": {"names": {}}}, {"subdivisions": "x", "city": 3}],
)
def test_odd_records_give_nothing(record: Any) -> None:
    assert summarise(record) is None


def test_registered_country_stands_in() -> None:
    assert summarise({"registered_country": {"iso_code": "US"}}) == {"country": "US"}
