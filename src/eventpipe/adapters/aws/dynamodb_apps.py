"""Apps and the hashes of their write keys in a DynamoDB table keyed by `key_hash`.

The request path needs one lookup, key hash -> app, a GetItem; the ingest function caches its
answers (`AppDirectory(ttl_s=...)`). Listing and revoking are rare operator actions and Scan the
table, which holds one small item per app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.dynamodb_calls import DynamoTable, attempt, conditional
from eventpipe.core.model import App

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]


def _item(app: App) -> Item:
    item: Item = {
        "key_hash": {"S": app.key_hash},
        "app_id": {"S": app.app_id},
        "name": {"S": app.name},
        "origins": {"L": [{"S": origin} for origin in app.origins]},
        "created_at_ms": {"N": str(app.created_at_ms)},
    }
    if app.revoked_at_ms is not None:
        item["revoked_at_ms"] = {"N": str(app.revoked_at_ms)}
    return item


def _app(item: Mapping[str, AttributeValueTypeDef]) -> App:
    revoked = item.get("revoked_at_ms")
    return App(
        app_id=item["app_id"]["S"],
        name=item["name"]["S"],
        key_hash=item["key_hash"]["S"],
        origins=tuple(value["S"] for value in item.get("origins", {}).get("L", [])),
        created_at_ms=int(item["created_at_ms"]["N"]),
        revoked_at_ms=int(revoked["N"]) if revoked else None,
    )


class DynamoAppStore(DynamoTable):
    def create(self, app: App) -> None:
        conditional(
            self._backoff,
            f"cannot create app {app.app_id} in {self._table}",
            lambda: self._client.put_item(
                TableName=self._table, Item=_item(app), ConditionExpression="attribute_not_exists(key_hash)"
            ),
        )

    def by_key_hash(self, key_hash: str) -> App | None:
        answer = attempt(
            self._backoff,
            f"cannot read {self._table}",
            lambda: self._client.get_item(TableName=self._table, Key={"key_hash": {"S": key_hash}}),
        )
        item = answer.get("Item")
        return _app(item) if item else None

    def list_all(self) -> list[App]:
        apps = [_app(item) for item in self._scan()]
        return sorted(apps, key=lambda app: (app.created_at_ms, app.app_id))

    def revoke(self, app_id: str, now_ms: int) -> bool:
        found = False
        for item in self._scan():
            if item["app_id"]["S"] != app_id:
                continue
            found = True
            key_hash = item["key_hash"]["S"]
            conditional(  # revoked already: the first time stays
                self._backoff,
                f"cannot revoke app {app_id} in {self._table}",
                lambda key_hash=key_hash: self._client.update_item(  # type: ignore[misc]
                    TableName=self._table,
                    Key={"key_hash": {"S": key_hash}},
                    UpdateExpression="SET revoked_at_ms = :now",
                    ConditionExpression="attribute_exists(key_hash) AND attribute_not_exists(revoked_at_ms)",
                    ExpressionAttributeValues={":now": {"N": str(now_ms)}},
                ),
            )
        return found

    def any_app(self) -> bool:
        answer = attempt(
            self._backoff,
            f"cannot read {self._table}",
            lambda: self._client.scan(TableName=self._table, Limit=1, ProjectionExpression="key_hash"),
        )
        return bool(answer.get("Items"))

    def _scan(self) -> Iterator[Item]:
        paging: dict[str, Any] = {}
        while True:
            page = attempt(
                self._backoff,
                f"cannot scan {self._table}",
                lambda paging=paging: self._client.scan(TableName=self._table, **paging),  # type: ignore[misc]
            )
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            paging = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
