"""An in-memory stand-in for the few `ContainerProxy` calls the Cosmos DB adapters make.

Cosmos DB has no emulator that runs here (Microsoft ships it as a Docker image or for Windows),
so the adapters' logic (keys, chunking, exactly-once markers, ETag conflicts, reading back) is
checked against this stand-in. It raises the SDK's own exception classes, keeps one ETag per item
and answers only the query shapes the adapters use: it is no proof that Cosmos DB accepts them.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

_CONDITION = re.compile(r"^(?:c\.(\w+) (=|>=|<|!=) (@\w+|'[^']*')|ARRAY_CONTAINS\((@\w+), c\.id\))$")


class ContainerStandIn:
    def __init__(self, partition_key: str) -> None:
        self.key = partition_key.removeprefix("/")
        self.items: dict[tuple[str, str], dict[str, Any]] = {}  # (partition value, id) -> item
        self._etags = itertools.count(1)
        self.batches: list[list[Any]] = []  # every transactional batch sent, for assertions
        # Given a batch's operations, the status to fail it with (None: run it): a concurrent writer.
        self.fail_batch: Callable[[list[Any]], int | None] = lambda operations: None

    # --- point operations ---------------------------------------------------------------------------

    def create_item(self, body: dict[str, Any]) -> dict[str, Any]:
        if (body[self.key], body["id"]) in self.items:
            raise CosmosResourceExistsError(status_code=409, message="Conflict")
        return self._store(body)

    def read_item(self, item: str, partition_key: str) -> dict[str, Any]:
        try:
            return dict(self.items[(partition_key, item)])
        except KeyError:
            raise CosmosResourceNotFoundError(status_code=404, message="NotFound") from None

    def patch_item(
        self, item: str, partition_key: str, patch_operations: list[dict[str, Any]], *, filter_predicate: str | None
    ) -> dict[str, Any]:
        stored = self.read_item(item, partition_key)
        if filter_predicate is not None and not _matches(stored, filter_predicate.removeprefix("FROM c WHERE "), {}):
            raise CosmosAccessConditionFailedError(status_code=412, message="Precondition Failed")
        for operation in patch_operations:
            assert operation["op"] == "set"
            stored[operation["path"].removeprefix("/")] = operation["value"]
        return self._store(stored)

    def replace_item(self, item: str, body: dict[str, Any], *, etag: str, match_condition: MatchConditions) -> None:
        stored = self.read_item(item, body[self.key])
        if match_condition == MatchConditions.IfNotModified and stored["_etag"] != etag:
            raise CosmosAccessConditionFailedError(status_code=412, message="Precondition Failed")
        self._store(body)

    def delete_item(
        self, item: str, partition_key: str, *, etag: str | None = None, match_condition: MatchConditions | None = None
    ) -> None:
        stored = self.read_item(item, partition_key)
        if match_condition == MatchConditions.IfNotModified and stored["_etag"] != etag:
            raise CosmosAccessConditionFailedError(status_code=412, message="Precondition Failed")
        del self.items[(partition_key, item)]

    # --- transactional batch: all operations or none --------------------------------------------------

    def execute_item_batch(self, batch_operations: list[Any], partition_key: str) -> list[dict[str, Any]]:
        self.batches.append(list(batch_operations))
        status = self.fail_batch(batch_operations)
        if status is not None:
            raise _batch_error(len(batch_operations) - 1, status, len(batch_operations))
        before = dict(self.items)
        for index, (kind, args, *options) in enumerate(batch_operations):
            body = args[-1]
            assert body[self.key] == partition_key, "a transactional batch stays in one partition"
            key = (partition_key, body["id"])
            status = 200
            if kind == "create" and key in self.items:
                status = 409
            elif kind == "replace" and (
                key not in self.items or self.items[key]["_etag"] != options[0]["if_match_etag"]
            ):
                status = 412 if key in self.items else 404
            if status != 200:
                self.items = before
                raise _batch_error(index, status, len(batch_operations))
            self._store(body)
        return [{"statusCode": 200} for _ in batch_operations]

    # --- queries: the shapes the adapters send ---------------------------------------------------------

    def query_items(
        self,
        query: str,
        parameters: list[dict[str, Any]] | None = None,
        partition_key: str | None = None,
        enable_cross_partition_query: bool = False,
    ) -> list[Any]:
        assert partition_key is not None or enable_cross_partition_query
        values = {p["name"]: p["value"] for p in parameters or []}
        match = re.fullmatch(
            r"SELECT (.+?) FROM c(?: WHERE (.+?))?(?: GROUP BY c\.(\w+))?(?: ORDER BY c\.(\w+))?", query
        )
        assert match, f"query shape not supported by the stand-in: {query}"
        projection, where, group, order = match.groups()
        rows = [
            dict(item)
            for (pk, _), item in self.items.items()
            if (partition_key is None or pk == partition_key) and (where is None or _matches(item, where, values))
        ]
        if order:
            rows.sort(key=lambda item: item[order])
        if projection == "VALUE COUNT(1)":
            return [len(rows)]
        if group:
            counts: dict[Any, int] = {}
            for row in rows:
                counts[row[group]] = counts.get(row[group], 0) + 1
            return [{group: value, "n": n} for value, n in counts.items()]
        if projection != "*":
            names = [name.strip().removeprefix("c.") for name in projection.split(",")]
            rows = [{name: row[name] for name in names} for row in rows]
        return rows

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        item = {**body, "_etag": f'"{next(self._etags)}"', "_ts": len(self.items)}
        self.items[(body[self.key], body["id"])] = item
        return dict(item)


def _matches(item: dict[str, Any], where: str, values: dict[str, Any]) -> bool:
    for condition in where.split(" AND "):
        found = _CONDITION.match(condition)
        assert found, f"condition not supported by the stand-in: {condition}"
        field, operator, operand, ids = found.groups()
        if ids is not None:
            if item["id"] not in values[ids]:
                return False
            continue
        expected = values[operand] if operand.startswith("@") else operand.strip("'")
        actual = item.get(field)
        if actual is None and operator != "!=":
            return False
        if not {"=": actual == expected, "!=": actual != expected}.get(operator, True):
            return False
        if operator == ">=" and not actual >= expected:
            return False
        if operator == "<" and not actual < expected:
            return False
    return True


def _batch_error(index: int, status: int, count: int) -> CosmosBatchOperationError:
    responses = [{"statusCode": 424} for _ in range(count)]
    responses[index] = {"statusCode": status}
    return CosmosBatchOperationError(
        error_index=index, headers={}, status_code=status, message="batch failed", operation_responses=responses
    )
