"""What an erasure matches: the user's ids, in clear and as the pseudonyms the stores hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from eventpipe.core.enrich.pseudonymise import pseudonym

FIELDS = ("user_id", "anonymous_id")


@dataclass(frozen=True)
class ErasureTarget:
    """`ids[field]`: the values that match on `field`, each id in clear and, with a pseudonym key,
    as its pseudonym (curated events hold the pseudonym where the field is pseudonymised; the raw
    bucket and the quarantine hold the text as sent)."""

    ids: dict[str, frozenset[str]]

    @classmethod
    def of(cls, user_ids: list[str], anonymous_ids: list[str], pseudonym_key: bytes | None) -> ErasureTarget:
        def forms(values: list[str]) -> frozenset[str]:
            found = set(values)
            if pseudonym_key is not None:
                found |= {pseudonym(pseudonym_key, value) for value in values}
            return frozenset(found)

        return cls({"user_id": forms(user_ids), "anonymous_id": forms(anonymous_ids)})

    @property
    def needles(self) -> tuple[bytes, ...]:
        """The ids as JSON text (`"u-123"`): a stored line without any of them cannot match."""
        return tuple(sorted({orjson.dumps(value) for values in self.ids.values() for value in values}))

    def may_hold(self, data: bytes) -> bool:
        return any(needle in data for needle in self.needles)

    def matches_event(self, event: Any) -> bool:
        if not isinstance(event, dict):
            return False
        return any(_text(event.get(field)) in self.ids[field] for field in FIELDS)

    def matches_line(self, line: bytes | str) -> bool:
        """A stored event's text: it matches when its ids do; text that is not JSON (a malformed
        event) matches when it holds an id at all, since it cannot be read any other way."""
        data = line.encode() if isinstance(line, str) else line
        if not self.may_hold(data):
            return False
        try:
            return self.matches_event(orjson.loads(data))
        except orjson.JSONDecodeError:
            return True

    def matches_value(self, field: str, value: str | None) -> bool:
        return value is not None and value in self.ids[field]


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None
