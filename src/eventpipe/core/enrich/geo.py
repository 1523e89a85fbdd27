"""`geo`: country, region and city of `context.ip`, from a MaxMind-format database.

    enrichment["geo"] = {"country": "DE", "region": "Berlin", "city": "Berlin"}

The database is GeoLite2 or DB-IP Lite (City or Country, `.mmdb`), named by `EVENTPIPE_GEOIP_DB` and
read with the `maxminddb` package (its C extension when installed, memory-mapped). It runs before the
`ip` enricher, which removes the raw address: the lookup needs the whole address, the store must never
keep it. `region` and `city` are written only where the database has them (a Country database has
neither). An address the database does not know, or that is not an address, gives no `geo` (the `ip`
enricher rejects the latter).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from eventpipe.core.enrich.base import context_str
from eventpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["GeoDatabase", "GeoEnricher", "open_geo_database"]

CACHE_SIZE = 8192  # visitors come back: one lookup per address, not per event
LANGUAGE = "en"
# On AWS the database is copied from S3 to the function's /tmp (512 MiB by default) at cold start; a City
# database is 60 (GeoLite2) to 130 MB (DB-IP Lite), a Country one under 10.
MAX_GEOIP_DB_BYTES = 256 * 1024 * 1024


class GeoDatabase(Protocol):
    def get(self, ip_address: str) -> Any: ...


def open_geo_database(path: Path) -> GeoDatabase:
    """The database at `path`; ConfigError when it is missing or not a MaxMind DB."""
    import maxminddb  # only where a database is configured

    try:
        reader: GeoDatabase = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(f"EVENTPIPE_GEOIP_DB={path}: not a readable MaxMind DB (.mmdb) file: {exc}") from None
    return reader


def _name(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    names = record.get("names")
    if isinstance(names, dict) and isinstance(names.get(LANGUAGE), str):
        return str(names[LANGUAGE])
    code = record.get("iso_code")
    return code if isinstance(code, str) else None


def summarise(record: Any) -> dict[str, str] | None:
    """`{"country", "region"?, "city"?}` of a GeoLite2 / DB-IP record, or None without a country."""
    if not isinstance(record, dict):
        return None
    country = record.get("country") or record.get("registered_country")
    code = country.get("iso_code") if isinstance(country, dict) else None
    if not isinstance(code, str):
        return None
    geo = {"country": code}
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and (region := _name(subdivisions[0])):
        geo["region"] = region
    if city := _name(record.get("city")):
        geo["city"] = city
    return geo


def _unmapped(address: str) -> str:
    """`::ffff:203.0.113.57` -> `203.0.113.57`: databases do not all alias the IPv4-mapped range."""
    if ":" in address and "." in address:
        try:
            mapped = ipaddress.IPv6Address(address).ipv4_mapped
        except ValueError:
            return address
        if mapped is not None:
            return str(mapped)
    return address


class GeoEnricher:
    """Writes `enrichment["geo"]` (a fresh dict per event) when `context.ip` is in the database."""

    __slots__ = ("_lookup",)
    name = "geo"

    def __init__(self, database: GeoDatabase) -> None:
        @lru_cache(maxsize=CACHE_SIZE)
        def lookup(address: str) -> tuple[tuple[str, str], ...] | None:
            try:
                geo = summarise(database.get(_unmapped(address)))
            except ValueError:  # not an address: the ip enricher says so
                return None
            return tuple(geo.items()) if geo else None

        self._lookup = lookup

    def enrich(self, event: dict[str, Any], enrichment: dict[str, Any]) -> None:
        address = context_str(event, "ip")
        if address is None:
            return
        geo = self._lookup(address.strip())
        if geo is not None:
            enrichment["geo"] = dict(geo)
