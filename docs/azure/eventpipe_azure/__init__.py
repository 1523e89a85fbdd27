"""eventpipe's ports implemented on Azure: Blob Storage, a Storage queue and Cosmos DB.

The function app (docs/azure/function_app.py) wires them with `AzureRuntime.from_env()`.
"""

from __future__ import annotations

from eventpipe_azure.blob import BlobRawBucket
from eventpipe_azure.cosmos_curated import CosmosCuratedStore
from eventpipe_azure.cosmos_insights import CosmosInsightsStore
from eventpipe_azure.cosmos_state import CosmosBatchStore, CosmosQuarantine
from eventpipe_azure.queue import BatchMessage, QueueWorkflowStarter
from eventpipe_azure.runtime import AzureRuntime

__all__ = [
    "AzureRuntime",
    "BatchMessage",
    "BlobRawBucket",
    "CosmosBatchStore",
    "CosmosCuratedStore",
    "CosmosInsightsStore",
    "CosmosQuarantine",
    "QueueWorkflowStarter",
]
