"""`currency`: revenue converted to the base currency, so totals over many currencies add up.

    properties {"revenue": 59.9, "currency": "USD"}, 1 EUR = 1.035 USD
    -> enrichment["revenue"] = {"amount": 57.8744, "currency": "EUR"}

Written only when both `properties.revenue` and `properties.currency` are present. A currency
missing from the rates table rejects the event rather than guessing a rate: a wrong amount would
silently skew every revenue figure. The amount is rounded to 4 decimals, finer than any currency's
minor unit, so sums stay exact to the cent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.core.enrich.rates import check_code, check_rates
from eventpipe.core.errors import ConfigError, EnrichmentError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CurrencyEnricher", "rebase_rates"]


def rebase_rates(base: str, rates: Mapping[str, float]) -> dict[str, float]:
    """Check `rates` and express them per 1 unit of `base` (ConfigError when `base` is not in them).

    `rates` may be based on any currency of the table (the one with rate 1.0): dividing by the
    rate of `base` turns "per 1 EUR" into "per 1 USD", so one file serves any base currency.
    """
    check_code(base, "base currency")
    checked = check_rates(rates, "currency rates")
    base_rate = checked.get(base)
    if base_rate is None:
        raise ConfigError(
            f"base currency {base} is not in the currency rates ({len(checked)} currencies); "
            "choose one of them or replace the rates file (EVENTPIPE_CURRENCY_RATES)"
        )
    return {code: rate / base_rate for code, rate in checked.items()}


# No order is worth more: a bound keeps sums exact in a float and within every store's number range
# (DynamoDB's ends at 1e126), so one absurd event cannot fail its batch's aggregation for good.
MAX_AMOUNT = 1e12


class CurrencyEnricher:
    """Writes `enrichment["revenue"]` in the base currency; an unknown currency is an error."""

    __slots__ = ("_base", "_rates")
    name = "currency"

    def __init__(self, base: str, rates: Mapping[str, float]) -> None:
        self._base = base
        self._rates = rebase_rates(base, rates)

    def enrich(self, event: dict[str, Any], enrichment: dict[str, Any]) -> None:
        properties = event.get("properties")
        if not isinstance(properties, dict):
            return
        revenue = properties.get("revenue")
        currency = properties.get("currency")
        if revenue is None or currency is None:
            return
        if isinstance(revenue, bool) or not isinstance(revenue, int | float):
            raise EnrichmentError("properties.revenue must be a number", "$.properties.revenue")
        rate = self._rates.get(currency) if isinstance(currency, str) else None
        if rate is None:
            raise EnrichmentError(
                f"no exchange rate for currency {str(currency)[:16]!r} (the rates table has "
                f"{len(self._rates)} currencies); add it to a rates file and point "
                "EVENTPIPE_CURRENCY_RATES at that file",
                "$.properties.currency",
            )
        amount = revenue / rate
        if not amount <= MAX_AMOUNT:  # also refuses inf and nan
            raise EnrichmentError(
                f"revenue {revenue!r} {currency} is above {MAX_AMOUNT:g} {self._base}, the most eventpipe counts",
                "$.properties.revenue",
            )
        enrichment["revenue"] = {"amount": round(amount, 4), "currency": self._base}
