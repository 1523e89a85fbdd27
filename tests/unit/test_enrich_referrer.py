"""`referrer`: referrer host and traffic medium."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from eventpipe.core.enrich.referrer import ReferrerEnricher, url_host
from eventpipe.core.errors import EnrichmentError


def enrich(event: dict[str, Any]) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    ReferrerEnricher().enrich(event, enrichment)
    return enrichment


@pytest.mark.parametrize(
    ("referrer", "host", "medium"),
    [
        ("https://www.google.com/", "google.com", "search"),
        ("https://www.google.co.uk/search?q=shoes", "google.co.uk", "search"),
        ("https://www.bing.com/search?q=x", "bing.com", "search"),
        ("https://duckduckgo.com/", "duckduckgo.com", "search"),
        ("https://uk.search.yahoo.com/", "uk.search.yahoo.com", "search"),
        ("https://yandex.ru/search/", "yandex.ru", "search"),
        ("https://www.ecosia.org/", "ecosia.org", "search"),
        ("https://l.facebook.com/l.php?u=x", "l.facebook.com", "social"),
        ("https://t.co/abc", "t.co", "social"),
        ("https://x.com/someone", "x.com", "social"),
        ("https://www.linkedin.com/feed/", "linkedin.com", "social"),
        ("https://old.reddit.com/r/x", "old.reddit.com", "social"),
        ("https://m.youtube.com/watch?v=1", "m.youtube.com", "social"),
        ("https://mail.google.com/mail/u/0/", "mail.google.com", "email"),
        ("https://outlook.live.com/mail/0/", "outlook.live.com", "email"),
        ("https://mail.yahoo.com/", "mail.yahoo.com", "email"),
        ("https://docs.google.com/document/d/1", "docs.google.com", "other"),
        ("https://blog.example.org/post", "blog.example.org", "other"),
        ("https://notgoogle.com/", "notgoogle.com", "other"),
    ],
)
def test_mediums(referrer: str, host: str, medium: str) -> None:
    # GIVEN a referrer from a known (or unknown) kind of site
    event = {"context": {"referrer": referrer, "page_url": "https://shop.example/p/1"}}
    # WHEN enriched
    # THEN its normalised host and medium are written
    assert enrich(event) == {"referrer": {"host": host, "medium": medium}}


def test_same_host_as_page_is_internal() -> None:
    # GIVEN a referrer on the page's own host, spelt differently (case, www, port)
    event = {"context": {"referrer": "https://WWW.Shop.Example:443/cart", "page_url": "https://shop.example/p/1"}}
    # WHEN enriched
    # THEN the visit is internal
    assert enrich(event) == {"referrer": {"host": "shop.example", "medium": "internal"}}


def test_without_page_url_nothing_is_internal() -> None:
    # GIVEN a referrer and no page URL
    # WHEN enriched
    # THEN the medium comes from the host alone
    assert enrich({"context": {"referrer": "https://shop.example/"}})["referrer"]["medium"] == "other"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://user:pa:ss@www.Example.com:8080/p?q#f", "example.com"),
        ("https://a@b@evil.example/x", "evil.example"),
        ("http://[2001:db8::1]:8080/", "2001:db8::1"),
        ("https://example.com./", "example.com"),
        ("https://example.com?x=1", "example.com"),
        ("https://example.com#x", "example.com"),
        ("//cdn.example/x", "cdn.example"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
    ],
)
def test_host_extraction_handles_userinfo_ports_and_literals(url: str, host: str) -> None:
    # GIVEN URLs with user info, ports, IPv6 literals, trailing dots and no path
    # WHEN the host is extracted
    # THEN it agrees with urlsplit's hostname, minus "www." and a trailing dot
    assert url_host(url) == host
    expected = (urlsplit(url).hostname or "").rstrip(".").removeprefix("www.")
    assert host == expected


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"context": {}},
        {"context": {"referrer": ""}},
        {"context": {"referrer": "not a url"}},
        {"context": {"referrer": "mailto:someone@example.com"}},
        {"context": {"referrer": "https:///path-only"}},
    ],
)
def test_missing_or_hostless_referrer_writes_nothing(event: dict[str, Any]) -> None:
    # GIVEN no referrer, or one without a host
    # WHEN / THEN nothing is written and the event is not rejected
    assert enrich(event) == {}


def test_non_object_context_is_an_error() -> None:
    # GIVEN a context that is not an object
    # WHEN / THEN enriching raises at $.context
    with pytest.raises(EnrichmentError) as caught:
        enrich({"context": "https://www.google.com/"})
    assert caught.value.path == "$.context"


@pytest.mark.parametrize("path_length", [0, 600, 5000])
def test_cached_and_uncached_urls_give_the_same_host(path_length: int) -> None:
    # GIVEN URLs short enough to be cached and too long to be (each asked twice)
    url = "https://User@WWW.Example.COM.:8443/" + "p" * path_length
    # WHEN their host is read twice
    hosts = [url_host(url), url_host(url)]
    # THEN both answers are the normalised host
    assert hosts == ["example.com", "example.com"]
