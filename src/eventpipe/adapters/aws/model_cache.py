"""botocore's data for eventpipe's clients, parsed once at package time into one file.

A Lambda cold start spends most of its client construction decoding JSON: each service model
(S3's is 1.4 MB, with its documentation), its endpoint rules and `endpoints.json` (1.25 MB, every
service in every region), only to use a sliver of them. `python -m eventpipe.adapters.aws.model_cache
DIR...` (run by `scripts/deploy_sam.sh` on the built functions) writes `botocore-models.marshal` into
each DIR: the files of the services in `SERVICES`, already decoded, with their documentation
strings emptied (only docstrings show them), and `endpoints.json` cut to those services. `marshal` reads
that back in a few milliseconds.

The file is only a faster way to the same data, never a different one: an entry is used when the
running botocore is the version the file was built from, or else when the file on disk still has
the same size and CRC-32 as the one the entry was built from. Any other file is read from disk as
before, and a missing, foreign or damaged cache file is ignored.
"""

from __future__ import annotations

import gzip
import json
import logging
import marshal
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore
from botocore.loaders import Loader

from eventpipe.adapters.aws.regex_cache import REGEX_CACHE_NAME, build_regex_cache, read_marshalled

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MODEL_CACHE_NAME", "SERVICES", "PreparsedModels", "build_model_cache", "main"]

logger = logging.getLogger(__name__)

MODEL_CACHE_NAME = "botocore-models.marshal"
FORMAT = 1
MAX_CACHE_BYTES = 16 * 1024 * 1024  # the six services' data is under 1 MB; anything far larger is not ours
# Every service eventpipe builds a client for (`clients.make_client` refuses others): the cut
# `endpoints.json` has entries for these only, and for STS, which botocore's credential providers may call.
SERVICES = ("dynamodb", "firehose", "lambda", "s3", "sqs", "ssm", "stepfunctions")
DATA_FILES = ("endpoints", "partitions", "sdk-default-configuration", "_retry")
SKIPPED_SERVICE_FILES = ("examples-1",)  # documentation examples: never loaded by a client
EXTENSIONS = (".json", ".json.gz")
DOC_KEYS = frozenset({"documentation", "documentationUrl"})

# One entry: the source file's size and CRC-32, and its trimmed data marshalled on its own, so each
# load returns fresh objects (botocore merges its extras into a service model in place).
Entry = tuple[int, int, bytes]


class PreparsedModels:
    """The entries of a cache file, looked up by a data file's path under botocore's data folder."""

    def __init__(self, entries: dict[str, Entry], *, trusted: bool, data_dir: str = Loader.BUILTIN_DATA_PATH) -> None:
        self._entries = entries
        self._trusted = trusted  # built from this very botocore version: its files are the ones on disk
        self._prefix = os.path.join(data_dir, "")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PreparsedModels | None:
        """The cache file at `path`, or None (logged) when it is missing, too large or not one of ours."""
        try:
            document = read_marshalled(path, MAX_CACHE_BYTES)
        except OSError:
            return None
        except ValueError as error:
            logger.warning("botocore model cache %s ignored: %s", path, error)
            return None
        entries = _valid_entries(document)
        if entries is None:
            logger.warning("botocore model cache %s ignored: not a cache file of this Python", path)
            return None
        return cls(entries, trusted=document["botocore"] == botocore.__version__)

    def find(self, file_path: str) -> Any | None:
        """The data for `file_path` (botocore's path without extension) when the file is known unchanged."""
        if not self._trusted:
            return None
        relative = self._relative(file_path)
        if relative is None:
            return None
        for extension in EXTENSIONS:
            entry = self._entries.get(relative + extension)
            if entry is not None:
                return marshal.loads(entry[2])
        return None

    def match(self, path: str, content: bytes) -> Any | None:
        """The data for the file at `path` (with its extension) read as `content`, if an entry was built from it."""
        relative = self._relative(path)
        entry = None if relative is None else self._entries.get(relative)
        if entry is None or entry[0] != len(content) or entry[1] != zlib.crc32(content):
            return None
        return marshal.loads(entry[2])

    def _relative(self, path: str) -> str | None:
        if not path.startswith(self._prefix):
            return None  # an override (AWS_DATA_PATH, ~/.aws/models): read as it is
        return path[len(self._prefix) :].replace(os.sep, "/")


def _valid_entries(document: Any) -> dict[str, Entry] | None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return None
    if document.get("marshal") != marshal.version or not isinstance(document.get("botocore"), str):
        return None
    entries = document.get("files")
    if not isinstance(entries, dict):
        return None
    for name, entry in entries.items():
        if not (
            isinstance(name, str)
            and isinstance(entry, tuple)
            and len(entry) == 3
            and isinstance(entry[0], int)
            and isinstance(entry[1], int)
            and isinstance(entry[2], bytes)
        ):
            return None
    return entries


