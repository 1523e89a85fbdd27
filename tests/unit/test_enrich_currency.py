"""`currency`: revenue in the base currency."""

from __future__ import annotations

from typing import Any

import pytest

from eventpipe.core.enrich.currency import CurrencyEnricher, rebase_rates
from eventpipe.core.errors import ConfigError, EnrichmentError

RATES = {"EUR": 1.0, "USD": 1.08, "JPY": 162.0}


def enrich(event: dict[str, Any], base: str = "EUR") -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    CurrencyEnricher(base, RATES).enrich(event, enrichment)
    return enrichment


@pytest.mark.parametrize(
    ("revenue", "currency", "amount"),
    [(59.90, "USD", 55.463), (10000, "JPY", 61.7284), (59.90, "EUR", 59.9), (0, "USD", 0.0)],
)
def test_revenue_converted_to_base(revenue: float, currency: str, amount: float) -> None:
    # GIVEN a purchase in some currency
    event = {"properties": {"revenue": revenue, "currency": currency}}
    # WHEN enriched
    # THEN the amount is in EUR, rounded to 4 decimals
    assert enrich(event) == {"revenue": {"amount": amount, "currency": "EUR"}}


def test_other_base_currency_rebases_the_table() -> None:
    # GIVEN EUR-based rates and a USD base
    event = {"properties": {"revenue": 100.0, "currency": "EUR"}}
    # WHEN enriched
    # THEN 100 EUR is 108 USD
    assert enrich(event, base="USD") == {"revenue": {"amount": 108.0, "currency": "USD"}}
    assert rebase_rates("USD", RATES)["JPY"] == pytest.approx(150.0)


def test_unknown_currency_is_an_error_that_says_how_to_fix_it() -> None:
    # GIVEN a currency missing from the rates table
    event = {"properties": {"revenue": 5.0, "currency": "XAU"}}
    # WHEN / THEN enriching raises at $.properties.currency, pointing at the rates setting
    with pytest.raises(EnrichmentError, match="EVENTPIPE_CURRENCY_RATES") as caught:
        enrich(event)
    assert caught.value.path == "$.properties.currency"


def test_non_numeric_revenue_is_an_error() -> None:
    # GIVEN a revenue sent as text
    # WHEN / THEN enriching raises at $.properties.revenue
    with pytest.raises(EnrichmentError) as caught:
        enrich({"properties": {"revenue": "5.00", "currency": "EUR"}})
    assert caught.value.path == "$.properties.revenue"


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"properties": {}},
        {"properties": {"revenue": 5.0}},
        {"properties": {"currency": "EUR", "price": 5.0}},
    ],
)
def test_missing_revenue_or_currency_writes_nothing(event: dict[str, Any]) -> None:
    # GIVEN an event without both revenue and currency
    # WHEN / THEN nothing is written
    assert enrich(event) == {}


def test_base_not_in_rates_is_a_config_error() -> None:
    # GIVEN a base currency absent from the rates
    # WHEN / THEN construction refuses, naming the setting to change
    with pytest.raises(ConfigError, match=r"GBP.*EVENTPIPE_CURRENCY_RATES"):
        CurrencyEnricher("GBP", RATES)


@pytest.mark.parametrize("revenue", [1e200, 2e12, float("inf")])
def test_an_implausible_revenue_is_an_error(revenue: float) -> None:
    # GIVEN a revenue above a trillion in the base currency (beyond it, stores' number ranges end)
    event = {"properties": {"revenue": revenue, "currency": "EUR"}}
    # WHEN / THEN the event is rejected at $.properties.revenue rather than failing its batch later
    with pytest.raises(EnrichmentError, match="above") as caught:
        enrich(event)
    assert caught.value.path == "$.properties.revenue"
