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

A transaction made only of those two shapes, on plain items and tables (:mod:`.plain_items`), is checked and
applied on the store's rows directly (:func:`_write_plainly`: one read per action, one statement for the writes, no
moto ``Item``); any other goes the way below.

The replacement holds one lock for the whole transaction, checks every condition first and applies nothing when
any fails (the same CancellationReasons, index by index), and undoes an error while applying item by item from
the items it saved. BatchWriteItem/PutItem/UpdateItem do not take this lock: on this emulator they are not
isolated from a transaction touching the same item (tripstream writes the aggregates' tables only in
transactions, and `aggregates rebuild` runs while no consumer does).
"""

from __future__ import annotations

import marshal
import re
import threading
from decimal import Context, Decimal
from typing import Any, Final, NamedTuple

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

from tripstream.local.emulator.moto_patches.dynamodb_storage import encode_attributes, put_rows
from tripstream.local.emulator.moto_patches.json_answers import PlainJsonResult
from tripstream.local.emulator.moto_patches.plain_items import (
    PlainTable,
    key_texts,
    plain_key,
    plain_number,
    plain_table,
    plain_value,
)
from tripstream.local.emulator.moto_patches.storage import store

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


def _added(op: dict[str, Any], key: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The item (DynamoDB JSON) after an `ADD #a :a, ...` of numbers to `current` (None: no item yet), or None when
    the update is of another shape."""
    match = _ADD.match(op["UpdateExpression"])
    if match is None or op.get("ConditionExpression") is not None:
        return None
    names, values = op.get("ExpressionAttributeNames") or {}, op.get("ExpressionAttributeValues") or {}
    attributes = dict(current) if current is not None else dict(key)
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
            elif (attributes := _added(op, key, saved[-1][2])) is not None:
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


class _PlainAction(NamedTuple):
    """A Put of a plain item (under `attribute_not_exists(<key attribute>)` or no condition) or an `ADD` of plain
    numbers, into a plain table (:mod:`.plain_items`)."""

    table: PlainTable
    row: tuple[str, str]
    key: dict[str, Any]
    put: dict[str, Any] | None  # the item of a Put; None for an Update
    must_not_exist: bool
    update: dict[str, Any] | None  # the Update's parameters; None for a Put


_PUT_PARAMETERS: Final = frozenset({"TableName", "Item", "ConditionExpression"})
_UPDATE_PARAMETERS: Final = frozenset(
    {"TableName", "Key", "UpdateExpression", "ExpressionAttributeNames", "ExpressionAttributeValues"}
)
_CONDITION_FAILED: Final = ConditionalCheckFailed()


def _plain_action(backend: Any, action: dict[str, Any]) -> _PlainAction | None:
    if len(action) != 1:
        return None
    ((op_type, op),) = action.items()
    if type(op) is not dict:
        return None
    table = plain_table(backend, op.get("TableName"))
    if table is None:
        return None
    key_names = {table.hash_attribute} | ({table.range_attribute} if table.range_attribute else set())
    if op_type == "Put" and set(op) <= _PUT_PARAMETERS:
        item = op.get("Item")
        row = plain_key(table, item)
        condition = op.get("ConditionExpression")
        match = _NOT_EXISTS.match(condition) if type(condition) is str else None
        unconditioned = condition is None
        if row is None or item is None or not (unconditioned or (match is not None and match.group(1) in key_names)):
            return None
        return _PlainAction(table, row, {name: item[name] for name in key_names}, item, not unconditioned, None)
    if op_type == "Update" and set(op) <= _UPDATE_PARAMETERS:
        update_key, expression = op.get("Key"), op.get("UpdateExpression")
        if type(update_key) is not dict or set(update_key) != key_names or type(expression) is not str:
            return None
        row = key_texts(table, update_key)
        match = _ADD.match(expression)
        if row is None or match is None:
            return None
        pairs = [pair.split() for pair in match.group(1).split(",")]
        names, values = op.get("ExpressionAttributeNames") or {}, op.get("ExpressionAttributeValues") or {}
        targets = [names.get(name_ref) for name_ref, _ in pairs]
        if len(set(targets)) != len(targets) or any(not plain_number(values.get(ref)) for _, ref in pairs):
            return None
        return _PlainAction(table, row, update_key, None, False, op)
    return None


def _write_plainly(backend: Any, transact_items: list[dict[str, Any]]) -> bool:
    """A transaction of plain actions only, checked and applied on the store's rows (no moto ``Item`` built, one
    read per action, one statement for every write). False, with nothing done, when it is not of that shape (moto's
    path then does it, or says what is wrong)."""
    if not 0 < len(transact_items) <= 100:
        return False
    plan: list[_PlainAction] = []
    rows_seen: set[tuple[int, str, str]] = set()
    for action in transact_items:
        plain = _plain_action(backend, action)
        if plain is None or (plain.table.items.owner, *plain.row) in rows_seen:
            return False
        rows_seen.add((plain.table.items.owner, *plain.row))
        plan.append(plain)
    with _LOCK, store().transaction():
        currents = [plain.table.items.get_row(*plain.row) for plain in plan]
        errors = [
            ("ConditionalCheckFailed", _CONDITION_FAILED.message, None)
            if plain.must_not_exist and current is not None
            else (None, None, None)
            for plain, current in zip(plan, currents, strict=True)
        ]
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        rows: list[tuple[Any, str, str, bytes]] = []
        for plain, current in zip(plan, currents, strict=True):
            attributes = plain.put
            if plain.update is not None:
                attributes = _added(plain.update, plain.key, None if current is None else marshal.loads(current))
                if attributes is None or not all(plain_value(value) for value in attributes.values()):
                    return False  # nothing written yet
            assert attributes is not None
            rows.append((plain.table.items, *plain.row, encode_attributes(attributes)))
        put_rows(rows)
    return True


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
        if not _write_plainly(self.dynamodb_backend, transact_items):
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
