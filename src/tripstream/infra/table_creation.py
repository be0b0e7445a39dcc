"""The template's DynamoDB tables, created directly in a DynamoDB that CloudFormation does not deploy to.

With the ``dynamodb-local`` backend the stack is deployed into the embedded emulator, whose
CloudFormation creates the tables in the emulator's own DynamoDB, not in DynamoDB Local where the
pipeline writes. :func:`ensure_tables` creates them there from the template's own
``AWS::DynamoDB::Table`` definitions (names, keys, billing, indexes), so nothing is said twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from tripstream.aws.dynamodb import create_table, describe_table
from tripstream.infra.template import TemplateError, effective_parameters, resources_of_type

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE_TYPE: Final = "AWS::DynamoDB::Table"
# The CreateTable parameters a CloudFormation table definition maps onto one to one. Left out on
# purpose: what DynamoDB Local ignores or does not have (SSE, point-in-time recovery, contributor
# insights, Kinesis streaming, tags, TTL, which takes a call of its own).
_CREATE_TABLE_PROPERTIES: Final = (
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
    "TableClass",
    "DeletionProtectionEnabled",
)
_ACTIVE_TIMEOUT_SECONDS: Final = 60.0


def _resolve(value: Any, parameters: Mapping[str, str], where: str) -> Any:
    """Literals and parameter Refs, recursively; any other intrinsic function is an error."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            name = value["Ref"]
            if name not in parameters:
                raise TemplateError(f"{where} refers to {name}, which is not a parameter with a value")
            return parameters[name]
        if any(key == "Ref" or key.startswith("Fn::") for key in value):
            raise TemplateError(f"{where} is {value!r}: only literals and parameter Refs can be resolved")
        return {key: _resolve(item, parameters, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, parameters, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


_CAPACITY_KEYS: Final = frozenset({"ReadCapacityUnits", "WriteCapacityUnits"})


def _numbers(value: Any) -> Any:
    """CloudFormation accepts "5" (e.g. a parameter's value) where CreateTable wants 5 capacity units."""
    if isinstance(value, dict):
        return {
            key: int(item) if key in _CAPACITY_KEYS and isinstance(item, str) else _numbers(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    return value


def table_definitions(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Logical id -> CreateTable arguments, for every table of the template (parameters resolved).

    A table whose ``Condition`` cannot be decided here is an error, as is one without a fixed name.
    """
    values = effective_parameters(template, parameters or {})
    definitions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources_of_type(template, TABLE_TYPE).items():
        if "Condition" in resource:
            raise TemplateError(f"table {logical_id} has a Condition: its creation cannot be decided here")
        properties = resource.get("Properties", {})
        arguments = {
            name: _numbers(_resolve(properties[name], values, f"{logical_id}.{name}"))
            for name in _CREATE_TABLE_PROPERTIES
            if name in properties
        }
        if not isinstance(arguments.get("TableName"), str):
            raise TemplateError(f"table {logical_id} has no fixed TableName")
        if "KeySchema" not in arguments or "AttributeDefinitions" not in arguments:
            raise TemplateError(f"table {logical_id} has no KeySchema or AttributeDefinitions")
        if "StreamSpecification" in arguments:
            arguments["StreamSpecification"] = {"StreamEnabled": True, **arguments["StreamSpecification"]}
        definitions[logical_id] = arguments
    return definitions


def _key_schema(table: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    return sorted((k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?")) for k in table["KeySchema"])


def ensure_tables(dynamodb: DynamoDBClient, definitions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Create each table that does not exist yet; return the names created. Idempotent.

    A table that exists with another primary key is an error (its items could not be the
    pipeline's); anything else about an existing table is left as it is.
    """
    created: list[str] = []
    for arguments in definitions.values():
        name = arguments["TableName"]
        existing = describe_table(dynamodb, name)
        if existing is not None:
            if _key_schema(existing) != _key_schema(arguments):
                raise TemplateError(
                    f"table {name} exists with key {_key_schema(existing)}, "
                    f"but the template defines {_key_schema(arguments)}: delete it or use another DynamoDB"
                )
            continue
        if create_table(dynamodb, arguments):
            created.append(name)
    for arguments in definitions.values():
        _wait_active(dynamodb, arguments["TableName"])
    return created


def _wait_active(dynamodb: DynamoDBClient, name: str) -> None:
    deadline = time.monotonic() + _ACTIVE_TIMEOUT_SECONDS
    while (describe_table(dynamodb, name) or {}).get("TableStatus") != "ACTIVE":
        if time.monotonic() >= deadline:
            raise TimeoutError(f"table {name} did not become ACTIVE within {_ACTIVE_TIMEOUT_SECONDS:g} s")
        time.sleep(0.2)
