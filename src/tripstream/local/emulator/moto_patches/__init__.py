"""moto made to behave as AWS where tripstream depends on it: one module per service, one :func:`apply`.

- :mod:`.kinesis`: a shard safe for concurrent writers, its records in SQLite, O(log n) reads, records trimmed
  past retention; PutRecords/GetRecords answered as plain JSON (:mod:`.json_answers`).
- :mod:`.stream_mode`: a CloudFormation ON_DEMAND stream is one (applied even to an unpatched emulator).
- :mod:`.dynamodb`: an item's size summed in O(n); the two write actions' bodies read with orjson; Scan, Query
  and BatchWriteItem answers written straight as DynamoDB's JSON.
- :mod:`.dynamodb_storage` + :mod:`.storage`: tables' items (and, via :mod:`.kinesis`, stream records) in SQLite on
  disk, so the emulator's memory does not grow with the data; kept by name for the next emulator with
  ``up --state-dir``.
- :mod:`.instances`: DynamoDB items and Kinesis records not kept alive by moto's dashboard registry.
- :mod:`.dispatch`: the list of moto's service folders read once, not on every request.
- :mod:`.transactions`: TransactWriteItems atomic and isolated, without whole-table copies; the consumer's two
  shapes of action checked and applied on the store's rows.
- :mod:`.plain_items`: BatchWriteItem's plain puts written straight to the store's rows, without moto's item model.
- :mod:`.iam`: IAM enforcement (once switched on) against real resource ARNs, per-item transaction actions,
  `lambda:InvokeFunction`, a role's `ManagedPolicyArns`, service principals; the emulator's key an administrator;
  a permitted (key, action, resource) judged once until IAM or CloudFormation changes.
- :mod:`.s3`: a multipart upload completed a block at a time, not with the whole object in memory several times over.
- :mod:`.awslambda`: an asynchronous Invoke queued for the local Lambda service (not run in Docker); a synchronous
  one refused.

Each checks that the installed moto is shaped as the version it was written for (:mod:`.version`).
Applied inside the emulator's process only (:mod:`tripstream.local.emulator.server`).
"""

from __future__ import annotations

import threading

from tripstream.local.emulator.moto_patches import (
    awslambda,
    dispatch,
    dynamodb,
    dynamodb_storage,
    iam,
    instances,
    kinesis,
    plain_items,
    s3,
    stream_mode,
    transactions,
)
from tripstream.local.emulator.moto_patches.version import TESTED_MOTO_VERSION, MotoVersionError

__all__ = ["TESTED_MOTO_VERSION", "MotoVersionError", "apply", "is_applied", "revert"]

_lock = threading.Lock()


def apply() -> None:
    """Apply every patch. Idempotent. Raises :class:`MotoVersionError` if moto is not shaped as expected."""
    with _lock:
        kinesis.apply()
        dynamodb.apply()
        transactions.apply()  # before dynamodb_storage, whose one-commit wrapper goes around its handler
        dynamodb_storage.apply()
        plain_items.apply()  # after dynamodb_storage: around its one-commit wrapper, into its rows
        instances.apply()
        dispatch.apply()
        stream_mode.apply()
        iam.apply()
        awslambda.apply()
        s3.apply()


def revert() -> None:
    """Restore moto's own methods (for tests that compare both), except the stream mode. Idempotent."""
    with _lock:
        kinesis.revert()
        dynamodb.revert()
        dispatch.revert()
        instances.revert()
        plain_items.revert()
        dynamodb_storage.revert()
        transactions.revert()
        iam.revert()
        awslambda.revert()
        s3.revert()


def is_applied() -> bool:
    """Whether :func:`apply` is in effect in this process."""
    return kinesis.is_applied()
