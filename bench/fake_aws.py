"""An in-memory S3, DynamoDB and Step Functions behind botocore's `before-send` hook, for `lambda_cost.py`.

botocore builds, signs and serializes every request and parses every answer as it would against
AWS; only the network round trip is replaced by an answer made here. So the CPU time measured
around a Lambda handler is the handler's own plus botocore's, as in Lambda, and every call is
counted with the DynamoDB capacity it would consume (on-demand: write units per 1 KB of item,
twice that in a transaction; strongly consistent read units per 4 KB, one for a missing item).

The insights deltas put are kept in order as the table's stream (`stream`), for `fold_insights`, and
the curated items inserted as the curated table's (`curated_stream`), for `write_lake`.

Only what eventpipe's adapters use is answered: conditional `PutItem`, `GetItem`, `UpdateItem`
(stored as the new attributes, for the item's size), `BatchWriteItem`, `BatchGetItem`,
`TransactWriteItems`, `Query` (empty, but for the request index's items), S3 `PutObject` /
`GetObject` / `DeleteObject` (`ListObjectsV2` empty), `StartExecution`, and Firehose `PutRecord` (the
records kept, for the bench to deliver as Firehose would). An optional latency per call (slept, so
threads overlap as they would) stands in for the round trip.
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import orjson
from botocore.awsrequest import AWSResponse

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

Item = dict[str, Any]

# Round trips from a Lambda function to a service in its Region, in ms: an assumption (DynamoDB
# answers "in single-digit milliseconds"; small S3 objects and StartExecution take tens).
LATENCY_MS: dict[str, float] = {
    "PutItem": 5,
    "GetItem": 4,
    "UpdateItem": 5,
    "Query": 6,
    "BatchWriteItem": 10,
    "BatchGetItem": 6,
    "TransactWriteItems": 12,
    "PutObject": 30,
    "GetObject": 15,
    "DeleteObject": 15,
    "StartExecution": 25,
    "PutRecord": 20,  # Firehose stores the record in three facilities before it answers
}


class _Raw(io.BytesIO):
    """What botocore reads an answer's body from (`stream()` for whole bodies, `read()` for S3 streams)."""

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.getvalue()


