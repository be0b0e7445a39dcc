"""moto's DynamoDB table items kept in the emulator's SQLite store (:mod:`.storage`), not as Python objects.

moto 5.2.1's ``Table`` keeps its items in ``self.items``: ``{hash DynamoType: Item}``, or, with a sort key,
``{hash: {range: Item}}`` (a ``defaultdict(dict)``), and reads and writes them only through that mapping (``put_item``,
``get_item``, ``delete_item``, ``all_items``, ``__len__``, ``has_idx_items``). :func:`apply` gives every new table a
mapping of the same shape whose items live in SQLite (:class:`DiskItems`, :class:`_RangeItems`): an item is one row,
its DynamoDB JSON ``marshal``-ed; reading it builds a fresh ``Item``. Two places of moto change an ``Item`` in place
after reading it (``update_item`` and its ``ADD``/``SET``); the patched ``update_item`` writes the changed item
back. ``Scan`` reads its page from SQLite in key order (the order moto sorts in) from the exclusive start key on,
instead of building and sorting every item on every page; ``len(table)`` is a ``COUNT``.

Tables keyed by binary values keep moto's own dict (their ordering is not SQLite's).

In a kept store (:mod:`.storage`, ``up --state-dir``) a table's rows are found by its account, region, name and key
schema: a table created again under the same name by the next emulator holds the items it held; DeleteTable drops
them.
"""

from __future__ import annotations

import copy
import marshal
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any, Final

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from tripstream.local.emulator.moto_patches.storage import Store, store
from tripstream.local.emulator.moto_patches.version import parameter_names, shape_error

_MARKER: Final = "_tripstream_original_table_methods"
_KEY_TYPES: Final = frozenset({"S", "N"})
NO_RANGE: Final = ""
_SCAN_SIGNATURE: Final = (
    "self",
    "filters",
    "limit",
    "exclusive_start_key",
    "filter_expression",
    "index_name",
    "consistent_read",
    "projection_expression",
    "segments",
)
_RESULT_SIZE_LIMIT: Final = 1000000  # moto's RESULT_SIZE_LIMIT (bytes of items in one Scan page)


def _key_text(value: DynamoType) -> str:
    return value.type + str(value.value)


def _key_value(text: str) -> DynamoType:
    return DynamoType({text[0]: text[1:]})


_PUT_ROW: Final = "INSERT OR REPLACE INTO items (t, h, r, v) VALUES (?, ?, ?, ?)"


def encode_attributes(attributes: dict[str, Any]) -> bytes:
    """A row's value: an item's DynamoDB JSON (attribute name -> {type: value}), ``marshal``-ed."""
    return marshal.dumps(attributes)


def _encode(item: Item) -> bytes:
    return encode_attributes(item.to_json()["Attributes"])


