"""Fault injection for tests: the real HTTP traffic between the handlers' clients and an emulator, made to
fail the way AWS fails.

No emulator fails by itself (ARCHITECTURE.md, "Emulator facts"), so the retry paths of tripstream are proved by
making the failures happen. A :class:`FaultInjector` hooks botocore's ``before-send`` event of the clients the
handlers use (``client.meta.events``), i.e. the point where botocore hands the signed HTTP request to the
network, and acts as a small in-process proxy there:

* PutRecords entries failed: the chosen entries are removed from the request before it is sent (so Kinesis
  really does not store them), and the emulator's answer is rewritten to put them back in place with an
  ``ErrorCode`` (``ProvisionedThroughputExceededException`` or ``InternalFailure``) and a matching
  ``FailedRecordCount``;
* BatchWriteItem items unprocessed: the chosen items are removed from the request (so they are not written)
  and returned in the answer's ``UnprocessedItems``;
* whole calls (PutRecords, BatchWriteItem, TransactWriteItems, UpdateItem: ``operations``) throttled (HTTP 400
  ``ProvisionedThroughputExceededException``/``ThrottlingException``) or failed (HTTP 500/503) without reaching
  the emulator;
* connections reset before the request reaches the emulator (botocore's ``ConnectionClosedError``), or
  the LOST RESPONSE: the emulator carries the call out and the caller gets a reset or a 500 instead of the answer
  (``lost_response_answer``), so it retries what was done already;
* TransactWriteItems cancelled with ``TransactionConflict`` (``CancellationReasons`` as AWS words them): a share of
  calls drawn at random (``transaction_conflict``), or, with ``model_transaction_conflicts``, exactly the calls AWS
  cancels: a transaction touching an item that another in-flight transaction (sent, not yet answered) is
  modifying, with ``TransactionConflict`` at the index of each such action. No emulator does this by itself
  (the embedded one and DynamoDB Local 3.3 both serialise concurrent transactions, measured);
* the consumer crashing in the middle of a batch (a BatchWriteItem call raises :class:`InjectedCrash`, which
  no retry catches, so the handler fails with part of the batch written);
* a slow consumer (a delay before each BatchWriteItem call).

Every decision is a hash of the plan's seed, what is decided on (an entry, an item, the records or items of a
call; never the stream's or tables' names) and how many times that thing was seen before, so a run is
reproducible with a seed whatever the threads' timing, and a retry of the same thing gets a fresh draw. Faults
are only ever injected towards a loopback endpoint.

A test slows down or breaks a ``tripstream`` command running in another process by starting it as
``python -m support.cli_with_faults ...`` with the environment variable ``TRIPSTREAM_FAULTS`` holding a plan as
JSON (``{"seed": 1, "write_delay": 0.1}``): that wrapper installs the injector on the handlers' clients. The
tripstream package itself knows nothing of fault injection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HeadersDict
from botocore.compat import HTTPHeaders
from botocore.exceptions import ConnectionClosedError
from botocore.httpsession import URLLib3Session

from support.http_answers import (
    BATCH_WRITE_ITEM,
    CALL_ERRORS,
    DUPLICATE_KEYS,
    DYNAMODB_ERROR_PREFIX,
    DYNAMODB_WRITES,
    ENTRY_ERRORS,
    PUT_RECORDS,
    TRANSACT_WRITE_ITEMS,
    UPDATE_ITEM,
    Body,
    body_bytes,
    has_duplicate_keys,
    headers_of,
    response,
)

if TYPE_CHECKING:
    from tripstream.aws.clients import AwsClients

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE: Final = "TRIPSTREAM_FAULTS"
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class InjectedCrash(RuntimeError):
    """The consumer "crashes" here: an error no retry catches, raised in the middle of a batch."""


class FaultInjectionRefused(RuntimeError):
    """Faults are only injected into the traffic to an emulator on this machine."""


@dataclass(frozen=True)
class FaultPlan:
    """What to break, as shares in [0, 1] of what passes (all zero: nothing is touched)."""

    seed: int = 0
    # A share of PutRecords entries answered with an ErrorCode (and not stored).
    put_entry_failure: float = 0.0
    # A share of BatchWriteItem items returned as UnprocessedItems (and not written).
    unprocessed_items: float = 0.0
    # Shares of PutRecords/BatchWriteItem calls throttled / answered 500 or 503 / whose connection is reset before
    # the request arrives / carried out by the emulator but whose answer is lost (a reset after the fact).
    call_throttle: float = 0.0
    call_server_error: float = 0.0
    connection_reset: float = 0.0
    lost_response: float = 0.0
    # How a lost answer reaches the caller: "reset" (the connection drops), "500" (InternalServerError), "mixed".
    lost_response_answer: str = "reset"
    # A share of TransactWriteItems calls cancelled with TransactionConflict (not applied), as AWS does when
    # another transaction holds one of its items.
    transaction_conflict: float = 0.0
    # A share of TransactWriteItems calls applied but answered TransactionInProgressException, as AWS answers a
    # retry (same token) that arrives while the first attempt is still being applied.
    transaction_in_progress: float = 0.0
    # Cancel a TransactWriteItems whose items another transaction still in flight through this injector holds
    # (TransactionConflict at those actions, nothing applied), as AWS does; the others are sent and held until
    # answered. Concurrent writers of one hot item then see the conflicts they would see on AWS.
    model_transaction_conflicts: bool = False
    # A share of BatchWriteItem calls where the consumer crashes (InjectedCrash) instead.
    consumer_crash: float = 0.0
    # Seconds added before every BatchWriteItem call (a slow consumer).
    write_delay: float = 0.0
    # The operations the call-level faults (throttle, 5xx, reset, lost answer) apply to.
    operations: tuple[str, ...] = (PUT_RECORDS, BATCH_WRITE_ITEM)
    # Refuse a BatchWriteItem holding two requests for one key of one table with DynamoDB's ValidationException,
    # as AWS and DynamoDB Local do; moto accepts it (the last request wins), which would hide a missing dedupe.
    refuse_duplicate_keys: bool = False

    def __post_init__(self) -> None:
        shares = ("put_entry_failure", "unprocessed_items", "call_throttle", "call_server_error")
        transaction = ("transaction_conflict", "transaction_in_progress")
        for name in (*shares, "connection_reset", "lost_response", "consumer_crash", *transaction):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1, not {value}")
        call_total = self.call_throttle + self.call_server_error + self.connection_reset + self.lost_response
        in_transactions = self.transaction_conflict + self.transaction_in_progress
        if call_total + max(self.consumer_crash, in_transactions) > 1.0:
            raise ValueError("the call-level shares add up to more than 1")
        if self.lost_response_answer not in ("reset", "500", "mixed"):
            raise ValueError(f"lost_response_answer must be reset, 500 or mixed, not {self.lost_response_answer}")
        unknown = set(self.operations) - {PUT_RECORDS, *DYNAMODB_WRITES}
        if unknown:
            raise ValueError(f"faults cannot be injected into {sorted(unknown)}")

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"{ENVIRONMENT_VARIABLE} must hold a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{ENVIRONMENT_VARIABLE}: unknown fault(s) {', '.join(unknown)}")
        if "operations" in values:
            values["operations"] = tuple(values["operations"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class FaultCounts:
    """What was seen and what was injected (thread-safe through the injector's lock)."""

    put_records_calls: int = 0
    put_records_entries: int = 0
    batch_write_calls: int = 0
    batch_write_items: int = 0
    entries_failed: dict[str, int] = field(default_factory=dict)  # by ErrorCode
    items_unprocessed: int = 0
    calls_throttled: dict[str, int] = field(default_factory=dict)  # by operation
    calls_server_error: dict[str, int] = field(default_factory=dict)
    connections_reset: dict[str, int] = field(default_factory=dict)
    responses_lost: dict[str, int] = field(default_factory=dict)
    # Records Kinesis stored although the producer was told the call failed (it sends them again).
    records_stored_twice: int = 0
    consumer_crashes: int = 0
    delays: int = 0
    transact_write_calls: int = 0
    transact_write_items: int = 0
    update_item_calls: int = 0
    transactions_conflicted: int = 0  # TransactWriteItems cancelled with TransactionConflict
    transactions_in_progress: int = 0  # TransactWriteItems applied, answered TransactionInProgressException
    # BatchWriteItem calls refused for duplicate keys (refuse_duplicate_keys; DynamoDB's rule, not a fault).
    calls_refused_duplicate_keys: int = 0

    def total(self) -> int:
        """Every injected fault (entries and items one by one, calls one by one)."""
        return (
            sum(self.entries_failed.values())
            + self.items_unprocessed
            + sum(self.calls_throttled.values())
            + sum(self.calls_server_error.values())
            + sum(self.connections_reset.values())
            + sum(self.responses_lost.values())
            + self.consumer_crashes
            + self.transactions_conflicted
            + self.transactions_in_progress
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Injects the faults of a plan into the PutRecords and BatchWriteItem traffic of the clients it is installed on."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.counts = FaultCounts()
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}
        self._in_flight: set[str] = set()  # items of the transactions sent and not answered yet
        self._http = URLLib3Session(timeout=60, max_pool_connections=32)
        self._id = uuid.uuid4().hex

    # -- installing

    def install(self, clients: AwsClients) -> FaultInjector:
        """Hook the Kinesis and DynamoDB clients of `clients` (those the handlers use). Returns self."""
        for client in (clients.kinesis, clients.dynamodb):
            host = urlsplit(client.meta.endpoint_url).hostname or ""
            if host not in _LOOPBACK:
                raise FaultInjectionRefused(f"not injecting faults into traffic to {client.meta.endpoint_url}")
        # A before-send handler may return the HTTP response that replaces sending (botocore's documented
        # behaviour; the stubs type every handler as returning None).
        clients.kinesis.meta.events.register(
            f"before-send.kinesis.{PUT_RECORDS}",
            cast("Callable[..., None]", self._on_put_records),
            unique_id=f"faults-{self._id}-kinesis",
        )
        for operation, handler in self._dynamodb_handlers().items():
            clients.dynamodb.meta.events.register(
                f"before-send.dynamodb.{operation}",
                cast("Callable[..., None]", handler),
                unique_id=f"faults-{self._id}-dynamodb-{operation}",
            )
        return self

    def _dynamodb_handlers(self) -> dict[str, Callable[..., AWSResponse | None]]:
        return {
            BATCH_WRITE_ITEM: self._on_batch_write,
            TRANSACT_WRITE_ITEMS: self._on_transact_write,
            UPDATE_ITEM: self._on_update_item,
        }

    def uninstall(self, clients: AwsClients) -> None:
        clients.kinesis.meta.events.unregister(
            f"before-send.kinesis.{PUT_RECORDS}", unique_id=f"faults-{self._id}-kinesis"
        )
        for operation in self._dynamodb_handlers():
            clients.dynamodb.meta.events.unregister(
                f"before-send.dynamodb.{operation}", unique_id=f"faults-{self._id}-dynamodb-{operation}"
            )

    # -- deciding

    def _attempt(self, kind: str, identity: str) -> int:
        """How many times this thing was decided on before (0 the first time)."""
        with self._lock:
            count = self._seen.get((kind, identity), 0)
            self._seen[(kind, identity)] = count + 1
            return count

    def _draw(self, *parts: object) -> float:
        """A uniform number in [0, 1) fixed by the seed and `parts`."""
        digest = hashlib.blake2b(repr((self.plan.seed, *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def _choose(self, kind: str, identity: str, shares: Mapping[str, float]) -> str | None:
        attempt = self._attempt(kind, identity)
        draw = self._draw(kind, identity, attempt)
        for name, share in shares.items():
            if draw < share:
                return name
            draw -= share
        return None

    def _call_fault(self, operation: str, identity: str) -> str | None:
        shares = {"crash": self.plan.consumer_crash} if operation == BATCH_WRITE_ITEM else {}
        if operation == TRANSACT_WRITE_ITEMS:
            shares["conflict"] = self.plan.transaction_conflict
            shares["in_progress"] = self.plan.transaction_in_progress
        if operation in self.plan.operations:
            shares |= {
                "throttle": self.plan.call_throttle,
                "server_error": self.plan.call_server_error,
                "reset": self.plan.connection_reset,
                "lost": self.plan.lost_response,
            }
        if not any(shares.values()):
            return None
        return self._choose(f"call:{operation}", identity, shares)

    def _add(self, name: str, amount: int = 1, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                setattr(self.counts, name, getattr(self.counts, name) + amount)
            else:
                counter: dict[str, int] = getattr(self.counts, name)
                counter[key] = counter.get(key, 0) + amount

    # -- answering

    def _error(self, request: AWSPreparedRequest, operation: str, fault: str, identity: str) -> AWSResponse:
        choices = CALL_ERRORS[(operation, fault)]
        status, code, message = choices[int(self._draw("error", identity) * len(choices))]
        self._add("calls_throttled" if fault == "throttle" else "calls_server_error", key=operation)
        document = {"__type": code, "message": message.format(stream="taxi_trips", account="123456789012")}
        return response(request, status, document, {"x-amzn-ErrorType": code.rsplit("#", 1)[-1]})

    def _send(self, request: AWSPreparedRequest, body: bytes) -> AWSResponse:
        """Send (a changed copy of) the request to the emulator and read the whole answer."""
        headers = {name: value for name, value in request.headers.items() if name.lower() != "content-length"}
        headers["Content-Length"] = str(len(body))
        # A prepared request carries a HeadersDict (the stubs say HTTPHeaders, which urllib3 cannot copy).
        copy = AWSPreparedRequest(
            request.method, request.url, cast("HTTPHeaders", HeadersDict(headers)), body, stream_output=False
        )
        answer = self._http.send(copy)
        return AWSResponse(answer.url, answer.status_code, headers_of(answer.headers), Body(answer.content))

    def _call_level(
        self, request: AWSPreparedRequest, operation: str, body: bytes, content: object
    ) -> AWSResponse | None:
        """Apply a whole-call fault: raise, or return the answer that replaces the call (None: no such fault).

        `content` is what the call carries, without resource names (random in tests): the same records or items
        sent again are the same call, whatever the stream or table is called.
        """
        identity = hashlib.blake2b(json.dumps(content, sort_keys=True).encode(), digest_size=16).hexdigest()
        fault = self._call_fault(operation, identity)
        if fault is None:
            return None
        if fault == "crash":
            self._add("consumer_crashes")
            raise InjectedCrash(f"injected crash of the consumer during {operation}")
        if fault in ("throttle", "server_error"):
            return self._error(request, operation, fault, identity)
        if fault == "reset":
            self._add("connections_reset", key=operation)
            raise ConnectionClosedError(endpoint_url=request.url)
        if fault == "conflict":
            return self._conflict(request, content)
        if fault == "in_progress":
            self._send(request, body)  # applied; the answer says it is still being applied
            self._add("transactions_in_progress")
            document = {"__type": DYNAMODB_ERROR_PREFIX + "TransactionInProgressException", "message": "in progress"}
            return response(request, 400, document, {"x-amzn-ErrorType": "TransactionInProgressException"})
        if fault == "lost":
            self._send(request, body)  # the emulator does the work...
            self._add("responses_lost", key=operation)
            if operation == PUT_RECORDS:
                self._add("records_stored_twice", len(json.loads(body)["Records"]))
            answer = self.plan.lost_response_answer
            if answer == "500" or (answer == "mixed" and self._draw("lost-as", identity) < 0.5):
                code = "InternalServerError" if operation != PUT_RECORDS else "InternalFailure"
                prefix = "" if operation == PUT_RECORDS else DYNAMODB_ERROR_PREFIX
                document = {"__type": prefix + code, "message": "Internal server error"}
                return response(request, 500, document, {"x-amzn-ErrorType": code})
            raise ConnectionClosedError(endpoint_url=request.url)  # ...and the caller never hears of it
        return None

    def _on_put_records(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        body = body_bytes(request)
        document = json.loads(body)
        records: list[dict[str, Any]] = document["Records"]
        self._add("put_records_calls")
        self._add("put_records_entries", len(records))
        early = self._call_level(request, PUT_RECORDS, body, [(r["PartitionKey"], r["Data"]) for r in records])
        if early is not None:
            return early
        if not self.plan.put_entry_failure:
            return None
        failed: dict[int, tuple[str, str]] = {}
        for index, record in enumerate(records):
            identity = f"{record['PartitionKey']}:{hashlib.blake2b(record['Data'].encode(), digest_size=8).hexdigest()}"
            if self._choose("entry", identity, {"fail": self.plan.put_entry_failure}):
                code, message = ENTRY_ERRORS[0 if self._draw("entry-code", identity, index) < 0.7 else 1]
                failed[index] = (code, message.format(stream=document["StreamName"], account="123456789012"))
        if not failed:
            return None
        kept = [record for index, record in enumerate(records) if index not in failed]
        stored: list[dict[str, Any]] = []
        answer_headers: dict[str, str] = {}
        if kept:
            answer = self._send(request, json.dumps({**document, "Records": kept}).encode())
            if answer.status_code != 200:
                return answer
            parsed = json.loads(answer.content)
            stored = parsed["Records"]
            answer_headers = dict(answer.headers.items())
        results = iter(stored)
        rewritten = [
            {"ErrorCode": failed[index][0], "ErrorMessage": failed[index][1]} if index in failed else next(results)
            for index in range(len(records))
        ]
        for code, _message in failed.values():
            self._add("entries_failed", key=code)
        document_out: dict[str, Any] = {"FailedRecordCount": len(failed), "Records": rewritten}
        if any(r.get("ErrorCode") for r in stored):  # the emulator's own failures stay failures
            document_out["FailedRecordCount"] += sum(1 for r in stored if r.get("ErrorCode"))
        return response(request, 200, document_out, answer_headers)

    def _on_batch_write(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if self.plan.write_delay:
            self._add("delays")
            time.sleep(self.plan.write_delay)
        body = body_bytes(request)
        document = json.loads(body)
        requests: dict[str, list[dict[str, Any]]] = document["RequestItems"]
        self._add("batch_write_calls")
        self._add("batch_write_items", sum(len(v) for v in requests.values()))
        if self.plan.refuse_duplicate_keys and has_duplicate_keys(requests):
            self._add("calls_refused_duplicate_keys")
            document_out = {"__type": DYNAMODB_ERROR_PREFIX + "ValidationException", "message": DUPLICATE_KEYS}
            return response(request, 400, document_out, {"x-amzn-ErrorType": "ValidationException"})
        early = self._call_level(request, BATCH_WRITE_ITEM, body, [requests[table] for table in sorted(requests)])
        if early is not None:
            return early
        if not self.plan.unprocessed_items:
            return None
        kept: dict[str, list[dict[str, Any]]] = {}
        unprocessed: dict[str, list[dict[str, Any]]] = {}
        for table, table_requests in requests.items():
            for table_request in table_requests:
                item = table_request.get("PutRequest", {}).get("Item") or table_request.get("DeleteRequest", {}).get(
                    "Key", {}
                )
                # The trip and the item's attribute names (which tell the tables apart), not the table's name.
                identity = f"{json.dumps(item.get('trip_id'), sort_keys=True)}:{','.join(sorted(item))}"
                if self._choose("item", identity, {"unprocessed": self.plan.unprocessed_items}):
                    unprocessed.setdefault(table, []).append(table_request)
                else:
                    kept.setdefault(table, []).append(table_request)
        if not unprocessed:
            return None
        parsed: dict[str, Any] = {}
        answer_headers: dict[str, str] = {}
        if kept:
            answer = self._send(request, json.dumps({**document, "RequestItems": kept}).encode())
            if answer.status_code != 200:
                return answer
            parsed = json.loads(answer.content)
            answer_headers = dict(answer.headers.items())
        merged: dict[str, list[dict[str, Any]]] = {
            table: list(values) for table, values in (parsed.get("UnprocessedItems") or {}).items()
        }
        for table, table_requests in unprocessed.items():
            merged.setdefault(table, []).extend(table_requests)
        self._add("items_unprocessed", sum(len(v) for v in unprocessed.values()))
        return response(request, 200, {**parsed, "UnprocessedItems": merged}, answer_headers)

    def _on_transact_write(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        body = body_bytes(request)
        actions: list[dict[str, Any]] = json.loads(body)["TransactItems"]
        self._add("transact_write_calls")
        self._add("transact_write_items", len(actions))
        # The actions without their tables' names (random in tests) and without the token.
        content = [
            {kind: {k: v for k, v in action[kind].items() if k != "TableName"}} for action in actions for kind in action
        ]
        if not self.plan.model_transaction_conflicts:
            return self._call_level(request, TRANSACT_WRITE_ITEMS, body, content)
        items = [_item_of(action) for action in actions]
        with self._lock:
            held = [index for index, item in enumerate(items) if item in self._in_flight]
            if not held:
                self._in_flight.update(items)
        if held:
            return self._conflict(request, content, held)
        try:  # sent from here, so the items stay held until the answer is back
            return self._call_level(request, TRANSACT_WRITE_ITEMS, body, content) or self._send(request, body)
        finally:
            with self._lock:
                self._in_flight.difference_update(items)

    def _on_update_item(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        body = body_bytes(request)
        document = json.loads(body)
        self._add("update_item_calls")
        content = {k: v for k, v in document.items() if k != "TableName"}
        return self._call_level(request, UPDATE_ITEM, body, content)

    def _conflict(self, request: AWSPreparedRequest, content: object, at: Sequence[int] = (0,)) -> AWSResponse:
        """TransactionCanceledException with TransactionConflict on the actions `at` (the first by default), as
        AWS words it."""
        count = len(content) if isinstance(content, list) else 1
        conflict = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        reasons = [conflict if index in at else {"Code": "None"} for index in range(count)]
        listed = ", ".join(reason["Code"] for reason in reasons)
        document = {
            "__type": DYNAMODB_ERROR_PREFIX + "TransactionCanceledException",
            "message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{listed}]",
            "CancellationReasons": reasons,
        }
        self._add("transactions_conflicted")
        return response(request, 400, document, {"x-amzn-ErrorType": "TransactionCanceledException"})


def _item_of(action: Mapping[str, Any]) -> str:
    """The item a transaction's action touches: its table and key (a Put's whole item: tripstream's markers are
    their key plus the cell, so the same marker is the same text)."""
    (kind, operation), *_ = action.items()
    key = operation.get("Key") if kind != "Put" else operation.get("Item")
    return json.dumps([operation.get("TableName"), key], sort_keys=True)


def install_from_environment(clients: AwsClients, environ: Mapping[str, str] | None = None) -> FaultInjector | None:
    """Install the plan of TRIPSTREAM_FAULTS on `clients`, if the variable is set (tests of the CLI)."""
    text = (os.environ if environ is None else environ).get(ENVIRONMENT_VARIABLE, "").strip()
    if not text:
        return None
    plan = FaultPlan.from_json(text)
    log.warning("fault injection is on (%s=%s)", ENVIRONMENT_VARIABLE, plan.to_json())
    return FaultInjector(plan).install(clients)
