"""The enrichment chain as a whole: configuration, `build_enrichers`, rates files, and one full event."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from eventpipe.core.enrich import (
    ALL_ENRICHERS,
    ENRICHER_ORDER,
    EnrichmentConfig,
    build_enrichers,
    default_rates,
    load_rates,
)
from eventpipe.core.errors import ConfigError

KEY = b"0123456789abcdef0123456789abcdef"

SAMPLE: dict[str, Any] = {
    "event_id": "7f0c3a4e-1f7e-4b8e-9a55-2e0f6f9d1c11",
    "event_type": "purchase",
    "schema_version": "1-0-0",
    "occurred_at": "2026-11-28T06:00:00.123Z",
    "sent_at": "2026-11-28T06:00:01.000Z",
    "received_at": "2026-11-28T06:00:01.250Z",
    "user_id": "u-123",
    "anonymous_id": "a-77",
    "session_id": "s-9",
    "context": {
        "ip": "203.0.113.57",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "page_url": "https://shop.example/p/1?utm_source=news&utm_medium=email&utm_campaign=bf",
        "referrer": "https://www.google.com/",
        "locale": "en-US",
    },
    "properties": {
        "order_id": "o-1",
        "revenue": 59.90,
        "currency": "USD",
        "items": [{"product_id": "p-1", "quantity": 1, "price": 59.90}],
    },
}


def run_chain(config: EnrichmentConfig, event: dict[str, Any]) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    for enricher in build_enrichers(config):
        enricher.enrich(event, enrichment)
    return enrichment


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "rates.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


# --- build_enrichers -----------------------------------------------------------------------------


def test_default_config_builds_all_in_fixed_order_geo_only_with_a_database() -> None:
    # GIVEN the default configuration (no GeoIP database)
    # WHEN the chain is built
    enrichers = build_enrichers(EnrichmentConfig())
    # THEN every enricher but geo is there, in the documented order
    assert [e.name for e in enrichers] == [name for name in ENRICHER_ORDER if name != "geo"]
    assert frozenset(ENRICHER_ORDER) == ALL_ENRICHERS
    assert len(ALL_ENRICHERS) == 9


def test_enabled_subset_keeps_the_fixed_order() -> None:
    # GIVEN a subset named out of order
    config = EnrichmentConfig(enabled=frozenset({"fingerprint", "ip", "timestamps"}))
    # WHEN the chain is built
    names = [e.name for e in build_enrichers(config)]
    # THEN only those run, in the fixed order
    assert names == ["timestamps", "ip", "fingerprint"]


def test_unknown_enricher_name_is_a_config_error() -> None:
    # GIVEN a typo in the enabled names
    config = EnrichmentConfig(enabled=frozenset({"timestamps", "geoip"}))
    # WHEN / THEN building names the unknown one
    with pytest.raises(ConfigError, match="geoip"):
        build_enrichers(config)


def test_pseudonymise_fields_without_key_is_a_config_error() -> None:
    # GIVEN fields to pseudonymise but no key
    config = EnrichmentConfig(pseudonymise_fields=("user_id",))
    # WHEN / THEN building refuses
    with pytest.raises(ConfigError, match="key"):
        build_enrichers(config)


def test_pseudonymise_fields_with_the_enricher_disabled_is_a_config_error() -> None:
    # GIVEN fields to pseudonymise while the pseudonymise enricher is switched off
    config = EnrichmentConfig(
        enabled=ALL_ENRICHERS - {"pseudonymise"}, pseudonymise_fields=("user_id",), pseudonym_key=KEY
    )
    # WHEN / THEN building refuses rather than storing the fields in clear
    with pytest.raises(ConfigError, match="disabled"):
        build_enrichers(config)


@pytest.mark.parametrize("path", ["", "context..email", ".user_id", "event_id", "occurred_at"])
def test_bad_pseudonymise_path_is_a_config_error(path: str) -> None:
    # GIVEN a malformed path, or one the pipeline needs in clear
    config = EnrichmentConfig(pseudonymise_fields=(path,), pseudonym_key=KEY)
    # WHEN / THEN building refuses
    with pytest.raises(ConfigError, match="pseudonymise field"):
        build_enrichers(config)


@pytest.mark.parametrize("base", ["XYZ", "usd", "EURO"])
def test_unknown_or_malformed_base_currency_is_a_config_error(base: str) -> None:
    # GIVEN a base currency that is not in the rates, or is not an ISO code
    config = EnrichmentConfig(base_currency=base)
    # WHEN / THEN building refuses, naming it
    with pytest.raises(ConfigError, match=base):
        build_enrichers(config)


def test_bad_rate_in_config_is_a_config_error() -> None:
    # GIVEN rates passed in directly with a negative rate
    config = EnrichmentConfig(rates={"EUR": 1.0, "USD": -1.0})
    # WHEN / THEN building refuses
    with pytest.raises(ConfigError, match="positive"):
        build_enrichers(config)


def test_config_repr_hides_the_key() -> None:
    # GIVEN a config holding a secret key
    config = EnrichmentConfig(pseudonymise_fields=("user_id",), pseudonym_key=KEY)
    # WHEN it is printed (as logs would)
    text = repr(config)
    # THEN the key does not appear
    assert KEY.decode() not in text


# --- the whole chain -----------------------------------------------------------------------------


def test_full_chain_on_the_architecture_sample() -> None:
    # GIVEN the sample envelope, with user_id pseudonymised
    event = copy.deepcopy(SAMPLE)
    config = EnrichmentConfig(pseudonymise_fields=("user_id",), pseudonym_key=KEY)
    # WHEN every enricher runs
    enrichment = run_chain(config, event)
    # THEN each has written its part
    assert enrichment["corrected_at"] == "2026-11-28T06:00:00.373Z"
    assert enrichment["clock_skew_ms"] == 250
    assert enrichment["user_agent"]["browser"] == "Chrome"
    assert enrichment["campaign"] == {"source": "news", "medium": "email", "name": "bf"}
    assert enrichment["referrer"] == {"host": "google.com", "medium": "search"}
    assert enrichment["ip"] == "203.0.113.0"
    assert enrichment["pseudonymised"] == ["user_id"]
    assert enrichment["revenue"] == {"amount": round(59.90 / default_rates()["USD"], 4), "currency": "EUR"}
    assert len(enrichment["fingerprint"]) == 32
    # AND the event no longer holds the raw IP or the clear user id, and stays JSON-serialisable
    assert "ip" not in event["context"]
    assert event["user_id"] != "u-123"
    json.dumps(enrichment)


def test_minimal_event_gets_only_what_needs_no_optional_input() -> None:
    # GIVEN an event with only the required fields
    event = {
        "event_id": "e-1",
        "event_type": "signup",
        "occurred_at": "2026-11-28T06:00:00Z",
        "received_at": "2026-11-28T06:00:01.000Z",
        "properties": {"method": "email"},
    }
    # WHEN every enricher runs
    enrichment = run_chain(EnrichmentConfig(), event)
    # THEN only the timestamps and the fingerprint are written
    assert set(enrichment) == {"corrected_at", "clock_skew_ms", "event_time_ms", "fingerprint"}


# --- rates files ---------------------------------------------------------------------------------


def test_bundled_rates_file_is_valid_and_eur_based() -> None:
    # GIVEN the rates file shipped with the package
    path = Path(__file__).resolve().parents[2] / "src" / "eventpipe" / "data" / "currency_rates.json"
    # WHEN it is loaded
    base, rates = load_rates(path)
    # THEN it is EUR-based, dated, and holds the common currencies
    assert base == "EUR"
    assert rates["EUR"] == 1.0
    assert {"USD", "GBP", "JPY", "CHF"} <= rates.keys()
    assert len(rates) >= 30
    assert "as_of" in json.loads(path.read_text(encoding="utf-8"))
    assert dict(default_rates()) == rates


def test_default_rates_are_read_only() -> None:
    # GIVEN the shared default rates
    rates = default_rates()
    # WHEN a caller tries to change them
    # THEN it cannot
    with pytest.raises(TypeError):
        rates["USD"] = 2.0  # type: ignore[index]


def test_load_rates_adds_the_base_at_one(tmp_path: Path) -> None:
    # GIVEN a file that does not list its own base
    path = write(tmp_path, '{"base": "USD", "rates": {"EUR": 0.92}}')
    # WHEN it is loaded
    base, rates = load_rates(path)
    # THEN the base is there at 1.0
    assert (base, rates) == ("USD", {"EUR": 0.92, "USD": 1.0})


def test_usd_base_rebases_the_eur_file() -> None:
    # GIVEN the EUR-based default rates and a USD base currency
    config = EnrichmentConfig(base_currency="USD", enabled=frozenset({"currency"}))
    event = {"properties": {"revenue": 100.0, "currency": "EUR"}}
    # WHEN revenue in EUR is converted
    enrichment = run_chain(config, event)
    # THEN it is expressed in USD at the EUR/USD rate
    assert enrichment["revenue"] == {"amount": round(100.0 * default_rates()["USD"], 4), "currency": "USD"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json {", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"rates": {"USD": 1.1}}', "not 3 upper-case letters"),
        ('{"base": "EUR"}', "non-empty object"),
        ('{"base": "EUR", "rates": {}}', "non-empty object"),
        ('{"base": "EUR", "rates": {"usd": 1.1}}', "not 3 upper-case letters"),
        ('{"base": "EUR", "rates": {"USDX": 1.1}}', "not 3 upper-case letters"),
        ('{"base": "EUR", "rates": {"USD": 0}}', "positive"),
        ('{"base": "EUR", "rates": {"USD": -1.1}}', "positive"),
        ('{"base": "EUR", "rates": {"USD": "1.1"}}', "must be a number"),
        ('{"base": "EUR", "rates": {"USD": true}}', "must be a number"),
        ('{"base": "EUR", "rates": {"USD": null}}', "must be a number"),
        ('{"base": "EUR", "rates": {"EUR": 2.0, "USD": 1.1}}', "rate 1.0"),
    ],
)
def test_malformed_rates_file_is_a_config_error(tmp_path: Path, content: str | bytes, message: str) -> None:
    # GIVEN a rates file with bad content
    path = write(tmp_path, content)
    # WHEN / THEN loading it names the file and the problem
    with pytest.raises(ConfigError, match=message) as caught:
        load_rates(path)
    assert str(path) in str(caught.value)


def test_oversize_rates_file_is_a_config_error(tmp_path: Path) -> None:
    # GIVEN a valid but large rates file and a small limit
    path = write(tmp_path, '{"base": "EUR", "rates": {"USD": 1.08}, "pad": "' + "x" * 200 + '"}')
    # WHEN / THEN loading it with the limit refuses
    with pytest.raises(ConfigError, match="larger than 100 bytes"):
        load_rates(path, max_bytes=100)
    # AND a limit of its exact size still accepts it
    assert load_rates(path, max_bytes=path.stat().st_size)[0] == "EUR"


def test_missing_rates_file_is_a_config_error(tmp_path: Path) -> None:
    # GIVEN a path that does not exist
    path = tmp_path / "nope.json"
    # WHEN / THEN loading it says it cannot be read and how to fix it
    with pytest.raises(ConfigError, match=r"cannot read.*EVENTPIPE_CURRENCY_RATES"):
        load_rates(path)
