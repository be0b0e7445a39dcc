"""Plain items written straight to the store: BatchWriteItem's puts without moto's item model (emulator only).

For every item of a BatchWriteItem, moto 5.2.1 builds a ``DynamoType`` per attribute and an ``Item``, validates the
attributes one by one, reads the old item, stores the ``Item``, and the store (:mod:`.dynamodb_storage`) then turns it
back into DynamoDB JSON to keep it: a third of the emulator's CPU under the pipeline (py-spy, 50,000 trips). For a
*plain* item the row it ends as is the request's own attributes: here those are kept as they came, one statement for
the whole request.

Plain (:func:`plain_key`): every value is a string, a number written as digits (an optional minus, an optional
fraction, at most 38 characters: moto accepts it as it is) or a boolean; the key attributes are present, of the
table's key types, not empty and far below DynamoDB's key sizes; the whole item far below the item size limit. A
plain table (:func:`plain_table`) has its items in the store, no secondary index and no stream. Anything else (binary
values, sets, lists, maps, NULL, a missing table, a table ARN, a DeleteRequest, a key written twice in one request)
goes through moto's own code, which answers what moto answers, errors included. What a request that is plain throughout
answers is moto's answer too (the same fields, :func:`_batch_answer`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from moto.core.responses import ActionResult
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from tripstream.local.emulator.moto_patches.dynamodb_storage import (
    NO_RANGE,
    DiskItems,
    disk_items,
    encode_attributes,
    put_rows,
)
from tripstream.local.emulator.moto_patches.json_answers import PlainJsonResult
from tripstream.local.emulator.moto_patches.storage import store
from tripstream.local.emulator.moto_patches.version import shape_error

_MARKER: Final = "_tripstream_original_batch_write_item"
_CONTENT_TYPE: Final = "application/x-amz-json-1.0"
_PLAIN_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_MAX_NUMBER_CHARACTERS: Final = 38  # DynamoDB's precision: 38 characters hold at most 38 digits
# Characters, so bytes at most four times as many: far below the 2,048/1,024-byte key limits and the 400 KB item limit.
_MAX_HASH_CHARACTERS: Final = 400
_MAX_RANGE_CHARACTERS: Final = 200
_MAX_ITEM_CHARACTERS: Final = 90_000
_MAX_BATCH_REQUESTS: Final = 25


class PlainTable(NamedTuple):
    """A table whose plain items may be written straight to its rows."""

    items: DiskItems
    hash_attribute: str
    hash_type: str
    range_attribute: str | None
    range_type: str | None


def plain_table(backend: Any, name: Any) -> PlainTable | None:
    """The table named ``name`` when its items are rows of the store, without index or stream; else None."""
    table = backend.tables.get(name) if isinstance(name, str) else None
    if table is None or table.global_indexes or table.indexes or table.stream_shard is not None:
        return None
    items = disk_items(table)
    if items is None:
        return None
    return PlainTable(items, table.hash_key_attr, table.hash_key_type, table.range_key_attr, table.range_key_type)


def plain_value(value: Any) -> bool:
    """A string, a number written plainly, or a boolean."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind == "S":
        return type(inner) is str
    if kind == "N":
        return (
            type(inner) is str and len(inner) <= _MAX_NUMBER_CHARACTERS and _PLAIN_NUMBER.fullmatch(inner) is not None
        )
    return kind == "BOOL" and type(inner) is bool


def plain_number(value: Any) -> bool:
    """A number written plainly (DynamoDB JSON)."""
    return plain_value(value) and "N" in value


def _key_text(value: Any, kind: str | None, max_characters: int) -> str | None:
    """The store's text of a key value (its type and its text), None unless plain, of `kind` and not empty."""
    if not plain_value(value):
        return None
    ((value_kind, inner),) = value.items()
    if value_kind != kind or not inner or len(inner) > max_characters:
        return None
    return str(value_kind + inner)


def key_texts(table: PlainTable, key: Mapping[str, Any]) -> tuple[str, str] | None:
    """The row key of `key` (the key attributes of an item or a Key) in `table`; None unless plain."""
    hash_text = _key_text(key.get(table.hash_attribute), table.hash_type, _MAX_HASH_CHARACTERS)
    if hash_text is None:
        return None
    if table.range_attribute is None:
        return hash_text, NO_RANGE
    range_text = _key_text(key.get(table.range_attribute), table.range_type, _MAX_RANGE_CHARACTERS)
    return None if range_text is None else (hash_text, range_text)


