"""Apps and their write keys: who may send events, and from which web origins.

A write key is a random secret shown once, at creation; stores keep only its SHA-256, so a copy of
the store cannot be used to send events. A key is looked up by that hash and the stored hash is
compared in constant time, so timing tells nothing about how close a guess came.

    app, key = new_app("shop", origins=("https://shop.example",), now_ms=clock.now_ms())
    store.create(app)
    directory.authenticate(key)   # the app, or None for an unknown or revoked key
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventpipe.core.model import App, normalise_origin

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.core.ports import AppStore

__all__ = [
    "MAX_KEY_CHARS",
    "App",
    "AppDirectory",
    "hash_key",
    "new_app",
    "normalise_origin",
]

KEY_PREFIX = "epk_"
MAX_KEY_CHARS = 128  # a real key is 47 characters; anything longer is refused before hashing
MAX_NAME_CHARS = 128
APP_ID = re.compile(r"^app_[0-9a-f]{16}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_app(name: str, *, origins: tuple[str, ...] = (), now_ms: int) -> tuple[App, str]:
    """A new app and its write key (returned once, never stored). ValueError for a bad name or origin."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"an app's name must have 1 to {MAX_NAME_CHARS} characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    app = App(
        app_id=f"app_{secrets.token_hex(8)}",
        name=name,
        key_hash=hash_key(key),
        origins=tuple(dict.fromkeys(normalise_origin(o) for o in origins)),
        created_at_ms=now_ms,
    )
    return app, key


@dataclass
class AppDirectory:
    """Answers "which app is this key?" from a store, through a small cache.

    `ttl_s=0` reads the store every time (the local runtime: `apps revoke` takes effect at once).
    On AWS each container caches answers for `ttl_s`, so a burst of requests costs one read per key
    (and unknown keys a bounded number of entries), at the price of a revocation taking up to
    `ttl_s` to reach every container.
    """

    store: AppStore
    ttl_s: float = 0.0
    max_entries: int = 10_000
    # Names the moment a request is answered in, when several are answered at one moment: they share
    # `keys_required`'s read. `eventpipe up`'s server answers a loop pass's requests at one (they all
    # arrived before it began: localrun/log_acks.py); None, the default, reads for each request.
    same_moment: Callable[[], object | None] = field(default=lambda: None)
    _cache: OrderedDict[str, tuple[float, App | None]] = field(default_factory=OrderedDict)
    _any: tuple[float, bool] | None = None
    _any_at: tuple[object, bool] | None = None  # keys_required's answer at a moment of `same_moment`
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keys_required(self) -> bool:
        """True once an app has been created (revoked or not): from then on, `POST /events` needs a key."""
        moment = self.same_moment()
        if moment is not None and self._any_at is not None and self._any_at[0] is moment:
            return self._any_at[1]
        now = time.monotonic()
        cached = self._any
        if cached is not None and now < cached[0]:
            return cached[1]  # on AWS, without apps, a keyless request would otherwise cost a Scan
        exists = self.store.any_app()
        self._any = (now + self.ttl_s, exists)
        if moment is not None:
            self._any_at = (moment, exists)
        return exists

    def authenticate(self, key: str) -> App | None:
        """The active app whose key this is; None for an unknown, malformed or revoked key."""
        if not key or len(key) > MAX_KEY_CHARS:
            return None
        digest = hash_key(key)
        app = self._lookup(digest)
        if app is None or app.revoked or not hmac.compare_digest(app.key_hash, digest):
            return None
        return app

    def _lookup(self, digest: str) -> App | None:
        if self.ttl_s <= 0:
            return self.store.by_key_hash(digest)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and now < hit[0]:
                return hit[1]
        app = self.store.by_key_hash(digest)
        with self._lock:
            self._cache[digest] = (now + self.ttl_s, app)
            self._cache.move_to_end(digest)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return app
