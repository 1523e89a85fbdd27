"""SDK clients with the timeouts every adapter shares, signed in with the app's managed identity.

In Azure the function app has no keys: `DefaultAzureCredential` finds its managed identity (and,
on a developer's machine, the `az login` session). Tests pass their own clients instead.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# Seconds; the SDKs retry throttling and transient errors themselves (exponential, a few tries).
CONNECTION_TIMEOUT = 5
READ_TIMEOUT = 20


@cache
def default_credential() -> TokenCredential:
    """One credential per process: it caches tokens, so every client shares it."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def timeouts() -> dict[str, Any]:
    return {"connection_timeout": CONNECTION_TIMEOUT, "read_timeout": READ_TIMEOUT}


def cosmos_database(endpoint: str, database: str) -> Any:
    """A `DatabaseProxy`, signed in with the managed identity (no account keys).

    One `CosmosClient` per process serves every container: it holds the account's connection pool
    and its view of the account's regions.
    """
    from azure.cosmos import CosmosClient

    client = CosmosClient(endpoint, credential=default_credential(), connection_timeout=CONNECTION_TIMEOUT)
    return client.get_database_client(database)
