"""moto's DynamoDB write and read paths without their per-item waste (inside the emulator's process only).

One DynamoDB patch, for the consumer's write path: moto 5.2.1's ``Item.__init__`` fills a ``LimitedSizeDict``
whose ``__setitem__`` re-sums the size of every attribute already stored on each insert (O(n²) per item, about a
sixth of the emulator's CPU under BatchWriteItem). The replacement sums as it goes: the same attributes, the same
``ItemSizeTooLarge`` at the same attribute, in O(n). ``LimitedSizeDict`` itself (used by update expressions) is left
alone.

BatchWriteItem and TransactWriteItems bodies without binary values are read with ``orjson.loads``, not along the
botocore shape attribute by attribute (the same result: only ``B``/``BS`` values differ).

Scan, Query and BatchWriteItem answers are written straight as DynamoDB's JSON (:mod:`.json_answers`): moto's
generic serialiser walks the botocore output shape for every attribute of every item (about 0.5 ms an item).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final

import orjson
from moto.core.responses import BaseResponse
from moto.dynamodb import responses as dynamo_responses
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import dynamo_type as dynamo_models
from moto.dynamodb.models.utilities import bytesize

from tripstream.local.emulator.moto_patches.json_answers import plain_json
from tripstream.local.emulator.moto_patches.version import parameter_names, shape_error

_ITEM_MARKER: Final = "_tripstream_original_init"  # set on the DynamoDB Item class while patched
_ITEM_INIT_SIGNATURE: Final = ("self", "hash_key", "range_key", "attrs")
#: moto's limit in ``LimitedSizeDict.__setitem__`` (bytes of names + values of one item).
_ITEM_SIZE_LIMIT: Final = 405000


def _item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    """moto's ``Item.__init__`` with the size check summed as it goes (O(n), not O(n²)).

    moto checks, before storing each attribute, that the sizes of every name and value already stored plus the new
    name and value do not exceed the limit; a running total gives the same sums. ``attrs`` is a dict, so each name is
    stored once, as in moto.
    """
    self.hash_key = hash_key
    self.range_key = range_key
    limited = dynamo_models.LimitedSizeDict()
    dynamo_type = dynamo_models.DynamoType
    total = 0
    for key, value in attrs.items():
        converted = dynamo_type(value)
        size = bytesize(key) + converted.size()
        if total + size > _ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(limited, key, converted)
        total += size
    self.attrs = limited


def _check_item_shape(item_class: Any) -> None:
    problems: list[str] = []
    if parameter_names(item_class.__init__) != _ITEM_INIT_SIGNATURE:
        problems.append(
            f"Item.__init__{parameter_names(item_class.__init__)} is not Item.__init__{_ITEM_INIT_SIGNATURE}"
        )
    else:
        try:
            source = inspect.getsource(item_class.__init__)
        except (OSError, TypeError):
            source = ""
        for needle in ("LimitedSizeDict()", "DynamoType(value)"):
            if source and needle not in source:
                problems.append(f"Item.__init__ no longer uses {needle}")
    try:
        limit_source = inspect.getsource(dynamo_models.LimitedSizeDict.__setitem__)
    except (OSError, TypeError):
        limit_source = str(_ITEM_SIZE_LIMIT)
    if str(_ITEM_SIZE_LIMIT) not in limit_source:
        problems.append(f"LimitedSizeDict no longer limits items to {_ITEM_SIZE_LIMIT} bytes")
    if problems:
        raise shape_error("DynamoDB Item", problems)


_READS_MARKER: Final = "_tripstream_original_reads"  # set on DynamoHandler while patched
_FAST_READS: Final = ("scan", "query", "batch_write_item")  # answers written as plain JSON


_CONTENT_TYPE: Final = "application/x-amz-json-1.0"


_PARSE_MARKER: Final = "_tripstream_original_parse_parameters"  # set on DynamoHandler while patched
#: The write requests the consumer sends by the thousand: their body is read as plain JSON when it holds no binary.
_PLAIN_JSON_ACTIONS: Final = frozenset({"BatchWriteItem", "TransactWriteItems"})
_BINARY_TYPES: Final = ('"B"', '"BS"')


def _parse_parameters(original: Callable[..., None]) -> Callable[..., None]:
    """moto's request parsing, except for BatchWriteItem/TransactWriteItems without binary values: those are
    ``orjson.loads`` of the body. moto parses every request along its botocore shape, attribute by attribute (about 8 %
    of the emulator's time under the pipeline, py-spy); for DynamoDB's JSON the only values that parsing changes are
    binary ones (``B``, ``BS``: base64 text to bytes), so without them the result is the same."""

    def parse_parameters(self: Any, request: Any) -> None:
        body = self.body
        if (
            self._get_action() in _PLAIN_JSON_ACTIONS
            and isinstance(body, str)
            and not any(binary in body for binary in _BINARY_TYPES)
        ):
            try:
                self.params = orjson.loads(body)  # ~3x json.loads: the body of a 25-item batch or a transaction
                return
            except orjson.JSONDecodeError:
                pass  # moto's own parser reports it
        original(self, request)

    parse_parameters.__wrapped__ = original  # type: ignore[attr-defined]
    return parse_parameters


def apply() -> None:
    """Patch moto's DynamoDB ``Item`` and its Scan/Query answers. Idempotent; the caller holds the patches' lock."""
    item_class = dynamo_models.Item
    if _ITEM_MARKER in vars(item_class):
        return
    _check_item_shape(item_class)
    setattr(item_class, _ITEM_MARKER, item_class.__init__)
    setattr(item_class, "__init__", _item_init)  # noqa: B010
    handler_class = dynamo_responses.DynamoHandler
    reads = {name: getattr(handler_class, name) for name in _FAST_READS}
    for name, original in reads.items():
        setattr(handler_class, name, plain_json(original, _CONTENT_TYPE))
    setattr(handler_class, _READS_MARKER, reads)
    original_parse = vars(BaseResponse)["parse_parameters"]
    if parameter_names(original_parse) != ("self", "request"):
        raise shape_error("BaseResponse.parse_parameters", [f"it takes {parameter_names(original_parse)}"])
    setattr(handler_class, _PARSE_MARKER, True)
    handler_class.parse_parameters = _parse_parameters(original_parse)  # type: ignore[method-assign]


def revert() -> None:
    item_class = dynamo_models.Item
    original_init = vars(item_class).get(_ITEM_MARKER)
    if original_init is not None:
        setattr(item_class, "__init__", original_init)  # noqa: B010
        delattr(item_class, _ITEM_MARKER)
    handler_class = dynamo_responses.DynamoHandler
    reads: dict[str, Any] | None = vars(handler_class).get(_READS_MARKER)
    if reads is not None:
        for name, original in reads.items():
            setattr(handler_class, name, original)
        delattr(handler_class, _READS_MARKER)
    if vars(handler_class).get(_PARSE_MARKER):
        del handler_class.parse_parameters
        delattr(handler_class, _PARSE_MARKER)
