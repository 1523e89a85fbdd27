"""`user_agent`: browser, OS, device type and bot flag from `context.user_agent`.

    enrichment["user_agent"] = {"browser": "Chrome", "browser_version": "120", "os": "Windows",
                                "device_type": "desktop", "is_bot": False}
    enrichment["bot"] = False   # True for crawlers, spiders and HTTP tools; insights leave them out

A bot is what ua-parser puts in its "Spider" device family, or a user agent naming a crawler or a
tool (`bot`, `crawl`, `spider`, `curl/`, `python-requests`, `HeadlessChrome`, ...). An event without a
user agent gets neither, and insights count it as a person's.

ua-parser (with the Rust regex resolver when installed) costs 20-500 µs per new string, far over
the per-event budget. But a site sees few distinct user agents, so each summary is cached per
string (`summarise_user_agent.cache_info()` shows the hit rate) and a hit costs well under 1 µs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from eventpipe.core.enrich.base import context_str

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ua_parser import Parser

__all__ = ["UserAgentEnricher", "summarise_user_agent"]

# Real user agents stay under a few hundred characters. Parsing only a prefix bounds both the
# regex time of a hostile 60 KiB string and the cache's memory (4096 entries x 1 KiB at most).
MAX_UA_CHARS = 1024
CACHE_SIZE = 4096

# Tools and crawlers that ua-parser does not all put in the "Spider" device family. "bot" would
# also match the phone brand "Cubot", hence the look-behind.
_BOT_TOKENS = re.compile(
    r"(?<!cu)bot|crawl|spider|slurp|curl/|wget/|python-requests|python-urllib|go-http-client|headless",
    re.IGNORECASE,
)
_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Symbian OS", "HarmonyOS"}
)
_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Debian",
        "Fedora",
        "Red Hat",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
    }
)


@lru_cache(maxsize=1)
def _parser() -> Parser:
    # Imported here: settings import this package, and only the validate step parses user agents.
    from ua_parser import BestAvailableResolver, Parser, load_builtins

    # No ua-parser cache in front of the resolver: the lru_cache below already caches the
    # summary, which is all the enricher needs, so a second cache would only cost memory.
    return Parser(BestAvailableResolver(load_builtins()))


def _device_type(ua: str, os_family: str, device_family: str, device_brand: str | None) -> str:
    """Classify as tablet, mobile, desktop or other (bots are decided before)."""
    if (
        device_family == "iPad"
        or device_brand == "Generic_Android_Tablet"
        or device_family.startswith("Kindle")
        or "tablet" in device_family.lower()
        # Android phones put "Mobile" in their UA and tablets do not (Google's guidance to
        # browser vendors), which catches the many tablets ua-parser knows no model of.
        or (os_family == "Android" and "Mobile" not in ua)
    ):
        return "tablet"
    if os_family in _MOBILE_OS or device_family in ("iPhone", "iPod") or "Mobi" in ua:
        return "mobile"
    if os_family in _DESKTOP_OS or os_family.startswith("Windows"):
        return "desktop"
    return "other"


@lru_cache(maxsize=CACHE_SIZE)
def summarise_user_agent(ua: str) -> Mapping[str, Any]:
    """The user-agent summary of one string, cached; read-only so no caller can alter the cached copy."""
    result = _parser().parse(ua[:MAX_UA_CHARS])
    browser = result.user_agent.family if result.user_agent else "Other"
    browser_version = result.user_agent.major if result.user_agent else None
    os_family = result.os.family if result.os else "Other"
    device_family = result.device.family if result.device else "Other"
    device_brand = result.device.brand if result.device else None
    is_bot = device_family == "Spider" or _BOT_TOKENS.search(ua) is not None
    device_type = "bot" if is_bot else _device_type(ua, os_family, device_family, device_brand)
    return MappingProxyType(
        {
            "browser": browser,
            "browser_version": browser_version,
            "os": os_family,
            "device_type": device_type,
            "is_bot": is_bot,
        }
    )


class UserAgentEnricher:
    """Writes `enrichment["user_agent"]` (a fresh dict per event) when `context.user_agent` is sent."""

    __slots__ = ()
    name = "user_agent"

    def __init__(self) -> None:
        # Build the parser now (about 0.2 s of regex compilation) rather than on the first event.
        _parser()

    def enrich(self, event: dict[str, Any], enrichment: dict[str, Any]) -> None:
        ua = context_str(event, "user_agent")
        if ua is None:
            return  # no user agent: nothing to tell, and insights count the event as a person's
        summary = summarise_user_agent(ua)
        enrichment["user_agent"] = dict(summary)
        enrichment["bot"] = summary["is_bot"]
