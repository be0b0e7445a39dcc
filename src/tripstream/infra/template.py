"""The CloudFormation template of tripstream, and what the local runtime and the tests read from it.

``template.yaml`` is the single source of truth for the names of ARCHITECTURE.md and for the
settings of the consumer's Kinesis event source mapping. The local runtime (which stands in for
Lambda when the stack is deployed with ``LocalRuntime=true``) takes the mapping's settings from
:func:`event_source_mapping_settings`; the tests take every name from :func:`resource_names`.

Only the CLI and the tests use this module (never the Lambda functions), so it may use PyYAML,
which comes with the CLI's dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypedDict

import yaml  # type: ignore[import-untyped]

TEMPLATE_PATH: Final = Path(__file__).with_name("template.yaml")
DEFAULT_STACK_NAME: Final = "tripstream"

EVENT_SOURCE_MAPPING_TYPE: Final = "AWS::Lambda::EventSourceMapping"

# Resource type -> the property that fixes its physical name.
_NAME_PROPERTIES: Final[Mapping[str, str]] = {
    "AWS::Kinesis::Stream": "Name",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::SQS::Queue": "QueueName",
}


class TemplateError(ValueError):
    """The template, or the parameters given for it, cannot be used as asked."""


class EventSourceMappingSettings(TypedDict):
    """The consumer's Kinesis event source mapping, with parameter references resolved."""

    BatchSize: int
    MaximumBatchingWindowInSeconds: int
    MaximumRetryAttempts: int
    MaximumRecordAgeInSeconds: int
    BisectBatchOnFunctionError: bool
    ParallelizationFactor: int
    StartingPosition: str
    FunctionResponseTypes: list[str]


# --- loading ----------------------------------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A safe YAML loader that turns CloudFormation's short-form tags into their long form."""


def _construct_short_form(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_short_form)


def template_body() -> str:
    """The template's text, as sent to CloudFormation."""
    return TEMPLATE_PATH.read_text(encoding="utf-8")


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a template into plain dicts and lists, short-form tags (``!Ref``...) in long form."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources section)")
    return document


# --- parameters -------------------------------------------------------------------------------


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Parameter name -> default (as a string); parameters without a default are left out."""
    defaults: dict[str, str] = {}
    for name, spec in template.get("Parameters", {}).items():
        if "Default" in spec:
            defaults[name] = str(spec["Default"])
    return defaults


def effective_parameters(template: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, str]:
    """The defaults overlaid with ``parameters``; an unknown parameter name is an error."""
    declared = template.get("Parameters", {})
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise TemplateError(f"the template has no parameter(s) {', '.join(unknown)}")
    return {**parameter_defaults(template), **parameters}


def _resolve(value: Any, parameters: Mapping[str, str], what: str) -> Any:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        if name not in parameters:
            raise TemplateError(f"{what} refers to parameter {name}, which has no value")
        return parameters[name]
    if isinstance(value, dict):
        raise TemplateError(f"{what} is {value!r}: only literals and parameter Refs can be resolved")
    return value


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TemplateError(f"{what} is {value!r}, not an integer")
    try:
        return int(str(value))
    except ValueError:
        raise TemplateError(f"{what} is {value!r}, not an integer") from None


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "false"}:
        return text == "true"
    raise TemplateError(f"{what} is {value!r}, not true or false")


# --- what the local runtime and the tests read ------------------------------------------------


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of ``resource_type``."""
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == resource_type
    }