class DiskItems(MutableMapping[Any, Any]):
    """A table's items in SQLite, shaped as moto's ``Table.items``: hash key -> ``Item`` (or -> range mapping)."""

    def __init__(self, owner: int, has_range: bool, backing: Store) -> None:
        self.owner = owner
        self.has_range = has_range
        self.store = backing

    # --- the rows ---------------------------------------------------------------------------------------------
    def get_row(self, hash_text: str, range_text: str) -> bytes | None:
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT v FROM items WHERE t = ? AND h = ? AND r = ?", (self.owner, hash_text, range_text)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def put_row(self, hash_text: str, range_text: str, item: Item) -> None:
        with self.store.lock:
            self.store.connection.execute(_PUT_ROW, (self.owner, hash_text, range_text, _encode(item)))

    def delete_row(self, hash_text: str, range_text: str) -> bool:
        with self.store.lock:
            cursor = self.store.connection.execute(
                "DELETE FROM items WHERE t = ? AND h = ? AND r = ?", (self.owner, hash_text, range_text)
            )
        return cursor.rowcount > 0

    def rows(
        self, after: tuple[str, str] | None = None, hash_text: str | None = None
    ) -> Iterator[tuple[str, str, bytes]]:
        """Rows in key order, after ``after`` (exclusive) and/or of one hash key; read in pages (bounded memory)."""
        position = after
        while True:
            conditions, parameters = ["t = ?"], [self.owner]
            if hash_text is not None:
                conditions.append("h = ?")
                parameters.append(hash_text)  # type: ignore[arg-type]
            if position is not None:
                conditions.append("(h, r) > (?, ?)")
                parameters.extend(position)  # type: ignore[arg-type]
            with self.store.lock:
                page = self.store.connection.execute(
                    f"SELECT h, r, v FROM items WHERE {' AND '.join(conditions)} ORDER BY h, r LIMIT 1000",
                    parameters,
                ).fetchall()
            for h, r, v in page:
                yield h, r, bytes(v)
            if len(page) < 1000:
                return
            position = (page[-1][0], page[-1][1])

    def count(self) -> int:
        with self.store.lock:
            return int(
                self.store.connection.execute("SELECT COUNT(*) FROM items WHERE t = ?", (self.owner,)).fetchone()[0]
            )

    def item(self, hash_text: str, range_text: str, value: bytes) -> Item:
        range_key = None if range_text == NO_RANGE else _key_value(range_text)
        return Item(_key_value(hash_text), range_key, marshal.loads(value))

    def clear(self) -> None:
        with self.store.lock:
            self.store.connection.execute("DELETE FROM items WHERE t = ?", (self.owner,))

    # --- moto's mapping -----------------------------------------------------------------------------------------
    def __getitem__(self, hash_key: DynamoType) -> Any:
        if self.has_range:
            return _RangeItems(self, _key_text(hash_key))  # moto's defaultdict(dict): never a KeyError
        value = self.get_row(_key_text(hash_key), NO_RANGE)
        if value is None:
            raise KeyError(hash_key)
        return Item(hash_key, None, marshal.loads(value))

    def __setitem__(self, hash_key: DynamoType, item: Any) -> None:
        if self.has_range:
            raise TypeError("a table with a sort key stores items per range key: items[hash][range] = item")
        self.put_row(_key_text(hash_key), NO_RANGE, item)

    def __delitem__(self, hash_key: DynamoType) -> None:
        if self.has_range:
            with self.store.lock:
                self.store.connection.execute(
                    "DELETE FROM items WHERE t = ? AND h = ?", (self.owner, _key_text(hash_key))
                )
        elif not self.delete_row(_key_text(hash_key), NO_RANGE):
            raise KeyError(hash_key)

    def __contains__(self, hash_key: object) -> bool:
        if not isinstance(hash_key, DynamoType):
            return False
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT 1 FROM items WHERE t = ? AND h = ? LIMIT 1", (self.owner, _key_text(hash_key))
            ).fetchone()
        return row is not None

    def __iter__(self) -> Iterator[DynamoType]:
        previous = None
        for h, _, _ in self.rows():
            if h != previous:
                previous = h
                yield _key_value(h)

    def __len__(self) -> int:
        if not self.has_range:
            return self.count()
        with self.store.lock:
            return int(
                self.store.connection.execute(
                    "SELECT COUNT(DISTINCT h) FROM items WHERE t = ?", (self.owner,)
                ).fetchone()[0]
            )

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        if self.has_range:
            return (_RangeItems(self, _key_text(hash_key)) for hash_key in self)
        return (self.item(h, r, v) for h, r, v in self.rows())

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        """A plain dict of copies (moto's backups deep-copy a table's items)."""
        if self.has_range:
            return {hash_key: {item.range_key: item for item in view.values()} for hash_key, view in self.items()}
        return {item.hash_key: copy.deepcopy(item, memo) for item in self.values()}


class _RangeItems(MutableMapping[Any, Any]):
    """The items of one hash key of a table with a sort key: range key -> ``Item``."""

    def __init__(self, table: DiskItems, hash_text: str) -> None:
        self._table = table
        self._hash_text = hash_text

    def __getitem__(self, range_key: DynamoType) -> Item:
        value = self._table.get_row(self._hash_text, _key_text(range_key))
        if value is None:
            raise KeyError(range_key)
        return Item(_key_value(self._hash_text), range_key, marshal.loads(value))

    def __setitem__(self, range_key: DynamoType, item: Item) -> None:
        self._table.put_row(self._hash_text, _key_text(range_key), item)

    def __delitem__(self, range_key: DynamoType) -> None:
        if not self._table.delete_row(self._hash_text, _key_text(range_key)):
            raise KeyError(range_key)

    def __iter__(self) -> Iterator[DynamoType]:
        return (_key_value(r) for _, r, _ in self._table.rows(hash_text=self._hash_text))

    def __len__(self) -> int:
        with self._table.store.lock:
            return int(
                self._table.store.connection.execute(
                    "SELECT COUNT(*) FROM items WHERE t = ? AND h = ?", (self._table.owner, self._hash_text)
                ).fetchone()[0]
            )

    def values(self) -> Iterator[Item]:  # type: ignore[override]
        return (self._table.item(h, r, v) for h, r, v in self._table.rows(hash_text=self._hash_text))


