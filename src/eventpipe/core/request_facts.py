"""What an HTTP request says about its events beyond their text: the app of its write key, the
client's address and its user agent.

Ingest writes the events raw, before they are parsed, so these facts travel in the raw batch's
header and ProcessBatch applies them to each event before validation: a retried step, a crash
and restart, or a replay of the batch sees the same facts.

- `app_id` replaces whatever the event says: a page cannot claim another app's events.
- `ip` and `user_agent` fill `context.ip` and `context.user_agent` only where the event has none
  (a server-side sender may forward its own client's), and then go through the same enrichers:
  the raw address is never stored in a curated event.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["MAX_USER_AGENT_CHARS", "RequestFacts"]

MAX_USER_AGENT_CHARS = 2048  # the envelope's limit: a request's own header must never make its events invalid


@dataclass(frozen=True, slots=True)
class RequestFacts:
    app_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of_request(cls, *, app_id: str | None, ip: str | None, user_agent: str | None) -> RequestFacts:
        """The facts as a request gives them: an address that is not one is dropped, a user agent cut
        to the envelope's limit."""
        agent = user_agent[:MAX_USER_AGENT_CHARS] if user_agent else None
        return cls(app_id=app_id, ip=_address(ip) if ip else None, user_agent=agent)

    def __bool__(self) -> bool:
        return bool(self.app_id or self.ip or self.user_agent)

    def as_dict(self) -> dict[str, str]:
        return {name: value for name, value in self._items() if value is not None}

    @classmethod
    def from_dict(cls, data: Any) -> RequestFacts:
        if not isinstance(data, dict):
            return cls()
        fields = ("app_id", "ip", "user_agent")
        return cls(**{name: value for name in fields if isinstance(value := data.get(name), str)})

    def apply(self, event: dict[str, Any]) -> None:
        """Set `app_id`, and fill `context.ip` and `context.user_agent` where the event has none.

        A `context` that is not an object is left as it is, for validation to reject.
        """
        if self.app_id is not None:
            event["app_id"] = self.app_id
        if self.ip is None and self.user_agent is None:
            return
        context = event.get("context")
        if context is None:
            context = event["context"] = {}
        if not isinstance(context, dict):
            return
        if self.ip is not None and context.get("ip") in (None, ""):
            context["ip"] = self.ip
        if self.user_agent is not None and context.get("user_agent") in (None, ""):
            context["user_agent"] = self.user_agent

    def _items(self) -> tuple[tuple[str, str | None], ...]:
        return (("app_id", self.app_id), ("ip", self.ip), ("user_agent", self.user_agent))


@lru_cache(maxsize=4096)  # clients send again and again: a parse is 6 µs of a request's CPU
def _address(text: str) -> str | None:
    """The address in its normal form; None for text that is not one."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
