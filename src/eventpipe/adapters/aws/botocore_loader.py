"""A botocore data loader that reads its JSON models with orjson and skips the service directory scan.

Building a client loads its service model, endpoint rules, `endpoints.json` (1.25 MB) and a few
small files. With botocore's own loader, half of a client's construction is the stdlib JSON
decoder and a fifth is listing the ~400 service folders twice to check that the service exists:
together most of a Lambda cold start after botocore's import. This loader is registered through
botocore's own component mechanism (`session.register_component("data_loader", ...)`), reads the
same files from the same search paths (so `AWS_DATA_PATH` and `~/.aws/models` still override),
and returns the same data; only the JSON decoder and the existence check differ.

The session takes the credentials from the environment when they are there, as botocore's
default chain would, without building that chain.

On Lambda, the files of eventpipe's own services come pre-parsed from a file built at package time
(`model_cache.py`), when the deployed package has one.
"""

from __future__ import annotations

import gzip
import os
from typing import TYPE_CHECKING, Any

import botocore.session
import orjson
from botocore.credentials import CredentialResolver, EnvProvider
from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader, instance_cache

if TYPE_CHECKING:
    from eventpipe.adapters.aws.model_cache import PreparsedModels

__all__ = ["OrjsonLoader", "fast_session"]


class OrjsonFileLoader(JSONFileLoader):
    """botocore's `.json` / `.json.gz` files, decoded by orjson (about 5x faster than `json`), or pre-parsed."""

    def __init__(self, models: PreparsedModels | None = None) -> None:
        self._models = models

    def load_file(self, file_path: str) -> Any:
        if self._models is not None and (known := self._models.find(file_path)) is not None:
            return known
        for extension, gzipped in ((".json", False), (".json.gz", True)):
            path = file_path + extension
            try:
                with open(path, "rb") as stream:
                    data = stream.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            if self._models is not None and (matched := self._models.match(path, data)) is not None:
                return matched
            return orjson.loads(gzip.decompress(data) if gzipped else data)
        return None


class OrjsonLoader(Loader):
    """botocore's Loader with `OrjsonFileLoader`, finding a service by its own folder, not by a full scan."""

    def __init__(self, models: PreparsedModels | None = None) -> None:
        search = os.environ.get("AWS_DATA_PATH")  # what botocore's `create_loader` reads too
        extra = [os.path.expanduser(path) for path in search.split(os.pathsep)] if search else None
        super().__init__(extra_search_paths=extra, file_loader=OrjsonFileLoader(models))

    @instance_cache
    def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        try:
            version = api_version or self.determine_latest_version(service_name, type_name)
        except DataNotFoundError:
            # Not found in its folder: botocore's own path scans them all and raises UnknownServiceError.
            return super().load_service_model(service_name, type_name, api_version)
        model = self.load_data(os.path.join(service_name, version, type_name))
        # botocore's own two steps for the SDK's extras files (not in its type stubs)
        extras = self._find_extras(service_name, type_name, version)  # type: ignore[attr-defined]
        self._extras_processor.process(model, extras)  # type: ignore[attr-defined]
        return model


def fast_session(models: PreparsedModels | None = None) -> botocore.session.Session:
    """A botocore session whose clients load their models through `OrjsonLoader` (and `models`, if given)."""
    session = botocore.session.get_session()
    session.register_component("data_loader", OrjsonLoader(models))
    if has_env_credentials():
        # botocore's default chain would return these too: its environment provider comes first when
        # no profile is set on the session (none is here). Building the other nine providers, with
        # the instance and container metadata fetchers' HTTP sessions, costs 2 ms of a cold start.
        session.register_component("credential_provider", CredentialResolver([EnvProvider()]))
    return session


def has_env_credentials() -> bool:
    """Whether the environment holds a key pair, as a Lambda function's always does."""
    return bool(os.environ.get("AWS_ACCESS_KEY_ID")) and bool(os.environ.get("AWS_SECRET_ACCESS_KEY"))
