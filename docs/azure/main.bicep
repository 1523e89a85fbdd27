// eventpipe on Azure: Functions (Flex Consumption, Python), Blob Storage, a Storage queue, Event Hubs,
// Cosmos DB (NoSQL API) and Application Insights. Every connection uses the app's user-assigned
// managed identity and a role assignment; no account key or connection string is created or stored,
// and the storage account, the Event Hubs namespace and the Cosmos DB account refuse keys altogether.
//
// Deploy into an existing resource group (README.md, "Deploy"):
//   az deployment group create -g <group> -f docs/azure/main.bicep
// and, once the function code is published, once more with -p deployDropSubscription=true, which
// subscribes the `ingest_drop` function to the blobs created under incoming/.

targetScope = 'resourceGroup'

@description('Region of every resource; it must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Short lowercase prefix of the resource names.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'eventpipe'

@description('Python version of the function app.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Most instances the app scales out to (Flex Consumption: 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of one instance, in MB.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Partitions of the event hub: the most Event Hubs trigger instances that read it at once.')
@minValue(1)
@maxValue(32)
param eventHubPartitions int = 8

@description('Throughput units of the Event Hubs namespace (1 MB/s or 1,000 events/s in each).')
@minValue(1)
@maxValue(40)
param eventHubThroughputUnits int = 2

@description('Cosmos DB serverless (pay per request, as DynamoDB on demand) or provisioned autoscale throughput.')
param cosmosServerless bool = true

@description('Autoscale maximum RU/s of the database when not serverless.')
@minValue(1000)
param cosmosAutoscaleMaxThroughput int = 4000

@description('Subscribe ingest_drop to the blobs created under incoming/: only once the function code is published.')
param deployDropSubscription bool = false

var token = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))
var storageAccountName = take('${namePrefix}${token}', 24)
var functionAppName = '${namePrefix}-func-${token}'
var rawContainerName = 'raw'
var analyticsContainerName = 'analytics' // the insights export, for Power BI: it never reads raw/
var deploymentContainerName = 'app-package'
var workflowQueueName = 'eventpipe-batches'
var eventHubName = 'events'
var consumerGroupName = 'eventpipe'
var databaseName = 'eventpipe'

// Built-in role definitions (their ids are the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
// Cosmos DB's own data-plane role: Built-in Data Contributor (read and write items, no account changes).
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

// ---- identity and monitoring ----------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id-${token}'
  location: location
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs-${token}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-ai-${token}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true // telemetry is accepted from Entra ID identities only
  }
}

// ---- storage: the raw container, the workflow queue, the app's own state and package -------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource rawContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: rawContainerName
}

resource analyticsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: analyticsContainerName
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource workflowQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: workflowQueueName
}

// ---- Event Hubs: the high-volume ingest path --------------------------------------------------------

resource eventHubs 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: '${namePrefix}-eh-${token}'
  location: location
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: eventHubThroughputUnits
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    isAutoInflateEnabled: false
  }
}

resource eventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubs
  name: eventHubName
  properties: {
    partitionCount: eventHubPartitions
    messageRetentionInDays: 1
  }
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: eventHub
  name: consumerGroupName
}

// ---- Cosmos DB: curated events, batch state and quarantine, insights ------------------------------
// Partition keys as in docs/azure/eventpipe_azure/containers.py (tests/azure checks that they agree).

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: '${namePrefix}-cosmos-${token}'
  location: location
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true // containers change through the template, not through data-plane calls
    minimalTlsVersion: 'Tls12'
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    capabilities: cosmosServerless ? [
      {
        name: 'EnableServerless'
      }
    ] : []
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: cosmos
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: cosmosServerless ? {} : {
      autoscaleSettings: {
        maxThroughput: cosmosAutoscaleMaxThroughput
      }
    }
  }
}

resource curatedContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'curated'
  properties: {
    resource: {
      id: 'curated'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
      }
    }
  }
}

resource stateContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'state'
  properties: {
    resource: {
      id: 'state'
      partitionKey: {
        paths: [
          '/pk'
        ]
        kind: 'Hash'
      }
    }
  }
}

resource insightsContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'insights'
  properties: {
    resource: {
      id: 'insights'
      partitionKey: {
        paths: [
          '/pk'
        ]
        kind: 'Hash'
      }
      defaultTtl: -1 // items expire only where they carry a `ttl` (applied markers, funnel rows)
    }
  }
}

// ---- the function app -------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${namePrefix}-plan-${token}'
  location: location
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        // The host's own storage, the Event Hubs trigger and the queue trigger, through the identity.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'EventHubConnection__fullyQualifiedNamespace'
          value: '${eventHubs.name}.servicebus.windows.net'
        }
        {
          name: 'EventHubConnection__credential'
          value: 'managedidentity'
        }
        {
          name: 'EventHubConnection__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'WorkflowQueue__queueServiceUri'
          value: storage.properties.primaryEndpoints.queue
        }
        {
          name: 'WorkflowQueue__credential'
          value: 'managedidentity'
        }
        {
          name: 'WorkflowQueue__clientId'
          value: identity.properties.clientId
        }
        // DefaultAzureCredential in eventpipe's adapters picks this identity.
        {
          name: 'AZURE_CLIENT_ID'
          value: identity.properties.clientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        // eventpipe's settings (eventpipe_azure/resources.py and src/eventpipe/settings.py).
        {
          name: 'EVENTPIPE_BLOB_ACCOUNT_URL'
          value: storage.properties.primaryEndpoints.blob
        }
        {
          name: 'EVENTPIPE_BUCKET'
          value: rawContainerName
        }
        {
          name: 'EVENTPIPE_ANALYTICS_BUCKET'
          value: analyticsContainerName
        }
        {
          name: 'EVENTPIPE_QUEUE_ACCOUNT_URL'
          value: storage.properties.primaryEndpoints.queue
        }
        {
          name: 'EVENTPIPE_WORKFLOW_QUEUE'
          value: workflowQueueName
        }
        {
          name: 'EVENTPIPE_COSMOS_ENDPOINT'
          value: cosmos.properties.documentEndpoint
        }
        {
          name: 'EVENTPIPE_COSMOS_DATABASE'
          value: databaseName
        }
        {
          name: 'EVENTPIPE_EVENT_HUB'
          value: eventHubName
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
  dependsOn: [
    deploymentContainer
    rawContainer
    workflowQueue
    consumerGroup
    curatedContainer
    stateContainer
    insightsContainer
  ]
}

// ---- role assignments: what the identity may do, and nothing more ---------------------------------

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource hubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHub.id, identity.id, roles.eventHubsDataReceiver)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource cosmosWriter 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: cosmos
  name: guid(cosmos.id, identity.id, cosmosDataContributor)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: identity.properties.principalId
    scope: cosmos.id
  }
}

// ---- files dropped under incoming/: Event Grid calls ingest_drop -----------------------------------

resource storageEvents 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: '${namePrefix}-st-events-${token}'
  location: location
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource dropSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (deployDropSubscription) {
  parent: storageEvents
  name: 'ingest-drop'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/ingest_drop'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${rawContainerName}/blobs/incoming/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output functionAppName string = functionApp.name
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
output storageAccountName string = storage.name
output rawContainer string = rawContainerName
output analyticsContainer string = analyticsContainerName
output eventHubsNamespace string = eventHubs.name
output eventHubName string = eventHubName
output cosmosEndpoint string = cosmos.properties.documentEndpoint
output identityPrincipalId string = identity.properties.principalId
