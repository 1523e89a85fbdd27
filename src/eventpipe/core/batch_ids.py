"""Batch ids: how every kind is formed, and what can be read back from one. The one place for these rules.

- HTTP request (`request_batch_id`): `h` + received ms (11 hex) + 16 random hex;
- queued request, AWS micro-batching (`queued_batch_id`): `q` + received ms (11 hex) + its number of
  events (3 hex) + 16 random hex; `queued_id_facts` reads the first two back;
- group of requests (`group_batch_id`): `g` + 30 hex of a SHA-256 of the members' ids;
- file, S3 object, byte range of one (`source_batch_ids`): `s` + 20 hex of a SHA-256 of the source's
  version (`file_version`, `object_version` with `folder_etag` in a folder, `range_version`) and the
  batch size, `-`, 6 digits;
- replay of quarantined events (`replay_batch_id`): `replay-` + 24 hex of a SHA-256 of the run and
  its records.

Request ids are time-ordered and random; the others are derived from what they hold, so that doing
the same work again (a file read again, a group formed again after a crash) finds the same batches.
Every id is at most 31 characters of `[A-Za-z0-9_-]`: it names a Step Functions execution (80 at
most), also with a retry suffix (`execution_retry_name`).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

REQUEST_PREFIX = "h"
QUEUED_PREFIX = "q"
GROUP_PREFIX = "g"
SOURCE_PREFIX = "s"
REPLAY_PREFIX = "replay-"
# What the API and start_batches accept as a batch id: more than any id formed here, less
# than an execution name with its retry suffix. No store is asked about anything else.
BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_QUEUED_ID = re.compile(r"^q([0-9a-f]{11})([0-9a-f]{3})[0-9a-f]{16}$")
RANDOM_POOL_BYTES = 4096


class _RandomPool:
    """`os.urandom`'s bytes drawn a page at a time: the server took three system calls a request for
    its ids (each releasing the GIL to the request log's thread), now one per 512 ids. A child process
    starts with a pool of its own, never its parent's bytes. (A Lambda restored from a snapshot, with
    SnapStart, which the stacks do not enable, would need the same `forget` after each restore.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._at = 0

    def hex(self, size: int) -> str:
        with self._lock:
            at = self._at
            if at + size > len(self._bytes):
                self._bytes, at = os.urandom(RANDOM_POOL_BYTES), 0
            self._at = at + size
            return self._bytes[at : at + size].hex()

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._bytes, self._at = b"", 0


_random = _RandomPool()
os.register_at_fork(after_in_child=_random.forget)


def random_hex(size: int) -> str:
    """`size` random bytes (from the OS's generator) as hex."""
    return _random.hex(size)


def is_batch_id(text: str) -> bool:
    """Whether `text` has the shape of a batch id (not whether such a batch exists)."""
    return BATCH_ID.match(text) is not None


def request_batch_id(now_ms: int) -> str:
    """A fresh id per HTTP request, time-ordered: `h` + milliseconds (hex) + randomness."""
    return f"{REQUEST_PREFIX}{now_ms:011x}{random_hex(8)}"


def queued_batch_id(now_ms: int, received: int) -> str:
    """A queued request's id: time-ordered like every request id, and carrying its event count, so that
    `GET /batches/{id}` can answer `pending` for it before the batching function has recorded it."""
    return f"{QUEUED_PREFIX}{now_ms:011x}{min(received, 0xFFF):03x}{random_hex(8)}"


def queued_id_facts(batch_id: str) -> tuple[int, int] | None:
    """`(received_at_ms, received)` of a queued request's id; None for any other id."""
    match = _QUEUED_ID.match(batch_id)
    return None if match is None else (int(match[1], 16), int(match[2], 16))


def group_batch_id(member_ids: Sequence[str]) -> str:
    """The same members always make the same group id, so forming a group again after a crash rewrites
    the same object instead of leaving a second one."""
    return GROUP_PREFIX + hashlib.sha256("\n".join(member_ids).encode()).hexdigest()[:30]  # 31 characters


def file_version(resolved_path: str, size: int, mtime_ns: int) -> str:
    """A local file's version, for `source_batch_ids`: its path, size and modification time."""
    return f"{resolved_path}:{size}:{mtime_ns}"


def folder_etag(size: int, mtime_ns: int) -> str:
    """What tells the contents of one file of a folder bucket apart, as an ETag does on S3: its size
    and modification time (`object_version` takes it where a bucket keeps no versions)."""
    return f"{size}-{mtime_ns}"


def object_version(bucket: str, key: str, version: str | None) -> str:
    """An object's version, for `source_batch_ids`: its bucket, key and version id (or ETag where
    the bucket keeps no versions): the same notification again gives the same batch ids."""
    return f"s3://{bucket}/{key}#{version}"


def range_version(version: str, start: int, end: int) -> str:
    """The version of the byte range `[start, end)` of an object: no other range shares its batch ids."""
    return f"{version}@{start}-{end}"


def source_batch_ids(source_key: str, batch_size: int) -> Callable[[int], str]:
    """Batch ids for the n-th batch of one immutable source (a file version, an S3 object version).

    The same source cut the same way always gives the same ids, so ingesting it again, or after a
    crash, finishes what is missing; a different batch size gives other ids, never a batch that
    covers other lines.
    """
    digest = hashlib.sha256(f"{source_key}\n{batch_size}".encode()).hexdigest()[:20]
    return lambda number: f"{SOURCE_PREFIX}{digest}-{number:06d}"


def replay_batch_id(run: int, origins: Sequence[Sequence[object]]) -> str:
    """A replay batch's id, from its run (a time) and the `[batch_id, index]` records it carries."""
    return REPLAY_PREFIX + hashlib.sha256(orjson.dumps([run, origins])).hexdigest()[:24]


def is_replay(batch_id: str) -> bool:
    return batch_id.startswith(REPLAY_PREFIX)


def execution_retry_name(batch_id: str, now_ms: int) -> str:
    """The execution name of a batch started again where its own name is taken (`<batch_id>-retry-<ms>`)."""
    return f"{batch_id}-retry-{now_ms}"
