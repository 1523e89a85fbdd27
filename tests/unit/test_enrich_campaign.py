"""`campaign`: UTM parameters of the page URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from eventpipe.core.enrich.campaign import CampaignEnricher, utm_fields


def enrich(event: dict[str, Any]) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    CampaignEnricher().enrich(event, enrichment)
    return enrichment


def test_all_five_utm_parameters() -> None:
    # GIVEN a page URL with every UTM parameter, encoded values and other parameters
    url = (
        "https://shop.example/p/1?ref=x&utm_source=news&utm_medium=email&utm_campaign=black%20friday"
        "&utm_term=red+shoes&utm_content=banner&page=2#top"
    )
    # WHEN enriched
    enrichment = enrich({"context": {"page_url": url}})
    # THEN each maps to its short name, decoded
    assert enrichment["campaign"] == {
        "source": "news",
        "medium": "email",
        "name": "black friday",
        "term": "red shoes",
        "content": "banner",
    }


def test_only_present_parameters_are_written() -> None:
    # GIVEN the architecture's sample URL
    url = "https://shop.example/p/1?utm_source=news&utm_medium=email&utm_campaign=bf"
    # WHEN enriched
    # THEN term and content are absent, not null
    assert enrich({"context": {"page_url": url}}) == {"campaign": {"source": "news", "medium": "email", "name": "bf"}}


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/p/1",
        "https://shop.example/p/1?page=2",
        "https://shop.example/p/1?utm_source=",  # empty value, dropped as parse_qsl does
        "https://shop.example/p/1?utm_sourcex=a",
        "https://shop.example/p/1#utm_source=a",  # in the fragment, not the query
    ],
)
def test_no_utm_parameter_writes_nothing(url: str) -> None:
    # GIVEN a page URL without a usable UTM parameter
    # WHEN enriched
    # THEN nothing is written
    assert enrich({"context": {"page_url": url}}) == {}


@pytest.mark.parametrize("event", [{}, {"context": {}}, {"context": {"page_url": None}}])
def test_missing_page_url_writes_nothing(event: dict[str, Any]) -> None:
    # GIVEN no page URL
    # WHEN / THEN nothing is written
    assert enrich(event) == {}


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/?utm_source=a%2Bb&utm_medium=c+d&utm_campaign=%E2%82%AC",
        "https://a.example/x;y?utm_source=a&&utm_medium=&utm_term=t=u",
        "/relative?utm_source=rel",
    ],
)
def test_agrees_with_urlsplit_and_parse_qsl(url: str) -> None:
    # GIVEN URLs with escapes, empty pairs and "=" in values
    expected = {
        key[4:].replace("campaign", "name"): value
        for key, value in reversed(parse_qsl(urlsplit(url).query))
        if key in {"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}
    }
    # WHEN the fast splitter reads them
    # THEN it finds what the standard library finds (first occurrence wins)
    assert utm_fields(url) == expected


def test_first_occurrence_wins() -> None:
    # GIVEN a repeated parameter
    # WHEN / THEN the first is kept
    assert utm_fields("https://a.example/?utm_source=one&utm_source=two") == {"source": "one"}