def _answer(url: str, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> AWSResponse:
    head = {"x-amzn-requestid": "bench", "content-length": str(len(body)), **(headers or {})}
    return AWSResponse(url, status, head, _Raw(body))


def _unchunk(data: bytes) -> bytes:
    """The payload of an `aws-chunked` body (botocore sends S3 puts so, with a CRC32 trailer)."""
    payload, position = [], 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return b"".join(payload)
        payload.append(data[line_end + 2 : line_end + 2 + size])
        position = line_end + 2 + size + 2


def value_bytes(value: dict[str, Any]) -> int:
    """A DynamoDB attribute value's size as DynamoDB counts it (numbers: about one byte per two digits)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return (len(data.lstrip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
    if kind == "B":
        return len(base64.b64decode(data))
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_bytes(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(value_bytes(v) + 1 for v in data)
    return 1  # BOOL, NULL


def item_bytes(item: Item) -> int:
    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int) -> int:
    return max(1, math.ceil(size / 4096))


def _key(item: Item) -> tuple[str, ...]:
    if "pk" in item:
        return (item["pk"]["S"], item["sk"]["S"])
    return (item["event_id"]["S"],)


_EMPTY_LISTING = (
    b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
)


@dataclass
class FakeAws:
    """Answers botocore's requests from memory and keeps the books: calls, capacity units, bytes."""

    latency_scale: float = 0.0  # 0: no sleep (CPU runs); 1: LATENCY_MS per call
    sleep: Callable[[float], None] = time.sleep
    calls: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)  # "<table> WRU", "<table> RRU", "<table> GSI WRU"
    sizes: dict[str, list[int]] = field(default_factory=dict)  # item sizes written, by table
    started: list[dict[str, Any]] = field(default_factory=list)  # StartExecution inputs
    s3_bytes_put: Counter[str] = field(default_factory=Counter)  # by key prefix
    batch_puts: Counter[str] = field(default_factory=Counter)  # BatchWriteItem puts, by table
    batch_put_bytes: Counter[str] = field(default_factory=Counter)
    minute_writes: list[tuple[int, int]] = field(default_factory=list)  # insights counter items put: (bytes, 0)
    sketch_writes: list[tuple[int, int]] = field(default_factory=list)  # insights minute items put: (bytes, sketches)
    delta_writes: list[int] = field(default_factory=list)  # insights deltas put: bytes
    stream: list[Item] = field(default_factory=list)  # the insights deltas inserted: the table's stream
    curated_stream: list[Item] = field(default_factory=list)  # curated items inserted (not rewritten): its stream
    records: list[bytes] = field(default_factory=list)  # Firehose records put, not delivered yet
    record_bytes: list[int] = field(default_factory=list)  # every record's size, as Firehose bills it
    _tables: dict[str, dict[tuple[str, ...], Item]] = field(default_factory=dict)
    _objects: dict[str, bytes] = field(default_factory=dict)

    def reset_books(self) -> None:
        """Forget the counts (after a warm-up); the stored items and objects stay."""
        for books in (self.calls, self.units, self.s3_bytes_put, self.batch_puts, self.batch_put_bytes):
            books.clear()
        self.sizes.clear()
        self.record_bytes.clear()
        self.minute_writes.clear()
        self.sketch_writes.clear()
        self.delta_writes.clear()

    def handle(self, request: Any, event_name: str, **_kwargs: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        self.calls[operation] += 1
        if self.latency_scale:
            self.sleep(LATENCY_MS.get(operation, 10) * self.latency_scale / 1000)
        if operation in ("PutObject", "GetObject", "DeleteObject"):
            return self._s3(operation, request)
        if operation == "ListObjectsV2":  # the lake's compaction lists its prefixes: an empty listing
            return _answer(request.url, 200, _EMPTY_LISTING, {"content-type": "application/xml"})
        body = orjson.loads(request.body) if request.body else {}
        if operation == "PutRecord":
            data = base64.b64decode(body["Record"]["Data"])
            self.records.append(data)
            self.record_bytes.append(len(data))
            return _answer(request.url, 200, orjson.dumps({"RecordId": "bench", "Encrypted": False}))
        if operation == "StartExecution":
            self.started.append(orjson.loads(body["input"]))
            answer = {"executionArn": body["stateMachineArn"] + ":" + body["name"], "startDate": time.time()}
            return _answer(request.url, 200, orjson.dumps(answer))
        try:
            answer = getattr(self, f"_{operation}")(body)
        except _ConditionFailedError:
            error = {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "no"}
            return _answer(request.url, 400, orjson.dumps(error))
        return _answer(request.url, 200, orjson.dumps(answer))

    # --- S3 ---------------------------------------------------------------------------------------

    def _s3(self, operation: str, request: Any) -> AWSResponse:
        parts = urlsplit(request.url)
        path = parts.netloc + unquote(parts.path)
        if operation == "PutObject":
            data = request.body.read() if hasattr(request.body, "read") else bytes(request.body or b"")
            encoding = request.headers.get("Content-Encoding") or b""
            if "aws-chunked" in (encoding.decode() if isinstance(encoding, bytes) else encoding):
                data = _unchunk(data)
            self._objects[path] = data
            self.s3_bytes_put[unquote(parts.path).lstrip("/").split("/", 1)[0]] += len(data)
            return _answer(request.url, 200, headers={"etag": '"bench"'})
        if operation == "DeleteObject":
            self._objects.pop(path, None)
            return _answer(request.url, 204)
        data = self._objects.get(path)
        if data is None:
            error = b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>"
            return _answer(request.url, 404, error, {"content-type": "application/xml"})
        return _answer(request.url, 200, data, {"etag": '"bench"', "content-type": "application/octet-stream"})

    # --- DynamoDB ---------------------------------------------------------------------------------

    def _table(self, name: str) -> dict[tuple[str, ...], Item]:
        return self._tables.setdefault(name, {})

    def _write(self, table: str, item: Item, *, factor: int = 1) -> None:
        size = item_bytes(item)
        self.units[f"{table} WRU"] += factor * write_units(size)
        self.sizes.setdefault(table, []).append(size)
        if "open" in item or "status" in item:  # the state table's sparse `unfinished` index
            self.units[f"{table} GSI WRU"] += write_units(size)

    def _PutItem(self, body: dict[str, Any]) -> dict[str, Any]:  # botocore's operation names
        table, item = body["TableName"], body["Item"]
        self._write(table, item)
        pk = item.get("pk", {}).get("S", "")
        if pk.startswith("sketch#"):
            sketches = sum(value_bytes(value) for name, value in item.items() if "B" in value and name != "ids")
            self.sketch_writes.append((item_bytes(item), sketches))
        elif pk.startswith("minute#"):
            self.minute_writes.append((item_bytes(item), 0))
        elif pk.startswith("delta#"):
            self.delta_writes.append(item_bytes(item))
        stored = self._table(table).get(_key(item))
        condition = body.get("ConditionExpression", "")
        if condition.startswith("attribute_not_exists(v) OR v < :v"):  # a counter copy: never go back
            if stored is not None and int(stored["v"]["N"]) >= int(body["ExpressionAttributeValues"][":v"]["N"]):
                raise _ConditionFailedError
        elif stored is not None and condition.startswith("attribute_not_exists"):
            ours = ":b" in body.get("ExpressionAttributeValues", {}) and (
                stored.get("batch_id") == body["ExpressionAttributeValues"][":b"]
            )
            if not ours:
                raise _ConditionFailedError
        self._table(table)[_key(item)] = item
        if pk.startswith("delta#"):
            self.stream.append(item)
        elif "payload" in item and stored is None:  # a curated event stored for the first time: an INSERT
            self.curated_stream.append(item)
        return {}

    def _GetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self._table(body["TableName"]).get(_key(body["Key"]))
        self.units[f"{body['TableName']} RRU"] += read_units(item_bytes(item) if item else 0)
        return {"Item": item} if item else {}

    def _UpdateItem(self, body: dict[str, Any]) -> dict[str, Any]:
        table = body["TableName"]
        item = {**self._table(table).get(_key(body["Key"]), body["Key"])}
        names = body.get("ExpressionAttributeNames", {})
        for placeholder, value in body.get("ExpressionAttributeValues", {}).items():
            name = names.get("#" + placeholder[1:], placeholder[1:])
            item[name] = value
        self._table(table)[_key(body["Key"])] = item
        self._write(table, item, factor=body.get("_factor", 1))
        return {}

    def _DeleteItem(self, body: dict[str, Any]) -> dict[str, Any]:
        """A delete costs the write units of the item it removes (at least one), as in BatchWriteItem."""
        table = body["TableName"]
        gone = self._table(table).pop(_key(body["Key"]), None)
        self.units[f"{table} WRU"] += write_units(item_bytes(gone) if gone else 0)
        return {}

    def _BatchWriteItem(self, body: dict[str, Any]) -> dict[str, Any]:
        for table, requests in body["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    self.batch_puts[table] += 1
                    self.batch_put_bytes[table] += item_bytes(item)
                    self._write(table, item)
                    self._table(table)[_key(item)] = item
                else:  # a delete costs a write unit even when the item is not there
                    key = request["DeleteRequest"]["Key"]
                    gone = self._table(table).pop(_key(key), None)
                    self.units[f"{table} WRU"] += write_units(item_bytes(gone) if gone else 0)
        return {"UnprocessedItems": {}}

    def _BatchGetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        responses: dict[str, list[Item]] = {}
        for table, request in body["RequestItems"].items():
            found = responses.setdefault(table, [])
            for key in request["Keys"]:
                item = self._table(table).get(_key(key))
                self.units[f"{table} RRU"] += read_units(item_bytes(item) if item else 0)
                if item:
                    found.append(item)
        return {"Responses": responses, "UnprocessedKeys": {}}

    def _TransactWriteItems(self, body: dict[str, Any]) -> dict[str, Any]:
        # One writer at a time here, so the conditions (marker absent, sketch version unchanged) hold.
        for action in body["TransactItems"]:
            if "Put" in action:
                put = action["Put"]
                self._write(put["TableName"], put["Item"], factor=2)
                self._table(put["TableName"])[_key(put["Item"])] = put["Item"]
            else:
                update = action["Update"]
                sketch = update.get("ExpressionAttributeValues", {}).get(":u")
                self._UpdateItem({**update, "_factor": 2})
                stored = self._table(update["TableName"])[_key(update["Key"])]
                self.minute_writes.append((item_bytes(stored), value_bytes(sketch) if sketch else 0))
        return {}

    def _Query(self, body: dict[str, Any]) -> dict[str, Any]:
        pk = body.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", "")
        found: list[Item] = []
        if body.get("KeyConditionExpression") == "pk = :pk" and pk.startswith("requests#"):  # the request index
            found = [item for key, item in self._table(body["TableName"]).items() if key[0] == pk]
        self.units[f"{body['TableName']} RRU"] += read_units(sum(item_bytes(item) for item in found))
        return {"Items": found, "Count": len(found), "ScannedCount": len(found)}


class _ConditionFailedError(Exception):
    pass
