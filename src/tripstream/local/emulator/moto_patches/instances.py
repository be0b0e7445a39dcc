"""Per-request objects not kept alive by moto's instance registry (inside the emulator's process only).

moto 5.2.1's ``BaseModel.__new__`` appends every instance of every model class to ``cls.instances_tracked`` (the
list its dashboard, ``/moto-api/data.json``, reads), and nothing ever removes them. For a DynamoDB ``Item`` and a
Kinesis ``Record`` that is every item ever written or read and every record ever put or read: measured, 110,588
``Item`` objects (1.25 M ``DynamoType``) alive after 25,000 trips, which made the emulator grow ~18 KB per trip even
with the data itself on disk (issue 21). :func:`apply` gives those two classes (and their subclasses) a ``__new__``
that does not register the instance; every other model (tables, streams, roles, ...) stays on the dashboard.
"""

from __future__ import annotations

from typing import Any, Final

from moto.core.common_models import BaseModel
from moto.dynamodb.models.dynamo_type import Item
from moto.kinesis.models import Record

from tripstream.local.emulator.moto_patches.version import shape_error

_MARKER: Final = "_tripstream_untracked"
_CLASSES: Final = (Item, Record)


def _untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    return object.__new__(cls)


def apply() -> None:
    """Stop registering Items and Records. Idempotent; the caller holds the patches' lock."""
    for model in _CLASSES:
        if _MARKER in vars(model):
            continue
        if not issubclass(model, BaseModel) or not hasattr(model, "instances_tracked"):
            raise shape_error(model.__name__, [f"{model.__name__} is no longer a tracked BaseModel"])
        setattr(model, "__new__", _untracked_new)  # noqa: B010
        setattr(model, _MARKER, True)
        model.instances_tracked.clear()


def revert() -> None:
    for model in _CLASSES:
        if _MARKER in vars(model):
            delattr(model, "__new__")
            delattr(model, _MARKER)