def event_source_mapping_settings(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> EventSourceMappingSettings:
    """The settings of the template's (only) Kinesis event source mapping, for ``parameters``.

    Parameter Refs are resolved to the effective values (``parameters`` over the defaults). The
    mapping is read even though its condition leaves it out of a ``LocalRuntime=true`` stack: the
    local runtime then does what the mapping would do, with the same settings.
    """
    mappings = resources_of_type(template, EVENT_SOURCE_MAPPING_TYPE)
    if len(mappings) != 1:
        raise TemplateError(f"expected one {EVENT_SOURCE_MAPPING_TYPE}, found {len(mappings)}")
    ((logical_id, mapping),) = mappings.items()
    properties: dict[str, Any] = mapping.get("Properties", {})
    values = effective_parameters(template, parameters or {})

    def get(name: str, default: Any) -> Any:
        return _resolve(properties.get(name, default), values, f"{logical_id}.{name}")

    # Defaults are Lambda's own for a Kinesis source, used when the template leaves one out.
    response_types = get("FunctionResponseTypes", [])
    return EventSourceMappingSettings(
        BatchSize=_as_int(get("BatchSize", 100), "BatchSize"),
        MaximumBatchingWindowInSeconds=_as_int(
            get("MaximumBatchingWindowInSeconds", 0), "MaximumBatchingWindowInSeconds"
        ),
        MaximumRetryAttempts=_as_int(get("MaximumRetryAttempts", -1), "MaximumRetryAttempts"),
        MaximumRecordAgeInSeconds=_as_int(get("MaximumRecordAgeInSeconds", -1), "MaximumRecordAgeInSeconds"),
        BisectBatchOnFunctionError=_as_bool(get("BisectBatchOnFunctionError", False), "BisectBatchOnFunctionError"),
        ParallelizationFactor=_as_int(get("ParallelizationFactor", 1), "ParallelizationFactor"),
        StartingPosition=str(get("StartingPosition", "TRIM_HORIZON")),
        FunctionResponseTypes=[str(_resolve(t, values, "FunctionResponseTypes")) for t in response_types],
    )


def resource_names(template: Mapping[str, Any]) -> dict[str, str]:
    """Logical id -> fixed physical name, for every resource whose name the template fixes.

    Covers the stream, the tables, the functions, the roles, the policies and the queues
    (e.g. ``{"TripsStream": "taxi_trips", ...}``); the bucket's name is a parameter, not here.
    """
    names: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        name_property = _NAME_PROPERTIES.get(resource.get("Type", ""))
        if name_property is None:
            continue
        name = resource.get("Properties", {}).get(name_property)
        if isinstance(name, str):
            names[logical_id] = name
    return names


__all__ = [
    "DEFAULT_STACK_NAME",
    "EVENT_SOURCE_MAPPING_TYPE",
    "TEMPLATE_PATH",
    "EventSourceMappingSettings",
    "TemplateError",
    "bucket_notification_filters",
    "effective_parameters",
    "event_source_mapping_settings",
    "load_template",
    "parameter_defaults",
    "resource_names",
    "resources_of_type",
    "template_body",
]


def bucket_notification_filters(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trips bucket's Lambda notifications as `{"Events": [...], "FilterRules": [{"Name", "Value"}]}`.

    Read generically from every `LambdaConfigurations` entry of every bucket (whichever branch of an `Fn::If`
    holds them), so that a change of the template's filters reaches the local runtime unchanged.
    """
    found: list[dict[str, Any]] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            configurations = node.get("LambdaConfigurations")
            for entry in configurations if isinstance(configurations, list) else []:
                rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                found.append(
                    {
                        "Events": [str(entry["Event"])],
                        "FilterRules": [{"Name": str(r["Name"]).lower(), "Value": str(r["Value"])} for r in rules],
                    }
                )
            for name, value in node.items():
                if name != "LambdaConfigurations":
                    visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for bucket in resources_of_type(template, "AWS::S3::Bucket").values():
        visit(bucket.get("Properties", {}).get("NotificationConfiguration"))
    return found


def notification_suffixes(template: Mapping[str, Any]) -> tuple[str, ...]:
    """The key suffixes the bucket notifies the producer for, as S3 compares them: case-sensitively."""
    return tuple(
        rule["Value"]
        for notification in bucket_notification_filters(template)
        for rule in notification["FilterRules"]
        if rule["Name"] == "suffix"
    )