def build_model_cache(data_dir: str = Loader.BUILTIN_DATA_PATH, services: tuple[str, ...] = SERVICES) -> bytes:
    """The cache file's content for `services`, from botocore's data folder `data_dir`."""
    entries: dict[str, Entry] = {}
    prefixes = {"sts"}  # `endpoints.json` names a service by its endpoint prefix (Step Functions: "states")
    for service in services:
        version = _latest_version(data_dir, service)
        for file_name in sorted(os.listdir(os.path.join(data_dir, service, version))):
            stem = _stem(file_name)
            if stem is not None and stem not in SKIPPED_SERVICE_FILES:
                data = _add(entries, data_dir, f"{service}/{version}/{stem}")
                if stem == "service-2":
                    prefixes.add(data["metadata"]["endpointPrefix"])
    for name in DATA_FILES:
        _add(entries, data_dir, name, (lambda data: _endpoints_for(data, prefixes)) if name == "endpoints" else None)
    document = {"format": FORMAT, "marshal": marshal.version, "botocore": botocore.__version__, "files": entries}
    return marshal.dumps(document)


def _add(entries: dict[str, Entry], data_dir: str, name: str, cut: Callable[[Any], Any] | None = None) -> Any:
    """Add the data file `name` (e.g. `s3/2006-03-01/service-2`), cut by `cut`, without its docs; its data."""
    for extension in EXTENSIONS:
        path = os.path.join(data_dir, *name.split("/")) + extension
        if not os.path.isfile(path):
            continue
        content = Path(path).read_bytes()
        data = json.loads(gzip.decompress(content) if extension.endswith(".gz") else content)
        if cut is not None:
            data = cut(data)
        entries[name + extension] = (len(content), zlib.crc32(content), marshal.dumps(_without_docs(data)))
        return data
    raise FileNotFoundError(f"botocore data file {name} not found in {data_dir}")


def _latest_version(data_dir: str, service: str) -> str:
    """The API version botocore picks for a client: the latest one that has a service model."""
    folder = os.path.join(data_dir, service)
    versions = [v for v in os.listdir(folder) if any(_exists(folder, v, "service-2", e) for e in EXTENSIONS)]
    if not versions:
        raise FileNotFoundError(f"botocore has no service model for {service} in {data_dir}")
    return sorted(versions)[-1]


def _exists(folder: str, version: str, stem: str, extension: str) -> bool:
    return os.path.isfile(os.path.join(folder, version, stem + extension))


def _stem(file_name: str) -> str | None:
    for extension in sorted(EXTENSIONS, key=len, reverse=True):
        if file_name.endswith(extension):
            return file_name[: -len(extension)]
    return None


def _endpoints_for(endpoints: dict[str, Any], services: set[str]) -> dict[str, Any]:
    """`endpoints.json` with only `services`: a client reads its own service's entry and the partitions'."""
    partitions = []
    for partition in endpoints["partitions"]:
        kept = {name: entry for name, entry in partition.get("services", {}).items() if name in services}
        partitions.append({**partition, "services": kept})
    return {**endpoints, "partitions": partitions}


def _without_docs(data: Any) -> Any:
    """`data` with its documentation strings emptied, not removed: botocore reads some of the keys.

    Only string values: a structure's member may be named "documentation".
    """
    if isinstance(data, dict):
        return {
            key: "" if key in DOC_KEYS and isinstance(value, str) else _without_docs(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_without_docs(value) for value in data]
    return data


def main(argv: list[str] | None = None) -> None:
    import argparse  # not at import: a cold start reads the cache, it does not build it

    parser = argparse.ArgumentParser(
        description="Write botocore's pre-parsed models and the compiled regular expressions into Lambda folders."
    )
    parser.add_argument("folders", nargs="*", type=Path, help=f"where to write {MODEL_CACHE_NAME}")
    parser.add_argument(
        "--sam-build", type=Path, help="`sam build`'s output: each function folder in it (with lambda_pipeline.py)"
    )
    args = parser.parse_args(argv)
    folders = list(args.folders)
    if args.sam_build is not None:
        folders += sorted(path.parent for path in args.sam_build.glob("*/lambda_pipeline.py"))
    if not folders:
        parser.error("no folder to write to (give folders, or --sam-build with built functions)")
    content = build_model_cache()
    for folder in folders:
        target = _write(folder / MODEL_CACHE_NAME, content)
        print(f"{target}: {len(content):,} bytes, botocore {botocore.__version__}, services {', '.join(SERVICES)}")
    # The functions' regular expressions too (regex_cache.py): recorded by this Python, from the first folder's code.
    try:
        compiled = build_regex_cache(folders[0])
    except RuntimeError as error:
        print(f"warning: no {REGEX_CACHE_NAME} (each cold start compiles its regular expressions): {error}")
        return
    for folder in folders:
        print(f"{_write(folder / REGEX_CACHE_NAME, compiled)}: {len(compiled):,} bytes")


def _write(target: Path, content: bytes) -> Path:
    partial = target.with_suffix(".partial")
    partial.write_bytes(content)
    partial.replace(target)
    return target


if __name__ == "__main__":
    main()
