"""Configuration files kept in S3: user schemas under a prefix, the currency rates and the GeoIP database.

`S3Schemas` gives the schema registry of `s3://bucket/prefix` (files `<event_type>/<version>.json`,
as in a local `EVENTPIPE_SCHEMA_DIR`), so that a team ships a new event type or version by uploading
a file, without a deploy. It lists the prefix at most once per `refresh_s` (a LIST request, about
$0.005 per 1,000) and downloads and compiles the files again only when a key, size or ETag changed.
A refresh that finds a broken schema keeps the registry it had and logs why; at cold start a broken
schema fails the function, as a broken local schema directory fails `eventpipe up`.

The files are copied into a fresh temporary folder and loaded by `SchemaRegistry.load`, so every
check of a local schema directory applies here too.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, storage_error
from eventpipe.core.errors import ConfigError, SchemaLoadError
from eventpipe.core.registry import MAX_SCHEMA_FILE_BYTES, SchemaRegistry

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

MAX_SCHEMA_FILES = 1000  # each is compiled at load: a bound on cold-start time
MAX_CONFIG_FILE_BYTES = 1024 * 1024
SCHEMA_KEY = re.compile(r"^([a-z][a-z0-9_]{0,63})/([0-9]+-[0-9]+-[0-9]+)\.json$")
S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.*)$")

Listing = tuple[tuple[str, int, str], ...]  # (key, size, ETag) of every schema file, sorted


def parse_s3_uri(uri: str, variable: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix); `ConfigError` naming `variable` otherwise."""
    match = S3_URI.match(uri)
    if match is None:
        raise ConfigError(f"{variable}={uri!r} is not an s3://bucket/key location")
    return match.group(1), match.group(2)


class S3Schemas:
    """The registry of the bundled schemas plus those under an S3 prefix, refreshed on a TTL."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: S3Client | None = None,
        *,
        refresh_s: float = 60.0,
        monotonic: Callable[[], float],
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.refresh_s = refresh_s
        self._client: S3Client = client or make_client("s3")
        self._monotonic = monotonic
        self._listing: Listing | None = None
        self._registry: SchemaRegistry | None = None
        self._checked_at = 0.0

    def current(self) -> SchemaRegistry:
        """The registry; the first call loads it (errors raise), later ones refresh it once per `refresh_s`."""
        if self._registry is None:
            self._listing = self._list()
            self._registry = self._load(self._listing)
            self._checked_at = self._monotonic()
            return self._registry
        if self._monotonic() - self._checked_at >= self.refresh_s:
            self._checked_at = self._monotonic()
            self._refresh()
        return self._registry

    def _refresh(self) -> None:
        try:
            listing = self._list()
            if listing == self._listing:
                return
            registry = self._load(listing)
        except (SchemaLoadError, ConfigError) as exc:
            log.error(
                "schemas under s3://%s/%s not reloaded, the previous ones stay: %s", self.bucket, self.prefix, exc
            )
            return
        except Exception as exc:  # S3 unreachable for a moment: the schemas in use stay
            log.error("schemas under s3://%s/%s not refreshed: %s", self.bucket, self.prefix, exc)
            return
        log.info("schemas reloaded from s3://%s/%s: %d files", self.bucket, self.prefix, len(listing))
        self._listing, self._registry = listing, registry

    def _list(self) -> Listing:
        found: list[tuple[str, int, str]] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"].removeprefix(self.prefix)
                    if relative.endswith("/") or relative.startswith((".", "_")) or "/." in relative:
                        continue  # folder markers and hidden files, as a local directory listing skips them
                    if not SCHEMA_KEY.match(relative):
                        raise SchemaLoadError(
                            f"s3://{self.bucket}/{item['Key']}: not <event_type>/<MODEL-REVISION-ADDITION>.json"
                        )
                    if item["Size"] > MAX_SCHEMA_FILE_BYTES:
                        raise SchemaLoadError(
                            f"s3://{self.bucket}/{item['Key']}: larger than {MAX_SCHEMA_FILE_BYTES} bytes"
                        )
                    found.append((relative, item["Size"], item.get("ETag", "")))
                    if len(found) > MAX_SCHEMA_FILES:
                        raise SchemaLoadError(f"s3://{self.bucket}/{self.prefix}: more than {MAX_SCHEMA_FILES} files")
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot list the schemas under s3://{self.bucket}/{self.prefix}") from exc
        return tuple(sorted(found))

    def _load(self, listing: Listing) -> SchemaRegistry:
        folder = Path(tempfile.mkdtemp(prefix="eventpipe-schemas-"))
        try:
            for relative, _size, _etag in listing:
                target = folder / relative
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(self._get(self.prefix + relative, MAX_SCHEMA_FILE_BYTES))
            return SchemaRegistry.load(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # compiled validators keep no file open

    def _get(self, key: str, limit: int) -> bytes:
        return get_object(self._client, self.bucket, key, limit)


def get_object(client: S3Client, bucket: str, key: str, limit: int = MAX_CONFIG_FILE_BYTES) -> bytes:
    """One configuration object, at most `limit` bytes (`ConfigError` past it)."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        data = body.read(limit + 1)
    except AWS_ERRORS as exc:
        raise storage_error(exc, f"cannot read s3://{bucket}/{key}") from exc
    if len(data) > limit:
        raise ConfigError(f"s3://{bucket}/{key} is larger than {limit} bytes")
    return data


def download_object(client: S3Client, bucket: str, key: str, target: Path, limit: int) -> None:
    """One object into the file `target`, streamed (a GeoIP database is tens of MB), at most `limit`
    bytes (`ConfigError` past it, the partial file removed)."""
    written = 0
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with target.open("wb") as file:
            for chunk in body.iter_chunks(1024 * 1024):
                written += len(chunk)
                if written > limit:
                    break
                file.write(chunk)
    except AWS_ERRORS as exc:
        target.unlink(missing_ok=True)
        raise storage_error(exc, f"cannot read s3://{bucket}/{key}") from exc
    if written > limit:
        target.unlink(missing_ok=True)
        raise ConfigError(f"s3://{bucket}/{key} is larger than {limit} bytes")
