"""eventpipe: validate, enrich, store and aggregate analytics events, on AWS or on one machine."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