def disk_items(table: Any) -> DiskItems | None:
    """A table's items in the store; None for a table that keeps moto's own dict."""
    items = table.__dict__.get("items")
    return items if isinstance(items, DiskItems) else None


def put_rows(rows: Sequence[tuple[DiskItems, str, str, bytes]]) -> None:
    """Rows of any tables, (table, hash text, range text, encoded item), written in one statement."""
    if not rows:
        return
    backing = rows[0][0].store
    with backing.lock:
        backing.connection.executemany(
            _PUT_ROW, [(items.owner, hash_text, range_text, value) for items, hash_text, range_text, value in rows]
        )


def _owner_name(table: Any) -> str:
    """A table's rows in a kept store: by account, region, name and key schema (a table created again with other
    keys does not read the old rows)."""
    keys = f"{table.hash_key_attr}:{table.hash_key_type}"
    if table.range_key_attr is not None:
        keys += f"/{table.range_key_attr}:{table.range_key_type}"
    return f"dynamodb/{table.account_id}/{table.region_name}/{table.name}/{keys}"


def _table_init(original: Any) -> Any:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        key_types = {self.hash_key_type} | ({self.range_key_type} if self.range_key_attr is not None else set())
        if key_types <= _KEY_TYPES and not self.items:
            self.items = DiskItems(store().owner_for(_owner_name(self)), self.range_key_attr is not None, store())

    return init


def _table_get_item(original: Any) -> Any:
    """One row read (moto's own asks ``in`` and then ``[]``: two for a hash-only table)."""

    def get_item(
        self: Any, hash_key: DynamoType, range_key: DynamoType | None = None, projection_expression: Any = None
    ) -> Item | None:
        items = disk_items(self)
        if items is None or (self.range_key_attr is not None and not range_key):
            return original(self, hash_key, range_key, projection_expression)  # type: ignore[no-any-return]
        range_text = _key_text(range_key) if range_key else NO_RANGE
        value = items.get_row(_key_text(hash_key), range_text)
        if value is None:
            return None
        item = Item(hash_key, range_key if range_key else None, marshal.loads(value))
        return item.project(projection_expression) if projection_expression else item

    return get_item


def _table_len(original: Any) -> Any:
    def length(self: Any) -> int:
        items = disk_items(self)
        return original(self) if items is None else items.count()

    return length


def _table_all_items(original: Any) -> Any:
    def all_items(self: Any) -> list[Item]:
        items = disk_items(self)
        if items is None:
            return list(original(self))
        return [items.item(h, r, v) for h, r, v in items.rows()]  # already in key order

    return all_items


def _start_after(table: Any, exclusive_start_key: dict[str, Any] | None) -> tuple[str, str] | None:
    if not exclusive_start_key:
        return None
    hash_text = _key_text(DynamoType(exclusive_start_key[table.hash_key_attr]))
    if table.range_key_attr is None:
        return hash_text, NO_RANGE
    return hash_text, _key_text(DynamoType(exclusive_start_key[table.range_key_attr]))


