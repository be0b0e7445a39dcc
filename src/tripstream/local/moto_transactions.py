"""moto's TransactWriteItems made atomic and isolated, as DynamoDB's is (applied by moto_patches.apply).

moto 5.2.1's ``DynamoDBBackend.transact_write_items`` backs up every table a transaction touches by deep-copying
the whole table, once per action, and rolls back a cancelled transaction by putting those copies back. Seen
with the consumer's four transactions in flight (moto's server is threaded): a cancelled transaction restored a
copy of the markers table taken before another transaction applied, and a copy of the cells table taken after
it, so the other transaction's cell ADD stayed while its markers vanished, and its trips were counted again on
re-delivery. The copies also cost O(table size) per action (seconds per batch once the markers table fills).

The replacement holds one lock for the whole transaction, checks every condition first and applies nothing when
any fails (the same CancellationReasons, index by index), and undoes an error while applying item by item from
the items it saved. BatchWriteItem/PutItem/UpdateItem do not take this lock: on this emulator they are not
isolated from a transaction touching the same item (tripstream writes the aggregates' tables only in
transactions, and `aggregates rebuild` runs while no consumer does).
"""

from __future__ import annotations

import threading
from typing import Any, Final

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

_LOCK: Final = threading.RLock()
_MARKER: Final = "_tripstream_original_transact_write_items"
_OPERATIONS: Final = frozenset({"ConditionCheck", "Put", "Delete", "Update"})


def _key(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _check(backend: Any, items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """Every action's condition against the state before the transaction; moto's error tuples."""
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    for item in items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in _OPERATIONS:
            raise ValueError("Unsupported transaction operation")
        original_item = None
        try:
            key = _key(backend, op_type, op)
            unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            current = backend.get_item(op["TableName"], key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if not get_filter_expression(condition, names, values).expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as error:
            errors.append(("ConditionalCheckFailed", str(error.message), original_item))
        except Exception as error:  # moto reports any other error as a reason of its own
            errors.append((type(error).__name__, str(error), original_item))
    return errors


def _apply(backend: Any, items: list[dict[str, Any]]) -> None:
    saved: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    try:
        for item in items:
            op_type, op = next(iter(item.items()))
            if op_type == "ConditionCheck":
                continue
            table_name, key = op["TableName"], _key(backend, op_type, op)
            current = backend.get_item(table_name, key)
            saved.append((table_name, key, None if current is None else current.to_json()["Attributes"]))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                backend.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                backend.delete_item(table_name, key)
            else:
                backend.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for table_name, key, attributes in reversed(saved):
            if attributes is None:
                if backend.get_item(table_name, key) is not None:
                    backend.delete_item(table_name, key)
            else:
                backend.put_item(table_name, attributes)
        raise


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    with _LOCK:
        errors = _check(self, transact_items)
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        _apply(self, transact_items)


def apply() -> None:
    if _MARKER not in vars(DynamoDBBackend):
        setattr(DynamoDBBackend, _MARKER, DynamoDBBackend.transact_write_items)
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def revert() -> None:
    original = vars(DynamoDBBackend).get(_MARKER)
    if original is not None:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]
        delattr(DynamoDBBackend, _MARKER)
