"""moto's TransactWriteItems made atomic and isolated, as DynamoDB's is (applied by moto_patches.apply).

moto 5.2.1's ``DynamoDBBackend.transact_write_items`` backs up every table a transaction touches by deep-copying
the whole table, once per action, and rolls back a cancelled transaction by putting those copies back. Seen
with the consumer's four transactions in flight (moto's server is threaded): a cancelled transaction restored a
copy of the markers table taken before another transaction applied, and a copy of the cells table taken after
it, so the other transaction's cell ADD stayed while its markers vanished, and its trips were counted again on
re-delivery. The copies also cost O(table size) per action (seconds per batch once the markers table fills).

moto parses and validates every update expression anew (about 5 ms per cell update, most of the consumer's time
with the aggregates): the two shapes tripstream sends, `attribute_not_exists(<key>)` on a Put and `ADD #a :a, ...` of
numbers, are done directly here; anything else goes through moto's own code.

moto's handler also parses every condition and update expression of a request once more, only to check which
names it uses: for those two shapes the check is done on the text (:func:`_checked_directly`).

The replacement holds one lock for the whole transaction, checks every condition first and applies nothing when
any fails (the same CancellationReasons, index by index), and undoes an error while applying item by item from
the items it saved. BatchWriteItem/PutItem/UpdateItem do not take this lock: on this emulator they are not
isolated from a transaction touching the same item (tripstream writes the aggregates' tables only in
transactions, and `aggregates rebuild` runs while no consumer does).
"""

from __future__ import annotations

import re
import threading
from decimal import Context, Decimal
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
from moto.dynamodb.responses import DynamoHandler

from tripstream.local.emulator.moto_patches.json_answers import PlainJsonResult

_LOCK: Final = threading.RLock()
_MARKER: Final = "_tripstream_original_transact_write_items"
_OPERATIONS: Final = frozenset({"ConditionCheck", "Put", "Delete", "Update"})
_NOT_EXISTS: Final = re.compile(r"^\s*attribute_not_exists\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")
_ADD: Final = re.compile(r"^\s*ADD\s+(#\w+\s+:\w+(?:\s*,\s*#\w+\s+:\w+)*)\s*$")
_NUMBERS: Final = Context(prec=38)  # DynamoDB's precision


def _not_exists_holds(condition: str, key: dict[str, Any], current: Any) -> bool | None:
    """The outcome of `attribute_not_exists(<a key attribute>)`; None for any other condition."""
    match = _NOT_EXISTS.match(condition)
    if match is None or match.group(1) not in key:
        return None
    return current is None


def _added(op: dict[str, Any], key: dict[str, Any], current: Any) -> dict[str, Any] | None:
    """The item after an `ADD #a :a, ...` of numbers, or None when the update is of another shape."""
    match = _ADD.match(op["UpdateExpression"])
    if match is None or op.get("ConditionExpression") is not None:
        return None
    names, values = op.get("ExpressionAttributeNames") or {}, op.get("ExpressionAttributeValues") or {}
    attributes = dict(current.to_json()["Attributes"]) if current is not None else dict(key)
    for pair in match.group(1).split(","):
        name_ref, value_ref = pair.split()
        name, value = names.get(name_ref), values.get(value_ref)
        if name is None or name in key or not isinstance(value, dict) or set(value) != {"N"}:
            return None
        old = attributes.get(name, {"N": "0"})
        if set(old) != {"N"}:
            return None  # moto's own code raises DynamoDB's error
        attributes[name] = {"N": str(_NUMBERS.add(Decimal(old["N"]), Decimal(value["N"])))}
    return attributes


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
                holds = _not_exists_holds(condition, key, current)
                if holds is None:
                    holds = get_filter_expression(condition, names, values).expr(current)
                if not holds:
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
            elif (attributes := _added(op, key, current)) is not None:
                backend.put_item(table_name, attributes)
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


_EXPRESSION_NAME: Final = re.compile(r"#\w+")


def _key_values_present(key: dict[str, Any]) -> bool:
    return all(isinstance(value, dict) and "" not in value.values() for value in key.values())


def _checked_directly(item: dict[str, Any]) -> bool:
    """Whether the request-level checks of moto's handler have nothing to say about this action: a Put under
    `attribute_not_exists(<key>)` (or none) without names, or an `ADD #a :a, ...` whose names are exactly those the
    expression uses; key values present; no empty ExpressionAttributeValues (moto's handler parses every expression
    to find that out, about 0.1 ms an action)."""
    if len(item) != 1:
        return False
    op_type, op = next(iter(item.items()))
    if op.get("ExpressionAttributeValues") == {}:
        return False
    if op_type == "Put":
        condition = op.get("ConditionExpression")
        return (
            not op.get("ExpressionAttributeNames")
            and (condition is None or _NOT_EXISTS.match(condition) is not None)
            and _key_values_present({k: v for k, v in op["Item"].items() if isinstance(v, dict) and "S" in v})
        )
    if op_type == "Update":
        expression = op.get("UpdateExpression")
        if op.get("ConditionExpression") is not None or not isinstance(expression, str) or not _ADD.match(expression):
            return False
        used = set(_EXPRESSION_NAME.findall(expression))
        return set(op.get("ExpressionAttributeNames") or {}) == used and _key_values_present(op["Key"])
    return False


def _handler_transact_write_items(original: Any) -> Any:
    """moto's handler with its per-action expression parsing skipped where :func:`_checked_directly` holds."""

    def handler(self: Any) -> Any:
        transact_items = self.body["TransactItems"]
        if not all(_checked_directly(item) for item in transact_items):
            return original(self)
        self.dynamodb_backend.transact_write_items(transact_items)
        return PlainJsonResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}}, "application/x-amz-json-1.0")

    handler.__name__ = original.__name__
    handler.__wrapped__ = original  # type: ignore[attr-defined]
    return handler


def apply() -> None:
    if _MARKER not in vars(DynamoDBBackend):
        setattr(DynamoDBBackend, _MARKER, DynamoDBBackend.transact_write_items)
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
        original_handler = DynamoHandler.transact_write_items
        setattr(DynamoHandler, _MARKER, original_handler)
        DynamoHandler.transact_write_items = _handler_transact_write_items(original_handler)  # type: ignore[method-assign]


def revert() -> None:
    original = vars(DynamoDBBackend).get(_MARKER)
    if original is not None:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]
        delattr(DynamoDBBackend, _MARKER)
    original_handler = vars(DynamoHandler).get(_MARKER)
    if original_handler is not None:
        DynamoHandler.transact_write_items = original_handler  # type: ignore[method-assign]
        delattr(DynamoHandler, _MARKER)
