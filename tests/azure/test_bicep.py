"""main.bicep: parsed with pycep-parser (a Bicep grammar in Python; the Bicep CLI itself is a .NET
program that no registry reachable here ships), then checked against the code it deploys: the
Cosmos DB containers, the app settings the adapters and trigger bindings read, keyless access
with a role for each connection.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
from eventpipe_azure.containers import CONTAINERS
from eventpipe_azure.resources import _NAMES
from pycep import BicepParser

from eventpipe.handlers.drops import INCOMING_PREFIX
from tests.azure.conftest import AZURE_DIR, indexed_functions

BICEP = AZURE_DIR / "main.bicep"


@cache
def template() -> dict[str, Any]:
    return BicepParser().parse(text=BICEP.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def resources(kind: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by symbolic name: their `config` (inside any condition)."""
    found = {}
    for name, resource in template()["resources"].items():
        if resource["type"] == kind:
            config = resource["config"]
            found[name] = config.get("config", config) if "condition" in config else config
    return found


def app_settings() -> dict[str, Any]:
    (app,) = resources("Microsoft.Web/sites").values()
    return {setting["name"]: setting["value"] for setting in app["properties"]["siteConfig"]["appSettings"]}


@cache
def bindings() -> list[dict[str, Any]]:
    return [binding for f in indexed_functions() for binding in f.get_dict_repr()["bindings"]]


def test_a_broken_template_does_not_parse() -> None:
    # The parser is a real check: a missing `=` is a syntax error.
    broken = BICEP.read_text(encoding="utf-8").replace(
        "'Microsoft.Web/sites@2024-04-01' = {", "'Microsoft.Web/sites@2024-04-01' {"
    )
    with pytest.raises(Exception, match="Unexpected token"):
        BicepParser().parse(text=broken)


def test_cosmos_containers_are_the_ones_the_adapters_use() -> None:
    declared = {}
    for config in resources("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers").values():
        resource = config["properties"]["resource"]
        assert resource["id"] == config["name"]
        declared[resource["id"]] = (resource["partitionKey"]["paths"], "defaultTtl" in resource)
    assert declared == {spec.name: ([spec.partition_key], spec.ttl) for spec in CONTAINERS}


def test_flex_consumption_python_app() -> None:
    (plan,) = resources("Microsoft.Web/serverfarms").values()
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    (app,) = resources("Microsoft.Web/sites").values()
    assert app["kind"] == "functionapp,linux"
    assert app["properties"]["functionAppConfig"]["runtime"]["name"] == "python"
    assert template()["parameters"]["pythonVersion"]["default"] == "3.11"
    deployment = app["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"


def test_every_setting_the_code_reads_is_set() -> None:
    settings = app_settings()
    # eventpipe_azure.resources.AzureResources.from_env
    assert set(_NAMES.values()) <= set(settings)
    # the trigger bindings: `%NAME%` expressions, and identity-based connections `<connection>__...`
    expressions = {m for b in bindings() for v in b.values() if isinstance(v, str) for m in re.findall(r"%(\w+)%", v)}
    assert expressions == {"EVENTPIPE_EVENT_HUB", "EVENTPIPE_WORKFLOW_QUEUE"}
    assert expressions <= set(settings)
    connections = {b["connection"] for b in bindings() if b.get("connection")} | {"AzureWebJobsStorage"}
    for connection in connections:
        assert settings[f"{connection}__credential"] == "managedidentity"
        assert f"{connection}__clientId" in settings
        assert {
            f"{connection}__accountName",
            f"{connection}__fullyQualifiedNamespace",
            f"{connection}__queueServiceUri",
        } & set(settings)
    assert "AZURE_CLIENT_ID" in settings  # for DefaultAzureCredential in the adapters


def test_the_trigger_reads_the_consumer_group_the_template_creates() -> None:
    (group,) = resources("Microsoft.EventHub/namespaces/eventhubs/consumergroups").values()
    (trigger,) = [b for b in bindings() if b["type"] == "eventHubTrigger"]
    assert template()["variables"][group["name"]]["value"] == trigger["consumerGroup"]
    assert getattr(trigger["cardinality"], "value", None) == "many"


def test_no_keys_anywhere() -> None:
    text = BICEP.read_text(encoding="utf-8")
    assert "listKeys" not in text
    assert "AccountKey" not in text
    assert not any(name.endswith(("ConnectionString", "Key")) for name in template()["parameters"])
    (storage,) = resources("Microsoft.Storage/storageAccounts").values()
    assert storage["properties"]["allowSharedKeyAccess"] is False
    (cosmos,) = resources("Microsoft.DocumentDB/databaseAccounts").values()
    assert cosmos["properties"]["disableLocalAuth"] is True
    (hubs,) = resources("Microsoft.EventHub/namespaces").values()
    assert hubs["properties"]["disableLocalAuth"] is True
    (insights,) = resources("Microsoft.Insights/components").values()
    assert insights["properties"]["DisableLocalAuth"] is True


def test_the_identity_has_a_role_for_each_connection() -> None:
    roles = template()["variables"]["roles"]["value"]
    granted = set()
    for config in resources("Microsoft.Authorization/roleAssignments").values():
        text = json.dumps(config)
        (role,) = [name for name in roles if f'"{name}"' in text]
        assert '"identity"' in text
        assert '"principalId"' in text
        granted.add((config["scope"], role))
    assert granted == {
        ("storage", "storageBlobDataOwner"),
        ("storage", "storageQueueDataContributor"),
        ("eventHub", "eventHubsDataReceiver"),
        ("appInsights", "monitoringMetricsPublisher"),
    }
    (cosmos_role,) = resources("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments").values()
    assert cosmos_role["properties"]["roleDefinitionId"].endswith("/sqlRoleDefinitions/${cosmosDataContributor}")
    assert template()["variables"]["cosmosDataContributor"]["value"] == "00000000-0000-0000-0000-000000000002"


def test_drops_under_incoming_reach_ingest_drop() -> None:
    (subscription,) = resources("Microsoft.EventGrid/systemTopics/eventSubscriptions").values()
    destination = subscription["properties"]["destination"]
    assert destination["properties"]["resourceId"].endswith("/functions/ingest_drop")
    assert "ingest_drop" in {f.get_function_name() for f in indexed_functions()}
    raw = template()["variables"]["rawContainerName"]["value"]
    prefix = subscription["properties"]["filter"]["subjectBeginsWith"].replace("${rawContainerName}", raw)
    assert prefix == f"/blobServices/default/containers/{raw}/blobs/{INCOMING_PREFIX}"


def test_host_json_matches_the_code() -> None:
    host = json.loads((AZURE_DIR / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["http"]["routePrefix"] == ""  # URLs are /events, /batches/{id}, as in AWS
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"  # what QueueWorkflowStarter sends
    assert host["extensions"]["eventHubs"]["maxEventBatchSize"] <= 5000  # EVENTPIPE_MAX_BATCH_EVENTS' ceiling
