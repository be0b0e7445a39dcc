"""The deployed stack's one home: deploying the template anywhere, and what a deployed stack is.

- `deploy_tripstream`: the template with its Lambda package into any endpoint (the emulator, another, or AWS);
  `deploy_for_local_runtime`: the same with LocalRuntime=true, plus the tables where CloudFormation does not reach.
- `StackNames`: the bucket, stream, tables and functions of a stack, from its outputs (the one map of output keys),
  or the fixed names of ARCHITECTURE.md where there is no stack; `stack_names` reads them.
- `DeployedStack` / `read_stack`: those names plus what the local Lambda service needs (parameters, functions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tripstream.aws.cloudformation import DeployError, DeployResult, describe_stack, outputs_of
from tripstream.aws.lambda_ import FunctionInfo, function_info
from tripstream.aws.s3 import upload_artifact
from tripstream.aws.stack_deploy import deploy_stack
from tripstream.aws.sts import account_id
from tripstream.infra.artifacts import artifact_key, build_source_zip
from tripstream.infra.table_creation import ensure_tables, table_definitions
from tripstream.infra.template import DEFAULT_STACK_NAME, load_template, template_body
from tripstream.settings import (
    COUNTED_TRIPS_TABLE,
    DURATION_TABLE,
    FARE_RATIO_TABLE,
    HIGH_VALUE_TABLE,
    ZONE_HOURLY_STATS_TABLE,
    Settings,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

    from tripstream.aws.clients import AwsClients

# The logical table names (ARCHITECTURE.md) -> the stack output that holds the deployed name.
TABLE_OUTPUTS: Final = {
    HIGH_VALUE_TABLE: "HighValueTableName",
    DURATION_TABLE: "DurationTableName",
    FARE_RATIO_TABLE: "FareRatioTableName",
}
AGGREGATE_TABLE_OUTPUTS: Final = {
    ZONE_HOURLY_STATS_TABLE: "ZoneHourlyStatsTableName",
    COUNTED_TRIPS_TABLE: "CountedTripsTableName",
}
# Settings field -> the logical table it names.
_SETTINGS_TABLES: Final = {
    "high_value_table": HIGH_VALUE_TABLE,
    "duration_table": DURATION_TABLE,
    "fare_ratio_table": FARE_RATIO_TABLE,
    "zone_hourly_stats_table": ZONE_HOURLY_STATS_TABLE,
    "counted_trips_table": COUNTED_TRIPS_TABLE,
}


@dataclass(frozen=True)
class StackNames:
    """What a stack's outputs name: its bucket, stream, tables, queues and functions."""

    outputs: dict[str, str]

    @property
    def bucket(self) -> str:
        return self.outputs["BucketName"]

    @property
    def stream_name(self) -> str:
        return self.outputs["StreamName"]

    @property
    def tables(self) -> dict[str, str]:
        """The three per-trip tables: logical name -> deployed name (the fixed name where there is no stack)."""
        return {name: self.outputs.get(output, name) for name, output in TABLE_OUTPUTS.items()}

    @property
    def aggregate_tables(self) -> dict[str, str]:
        """zone_hourly_stats and its per-trip markers (the fixed names where there is no stack; absent from a
        stack deployed before they existed)."""
        if not self.outputs:
            return {name: name for name in AGGREGATE_TABLE_OUTPUTS}
        return {name: self.outputs[key] for name, key in AGGREGATE_TABLE_OUTPUTS.items() if key in self.outputs}

    @property
    def stats_table(self) -> str:
        return self.aggregate_tables.get(ZONE_HOURLY_STATS_TABLE, ZONE_HOURLY_STATS_TABLE)

    @property
    def on_failure_queue_url(self) -> str | None:
        return self.outputs.get("OnFailureQueueUrl")

    @property
    def dead_letter_queue_url(self) -> str | None:
        return self.outputs.get("ProducerDeadLetterQueueUrl")

    def table_settings(self, settings: Settings | None = None) -> Settings:
        """`settings` (default: the defaults) naming this stack's five tables, with its markers' window."""
        deployed = {**self.tables, **self.aggregate_tables}
        changes: dict[str, object] = {
            field_name: deployed[name] for field_name, name in _SETTINGS_TABLES.items() if name in deployed
        }
        if "CountedTripsTtlDays" in self.outputs:  # the markers' window the stack's consumer writes
            changes["counted_trips_ttl_days"] = int(self.outputs["CountedTripsTtlDays"])
        return (settings or Settings()).with_changes(**changes)


