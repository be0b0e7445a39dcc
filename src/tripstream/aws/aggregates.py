"""Count trips into zone_hourly_stats exactly once: TransactWriteItems of per-trip markers + one ADD per cell.

Each transaction puts, for every trip it counts, a marker `{trip_id, cell}` into the markers table under
`attribute_not_exists(trip_id)`, and ADDs the summed increments of exactly those trips to their cell. Either all
of it happens or none (docs/aggregates.md). A marker that exists already cancels the transaction with
`ConditionalCheckFailed` at its index: that trip was counted before (re-delivery, a lost answer, a second
upload), so it is dropped and the rest is sent again. The ClientRequestToken is a hash of the transaction's
contents and of a scope the caller picks per invocation: a retry of the same contents in the same invocation after
a lost answer is a no-op on AWS, changed contents never reuse a token (no IdempotentParameterMismatch), and a later
invocation never replays an old token (DynamoDB Local remembers tokens for 10 minutes even across a table deleted
and created again: the markers, not the token, decide across invocations).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from tripstream.aws.errors import error_code, is_transient
from tripstream.counters import Counters
from tripstream.retry import Backoff

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_ACTIONS = 100  # TransactWriteItems' limit (items, not bytes: our items are small)
CELL_KEYS = ("pickup_location_id", "pickup_hour")
# The markers' expiry (epoch seconds, Number): the markers table's DynamoDB TTL attribute (template.yaml).
MARKER_EXPIRY_ATTRIBUTE = "expires_at"
DEFAULT_MARKER_TTL_SECONDS = 90 * 86_400
# Cancellation reasons a retry can get past (the transaction as a whole was not applied).
_RETRYABLE_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
_CANCELLED = "TransactionCanceledException"
CellTrips = Mapping[tuple[str, str], Mapping[str, Mapping[str, Decimal]]]  # cell -> trip_id -> increments


@dataclass(frozen=True)
class AggregateTables:
    stats: str
    markers: str
    # How long a marker is kept: DynamoDB deletes it (TTL) some time after; the trip then counts again if seen.
    marker_ttl_seconds: int = DEFAULT_MARKER_TTL_SECONDS


def marker_expiry(ttl_seconds: int, now: float | None = None) -> int:
    """The value of a marker's expiry attribute written now: epoch seconds, `ttl_seconds` ahead."""
    return int(time.time() if now is None else now) + ttl_seconds


@dataclass
class AggregateStats(Counters):
    transactions: int = 0  # transactions applied
    trips_counted: int = 0
    already_counted: int = 0  # trips whose marker existed: counted before, added nothing now
    cells_updated: int = 0  # cell updates applied (a cell split over transactions counts once per transaction)
    calls_retried: int = 0  # retries after a conflict, throttle, 5xx or dropped connection
    items_sent: int = 0  # actions in every TransactWriteItems sent, retries included (the write units' base)


@dataclass
class _Part:
    """One cell's share of a transaction: its trips, and the update that adds them."""

    cell: tuple[str, str]
    trips: dict[str, Mapping[str, Decimal]]


def plan_transactions(cells: CellTrips) -> list[list[_Part]]:
    """Pack cells into transactions of at most MAX_ACTIONS actions (a trip's marker each, one update per cell);
    a cell with more trips than fit is split over several transactions (one item may appear once per call)."""
    transactions: list[list[_Part]] = []
    current: list[_Part] = []
    size = 0
    for cell in sorted(cells):
        trips = list(cells[cell].items())
        for start in range(0, len(trips), MAX_ACTIONS - 1):
            part = _Part(cell, dict(trips[start : start + MAX_ACTIONS - 1]))
            if current and (size + len(part.trips) + 1 > MAX_ACTIONS or any(p.cell == cell for p in current)):
                transactions.append(current)
                current, size = [], 0
            current.append(part)
            size += len(part.trips) + 1
    if current:
        transactions.append(current)
    return transactions


