"""DynamoDB calls: BatchWriteItem (≤ 25 requests a call), UnprocessedItems retried with backoff."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tripstream.aws.errors import error_code, is_not_found, is_transient
from tripstream.counters import Counters
from tripstream.retry import Backoff

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_REQUESTS_PER_CALL = 25
Key = tuple[str, str]  # (table, trip_id)


def to_attribute(value: Any) -> dict[str, Any]:
    """A Python value -> a DynamoDB AttributeValue. Numbers only from Decimal/int (never binary floats)."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, Decimal | int):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in DynamoDB (use Decimal for numbers)")


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: to_attribute(value) for name, value in values.items() if value is not None}


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    raise TypeError(f"unsupported attribute type {kind}")


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: from_attribute(attribute) for name, attribute in item.items()}


@dataclass
class WriteStats(Counters):
    calls: int = 0
    items_written: dict[str, int] = field(default_factory=dict)
    unprocessed_retried: int = 0
    calls_retried: int = 0

    def written(self, table: str, count: int) -> None:
        with self._lock:
            self.items_written[table] = self.items_written.get(table, 0) + count


def batch_write(
    dynamodb: DynamoDBClient, requests: list[tuple[str, dict[str, Any]]], backoff: Backoff, stats: WriteStats
) -> list[Key]:
    """Put up to 25 items (table, serialised item); returns the keys still unwritten after retries.

    UnprocessedItems are sent again alone, a throttled or failed call (or a dropped connection) whole, both
    with the same backoff. A non-transient error is raised.
    """
    if len(requests) > MAX_REQUESTS_PER_CALL:
        raise ValueError(f"BatchWriteItem takes at most {MAX_REQUESTS_PER_CALL} requests, not {len(requests)}")
    pending: dict[str, list[dict[str, Any]]] = {}
    for table, item in requests:
        pending.setdefault(table, []).append({"PutRequest": {"Item": item}})
    while pending:
        try:
            response = dynamodb.batch_write_item(RequestItems=pending)  # type: ignore[arg-type]
        except Exception as error:
            if not is_transient(error):
                raise
            stats.add(calls=1)
            if not backoff.wait():
                return _keys(pending)
            stats.add(calls_retried=1)
            continue
        stats.add(calls=1)
        answered: dict[str, list[dict[str, Any]]] = response.get("UnprocessedItems") or {}  # type: ignore[assignment]
        unprocessed = {table: list(table_requests) for table, table_requests in answered.items() if table_requests}
        for table, table_requests in pending.items():
            stats.written(table, len(table_requests) - len(unprocessed.get(table, [])))
        if not unprocessed:
            return []
        if not backoff.wait():
            return _keys(unprocessed)
        stats.add(unprocessed_retried=sum(len(v) for v in unprocessed.values()))
        pending = unprocessed
    return []


def _keys(requests: Mapping[str, list[dict[str, Any]]]) -> list[Key]:
    return [
        (table, request["PutRequest"]["Item"]["trip_id"]["S"])
        for table, table_requests in requests.items()
        for request in table_requests
    ]


def write_items(
    dynamodb: DynamoDBClient,
    requests: Iterable[tuple[str, dict[str, Any]]],
    new_backoff: Callable[[], Backoff],
    stats: WriteStats,
    max_in_flight: int = 4,
) -> list[Key]:
    """Write many items in concurrent 25-request calls; returns every key left unwritten."""
    chunk: list[tuple[str, dict[str, Any]]] = []
    chunks: list[list[tuple[str, dict[str, Any]]]] = []
    for request in requests:
        chunk.append(request)
        if len(chunk) == MAX_REQUESTS_PER_CALL:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)
    if len(chunks) <= 1:
        return [key for c in chunks for key in batch_write(dynamodb, c, new_backoff(), stats)]
    with ThreadPoolExecutor(max_workers=max(1, max_in_flight), thread_name_prefix="batch-write") as pool:
        results = pool.map(lambda c: batch_write(dynamodb, c, new_backoff(), stats), chunks)
        return [key for result in results for key in result]


def raw_items(dynamodb: DynamoDBClient, table: str) -> Iterator[dict[str, Any]]:
    """Every item of a table as DynamoDB JSON (typed attributes), page by page."""
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        yield from page.get("Items", [])


def scan_all(dynamodb: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    """Every item of a table as plain Python values (Decimal numbers)."""
    items: list[dict[str, Any]] = []
    paginator = dynamodb.get_paginator("scan")
    for page in paginator.paginate(TableName=table):
        items.extend(from_item(item) for item in page.get("Items", []))
    return items


def item_count(dynamodb: DynamoDBClient, table: str) -> int:
    """The table's ItemCount as the endpoint reports it: live on emulators and DynamoDB Local, refreshed about
    every six hours on AWS. A COUNT scan would be exact everywhere, but moto serialises every item for it
    (about 20 s for 10k items), which would dwarf the run being summarised."""
    return dynamodb.describe_table(TableName=table)["Table"].get("ItemCount", 0)


def describe_table(dynamodb: DynamoDBClient, name: str) -> dict[str, Any] | None:
    """The table's description, or None when there is no table of that name."""
    try:
        return dict(dynamodb.describe_table(TableName=name)["Table"])
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def create_table(dynamodb: DynamoDBClient, arguments: Mapping[str, Any]) -> bool:
    """Create a table from CreateTable arguments; False when it exists already (made meanwhile)."""
    try:
        dynamodb.create_table(**arguments)
    except ClientError as error:
        if error_code(error) == "ResourceInUseException":
            return False
        raise
    return True


def table_item_count(dynamodb: DynamoDBClient, name: str) -> str:
    """DynamoDB's approximate item count of the table (updated every ~6 h on AWS), or the error code."""
    try:
        return str(dynamodb.describe_table(TableName=name)["Table"].get("ItemCount", "n/a"))
    except ClientError as error:
        return error_code(error) or "error"


def delete_table_if_present(dynamodb: DynamoDBClient, name: str) -> bool:
    try:
        dynamodb.delete_table(TableName=name)
    except ClientError as error:
        if is_not_found(error):
            return False
        raise
    return True


def execute_statement(dynamodb: DynamoDBClient, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """One ExecuteStatement page (PartiQL); ``arguments`` are the call's (Statement, Limit, NextToken, ...)."""
    return dict(dynamodb.execute_statement(**arguments))
