"""Currency rates: read and check a rates file, and the bundled default.

The file is `{"base": "EUR", "as_of": "2025-01-02", "rates": {"USD": 1.08, ...}}`, each rate in
units of that currency per 1 base unit. It is operator input (EVENTPIPE_CURRENCY_RATES can
point at another file), so it is read with a size limit and every entry is checked: a bad rate
would silently corrupt every revenue figure downstream.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from importlib.resources import as_file, files
from types import MappingProxyType
from typing import TYPE_CHECKING

import orjson

from eventpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["check_code", "check_rates", "default_rates", "load_rates"]

MAX_RATES_BYTES = 1024 * 1024
_CODE = re.compile(r"[A-Z]{3}")
_HINT = "fix the file or point EVENTPIPE_CURRENCY_RATES at a valid one"


def check_code(code: object, where: str) -> str:
    """Return `code` when it is an ISO 4217 style code (three upper-case letters), else ConfigError."""
    if not isinstance(code, str) or _CODE.fullmatch(code) is None:
        raise ConfigError(f"{where}: currency code {code!r} is not 3 upper-case letters (ISO 4217)")
    return code


def check_rates(rates: Mapping[str, object], where: str) -> dict[str, float]:
    """Return `rates` as a plain dict after checking every code and that every rate is a positive number."""
    checked: dict[str, float] = {}
    for code, rate in rates.items():
        check_code(code, where)
        # bool is an int subclass; `true` as a rate is a mistake, not 1.0.
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ConfigError(f"{where}: rate for {code} must be a number, got {rate!r}")
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f"{where}: rate for {code} must be a positive number, got {rate!r}")
        checked[str(code)] = float(rate)
    return checked


def load_rates(path: Path, max_bytes: int = MAX_RATES_BYTES) -> tuple[str, dict[str, float]]:
    """Read a rates file and return `(base, rates)`; `rates` always holds `base` at 1.0.

    Raises ConfigError naming the file when it cannot be read, is larger than `max_bytes`, is not
    JSON, or has a bad base, code or rate.
    """
    where = f"currency rates file {path}"
    try:
        with path.open("rb") as handle:
            # Read one byte past the limit: enough to tell "too large" without reading it all.
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc}); {_HINT}") from exc
    if len(data) > max_bytes:
        raise ConfigError(f"{where}: larger than {max_bytes} bytes; {_HINT}")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc}); {_HINT}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f'{where}: expected an object {{"base": ..., "rates": {{...}}}}; {_HINT}')
    base = check_code(document.get("base"), where)
    raw_rates = document.get("rates")
    if not isinstance(raw_rates, dict) or not raw_rates:
        raise ConfigError(f'{where}: "rates" must be a non-empty object of code -> rate; {_HINT}')
    rates = check_rates(raw_rates, where)
    if rates.setdefault(base, 1.0) != 1.0:
        raise ConfigError(f"{where}: the base currency {base} must have rate 1.0, got {rates[base]}")
    return base, rates


@lru_cache(maxsize=1)
def default_rates() -> Mapping[str, float]:
    """The bundled `eventpipe/data/currency_rates.json`, read once and shared read-only."""
    with as_file(files("eventpipe") / "data" / "currency_rates.json") as path:
        _, rates = load_rates(path)
    return MappingProxyType(rates)