def plain_key(table: PlainTable, item: Any) -> tuple[str, str] | None:
    """The row key of `item` in `table` when the whole item is plain, else None."""
    if type(item) is not dict or not item:
        return None
    characters = 0
    for name, value in item.items():
        if not name or not plain_value(value):
            return None
        characters += len(name) + len(str(next(iter(value.values()))))
    if characters > _MAX_ITEM_CHARACTERS:
        return None
    return key_texts(table, item)


def _plain_puts(backend: Any, request_items: Any) -> list[tuple[DiskItems, str, str, bytes]] | None:
    """The rows of a BatchWriteItem made only of plain puts into plain tables, each key once; else None."""
    if type(request_items) is not dict:
        return None
    rows: list[tuple[DiskItems, str, str, bytes]] = []
    seen: set[tuple[int, str, str]] = set()
    for table_name, requests in request_items.items():
        table = plain_table(backend, table_name)
        if table is None or type(requests) is not list:
            return None
        for request in requests:
            if type(request) is not dict or len(request) != 1 or "PutRequest" not in request:
                return None
            put = request["PutRequest"]
            if type(put) is not dict or set(put) != {"Item"}:
                return None
            item = put["Item"]
            key = plain_key(table, item)
            if key is None or (table.items.owner, *key) in seen:
                return None
            seen.add((table.items.owner, *key))
            rows.append((table.items, *key, encode_attributes(item)))
    if not rows or len(rows) > _MAX_BATCH_REQUESTS:
        return None
    return rows


def _batch_answer(request_items: Mapping[str, Any]) -> dict[str, Any]:
    """moto 5.2.1's BatchWriteItem answer: one unit per table, nothing unprocessed."""
    return {
        "ConsumedCapacity": [
            {"TableName": name, "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}} for name in request_items
        ],
        "ItemCollectionMetrics": {},
        "UnprocessedItems": {},
    }


def _batch_write_item(original: Callable[[Any], ActionResult]) -> Callable[[Any], ActionResult]:
    def batch_write_item(self: Any) -> ActionResult:
        request_items = self.body.get("RequestItems") if isinstance(self.body, dict) else None
        rows = _plain_puts(self.dynamodb_backend, request_items)
        if rows is None:
            return original(self)
        assert request_items is not None
        with store().transaction():
            put_rows(rows)
        return PlainJsonResult(_batch_answer(request_items), _CONTENT_TYPE)

    batch_write_item.__name__ = original.__name__
    batch_write_item.__wrapped__ = original  # type: ignore[attr-defined]
    return batch_write_item


_TABLE_ATTRIBUTES: Final = ("global_indexes", "indexes", "stream_shard", "hash_key_attr", "range_key_attr")


def _check_shape() -> None:
    """What :func:`plain_table` reads of a moto ``Table`` is set in moto's table module (its ``__init__`` is wrapped by
    :mod:`.dynamodb_storage` by now: the module's source is read)."""
    try:
        source = inspect.getsource(inspect.getmodule(Table))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return  # no source to read (a frozen install): nothing to check against
    missing = [name for name in _TABLE_ATTRIBUTES if f"self.{name} =" not in source and f"self.{name}:" not in source]
    if missing:
        raise shape_error("DynamoDB Table", [f"moto's Table no longer sets {', '.join(missing)}"])


def apply() -> None:
    """Write plain BatchWriteItem puts straight to the store. Idempotent; the caller holds the patches' lock; after
    :mod:`.dynamodb_storage` (whose tables this writes into)."""
    if _MARKER in vars(DynamoHandler):
        return
    _check_shape()
    original = vars(DynamoHandler)["batch_write_item"]
    setattr(DynamoHandler, _MARKER, original)
    DynamoHandler.batch_write_item = _batch_write_item(original)  # type: ignore[method-assign,assignment]


def revert() -> None:
    original = vars(DynamoHandler).get(_MARKER)
    if original is not None:
        DynamoHandler.batch_write_item = original  # type: ignore[method-assign]
        delattr(DynamoHandler, _MARKER)
