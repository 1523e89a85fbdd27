"""What an erasure matches: the user's ids, in clear and as the pseudonyms the stores hold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from eventpipe.core.enrich.pseudonymise import pseudonym

FIELDS = ("user_id", "anonymous_id")
MAX_ID_CHARS = 256  # the envelope's limit on user_id and anonymous_id
# A JSON string escape: a surrogate pair, one \uXXXX, or a one-letter escape. Raw text holds events as
# their clients wrote them, and any character may be escaped there (Python's json writes "é" as \u00e9).
_ESCAPE = re.compile(
    rb'\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\(["\\/bfnrt])'
)
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")  # an id a client may send as a JSON number
_SHORT = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t"}


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
        """The ids as JSON text (`"u-123"`): a stored line without any of them, and without a
        backslash (an escape may spell an id otherwise), cannot match."""
        return tuple(sorted({orjson.dumps(value) for values in self.ids.values() for value in values}))

    @property
    def number_forms(self) -> tuple[bytes, ...]:
        """The ids that read as integers, as JSON numbers (`123`): a client may send an id so (the
        schema rejects it to the quarantine), and `matches_event` reads it back as the same text."""
        values = {value for values in self.ids.values() for value in values}
        return tuple(sorted(value.encode() for value in values if _INTEGER.fullmatch(value)))

    @property
    def escaped_forms(self) -> tuple[bytes, ...]:
        """The ids as text between quotes, as orjson and as an ASCII-only encoder write them (upper and
        lower case hex): what a search of a file's bytes looks for."""
        forms = set()
        for values in self.ids.values():
            for value in values:
                ascii_only = json.dumps(value)[1:-1]
                forms |= {orjson.dumps(value)[1:-1], ascii_only.encode(), _upper_hex(ascii_only).encode()}
        return tuple(sorted(form for form in forms if form))

    def may_hold(self, data: bytes) -> bool:
        """True when the text holds one of the ids as a JSON string, written plainly or with escapes."""
        if any(needle in data for needle in self.needles):
            return True
        if b"\\" not in data:
            return False
        plain = _unescaped(data)
        return any(b'"' + value.encode() + b'"' in plain for values in self.ids.values() for value in values)

    def may_mention(self, data: bytes) -> bool:
        """`may_hold`, or the text holds an id as a number: for text whose events are then read one
        by one (digits alone are too common to decide anything by)."""
        return self.may_hold(data) or any(number in data for number in self.number_forms)

    def matches_event(self, event: Any) -> bool:
        if not isinstance(event, dict):
            return False
        return any(_text(event.get(field)) in self.ids[field] for field in FIELDS)

    def matches_line(self, line: bytes | str) -> bool:
        """A stored event's text: it matches when its ids do; text that is not JSON (a malformed
        event) matches when it holds an id at all, since it cannot be read any other way."""
        data = line.encode() if isinstance(line, str) else line
        if not self.may_mention(data):
            return False
        try:
            return self.matches_event(orjson.loads(data))
        except orjson.JSONDecodeError:
            return self.may_hold(data)

    def matches_value(self, field: str, value: str | None) -> bool:
        return value is not None and value in self.ids[field]


def _unescaped(data: bytes) -> bytes:
    """The text with its JSON string escapes written out (UTF-8); a lone surrogate stays escaped."""

    def plain(match: re.Match[bytes]) -> bytes:
        high, low, one, short = match.groups()
        if short is not None:
            return _SHORT[short]
        if high is not None:
            code = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
            return chr(code).encode()
        code = int(one, 16)
        return match.group() if 0xD800 <= code <= 0xDFFF else chr(code).encode()

    return _ESCAPE.sub(plain, data)


def _upper_hex(text: str) -> str:
    return re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group()[2:].upper(), text)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None
