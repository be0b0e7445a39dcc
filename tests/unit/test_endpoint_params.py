"""DynamoDB's ResourceArnList of the write requests computed directly (tripstream.aws.endpoint_params): the very list
botocore's JMESPath gives, for the consumer's requests and for odd ones; the endpoint a client resolves unchanged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import jmespath  # type: ignore[import-untyped]
import pytest

from tripstream.aws.aggregates import AggregateTables, _actions, plan_transactions
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.endpoint_params import DIRECT, EXPRESSIONS, PARAMETER, resolve_write_tables_directly

_TRANSACTIONS: list[Any] = [
    [],
    [{"Put": {"TableName": "a"}}, {"Delete": {"TableName": "b"}}, {"Update": {"TableName": "c"}}],
    [{"Put": {"TableName": "a"}, "Update": {"TableName": "b"}, "ConditionCheck": {"TableName": "k"}}],  # order
    [{"Put": {}}, {"Put": {"TableName": None}}, {"Other": {"TableName": "x"}}, {}],  # nothing named
    [{"Put": {"TableName": "arn:aws:dynamodb:us-east-1:111122223333:table/t"}}],
    [{"Put": "not a map"}],  # JMESPath gives null for it; the direct way leaves it to JMESPath
    ["not a map"],
    "not a list",
]
_BATCHES: list[Any] = [{}, {"a": [], "b": [1]}, {"arn:aws:dynamodb:us-east-1:111122223333:table/t": []}, ["x"]]


@pytest.mark.parametrize("items", _TRANSACTIONS)
def test_transactions_name_the_tables_jmespath_names(items: Any) -> None:
    _same_as_jmespath("TransactWriteItems", {"TransactItems": items})


@pytest.mark.parametrize("items", _BATCHES)
def test_batches_name_the_tables_jmespath_names(items: Any) -> None:
    _same_as_jmespath("BatchWriteItem", {"RequestItems": items})


def _same_as_jmespath(operation: str, parameters: dict[str, Any]) -> None:
    client = AwsClients.create(endpoint_url=None, region="us-east-1", credentials=EMULATOR_CREDENTIALS).dynamodb
    resolve = client._ruleset_resolver._resolve_param_as_operation_context_param  # type: ignore[attr-defined]
    model = client.meta.service_model.operation_model(operation)
    try:
        expected: Any = jmespath.search(EXPRESSIONS[operation], parameters)
    except jmespath.exceptions.JMESPathError as error:
        with pytest.raises(type(error)):
            resolve(PARAMETER, model, parameters)
        return
    assert resolve(PARAMETER, model, parameters) == expected


def test_the_consumer_s_transactions_give_jmespath_s_list() -> None:
    tables = AggregateTables(stats="zone_hourly_stats", markers="zone_hourly_counted_trips")
    cells = {
        (str(zone), f"2024-01-05T{hour:02}"): {f"t-{zone}-{hour}-{n}": {"trips": Decimal(1)} for n in range(zone)}
        for zone in range(1, 30)
        for hour in range(3)
    }
    transactions = plan_transactions(cells)
    assert len(transactions) > 1
    for parts in transactions:
        parameters = {"TransactItems": _actions(tables, parts, expires_at=1)}
        tables_named = DIRECT["TransactWriteItems"](parameters)
        assert tables_named == jmespath.search(EXPRESSIONS["TransactWriteItems"], parameters)
        assert set(tables_named) == {"zone_hourly_stats", "zone_hourly_counted_trips"}  # type: ignore[arg-type]


def test_a_client_resolves_the_same_endpoints(aws_env: None) -> None:
    """AWS's regional endpoint, an emulator's, and an account's endpoint chosen by an ARN among the tables."""
    plain = boto3.client("dynamodb", region_name="eu-west-1")
    direct = AwsClients.create(endpoint_url=None, region="eu-west-1").dynamodb
    arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/t"
    for operation, parameters in [
        ("BatchWriteItem", {"RequestItems": {"t": []}}),
        ("BatchWriteItem", {"RequestItems": {arn: []}}),
        ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": "t"}}]}),
        ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": arn}}]}),
    ]:
        model = plain.meta.service_model.operation_model(operation)
        ours = direct._resolve_endpoint_ruleset(model, parameters, {})  # type: ignore[attr-defined]
        theirs = plain._resolve_endpoint_ruleset(model, parameters, {})  # type: ignore[attr-defined]
        assert ours == theirs, operation


def test_installed_once_and_only_where_botocore_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    client = AwsClients.create(endpoint_url=None, region="us-east-1", credentials=EMULATOR_CREDENTIALS).dynamodb
    resolver = client._ruleset_resolver  # type: ignore[attr-defined]
    installed = resolver._resolve_param_as_operation_context_param
    assert resolve_write_tables_directly(client)
    assert resolver._resolve_param_as_operation_context_param is installed  # not wrapped twice
    other = boto3.client("dynamodb", region_name="us-east-1")
    monkeypatch.setitem(EXPRESSIONS, "BatchWriteItem", "keys(SomethingElse)")  # a botocore whose model differs
    assert not resolve_write_tables_directly(other)
    assert not hasattr(other._ruleset_resolver._resolve_param_as_operation_context_param, "__wrapped__")  # type: ignore[attr-defined]
