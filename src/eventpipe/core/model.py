"""Value types shared by every layer: reasons, rejections, limits, batch records and apps."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from eventpipe.core.documents import AppDocument, ReasonDocument, RejectionDocument


class ReasonCode(StrEnum):
    """Why an event was turned away (docs/event-envelope.md)."""

    MALFORMED_JSON = "malformed_json"
    TOO_LARGE = "too_large"
    ENVELOPE_INVALID = "envelope_invalid"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    ENRICHMENT_FAILED = "enrichment_failed"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    path: str
    message: str

    def as_dict(self) -> ReasonDocument:
        return {"code": self.code, "path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A quarantined event: its original text and every reason it was refused."""

    batch_id: str
    index: int
    stage: str
    reasons: tuple[Reason, ...]
    raw: str
    event_id: str | None = None

    def as_dict(self) -> RejectionDocument:
        return {
            "event_id": self.event_id,
            "batch_id": self.batch_id,
            "index": self.index,
            "stage": self.stage,
            "reasons": [r.as_dict() for r in self.reasons],
            "raw": self.raw,
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits on every external input (docs/settings.md gives the defaults)."""

    max_event_bytes: int = 64 * 1024
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 500
    # A file may be large, but never larger than this once decompressed: stops gzip bombs.
    max_file_bytes: int = 4 * 1024**3


class BatchStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    # A small request's batch that micro-batching merged into a group batch (core/grouping.py): the
    # group's execution processes its events, and the group's status is its status.
    GROUPED = "grouped"


@dataclass(slots=True)
class BatchRecord:
    """A batch's progress and outcome; counts are filled in as the workflow runs."""

    batch_id: str
    raw_key: str
    source: str
    received_at_ms: int
    received: int
    status: BatchStatus = BatchStatus.PENDING
    curated: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    # Grouped requests only: the group batch, and the group index of this request's first event.
    group_id: str | None = None
    first_index: int = 0


@dataclass(frozen=True, slots=True)
class App:
    """An app: its id, a name for people, the hash of its write key and the web origins it accepts
    (empty: any origin)."""

    app_id: str
    name: str
    key_hash: str
    origins: tuple[str, ...] = ()
    created_at_ms: int = 0
    revoked_at_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None

    def accepts_origin(self, origin: str | None) -> bool:
        """A request without `Origin` is not from a web page's script; with one, it must be listed
        (when the app lists any)."""
        if origin is None or not self.origins:
            return True
        try:
            return normalise_origin(origin) in self.origins
        except ValueError:  # "null" (a sandboxed frame, a file: page) or garbage
            return False

    def as_dict(self) -> AppDocument:
        """What `apps list --json` shows: never the key or its hash."""
        return {
            "app_id": self.app_id,
            "name": self.name,
            "origins": list(self.origins),
            "created_at_ms": self.created_at_ms,
            "revoked": self.revoked,
        }


def normalise_origin(origin: str) -> str:
    """`HTTPS://Shop.Example:443/` -> `https://shop.example`; ValueError when it is not an origin."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{origin!r} is not a web origin such as https://shop.example")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{origin!r} is not a web origin such as https://shop.example")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"