def _actions(tables: AggregateTables, parts: Sequence[_Part], expires_at: int) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    expiry = {MARKER_EXPIRY_ATTRIBUTE: {"N": str(expires_at)}}
    for part in parts:
        key = {name: {"S": value} for name, value in zip(CELL_KEYS, part.cell, strict=True)}
        for trip_id in part.trips:
            actions.append(
                {
                    "Put": {
                        "TableName": tables.markers,
                        "Item": {"trip_id": {"S": trip_id}, **key, **expiry},
                        "ConditionExpression": "attribute_not_exists(trip_id)",
                    }
                }
            )
        totals: dict[str, Decimal] = {}
        for increments in part.trips.values():
            for name, value in increments.items():
                totals[name] = totals.get(name, Decimal(0)) + value
        names = sorted(totals)
        actions.append(
            {
                "Update": {
                    "TableName": tables.stats,
                    "Key": key,
                    "UpdateExpression": "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(names))),
                    "ExpressionAttributeNames": {f"#a{i}": name for i, name in enumerate(names)},
                    "ExpressionAttributeValues": {f":a{i}": {"N": str(totals[name])} for i, name in enumerate(names)},
                }
            }
        )
    return actions


def request_token(actions: Sequence[Mapping[str, Any]], scope: str = "") -> str:
    """36 hex characters (the API's maximum) fixed by the contents and the scope: the same transaction sent again
    in the same scope, the same token."""
    # orjson: json.dumps of a 100-action transaction was 5 % of the consumer's CPU.
    text = scope.encode() + orjson.dumps(actions, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(text, digest_size=18).hexdigest()


@dataclass(frozen=True)
class _Cancelled:
    """What a cancelled transaction's reasons say: the trips whose marker exists, whether a retry can help, and
    which parts (by index) hold an item another transaction had (TransactionConflict)."""

    counted: set[str]
    retryable: bool
    conflicted: set[int]


def _counted_before(error: BaseException, parts: Sequence[_Part]) -> _Cancelled | None:
    """From a cancelled transaction's reasons (one per action, in order). None when the cancellation cannot be
    read (raised as it is)."""
    response = getattr(error, "response", None) or {}
    reasons = response.get("CancellationReasons")
    if not reasons:
        return None
    index_to_trip: list[tuple[int, str | None]] = []  # (part, trip_id or None for the cell update)
    for number, part in enumerate(parts):
        index_to_trip.extend((number, trip_id) for trip_id in part.trips)
        index_to_trip.append((number, None))
    if len(reasons) != len(index_to_trip):
        return None
    counted: set[str] = set()
    conflicted: set[int] = set()
    retryable = False
    for (number, trip_id), reason in zip(index_to_trip, reasons, strict=True):
        code = reason.get("Code") or "None"
        if code == "ConditionalCheckFailed" and trip_id is not None:
            counted.add(trip_id)
        elif code in _RETRYABLE_REASONS:
            retryable = True
            if code == "TransactionConflict":
                conflicted.add(number)
        elif code != "None":
            return None
    return _Cancelled(counted, retryable, conflicted)


def _transact(
    dynamodb: DynamoDBClient,
    tables: AggregateTables,
    parts: list[_Part],
    backoff: Backoff,
    stats: AggregateStats,
    scope: str,
    expires_at: int,
) -> list[str]:
    """Apply one planned transaction, dropping trips counted before; returns the trip_ids left uncounted.

    A transaction cancelled by TransactionConflict on some of its cells (another consumer's transaction held
    them: a hot cell) is split: the cells without a conflict go again at once, together; each conflicted cell
    goes alone after a backoff, so one hot cell neither holds back nor keeps cancelling the others."""
    pending: list[tuple[list[_Part], bool]] = [(parts, False)]  # (parts of one transaction, wait before sending)
    while pending:
        parts, wait = pending.pop(0)
        if wait:
            if not backoff.wait():
                return [trip_id for left, _ in [(parts, wait), *pending] for part in left for trip_id in part.trips]
            stats.add(calls_retried=1)
        actions = _actions(tables, parts, expires_at)
        stats.add(items_sent=len(actions))
        try:
            dynamodb.transact_write_items(
                TransactItems=actions,  # type: ignore[arg-type]
                ClientRequestToken=request_token(actions, scope),
            )
        except Exception as error:
            read = _counted_before(error, parts) if error_code(error) == _CANCELLED else None
            if read is not None and read.counted:
                stats.add(already_counted=len(read.counted))
                for part in parts:
                    part.trips = {t: v for t, v in part.trips.items() if t not in read.counted}
                parts = [part for part in parts if part.trips]
                backoff.progressed()
                if parts:
                    pending.insert(0, (parts, False))  # new contents, new token: no wait needed
                continue
            # is_transient covers TransactionInProgressException: a retry that overtook its first attempt.
            if not ((read is not None and read.retryable) or (read is None and is_transient(error))):
                raise
            if read is not None and read.conflicted and len(parts) > 1:
                clean = [part for number, part in enumerate(parts) if number not in read.conflicted]
                hot = [([part], True) for number, part in enumerate(parts) if number in read.conflicted]
                pending[:0] = [(clean, False), *hot] if clean else hot
                continue
            pending.insert(0, (parts, True))
            continue
        stats.add(transactions=1, trips_counted=sum(len(p.trips) for p in parts), cells_updated=len(parts))
        backoff.progressed()
    return []


def count_trips_once(
    dynamodb: DynamoDBClient,
    tables: AggregateTables,
    cells: CellTrips,
    new_backoff: Callable[[], Backoff],
    stats: AggregateStats,
    max_in_flight: int = 4,
    scope: str = "",
) -> list[str]:
    """Add every trip of `cells` to its cell unless it was counted before; returns the trip_ids still
    uncounted after retries (the caller has them delivered again). `scope` goes into every token: one per
    invocation (see the module's docstring). The markers' expiry is fixed once per call, so that a retry sends
    the same contents (and so the same token)."""
    transactions = plan_transactions(cells)
    expires_at = marker_expiry(tables.marker_ttl_seconds)

    def transact(parts: list[_Part]) -> list[str]:
        return _transact(dynamodb, tables, parts, new_backoff(), stats, scope, expires_at)

    if len(transactions) <= 1:
        return [trip_id for parts in transactions for trip_id in transact(parts)]
    with ThreadPoolExecutor(max_workers=max(1, max_in_flight), thread_name_prefix="aggregates") as pool:
        results = pool.map(transact, transactions)
        return [trip_id for result in results for trip_id in result]


def _batch(dynamodb: DynamoDBClient, table: str, requests: list[dict[str, Any]], backoff: Backoff) -> None:
    """One BatchWriteItem of up to 25 requests to one table, UnprocessedItems and transient errors retried;
    what is still unwritten after the backoff raises (a rebuild is all or nothing: run it again)."""
    pending = requests
    while pending:
        try:
            answer = dynamodb.batch_write_item(RequestItems={table: pending})  # type: ignore[dict-item]
            pending = list(answer.get("UnprocessedItems", {}).get(table, []))  # type: ignore[arg-type]
            if not pending:
                return
            backoff.progressed()
        except Exception as error:
            if not is_transient(error):
                raise
        if not backoff.wait():
            raise RuntimeError(f"{len(pending)} writes to {table} still failing after retries")


def replace_items(
    dynamodb: DynamoDBClient,
    table: str,
    key_names: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    new_backoff: Callable[[], Backoff],
) -> int:
    """Delete every item of `table`, then put `items` (serialised); returns how many items were deleted."""
    deleted = 0
    paginator = dynamodb.get_paginator("scan")
    names = {f"#k{i}": name for i, name in enumerate(key_names)}
    pages = paginator.paginate(TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
    keys = [dict(item) for page in pages for item in page.get("Items", [])]
    for start in range(0, len(keys), 25):
        chunk = keys[start : start + 25]
        _batch(dynamodb, table, [{"DeleteRequest": {"Key": key}} for key in chunk], new_backoff())
        deleted += len(chunk)
    for start in range(0, len(items), 25):
        puts = [{"PutRequest": {"Item": dict(item)}} for item in items[start : start + 25]]
        _batch(dynamodb, table, puts, new_backoff())
    return deleted
