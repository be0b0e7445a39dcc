"""The tables of DynamoDB's write requests handed to botocore's endpoint resolution directly, not found by JMESPath.

botocore resolves each request's endpoint from DynamoDB's endpoint ruleset. Its ``ResourceArnList`` parameter (the
tables a request names: an ARN among them can choose the account's endpoint) is computed per request by interpreting
a JMESPath expression over the parameters: over a 100-action TransactWriteItems, 6.6 % of the consumer's CPU (py-spy,
50,000 trips). For BatchWriteItem and TransactWriteItems the expressions only collect table names, so
:func:`resolve_write_tables_directly` computes them in plain Python on a client's resolver: the same list, in the same
order. A request of another shape (anything but the maps and lists these operations take) goes to JMESPath.

It is installed only if this botocore's model gives the operations these very expressions and both ways agree on
sample requests; otherwise the client is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import jmespath  # type: ignore[import-untyped]  # botocore's own dependency

from tripstream.aws.shortcuts import install_where_botocore_agrees

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PARAMETER: Final = "ResourceArnList"
EXPRESSIONS: Final = {
    "BatchWriteItem": "keys(RequestItems)",
    "TransactWriteItems": (
        "TransactItems[*].[ConditionCheck.TableName, Put.TableName, Delete.TableName, Update.TableName][]"
    ),
}
_ACTIONS: Final = ("ConditionCheck", "Put", "Delete", "Update")  # the order of the expression's list
_SAMPLES: Final[list[tuple[str, dict[str, Any]]]] = [
    ("BatchWriteItem", {"RequestItems": {"a": [], "b": [{"PutRequest": {"Item": {}}}]}}),
    (
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "m", "Item": {}}},
                {"Update": {"TableName": "c", "Key": {}}},
                {"ConditionCheck": {"TableName": "k"}, "Delete": {"TableName": "d"}},
                {"Put": {"Item": {}}},
            ]
        },
    ),
]


class _Unknown:
    """A request of a shape the direct computation does not take."""


_UNKNOWN: Final = _Unknown()


def batch_tables(parameters: Mapping[str, Any]) -> list[Any] | _Unknown:
    items = parameters.get("RequestItems")
    return list(items) if type(items) is dict else _UNKNOWN


def transaction_tables(parameters: Mapping[str, Any]) -> list[Any] | _Unknown:
    actions = parameters.get("TransactItems")
    if type(actions) is not list:
        return _UNKNOWN
    tables = []
    for action in actions:
        if type(action) is not dict:
            return _UNKNOWN
        for kind in _ACTIONS:
            part = action.get(kind)
            if part is None:
                continue
            if type(part) is not dict:
                return _UNKNOWN
            if (table := part.get("TableName")) is not None:
                tables.append(table)
    return tables


DIRECT: Final[dict[str, Callable[[Mapping[str, Any]], list[Any] | _Unknown]]] = {
    "BatchWriteItem": batch_tables,
    "TransactWriteItems": transaction_tables,
}


def _resolving_directly(original: Callable[[str, Any, Any], Any]) -> Callable[[str, Any, Any], Any]:
    def resolve(param_name: str, operation_model: Any, call_args: Any) -> Any:
        compute = DIRECT.get(operation_model.name) if param_name == PARAMETER else None
        if compute is not None and isinstance(call_args, Mapping):
            tables = compute(call_args)
            if not isinstance(tables, _Unknown):
                return tables
        return original(param_name, operation_model, call_args)

    resolve.__wrapped__ = original  # type: ignore[attr-defined]
    return resolve


def _botocore_agrees(client: Any) -> bool:
    service = client.meta.service_model
    for operation, expression in EXPRESSIONS.items():
        if dict(service.operation_model(operation).operation_context_parameters) != {PARAMETER: {"path": expression}}:
            return False
    return all(
        DIRECT[operation](parameters) == jmespath.search(EXPRESSIONS[operation], parameters)
        for operation, parameters in _SAMPLES
    )


def resolve_write_tables_directly(client: DynamoDBClient) -> bool:
    """Compute `client`'s ResourceArnList of BatchWriteItem/TransactWriteItems directly (idempotent). False, the
    client unchanged, when this botocore resolves them otherwise."""
    resolver = getattr(client, "_ruleset_resolver", None)
    original = getattr(resolver, "_resolve_param_as_operation_context_param", None)
    if original is None:
        return False
    if hasattr(original, "__wrapped__"):
        return True

    def install() -> None:
        resolver._resolve_param_as_operation_context_param = _resolving_directly(original)  # type: ignore[union-attr]

    return install_where_botocore_agrees("DynamoDB endpoint parameters", lambda: _botocore_agrees(client), install)
