"""Bounded state: the aggregates' markers expire (DynamoDB TTL on the attribute the consumer writes), with the
window a template parameter that reaches the consumer and agrees with the settings' default."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tripstream.aws.aggregates import MARKER_EXPIRY_ATTRIBUTE
from tripstream.infra.template import load_template, parameter_defaults, resource_names
from tripstream.settings import COUNTED_TRIPS_TABLE, Settings


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _logical_id(template: dict[str, Any], name: str) -> str:
    (logical_id,) = [lid for lid, physical in resource_names(template).items() if physical == name]
    return logical_id


def test_the_markers_table_expires_items_on_the_attribute_the_consumer_writes(template: dict[str, Any]) -> None:
    properties = template["Resources"][_logical_id(template, COUNTED_TRIPS_TABLE)]["Properties"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": MARKER_EXPIRY_ATTRIBUTE, "Enabled": True}
    # The TTL attribute is no key: it is written on every marker, never part of the schema.
    assert MARKER_EXPIRY_ATTRIBUTE not in {a["AttributeName"] for a in properties["AttributeDefinitions"]}


def test_only_the_markers_table_expires(template: dict[str, Any]) -> None:
    markers = _logical_id(template, COUNTED_TRIPS_TABLE)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table" and logical_id != markers:
            assert "TimeToLiveSpecification" not in resource["Properties"], logical_id


def test_the_window_is_a_parameter_that_reaches_the_consumer(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["CountedTripsTtlDays"]
    assert int(parameter_defaults(template)["CountedTripsTtlDays"]) == Settings().counted_trips_ttl_days
    # Longer than the 14 days the on-failure and dead-letter queues keep a message: a redrive finds the markers.
    queues = [r for r in template["Resources"].values() if r["Type"] == "AWS::SQS::Queue"]
    retention_days = max(int(q["Properties"]["MessageRetentionPeriod"]) for q in queues) // 86_400
    allowed = [days for days in range(0, 12_000) if re.fullmatch(parameter["AllowedPattern"], str(days))]
    assert allowed == list(range(retention_days + 1, 10_000))
    consumer = template["Resources"][_logical_id(template, "lambda-kinesis-consumer")]["Properties"]
    assert consumer["Environment"]["Variables"]["COUNTED_TRIPS_TTL_DAYS"] == {"Ref": "CountedTripsTtlDays"}
    assert template["Outputs"]["CountedTripsTtlDays"]["Value"] == {"Ref": "CountedTripsTtlDays"}


def test_the_settings_read_the_window_and_refuse_nonsense() -> None:
    assert Settings.from_env({"COUNTED_TRIPS_TTL_DAYS": "30"}).counted_trips_ttl_days == 30
    with pytest.raises(ValueError, match="COUNTED_TRIPS_TTL_DAYS"):
        Settings.from_env({"COUNTED_TRIPS_TTL_DAYS": "0"})
