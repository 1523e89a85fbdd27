"""`user_agent`: browser, OS, device type and bot flag, cached per user-agent string."""

from __future__ import annotations

from typing import Any

import pytest

from eventpipe.core.enrich.user_agent import UserAgentEnricher, summarise_user_agent
from eventpipe.core.errors import EnrichmentError

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
)


def enrich(event: dict[str, Any]) -> dict[str, Any]:
    enrichment: dict[str, Any] = {}
    UserAgentEnricher().enrich(event, enrichment)
    return enrichment


def test_desktop_chrome() -> None:
    # GIVEN Chrome 120 on Windows
    event = {"context": {"user_agent": CHROME_WINDOWS}}
    # WHEN enriched
    enrichment = enrich(event)
    # THEN the summary names browser, major version, OS and a desktop
    assert enrichment["user_agent"] == {
        "browser": "Chrome",
        "browser_version": "120",
        "os": "Windows",
        "device_type": "desktop",
        "is_bot": False,
    }


@pytest.mark.parametrize(
    ("ua", "device_type", "is_bot"),
    [
        (IPHONE, "mobile", False),
        (ANDROID_PHONE, "mobile", False),
        (IPAD, "tablet", False),
        (ANDROID_TABLET, "tablet", False),
        (GOOGLEBOT, "bot", True),
        (HEADLESS, "bot", True),
        ("curl/8.4.0", "bot", True),
        ("python-requests/2.31.0", "bot", True),
        ("something unknown", "other", False),
    ],
)
def test_device_types_and_bots(ua: str, device_type: str, is_bot: bool) -> None:
    # GIVEN a user agent of a given kind
    # WHEN summarised
    summary = summarise_user_agent(ua)
    # THEN it is classified accordingly
    assert (summary["device_type"], summary["is_bot"]) == (device_type, is_bot)


def test_unknown_user_agent_has_other_families_and_no_version() -> None:
    # GIVEN a string ua-parser knows nothing of
    # WHEN summarised
    summary = summarise_user_agent("something unknown")
    # THEN families are "Other" and the version is None
    assert (summary["browser"], summary["browser_version"], summary["os"]) == ("Other", None, "Other")


def test_second_call_hits_the_cache() -> None:
    # GIVEN a user agent not seen before
    ua = CHROME_WINDOWS + " cache-probe"
    summarise_user_agent(ua)
    hits = summarise_user_agent.cache_info().hits
    # WHEN a second event carries the same string
    enrich({"context": {"user_agent": ua}})
    # THEN the parse came from the cache
    assert summarise_user_agent.cache_info().hits == hits + 1


def test_cached_summary_cannot_be_altered_by_a_caller() -> None:
    # GIVEN an enrichment written from the cache, then changed by a caller
    first = enrich({"context": {"user_agent": CHROME_WINDOWS}})
    first["user_agent"]["browser"] = "tampered"
    # WHEN the same user agent is enriched again
    second = enrich({"context": {"user_agent": CHROME_WINDOWS}})
    # THEN the cached value was not affected, and the cached object itself is read-only
    assert second["user_agent"]["browser"] == "Chrome"
    with pytest.raises(TypeError):
        summarise_user_agent(CHROME_WINDOWS)["browser"] = "x"  # type: ignore[index]


@pytest.mark.parametrize("event", [{}, {"context": {}}, {"context": {"user_agent": ""}}, {"context": None}])
def test_missing_user_agent_writes_nothing(event: dict[str, Any]) -> None:
    # GIVEN no user agent
    # WHEN enriched
    # THEN nothing is written
    assert enrich(event) == {}


def test_non_string_user_agent_is_an_error() -> None:
    # GIVEN a user agent of the wrong type
    # WHEN / THEN enriching raises at its path
    with pytest.raises(EnrichmentError) as caught:
        enrich({"context": {"user_agent": 42}})
    assert caught.value.path == "$.context.user_agent"


@pytest.mark.parametrize(
    ("ua", "bot"),
    [
        (GOOGLEBOT, True),
        (HEADLESS, True),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("curl/8.5.0", True),
        (CHROME_WINDOWS, False),
        (IPHONE, False),
    ],
)
def test_enrichment_bot_flags_crawlers(ua: str, bot: bool) -> None:
    # GIVEN an event with (or without) a user agent WHEN enriched THEN enrichment.bot says whether a crawler sent it
    assert enrich({"context": {"user_agent": ua}})["bot"] is bot