def _table_scan(original: Any) -> Any:
    def scan(
        self: Any,
        filters: dict[str, Any],
        limit: int,
        exclusive_start_key: dict[str, Any],
        filter_expression: Any = None,
        index_name: str | None = None,
        consistent_read: bool = False,
        projection_expression: list[list[str]] | None = None,
        segments: tuple[None, None] | tuple[int, int] = (None, None),
    ) -> tuple[list[Item], int, dict[str, Any] | None]:
        items = disk_items(self)
        string_keys = self.hash_key_type == "S" and (self.range_key_attr is None or self.range_key_type == "S")
        if items is None or index_name or not string_keys:  # N keys: SQLite's text order is not moto's
            return original(  # type: ignore[no-any-return]
                self,
                filters,
                limit,
                exclusive_start_key,
                filter_expression,
                index_name,
                consistent_read,
                projection_expression,
                segments,
            )
        # moto's loop (table.py, Table.scan) over rows read in key order from the start key on
        results: list[Item] = []
        result_size = scanned_count = 0
        last_evaluated_key = None
        for h, r, v in items.rows(after=_start_after(self, exclusive_start_key)):
            item = items.item(h, r, v)
            if not item.is_within_segment(segments):
                continue
            if len(results) == limit or result_size + item.size() > _RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                break
            if _passes(item, filters):
                results.append(item)  # a fresh object: no copy needed
                result_size += item.size()
            scanned_count += 1
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection_expression:
            results = [item.project(projection_expression) for item in results]
        return results, scanned_count, last_evaluated_key

    return scan


def _passes(item: Item, filters: dict[str, Any]) -> bool:
    for attribute_name, (comparison_operator, comparison_objs) in filters.items():
        attribute = item.attrs.get(attribute_name)
        if attribute:
            if not attribute.compare(comparison_operator, comparison_objs):
                return False
        elif comparison_operator != "NULL":
            return False
    return True


def _backend_update_item(original: Any) -> Any:
    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        item = original(self, table_name, key, *args, **kwargs)
        table = self.get_table(table_name)
        items = disk_items(table)
        if items is not None and item is not None:  # moto changed a copy read from the store: write it back
            range_text = NO_RANGE if item.range_key is None else _key_text(item.range_key)
            items.put_row(_key_text(item.hash_key), range_text, item)
        return item

    return update_item


def _backend_delete_table(original: Any) -> Any:
    def delete_table(self: Any, name: str) -> Any:
        table = original(self, name)
        items = disk_items(table)
        if items is not None:
            items.clear()
        return table

    return delete_table


_TABLE_PATCHES: Final = {
    "__init__": _table_init,
    "__len__": _table_len,
    "get_item": _table_get_item,
    "all_items": _table_all_items,
    "scan": _table_scan,
}


def _in_one_commit(original: Any) -> Any:
    """A request's writes in one SQLite transaction (one commit per BatchWriteItem, not one per item)."""

    def in_one_commit(self: Any, *args: Any, **kwargs: Any) -> Any:
        with store().transaction():
            return original(self, *args, **kwargs)

    in_one_commit.__name__ = original.__name__
    in_one_commit.__wrapped__ = original  # type: ignore[attr-defined]
    return in_one_commit


_BACKEND_PATCHES: Final = {
    "update_item": _backend_update_item,
    "delete_table": _backend_delete_table,
}
_HANDLER_PATCHES: Final = {"batch_write_item": _in_one_commit, "transact_write_items": _in_one_commit}


def _check_shape() -> None:
    problems = []
    if parameter_names(Table.scan) != _SCAN_SIGNATURE:
        problems.append(f"Table.scan{parameter_names(Table.scan)} is not Table.scan{_SCAN_SIGNATURE}")
    for name in ("put_item", "get_item", "delete_item", "_get_last_evaluated_key", "has_range_key"):
        if not hasattr(Table, name):
            problems.append(f"Table.{name} is missing")
    if parameter_names(DynamoDBBackend.delete_table) != ("self", "name"):
        problems.append("DynamoDBBackend.delete_table does not take (self, name)")
    if problems:
        raise shape_error("DynamoDB Table", problems)


def apply() -> None:
    """Keep the items of tables created from now on in the store. Idempotent; the caller holds the patches' lock."""
    if _MARKER in vars(Table):
        return
    _check_shape()
    originals = {}
    for target, patches in (
        (Table, _TABLE_PATCHES),
        (DynamoDBBackend, _BACKEND_PATCHES),
        (DynamoHandler, _HANDLER_PATCHES),
    ):
        for name, patch in patches.items():
            original = vars(target)[name]
            originals[(target, name)] = original
            setattr(target, name, patch(original))
    setattr(Table, _MARKER, originals)


def revert() -> None:
    originals: dict[tuple[type, str], Any] | None = vars(Table).get(_MARKER)
    if originals is None:
        return
    for (target, name), original in originals.items():
        setattr(target, name, original)
    delattr(Table, _MARKER)
