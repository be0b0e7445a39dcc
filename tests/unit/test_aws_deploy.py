"""The deploy layer without an emulator: client configuration, the Lambda source zip, and the
change-set path AWS gets (with botocore's Stubber, since moto cannot show how AWS reports failures).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ParamValidationError
from botocore.parsers import ResponseParserError
from botocore.stub import ANY, Stubber

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients, Credentials, client_config
from tripstream.aws.cloudformation import DeployError, describe_error
from tripstream.aws.stack_deploy import deploy_stack
from tripstream.infra.artifacts import artifact_key, build_source_zip

STACK = "tripstream-unit"
STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{STACK}/0f0f0f0f"
TEMPLATE = "Parameters:\n  Size:\n    Type: Number\n    Default: 2\n  Name:\n    Type: String\n"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


# --- clients ------------------------------------------------------------------------------------


def test_client_config_counts_total_attempts() -> None:
    assert client_config().retries == {"mode": "standard", "total_max_attempts": 3}
    # botocore's "max_attempts" would still retry once: 1 must mean no retry at all.
    assert client_config(1).retries == {"mode": "standard", "total_max_attempts": 1}
    with pytest.raises(ValueError, match="at least 1"):
        client_config(0)


def test_client_config_timeouts_and_pool() -> None:
    config = client_config()
    assert config.max_pool_connections == 32
    assert 0 < config.connect_timeout <= config.read_timeout


@pytest.mark.usefixtures("aws_env")
def test_clients_for_an_explicit_endpoint() -> None:
    clients = AwsClients.create(
        endpoint_url="http://127.0.0.1:4566", region="eu-west-1", credentials=EMULATOR_CREDENTIALS
    )
    for name in ("s3", "kinesis", "dynamodb", "cloudformation", "iam", "lambda_", "sqs", "sts"):
        client = getattr(clients, name)
        assert client.meta.endpoint_url == "http://127.0.0.1:4566", name
        assert client.meta.region_name == "eu-west-1", name
    assert clients.s3.meta.config.s3 == {"addressing_style": "path"}
    assert clients.kinesis.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}


@pytest.mark.usefixtures("aws_env")
def test_only_the_data_plane_skips_client_side_validation() -> None:
    # Nothing listens on port 1: a request that passes the client is refused at once.
    clients = AwsClients.create(endpoint_url="http://127.0.0.1:1", region="eu-west-1", max_attempts=1)
    # A record without its partition key: botocore would reject it before sending; the data plane sends it.
    with pytest.raises(EndpointConnectionError):
        clients.kinesis.put_records(StreamName="s", Records=[{"Data": b"x"}])  # type: ignore[typeddict-item]
    with pytest.raises(EndpointConnectionError):
        clients.dynamodb.batch_write_item(RequestItems={"t": [{"PutRequest": {}}]})  # type: ignore[typeddict-item]
    # What a user types (a bucket, a stack) is still checked before anything is sent.
    with pytest.raises(ParamValidationError):
        clients.s3.head_object(Bucket="b")  # type: ignore[call-arg]
    with pytest.raises(ParamValidationError):
        clients.cloudformation.describe_stacks(StackName=3)  # type: ignore[arg-type]


@pytest.mark.usefixtures("aws_env")
def test_clients_follow_the_standard_endpoint_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:4567")
    clients = AwsClients.create(endpoint_url=None, region="us-east-1", max_attempts=1)
    assert clients.dynamodb.meta.endpoint_url == "http://127.0.0.1:4566"
    assert clients.kinesis.meta.endpoint_url == "http://127.0.0.1:4567"
    assert clients.s3.meta.config.s3 == {"addressing_style": "path"}
    assert clients.sqs.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}


@pytest.mark.usefixtures("aws_env")
def test_clients_share_the_service_models_but_not_their_credentials() -> None:
    """A second AwsClients reads no model file again (the models loaded once are the same objects), and each keeps
    its own session's credentials and region; the shared loader's paths do not grow with the sessions."""
    mine = AwsClients.create(endpoint_url="http://127.0.0.1:1", region="eu-west-1", credentials=EMULATOR_CREDENTIALS)
    other = Credentials("AKIAOTHER", "other-secret")
    theirs = AwsClients.create(endpoint_url="http://127.0.0.1:1", region="us-east-2", credentials=other)
    assert mine.dynamodb._loader is theirs.dynamodb._loader  # type: ignore[attr-defined]
    model = mine.dynamodb._loader.load_service_model("dynamodb", "service-2")  # type: ignore[attr-defined]
    assert model is theirs.kinesis._loader.load_service_model("dynamodb", "service-2")  # type: ignore[attr-defined]
    paths = mine.s3._loader.search_paths  # type: ignore[attr-defined]
    assert len(paths) == len(set(paths))
    assert mine.sts._request_signer._credentials.access_key == EMULATOR_CREDENTIALS.access_key_id  # type: ignore[attr-defined]
    assert theirs.sts._request_signer._credentials.access_key == "AKIAOTHER"  # type: ignore[attr-defined]
    assert (mine.sqs.meta.region_name, theirs.sqs.meta.region_name) == ("eu-west-1", "us-east-2")


@pytest.mark.usefixtures("aws_env")
def test_clients_for_aws() -> None:
    clients = AwsClients.create(endpoint_url=None, region="eu-central-1")
    assert clients.dynamodb.meta.endpoint_url == "https://dynamodb.eu-central-1.amazonaws.com"
    assert clients.s3.meta.config.s3 is None


# --- the source zip -----------------------------------------------------------------------------


def test_source_zip_is_reproducible_and_holds_the_package() -> None:
    first, second = build_source_zip(), build_source_zip()
    assert first == second
    assert artifact_key(first) == artifact_key(second)
    assert artifact_key(first) != artifact_key(first + b"x")
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        names = archive.namelist()
    assert "tripstream/__init__.py" in names
    assert "tripstream/handlers/producer.py" in names
    assert "tripstream/infra/template.yaml" not in names  # Lambda never reads the template (see test_lambda_zip)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


# --- deploy_stack through change sets (AWS) -----------------------------------------------------


@pytest.fixture
def cfn(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    # No endpoint: *.amazonaws.com, so deploy_stack uses change sets without probing.
    client = boto3.client("cloudformation", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _stack(status: str, **extra: Any) -> dict[str, Any]:
    return {"Stacks": [{"StackName": STACK, "StackId": STACK_ID, "CreationTime": NOW, "StackStatus": status, **extra}]}


def _no_stack(stubber: Stubber) -> None:
    stubber.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message=f"Stack with id {STACK} does not exist",
        expected_params={"StackName": STACK},
    )


def _summary(stubber: Stubber) -> None:
    stubber.add_response(
        "get_template_summary",
        {
            "Parameters": [
                {"ParameterKey": "Size", "DefaultValue": "2", "ParameterType": "Number"},
                {"ParameterKey": "Name", "ParameterType": "String"},
            ]
        },
        {"TemplateBody": TEMPLATE},
    )


def _event(logical_id: str, resource_type: str, status: str, reason: str = "") -> dict[str, Any]:
    event = {
        "StackId": STACK_ID,
        "EventId": f"{logical_id}-{status}",
        "StackName": STACK,
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "Timestamp": NOW,
        "ResourceStatus": status,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def test_create_through_a_change_set(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    _no_stack(stubber)
    _summary(stubber)
    stubber.add_response(
        "create_change_set",
        {"Id": "cs-arn", "StackId": STACK_ID},
        {
            "StackName": STACK,
            "ChangeSetName": ANY,
            "ChangeSetType": "CREATE",
            "TemplateBody": TEMPLATE,
            # Every parameter is passed, the defaults too.
            "Parameters": [
                {"ParameterKey": "Size", "ParameterValue": "2"},
                {"ParameterKey": "Name", "ParameterValue": "x"},
            ],
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Description": ANY,
        },
    )
    stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"})
    stubber.add_response("execute_change_set", {}, {"StackName": STACK, "ChangeSetName": ANY})
    stubber.add_response(
        "describe_stacks", _stack("CREATE_COMPLETE", Outputs=[{"OutputKey": "Answer", "OutputValue": "42"}])
    )

    result = deploy_stack(client, stack_name=STACK, template_body=TEMPLATE, parameters={"Name": "x"})

    assert (result.operation, result.changed, result.method) == ("CREATE", True, "change_set")
    assert result.outputs == {"Answer": "42"}


def test_a_change_set_without_changes_is_deleted_and_reported(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
    _summary(stubber)
    stubber.add_response("create_change_set", {"Id": "cs-arn", "StackId": STACK_ID})
    stubber.add_response(
        "describe_change_set",
        {
            "Status": "FAILED",
            "StatusReason": "The submitted information didn't contain changes. "
            "Submit different information to create a change set.",
        },
    )
    stubber.add_response("delete_change_set", {}, {"StackName": STACK, "ChangeSetName": ANY})
    stubber.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))

    result = deploy_stack(client, stack_name=STACK, template_body=TEMPLATE, parameters={"Name": "x"})

    assert (result.operation, result.changed, result.status) == ("NONE", False, "UPDATE_COMPLETE")


def test_a_failed_deploy_names_the_failing_resources_causes_first(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
    _summary(stubber)
    stubber.add_response("create_change_set", {"Id": "cs-arn", "StackId": STACK_ID})
    stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"})
    stubber.add_response("execute_change_set", {})
    stubber.add_response(
        "describe_stacks",
        _stack("UPDATE_ROLLBACK_COMPLETE", StackStatusReason="The following resource(s) failed to update"),
    )
    stack = "AWS::CloudFormation::Stack"
    stubber.add_response(
        "describe_stack_events",
        {
            "StackEvents": [  # newest first
                _event(STACK, stack, "UPDATE_ROLLBACK_COMPLETE"),
                _event("Consumer", "AWS::Lambda::Function", "UPDATE_FAILED", "Resource update cancelled"),
                _event("Mapping", "AWS::Lambda::EventSourceMapping", "UPDATE_FAILED", "role lacks GetRecords"),
                _event(STACK, stack, "UPDATE_IN_PROGRESS", "User Initiated"),
                _event("Old", "AWS::SQS::Queue", "CREATE_FAILED", "an earlier deploy's failure"),
            ]
        },
        {"StackName": STACK},
    )

    with pytest.raises(DeployError) as raised:
        deploy_stack(client, stack_name=STACK, template_body=TEMPLATE, parameters={"Name": "x"})

    error = raised.value
    assert error.status == "UPDATE_ROLLBACK_COMPLETE"
    assert [failure.logical_id for failure in error.failures] == ["Mapping", "Consumer"]
    message = str(error)
    assert "role lacks GetRecords" in message
    assert "UPDATE_ROLLBACK_COMPLETE" in message
    assert "earlier deploy" not in message


def test_an_unknown_parameter_is_refused(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    _no_stack(stubber)
    _summary(stubber)
    with pytest.raises(ValueError, match="Sizes"):
        deploy_stack(client, stack_name=STACK, template_body=TEMPLATE, parameters={"Sizes": "3"})


def test_describe_error_reads_an_emulators_json_error() -> None:
    error = ResponseParserError(
        "Unable to parse response, invalid XML received:\n"
        'b\'{"__type": "com.amazonaws.dynamodb.v20120810#ResourceInUseException", '
        '"message": "Table already exists: high_value_trips"}\''
    )
    assert describe_error(error) == "ResourceInUseException: Table already exists: high_value_trips"