def stack_names(cloudformation: CloudFormationClient | None, stack_name: str | None) -> StackNames:
    """The stack's names from its outputs; the fixed names without a client, a name, or such a stack."""
    stack = describe_stack(cloudformation, stack_name) if cloudformation is not None and stack_name else None
    return StackNames(outputs_of(stack) if stack is not None else {})


@dataclass(frozen=True)
class DeployedStack(StackNames):
    """What the local Lambda service needs of a deployed stack."""

    parameters: dict[str, str]
    producer: FunctionInfo
    consumer: FunctionInfo
    account_id: str


def read_stack(clients: AwsClients, stack_name: str) -> DeployedStack:
    stack = describe_stack(clients.cloudformation, stack_name)
    if stack is None:
        raise DeployError(f"stack {stack_name} does not exist", stack_name=stack_name)
    outputs = outputs_of(stack)
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return DeployedStack(
        outputs=outputs,
        parameters=parameters,
        producer=function_info(clients.lambda_, outputs["ProducerFunctionName"]),
        consumer=function_info(clients.lambda_, outputs["ConsumerFunctionName"]),
        account_id=account_id(clients.sts),
    )


def artifact_bucket_name(account_id: str, region: str) -> str:
    """The default bucket for the Lambda package (it must exist before the stack, so is not the stack's)."""
    return f"tripstream-artifacts-{account_id}-{region}"


def deploy_tripstream(
    clients: AwsClients,
    *,
    local_runtime: bool,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    artifact: bytes | None = None,
    artifact_bucket: str | None = None,
    wait: bool = True,
) -> DeployResult:
    """Upload the Lambda package and deploy the template into the clients' endpoint.

    ``local_runtime=True`` deploys for tripstream's local runtime (``LocalRuntime=true``: no event
    source mapping, no bucket notification); the package may then be the bare source zip, which is
    the default. For Lambda itself (``local_runtime=False``) pass ``artifact``: the package with
    its dependencies (see :mod:`tripstream.infra.artifacts`). ``parameters`` are the template's
    other parameters; those left out keep their defaults.
    """
    if artifact is None and not local_runtime:
        raise ValueError(
            "deploying for AWS Lambda needs the Lambda package with its dependencies (artifact=...): "
            "the bare source zip only serves the local runtime"
        )
    body = build_source_zip() if artifact is None else artifact
    bucket = artifact_bucket or artifact_bucket_name(account_id(clients.sts), clients.region)
    key = artifact_key(body)
    upload_artifact(clients.s3, bucket=bucket, key=key, body=body, region=clients.region)
    return deploy_stack(
        clients.cloudformation,
        stack_name=stack_name,
        template_body=template_body(),
        parameters={
            **(parameters or {}),
            "ArtifactBucket": bucket,
            "ArtifactKey": key,
            "LocalRuntime": "true" if local_runtime else "false",
        },
        wait=wait,
    )


def deploy_for_local_runtime(
    clients: AwsClients, *, stack_name: str = DEFAULT_STACK_NAME, parameters: Mapping[str, str] | None = None
) -> tuple[DeployedStack, DeployResult]:
    """Deploy (or update) the stack with LocalRuntime=true, for the local Lambda service."""
    result = deploy_tripstream(clients, local_runtime=True, stack_name=stack_name, parameters=parameters)
    stack = read_stack(clients, stack_name)
    if "dynamodb" in clients.service_endpoints:
        # DynamoDB is elsewhere (DynamoDB Local): CloudFormation made the tables where it runs, not there.
        ensure_tables(clients.dynamodb, table_definitions(load_template(), stack.parameters))
    return stack, result
