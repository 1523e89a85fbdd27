"""Generate a realistic clickstream as NDJSON: sessions that browse, add to cart and buy.

Used by `eventpipe generate`, the demo and the benchmark. Deterministic for a given seed and clock.
A share of the lines can be made invalid (each kind of fault the pipeline must catch) or exact
duplicates of an earlier line (a client's retry).
"""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.timeutil import to_iso

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

USER_AGENTS = (  # real browsers' strings, kept whole
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",  # noqa: E501
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",  # noqa: E501
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",  # noqa: E501
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",  # noqa: E501
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
REFERRERS = (
    "https://www.google.com/",
    "https://www.bing.com/search?q=shoes",
    "https://t.co/abc",
    "https://www.facebook.com/",
    "https://shop.example/",
    "",
)
CAMPAIGNS = ("", "", "?utm_source=news&utm_medium=email&utm_campaign=bf", "?utm_source=google&utm_medium=cpc")
CURRENCIES = ("EUR", "EUR", "EUR", "USD", "GBP")
PRODUCTS = tuple(f"p-{n}" for n in range(1, 201))


class EventGenerator:
    """Yields NDJSON lines (bytes, without newline)."""

    def __init__(self, *, seed: int = 1, now_ms: int, span_minutes: int = 30) -> None:
        self._random = random.Random(seed)
        self._now_ms = now_ms
        self._span_ms = span_minutes * 60_000

    def lines(self, count: int, *, invalid_ratio: float = 0.0, duplicate_ratio: float = 0.0) -> Iterator[bytes]:
        rnd = self._random
        events = self._valid_events()
        recent: list[bytes] = []
        for _ in range(count):
            roll = rnd.random()
            if roll < duplicate_ratio and recent:
                yield rnd.choice(recent)
                continue
            event = next(events)
            if roll < duplicate_ratio + invalid_ratio:
                line = self._spoil(event)
            else:
                line = orjson.dumps(event)
                recent.append(line)
                if len(recent) > 1000:
                    recent.pop(0)
            yield line

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _valid_events(self) -> Iterator[dict[str, Any]]:
        rnd = self._random
        while True:
            user = f"u-{rnd.randrange(1, 50_000)}" if rnd.random() < 0.6 else None
            session = f"s-{self._uuid()[:13]}"
            context = {
                "ip": f"{rnd.randrange(1, 223)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
                "user_agent": rnd.choice(USER_AGENTS),
                "page_url": "https://shop.example/p/1" + rnd.choice(CAMPAIGNS),
                "referrer": rnd.choice(REFERRERS),
                "locale": rnd.choice(("en-US", "de-DE", "fr-FR")),
            }
            started = self._now_ms - rnd.randrange(self._span_ms)
            base = {"user_id": user, "anonymous_id": f"a-{rnd.randrange(1, 10**6)}", "session_id": session}
            if user is None:
                del base["user_id"]
            for offset, (event_type, properties) in enumerate(self._session_steps()):
                occurred = min(self._now_ms, started + offset * 7_000)
                yield {
                    "event_id": self._uuid(),
                    "event_type": event_type,
                    "schema_version": "1-0-0",
                    "occurred_at": to_iso(occurred),
                    # Sent a moment before "now" (queued on the device until then): receipt
                    # follows sending, so clock-skew correction keeps the event in its minute.
                    "sent_at": to_iso(max(occurred + 10, self._now_ms - rnd.randrange(50, 900))),
                    **base,
                    "context": dict(context),
                    "properties": properties,
                }

    def _session_steps(self) -> Iterator[tuple[str, dict[str, Any]]]:
        rnd = self._random
        for _ in range(rnd.randrange(1, 5)):
            yield (
                "page_view",
                {
                    "path": f"/p/{rnd.randrange(1, 200)}",
                    "title": "Product",
                    "duration_ms": rnd.randrange(100, 60_000),
                },
            )
        if rnd.random() < 0.05:
            yield "signup", {"method": rnd.choice(("email", "oauth", "sso")), "plan": "free"}
        if rnd.random() < 0.4:
            price = round(rnd.uniform(5, 200), 2)
            currency = rnd.choice(CURRENCIES)
            product = rnd.choice(PRODUCTS)
            yield "add_to_cart", {"product_id": product, "quantity": 1, "price": price, "currency": currency}
            if rnd.random() < 0.5:
                items = [{"product_id": product, "quantity": 1, "price": price}]
                yield (
                    "purchase",
                    {
                        "order_id": f"o-{self._uuid()[:8]}",
                        "revenue": price,
                        "currency": currency,
                        "items": items,
                    },
                )

    def _spoil(self, event: dict[str, Any]) -> bytes:
        """One of the faults the pipeline must turn away, each with its reason code."""
        fault: Callable[[dict[str, Any]], Any] = self._random.choice(_FAULTS)
        spoiled = fault(event)
        return spoiled if isinstance(spoiled, bytes) else orjson.dumps(spoiled)


def _drop_required_property(event: dict[str, Any]) -> dict[str, Any]:
    event["properties"] = {k: v for k, v in event["properties"].items() if k in ("title", "plan")}
    return event  # schema_violation


def _wrong_type(event: dict[str, Any]) -> dict[str, Any]:
    event["properties"] = {
        **event["properties"],
        "quantity": "two",
        "path": 7,
        "method": "fax",
        "revenue": "a lot",
    }
    return event  # schema_violation


def _unknown_type(event: dict[str, Any]) -> dict[str, Any]:
    event["event_type"] = "page_vieww"
    return event  # unknown_event_type


def _bad_envelope(event: dict[str, Any]) -> dict[str, Any]:
    event["event_id"] = "not-a-uuid"
    event["occurred_at"] = "yesterday"
    return event  # envelope_invalid


def _truncated_json(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)[:-7]  # malformed_json


def _unknown_currency(event: dict[str, Any]) -> dict[str, Any]:
    event["event_type"] = "purchase"
    event["properties"] = {
        "order_id": "o-x",
        "revenue": 10.0,
        "currency": "XXX",
        "items": [{"product_id": "p-1", "quantity": 1, "price": 10.0}],
    }
    return event  # enrichment_failed


_FAULTS = (
    _drop_required_property,
    _wrong_type,
    _unknown_type,
    _bad_envelope,
    _truncated_json,
    _unknown_currency,
)
