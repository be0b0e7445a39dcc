"""Deploy the template into the emulator (moto) and read the stack back through the service APIs.

Each test module works in an AWS account of its own inside the shared emulator (moto keys its
backends by the account of the caller's credentials, here from sts:AssumeRole), because the
template's names are fixed: only one tripstream stack fits in an account and region.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients, Credentials
from tripstream.aws.cloudformation import DeployError, DeployResult, delete_stack, describe_stack
from tripstream.aws.stack_deploy import change_sets_work, deploy_stack
from tripstream.infra.stack import artifact_bucket_name, deploy_tripstream
from tripstream.infra.template import (
    DEFAULT_STACK_NAME,
    load_template,
    parameter_defaults,
    resource_names,
    resources_of_type,
    template_body,
)

pytestmark = pytest.mark.integration

REGION = "us-east-1"
DEPLOY_ACCOUNT = "210987654321"
CHANGE_SET_ACCOUNT = "210987654322"
FAILURE_ACCOUNT = "210987654323"
SCRATCH_ACCOUNT = "210987654324"

TEMPLATE = load_template()
NAMES = resource_names(TEMPLATE)
DEFAULTS = parameter_defaults(TEMPLATE)


def _properties(logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = TEMPLATE["Resources"][logical_id]["Properties"]
    return props


def _logical_ids(resource_type: str) -> list[str]:
    return sorted(resources_of_type(TEMPLATE, resource_type))


@pytest.fixture(scope="module")
def clients_for(emulator_endpoint: str) -> Callable[[str], AwsClients]:
    base = AwsClients.create(endpoint_url=emulator_endpoint, region=REGION, credentials=EMULATOR_CREDENTIALS)

    def clients_for(account_id: str) -> AwsClients:
        assumed = base.sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/tripstream-deploy-test",
            RoleSessionName="tripstream-deploy-test",
        )["Credentials"]
        clients = AwsClients.create(
            endpoint_url=emulator_endpoint,
            region=REGION,
            credentials=Credentials(assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"]),
        )
        assert clients.sts.get_caller_identity()["Account"] == account_id
        return clients

    return clients_for


@pytest.fixture(scope="module")
def clients(clients_for: Callable[[str], AwsClients]) -> AwsClients:
    return clients_for(DEPLOY_ACCOUNT)


@pytest.fixture(scope="module")
def deployed(clients: AwsClients) -> DeployResult:
    return deploy_tripstream(clients, local_runtime=True)


# --- the first deploy ---------------------------------------------------------------------------


def test_first_deploy_creates_the_stack_with_every_output(deployed: DeployResult) -> None:
    assert (deployed.operation, deployed.changed, deployed.status) == ("CREATE", True, "CREATE_COMPLETE")
    assert deployed.stack_name == DEFAULT_STACK_NAME
    assert set(deployed.outputs) == set(TEMPLATE["Outputs"])
    assert deployed.outputs["BucketName"] == f"tripstream-{DEPLOY_ACCOUNT}-{REGION}"
    assert deployed.elapsed_seconds < 60


def test_moto_needs_create_update_stack(clients: AwsClients, deployed: DeployResult) -> None:
    # moto 5.2 executes change sets but never gives the stack its outputs: deploy_stack probes this
    # and uses CreateStack/UpdateStack there (AWS always gets change sets).
    assert change_sets_work(clients.cloudformation) is False
    assert deployed.method == "direct"


def test_stream(clients: AwsClients, deployed: DeployResult) -> None:
    summary = clients.kinesis.describe_stream_summary(StreamName=NAMES["TripsStream"])["StreamDescriptionSummary"]
    assert summary["StreamName"] == deployed.outputs["StreamName"] == NAMES["TripsStream"]
    assert summary["StreamARN"] == deployed.outputs["StreamArn"]
    assert summary["OpenShardCount"] == int(DEFAULTS["ShardCount"])
    assert summary["RetentionPeriodHours"] == _properties("TripsStream")["RetentionPeriodHours"]
    assert summary["StreamStatus"] == "ACTIVE"


@pytest.mark.parametrize("logical_id", _logical_ids("AWS::DynamoDB::Table"))
def test_tables(clients: AwsClients, deployed: DeployResult, logical_id: str) -> None:
    table = clients.dynamodb.describe_table(TableName=NAMES[logical_id])["Table"]
    if logical_id == "ZoneHourlyStatsTable":  # ARCHITECTURE.md: zone, then NYC local pickup hour
        keys = [("pickup_location_id", "HASH"), ("pickup_hour", "RANGE")]
    else:  # the per-trip tables and the aggregates' per-trip markers
        keys = [("trip_id", "HASH")]
    assert table["KeySchema"] == [{"AttributeName": name, "KeyType": kind} for name, kind in keys]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        ({"AttributeName": name, "AttributeType": "S"} for name, _ in keys), key=lambda a: a["AttributeName"]
    )
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert NAMES[logical_id] in deployed.outputs.values()


@pytest.mark.parametrize("role_id", _logical_ids("AWS::IAM::Role"))
def test_roles_have_their_policies_attached(clients: AwsClients, deployed: DeployResult, role_id: str) -> None:
    role_name = NAMES[role_id]
    attached = clients.iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    expected_customer = {
        NAMES[policy_id]
        for policy_id, policy in resources_of_type(TEMPLATE, "AWS::IAM::ManagedPolicy").items()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
    }
    # The customer managed policies attach themselves (Roles); the AWS managed ones of the role's ManagedPolicyArns
    # are attached too, by the emulator's CloudFormation (moto_patches.iam: moto alone ignores them).
    assert {policy["PolicyName"] for policy in attached} >= expected_customer | {"AWSLambdaBasicExecutionRole"}
    assert expected_customer

    inline = set(clients.iam.list_role_policies(RoleName=role_name)["PolicyNames"])
    expected_inline = {
        NAMES[policy_id]
        for policy_id, policy in resources_of_type(TEMPLATE, "AWS::IAM::Policy").items()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
    }
    assert inline == expected_inline

    # The AWS managed policies the roles name exist in the emulator (MOTO_IAM_LOAD_MANAGED_POLICIES).
    for arn in _properties(role_id)["ManagedPolicyArns"]:
        arn = arn["Fn::If"][1] if "Fn::If" in arn else arn  # noqa: PLW2901 - the default's branch
        name = arn["Fn::Sub"].removeprefix("arn:${AWS::Partition}:iam::aws:policy/")
        clients.iam.get_policy(PolicyArn=f"arn:aws:iam::aws:policy/{name}")


@pytest.mark.parametrize("policy_id", _logical_ids("AWS::IAM::ManagedPolicy"))
def test_customer_policies_hold_the_template_documents(
    clients: AwsClients, deployed: DeployResult, policy_id: str
) -> None:
    arn = f"arn:aws:iam::{DEPLOY_ACCOUNT}:policy/{NAMES[policy_id]}"
    policy = clients.iam.get_policy(PolicyArn=arn)["Policy"]
    version = clients.iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    document: Any = version["PolicyVersion"]["Document"]
    deployed_actions = {action for statement in document["Statement"] for action in statement["Action"]}
    template_actions = {
        action for statement in _properties(policy_id)["PolicyDocument"]["Statement"] for action in statement["Action"]
    }
    assert deployed_actions == template_actions
    resources = {str(r) for statement in document["Statement"] for r in [statement["Resource"]]}
    assert all(DEPLOY_ACCOUNT in resource for resource in resources), resources


@pytest.mark.parametrize("function_id", _logical_ids("AWS::Lambda::Function"))
def test_functions(clients: AwsClients, deployed: DeployResult, function_id: str) -> None:
    props = _properties(function_id)
    configuration = clients.lambda_.get_function_configuration(FunctionName=NAMES[function_id])
    role_id = props["Role"]["Fn::GetAtt"][0]
    assert configuration["Role"] == clients.iam.get_role(RoleName=NAMES[role_id])["Role"]["Arn"]
    assert configuration["Handler"] == props["Handler"]
    assert configuration["Runtime"] == props["Runtime"]
    assert configuration["Timeout"] == props["Timeout"]
    assert configuration["MemorySize"] == props["MemorySize"]
    variables = configuration["Environment"]["Variables"]
    assert set(variables) == set(props["Environment"]["Variables"])
    assert variables["STREAM_NAME"] == deployed.outputs["StreamName"]
    assert variables["HIGH_VALUE_TABLE"] == deployed.outputs["HighValueTableName"]
    assert variables["DURATION_TABLE"] == deployed.outputs["DurationTableName"]
    assert variables["FARE_RATIO_TABLE"] == deployed.outputs["FareRatioTableName"]
    assert variables["REJECTS_BUCKET"] == deployed.outputs["BucketName"]
    if "SOURCE_BUCKET" in variables:  # the producer's: the local runtime hands it to the handler as Lambda does
        assert variables["SOURCE_BUCKET"] == deployed.outputs["BucketName"]
    assert variables["REJECTS_PREFIX"] == DEFAULTS["RejectsPrefix"]
    for variable, parameter in (
        ("HIGH_VALUE_THRESHOLD", "HighValueThreshold"),
        ("SHORT_TRIP_MINUTES", "ShortTripMinutes"),
        ("LONG_TRIP_MINUTES", "LongTripMinutes"),
        ("MAX_DURATION_HOURS", "MaxDurationHours"),
        ("LOW_FARE_PER_MILE", "LowFarePerMile"),
        ("HIGH_FARE_PER_MILE", "HighFarePerMile"),
        ("LOG_LEVEL", "LogLevel"),
        ("POWERTOOLS_SERVICE_NAME", "ServiceName"),
    ):
        assert variables[variable] == DEFAULTS[parameter], variable


def test_function_code_is_the_uploaded_artifact(clients: AwsClients, deployed: DeployResult) -> None:
    code = clients.lambda_.get_function(FunctionName=deployed.outputs["ProducerFunctionName"])
    assert code["Configuration"]["CodeSize"] > 0
    bucket = artifact_bucket_name(DEPLOY_ACCOUNT, REGION)
    keys = [obj["Key"] for obj in clients.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 1
    assert keys[0].endswith(".zip")


def test_on_failure_queue(clients: AwsClients, deployed: DeployResult) -> None:
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=deployed.outputs["OnFailureQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["QueueArn"] == deployed.outputs["OnFailureQueueArn"]
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_local_runtime_leaves_out_the_mapping_and_the_notification(clients: AwsClients, deployed: DeployResult) -> None:
    mappings = clients.lambda_.list_event_source_mappings(FunctionName=deployed.outputs["ConsumerFunctionName"])
    assert mappings["EventSourceMappings"] == []
    notification = clients.s3.get_bucket_notification_configuration(Bucket=deployed.outputs["BucketName"])
    assert "LambdaFunctionConfigurations" not in notification
    # The permission for S3 is there all the same (it is harmless, and keeps the template simple).
    policy = clients.lambda_.get_policy(FunctionName=deployed.outputs["ProducerFunctionName"])["Policy"]
    assert "s3.amazonaws.com" in policy
    assert deployed.outputs["BucketName"] in policy


# --- deploying again --------------------------------------------------------------------------------


def test_deploying_again_changes_nothing(clients: AwsClients, deployed: DeployResult) -> None:
    again = deploy_tripstream(clients, local_runtime=True)
    assert (again.operation, again.changed) == ("NONE", False)
    assert again.stack_id == deployed.stack_id
    assert again.outputs == deployed.outputs


def test_a_changed_parameter_updates_the_stack(clients: AwsClients, deployed: DeployResult) -> None:
    consumer = deployed.outputs["ConsumerFunctionName"]
    try:
        updated = deploy_tripstream(clients, local_runtime=True, parameters={"HighValueThreshold": "75.00"})
        assert (updated.operation, updated.changed, updated.status) == ("UPDATE", True, "UPDATE_COMPLETE")
        variables = clients.lambda_.get_function_configuration(FunctionName=consumer)["Environment"]["Variables"]
        assert variables["HIGH_VALUE_THRESHOLD"] == "75.00"
    finally:
        reverted = deploy_tripstream(clients, local_runtime=True)
    assert reverted.changed
    variables = clients.lambda_.get_function_configuration(FunctionName=consumer)["Environment"]["Variables"]
    assert variables["HIGH_VALUE_THRESHOLD"] == DEFAULTS["HighValueThreshold"]
    assert not deploy_tripstream(clients, local_runtime=True).changed


def test_new_code_updates_the_functions(clients: AwsClients, deployed: DeployResult) -> None:
    producer = deployed.outputs["ProducerFunctionName"]
    before = clients.lambda_.get_function_configuration(FunctionName=producer)["CodeSha256"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tripstream/__init__.py", "# another version\n")
    try:
        updated = deploy_tripstream(clients, local_runtime=True, artifact=buffer.getvalue())
        assert updated.changed
        after = clients.lambda_.get_function_configuration(FunctionName=producer)["CodeSha256"]
        assert after != before
    finally:
        deploy_tripstream(clients, local_runtime=True)
    assert clients.lambda_.get_function_configuration(FunctionName=producer)["CodeSha256"] == before


# --- the change-set path (what AWS gets), failures, deletion --------------------------------------


def test_the_change_set_path_deploys_and_detects_no_change(clients_for: Callable[[str], AwsClients]) -> None:
    clients = clients_for(CHANGE_SET_ACCOUNT)
    bucket = artifact_bucket_name(CHANGE_SET_ACCOUNT, REGION)
    clients.s3.create_bucket(Bucket=bucket)
    clients.s3.put_object(Bucket=bucket, Key="code.zip", Body=b"PK\x05\x06" + b"\0" * 18)
    parameters = {"ArtifactBucket": bucket, "ArtifactKey": "code.zip", "LocalRuntime": "true"}

    first = deploy_stack(
        clients.cloudformation,
        stack_name=DEFAULT_STACK_NAME,
        template_body=template_body(),
        parameters=parameters,
        method="change_set",
    )
    assert (first.method, first.operation, first.status) == ("change_set", "CREATE", "CREATE_COMPLETE")
    stream = clients.kinesis.describe_stream_summary(StreamName=NAMES["TripsStream"])
    assert stream["StreamDescriptionSummary"]["OpenShardCount"] == int(DEFAULTS["ShardCount"])

    second = deploy_stack(
        clients.cloudformation,
        stack_name=DEFAULT_STACK_NAME,
        template_body=template_body(),
        parameters=parameters,
        method="change_set",
    )
    assert (second.operation, second.changed) == ("NONE", False)
    change_sets = clients.cloudformation.list_change_sets(StackName=DEFAULT_STACK_NAME)["Summaries"]
    assert all(summary.get("Status") != "FAILED" for summary in change_sets)  # the empty one was deleted


def test_a_failing_deploy_names_the_reason(clients_for: Callable[[str], AwsClients]) -> None:
    clients = clients_for(FAILURE_ACCOUNT)
    with pytest.raises(DeployError) as raised:
        deploy_stack(
            clients.cloudformation,
            stack_name=DEFAULT_STACK_NAME,
            template_body=template_body(),
            parameters={"ArtifactBucket": "no-such-artifact-bucket", "ArtifactKey": "x.zip", "LocalRuntime": "true"},
        )
    assert raised.value.stack_name == DEFAULT_STACK_NAME
    assert "NoSuchBucket" in str(raised.value)


def test_deploy_for_lambda_needs_a_real_package(clients: AwsClients) -> None:
    with pytest.raises(ValueError, match="dependencies"):
        deploy_tripstream(clients, local_runtime=False)


def test_delete_stack(clients_for: Callable[[str], AwsClients]) -> None:
    cfn = clients_for(SCRATCH_ACCOUNT).cloudformation
    small = (
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Resources:\n  Nothing:\n    Type: AWS::CloudFormation::WaitConditionHandle\n"
        "Outputs:\n  Answer:\n    Value: !Ref AWS::Region\n"
    )
    result = deploy_stack(cfn, stack_name="tripstream-delete-test", template_body=small, parameters={})
    assert result.outputs == {"Answer": REGION}
    assert delete_stack(cfn, "tripstream-delete-test") is True
    assert describe_stack(cfn, "tripstream-delete-test") is None
    assert delete_stack(cfn, "tripstream-delete-test") is False
