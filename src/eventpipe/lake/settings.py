"""The lake's settings: `EVENTPIPE_LAKE`, `EVENTPIPE_RETENTION_DAYS` and `EVENTPIPE_LAKE_RETENTION_DAYS`
(the same names on AWS). Their defaults and meaning are in docs/settings.md, held to this code by
tests/docs/test_settings_reference.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventpipe.core.errors import ConfigError
from eventpipe.settings import MAX_DAYS, positive_int

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class LakeSettings:
    enabled: bool = True
    retention_days: int | None = None
    lake_retention_days: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LakeSettings:
        switch = (environ.get("EVENTPIPE_LAKE") or "on").strip().lower()
        if switch not in ("on", "off"):
            raise ConfigError(f"EVENTPIPE_LAKE={switch!r} must be on or off")
        return cls(
            enabled=switch == "on",
            retention_days=_days(environ, "EVENTPIPE_RETENTION_DAYS"),
            lake_retention_days=_days(environ, "EVENTPIPE_LAKE_RETENTION_DAYS"),
        )


def _days(environ: Mapping[str, str], name: str) -> int | None:
    """Days to keep; unset or blank: keep everything."""
    return positive_int(environ, name, None, most=MAX_DAYS)
