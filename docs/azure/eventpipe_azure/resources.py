"""The names of the Azure resources the function app uses; main.bicep sets them as app settings.

| variable | meaning |
| --- | --- |
| EVENTPIPE_BLOB_ACCOUNT_URL | the storage account's blob endpoint (`https://<account>.blob.core.windows.net`) |
| EVENTPIPE_BUCKET | the raw container (`incoming/`, `raw/`, `staged/`, `rejected/`), as in AWS |
| EVENTPIPE_ANALYTICS_BUCKET | the analytics container the insights export writes (Power BI reads it) |
| EVENTPIPE_QUEUE_ACCOUNT_URL | the storage account's queue endpoint |
| EVENTPIPE_WORKFLOW_QUEUE | the queue of batches to run the workflow for |
| EVENTPIPE_COSMOS_ENDPOINT | the Cosmos DB account (`https://<account>.documents.azure.com:443/`) |
| EVENTPIPE_COSMOS_DATABASE | the database holding the containers of containers.py |

The trigger bindings read their own settings: `EVENTPIPE_EVENT_HUB` (the hub) and
`EventHubConnection__fullyQualifiedNamespace`, `WorkflowQueue__queueServiceUri`, `AzureWebJobsStorage__*`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

_NAMES = {
    "blob_account_url": "EVENTPIPE_BLOB_ACCOUNT_URL",
    "bucket": "EVENTPIPE_BUCKET",
    "analytics_bucket": "EVENTPIPE_ANALYTICS_BUCKET",
    "queue_account_url": "EVENTPIPE_QUEUE_ACCOUNT_URL",
    "workflow_queue": "EVENTPIPE_WORKFLOW_QUEUE",
    "cosmos_endpoint": "EVENTPIPE_COSMOS_ENDPOINT",
    "cosmos_database": "EVENTPIPE_COSMOS_DATABASE",
}


@dataclass(frozen=True)
class AzureResources:
    blob_account_url: str
    bucket: str
    analytics_bucket: str
    queue_account_url: str
    workflow_queue: str
    cosmos_endpoint: str
    cosmos_database: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AzureResources:
        missing = [variable for variable in _NAMES.values() if not environ.get(variable)]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not set: the function app needs every Azure resource named")
        return cls(**{field_name: environ[variable] for field_name, variable in _NAMES.items()})
