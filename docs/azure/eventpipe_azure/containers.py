"""The Cosmos DB containers and their keys, in one place: the adapters, the tests and main.bicep follow these.

They mirror the DynamoDB tables (src/eventpipe/adapters/aws/tables.py), with Cosmos DB's rules:
an item is addressed by its partition key value and its `id`, which may not hold `/ \\ ? #`, and a
transaction (a transactional batch) stays within one logical partition.

- curated, partition key `/id`: one item per curated event, `id` = its event id in lower case (as
  DynamoDB's hash key `event_id`); `batch_id` tells which batch stored it.
- state, partition key `/pk`: a batch's record (`pk = batch:<id>`, `id = batch`) and its
  quarantined events (`id = rej-<index, 10 digits>`) share the batch's partition, as in DynamoDB.
  DynamoDB's sparse `unfinished` index becomes an `open` field that only unfinished records carry,
  read with a cross-partition query (the default indexing policy indexes it).
- insights, partition key `/pk`: minute counter items (`pk = minute:<UTC day>`, `id` = the minute
  in epoch seconds, 12 digits) with their dirty-hour items and each batch's applied markers in the
  same partition (so that marker, dirty hour and counters commit in one transactional batch), and
  minute sketch items (`pk = sketch:<UTC day>`: users and funnel sessions). Markers expire by the
  per-item `ttl`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    partition_key: str
    ttl: bool = False  # per-item `ttl` honoured (defaultTtl -1 in main.bicep: nothing expires by default)


CURATED = ContainerSpec("curated", "/id")
STATE = ContainerSpec("state", "/pk")
INSIGHTS = ContainerSpec("insights", "/pk", ttl=True)
CONTAINERS = (CURATED, STATE, INSIGHTS)
