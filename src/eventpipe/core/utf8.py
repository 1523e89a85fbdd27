"""Whether a Python string can be UTF-8 text, which is what every stored event and name is."""

from __future__ import annotations


def is_utf8_text(value: str) -> bool:
    """False for a string with a lone surrogate: JSON's "\\ud800", or bytes of a command line or a file
    name that are not UTF-8, which Python keeps as surrogate escapes."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
