"""The CloudFormation template against ARCHITECTURE.md, and what tripstream.infra reads from it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from tripstream import settings
from tripstream.infra.template import (
    TEMPLATE_PATH,
    TemplateError,
    event_source_mapping_settings,
    load_template,
    notification_suffixes,
    parameter_defaults,
    resource_names,
    resources_of_type,
)

# The names ARCHITECTURE.md fixes ("Names fixed by the specification"): the one place they are
# written down in the tests; everything else takes them from the template.
SPEC_STREAM = "taxi_trips"
SPEC_TABLES = {"high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio"}
SPEC_PRODUCER = "lambda-kinesis-producer"
SPEC_CONSUMER = "lambda-kinesis-consumer"
SPEC_POLICIES: dict[str, dict[str, Any]] = {
    "kinesis-write-records-policy": {
        "actions": {
            "kinesis:PutRecord",
            "kinesis:PutRecords",
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:ListShards",
        },
        "role": "lambda-producer-kinesis-role",
    },
    "lambda-kinesis-read-policy": {
        "actions": {
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:ListShards",
        },
        "role": "lambda-kinesis-streams-consumer-role",
    },
    "lambda-dynamo-write-policy": {
        "actions": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"},
        "role": "lambda-kinesis-streams-consumer-role",
    },
}
SPEC_ROLES: dict[str, dict[str, set[str]]] = {
    "lambda-producer-kinesis-role": {
        "customer": {"kinesis-write-records-policy"},
        "aws": {"AmazonS3ReadOnlyAccess", "service-role/AWSLambdaBasicExecutionRole"},
    },
    "lambda-kinesis-streams-consumer-role": {
        "customer": {"lambda-kinesis-read-policy", "lambda-dynamo-write-policy"},
        "aws": {"service-role/AWSLambdaBasicExecutionRole"},
    },
}
# What the producer alone reads: the one bucket it may read, and the limits per object.
PRODUCER_ONLY_VARIABLES = {"SOURCE_BUCKET", "MAX_OBJECT_BYTES", "MAX_OBJECT_ROWS", "MAX_COMPRESSION_RATIO"}
# What the consumer alone reads: how long the aggregates' markers are kept.
CONSUMER_ONLY_VARIABLES = {"COUNTED_TRIPS_TTL_DAYS"}
ENVIRONMENT_VARIABLES = {
    "STREAM_NAME",
    "HIGH_VALUE_TABLE",
    "DURATION_TABLE",
    "ZONE_HOURLY_STATS_TABLE",
    "COUNTED_TRIPS_TABLE",
    "FARE_RATIO_TABLE",
    "HIGH_VALUE_THRESHOLD",
    "SHORT_TRIP_MINUTES",
    "LONG_TRIP_MINUTES",
    "MAX_DURATION_HOURS",
    "LOW_FARE_PER_MILE",
    "HIGH_FARE_PER_MILE",
    "REJECTS_BUCKET",
    "REJECTS_PREFIX",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
}
OUTPUTS = {
    "BucketName",
    "StreamName",
    "StreamArn",
    "HighValueTableName",
    "DurationTableName",
    "FareRatioTableName",
    "ProducerFunctionName",
    "ConsumerFunctionName",
    "OnFailureQueueUrl",
    "OnFailureQueueArn",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def names(template: dict[str, Any]) -> dict[str, str]:
    return resource_names(template)


def logical_id_of(names: dict[str, str], name: str) -> str:
    (logical_id,) = [lid for lid, physical in names.items() if physical == name]
    return logical_id


def properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return props


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def aws_managed_policy_arns(arns: list[Any]) -> list[Any]:
    """The ARNs of a ManagedPolicyArns list with the default parameters (an ``Fn::If`` takes its true branch:
    every condition on these lists is true by default)."""
    return [arn["Fn::If"][1] if "Fn::If" in arn else arn for arn in arns]


def statements(policy_properties: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(policy_properties["PolicyDocument"]["Statement"])


# --- lint and load ------------------------------------------------------------------------------


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(
        Path(TEMPLATE_PATH),
        ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"]),
    )
    assert [str(match) for match in matches] == []


def test_load_template_turns_short_forms_into_long_forms(template: dict[str, Any]) -> None:
    producer = properties(template, "ProducerFunction")
    assert producer["Role"] == {"Fn::GetAtt": ["ProducerRole", "Arn"]}
    assert producer["Code"]["S3Bucket"] == {"Ref": "ArtifactBucket"}
    assert template["Conditions"]["IsLambdaRuntime"] == {"Fn::Equals": [{"Ref": "LocalRuntime"}, "false"]}


def test_load_template_refuses_a_file_that_is_no_template(tmp_path: Path) -> None:
    path = tmp_path / "not-a-template.yaml"
    path.write_text("just: text\n")
    with pytest.raises(TemplateError):
        load_template(path)


def test_no_transform(template: dict[str, Any]) -> None:
    assert "Transform" not in template


# --- names ----------------------------------------------------------------------------------------


def test_every_specified_name_is_in_the_template(names: dict[str, str]) -> None:
    fixed = set(names.values())
    assert {SPEC_STREAM, SPEC_PRODUCER, SPEC_CONSUMER} <= fixed
    assert fixed >= SPEC_TABLES
    assert set(SPEC_POLICIES) <= fixed
    assert set(SPEC_ROLES) <= fixed


def test_names_have_the_right_resource_types(template: dict[str, Any], names: dict[str, str]) -> None:
    def type_of(name: str) -> str:
        resource_type: str = template["Resources"][logical_id_of(names, name)]["Type"]
        return resource_type

    assert type_of(SPEC_STREAM) == "AWS::Kinesis::Stream"
    assert {type_of(table) for table in SPEC_TABLES} == {"AWS::DynamoDB::Table"}
    assert type_of(SPEC_PRODUCER) == type_of(SPEC_CONSUMER) == "AWS::Lambda::Function"
    assert {type_of(policy) for policy in SPEC_POLICIES} == {"AWS::IAM::ManagedPolicy"}
    assert {type_of(role) for role in SPEC_ROLES} == {"AWS::IAM::Role"}


def test_settings_defaults_agree_with_the_template(names: dict[str, str]) -> None:
    fixed = set(names.values())
    assert {
        settings.STREAM_NAME,
        settings.HIGH_VALUE_TABLE,
        settings.DURATION_TABLE,
        settings.FARE_RATIO_TABLE,
    } <= fixed


def test_the_bucket_name_is_a_parameter_with_a_derived_default(template: dict[str, Any]) -> None:
    assert template["Parameters"]["BucketName"]["Default"] == ""
    bucket_name = properties(template, "TripsBucket")["BucketName"]
    assert bucket_name == {
        "Fn::If": [
            "HasBucketName",
            {"Ref": "BucketName"},
            {"Fn::Sub": "tripstream-${AWS::AccountId}-${AWS::Region}"},
        ]
    }


# --- parameters and outputs -------------------------------------------------------------------------


def test_parameter_defaults(template: dict[str, Any]) -> None:
    defaults = parameter_defaults(template)
    assert {
        name: defaults[name]
        for name in (
            "ShardCount",
            "HighValueThreshold",
            "ShortTripMinutes",
            "LongTripMinutes",
            "MaxDurationHours",
            "LowFarePerMile",
            "HighFarePerMile",
            "LocalRuntime",
            "BatchSize",
            "MaximumBatchingWindowInSeconds",
            "MaximumRetryAttempts",
            "MaximumRecordAgeInSeconds",
            "ParallelizationFactor",
        )
    } == {
        "ShardCount": "2",
        "HighValueThreshold": "50.00",
        "ShortTripMinutes": "10",
        "LongTripMinutes": "30",
        "MaxDurationHours": "24",
        "LowFarePerMile": "3.00",
        "HighFarePerMile": "6.00",
        "LocalRuntime": "false",
        "BatchSize": "500",
        "MaximumBatchingWindowInSeconds": "1",
        "MaximumRetryAttempts": "5",
        "MaximumRecordAgeInSeconds": "3600",
        "ParallelizationFactor": "1",
    }
    # Without defaults: where the Lambda package is.
    assert {"ArtifactBucket", "ArtifactKey"} <= set(template["Parameters"]) - set(defaults)


def test_threshold_defaults_agree_with_settings(template: dict[str, Any]) -> None:
    defaults = parameter_defaults(template)
    thresholds = settings.Thresholds()
    assert Decimal(defaults["HighValueThreshold"]) == thresholds.high_value_threshold
    assert Decimal(defaults["ShortTripMinutes"]) == thresholds.short_trip_minutes
    assert Decimal(defaults["LongTripMinutes"]) == thresholds.long_trip_minutes
    assert Decimal(defaults["MaxDurationHours"]) == thresholds.max_duration_hours
    assert Decimal(defaults["LowFarePerMile"]) == thresholds.low_fare_per_mile
    assert Decimal(defaults["HighFarePerMile"]) == thresholds.high_fare_per_mile


def test_number_parameters_have_unquoted_defaults(template: dict[str, Any]) -> None:
    # moto keeps a default as YAML typed it; a string shard count breaks its Kinesis backend.
    for name, spec in template["Parameters"].items():
        if spec["Type"] == "Number":
            assert isinstance(spec["Default"], int), name
        else:
            assert isinstance(spec.get("Default", ""), str), name


def test_outputs(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= OUTPUTS
    assert all("Condition" not in output for output in template["Outputs"].values())


# --- storage ---------------------------------------------------------------------------------------


def test_stream(template: dict[str, Any], names: dict[str, str]) -> None:
    stream = properties(template, logical_id_of(names, SPEC_STREAM))
    # PROVISIONED (the default) with ShardCount shards, or ON_DEMAND without a ShardCount.
    assert stream["ShardCount"] == {"Fn::If": ["IsProvisionedStream", {"Ref": "ShardCount"}, {"Ref": "AWS::NoValue"}]}
    assert stream["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}
    assert template["Parameters"]["StreamMode"]["Default"] == "PROVISIONED"
    assert template["Conditions"]["IsProvisionedStream"] == {"Fn::Equals": [{"Ref": "StreamMode"}, "PROVISIONED"]}
    assert stream["RetentionPeriodHours"] == 24
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}


def test_tables(template: dict[str, Any], names: dict[str, str]) -> None:
    for table in SPEC_TABLES:
        logical_id = logical_id_of(names, table)
        resource = template["Resources"][logical_id]
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
        props = resource["Properties"]
        assert props["KeySchema"] == [{"AttributeName": "trip_id", "KeyType": "HASH"}]
        assert props["AttributeDefinitions"] == [{"AttributeName": "trip_id", "AttributeType": "S"}]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"] == {"SSEEnabled": True}


def test_queues_are_encrypted(template: dict[str, Any]) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    assert "OnFailureQueue" in queues
    assert all(queue["Properties"]["SqsManagedSseEnabled"] is True for queue in queues.values())


# --- IAM ---------------------------------------------------------------------------------------------


def test_named_policies_have_exactly_their_actions_on_this_stack(
    template: dict[str, Any], names: dict[str, str]
) -> None:
    stream_arn = {"Fn::GetAtt": [logical_id_of(names, SPEC_STREAM), "Arn"]}
    table_arns = [{"Fn::GetAtt": [logical_id_of(names, table), "Arn"]} for table in SPEC_TABLES]
    for policy_name, spec in SPEC_POLICIES.items():
        props = properties(template, logical_id_of(names, policy_name))
        assert props["ManagedPolicyName"] == policy_name
        actions = {action for statement in statements(props) for action in as_list(statement["Action"])}
        assert actions == spec["actions"], policy_name
        for statement in statements(props):
            assert statement["Effect"] == "Allow"
            resources = as_list(statement["Resource"])
            if policy_name == "lambda-dynamo-write-policy":
                assert sorted(map(str, resources)) == sorted(map(str, table_arns))
            else:
                assert resources == [stream_arn], policy_name


def test_named_policies_attach_to_their_roles_through_roles(template: dict[str, Any], names: dict[str, str]) -> None:
    # moto ignores a role's ManagedPolicyArns: each customer policy attaches itself.
    for policy_name, spec in SPEC_POLICIES.items():
        props = properties(template, logical_id_of(names, policy_name))
        assert props["Roles"] == [{"Ref": logical_id_of(names, spec["role"])}]


def test_roles_have_exactly_the_specified_policies(template: dict[str, Any], names: dict[str, str]) -> None:
    managed_policies = resources_of_type(template, "AWS::IAM::ManagedPolicy")
    for role_name, spec in SPEC_ROLES.items():
        role_id = logical_id_of(names, role_name)
        role = properties(template, role_id)
        assert role["RoleName"] == role_name
        aws_managed = {
            arn["Fn::Sub"].removeprefix("arn:${AWS::Partition}:iam::aws:policy/")
            for arn in aws_managed_policy_arns(role["ManagedPolicyArns"])
        }
        assert aws_managed == spec["aws"]
        customer = {
            policy["Properties"]["ManagedPolicyName"]
            for policy in managed_policies.values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
        }
        assert customer == spec["customer"]
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]


def test_extra_permissions_are_separate_and_narrow(template: dict[str, Any], names: dict[str, str]) -> None:
    extra = resources_of_type(template, "AWS::IAM::Policy")
    allowed_actions = {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "lambda:InvokeFunction", "sqs:SendMessage"}
    aggregate_actions = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"}
    for logical_id, policy in extra.items():
        for statement in statements(policy["Properties"]):
            actions = set(as_list(statement["Action"]))
            if actions & aggregate_actions:
                # Only the aggregates' own policy writes DynamoDB, and only the two aggregate tables.
                assert logical_id == "ZoneHourlyStatsWritePolicy"
                assert actions <= aggregate_actions
                assert statement["Resource"] == [
                    {"Fn::GetAtt": ["ZoneHourlyStatsTable", "Arn"]},
                    {"Fn::GetAtt": ["CountedTripsTable", "Arn"]},
                ]
            else:
                assert actions <= allowed_actions, logical_id
    producer_id = logical_id_of(names, SPEC_PRODUCER)
    invoke = [
        statement
        for policy in extra.values()
        for statement in statements(policy["Properties"])
        if "lambda:InvokeFunction" in as_list(statement["Action"])
    ]
    assert [statement["Resource"] for statement in invoke] == [{"Fn::GetAtt": [producer_id, "Arn"]}]
    rejects = [
        statement
        for policy in extra.values()
        for statement in statements(policy["Properties"])
        if "s3:PutObject" in as_list(statement["Action"])
    ]
    (rejects_statement,) = rejects
    assert rejects_statement["Resource"]["Fn::Sub"][0].endswith("/${RejectsPrefix}*")


def test_no_wildcards_in_customer_policies(template: dict[str, Any]) -> None:
    for resource_type in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        for logical_id, policy in resources_of_type(template, resource_type).items():
            for statement in statements(policy["Properties"]):
                assert "*" not in as_list(statement["Resource"]), logical_id
                assert all("*" not in action for action in as_list(statement["Action"])), logical_id


# --- functions and triggers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "handler", "timeout", "memory", "role"),
    [
        (SPEC_PRODUCER, "tripstream.handlers.producer.handler", 900, 1024, "lambda-producer-kinesis-role"),
        (
            SPEC_CONSUMER,
            "tripstream.handlers.consumer.handler",
            120,
            512,
            "lambda-kinesis-streams-consumer-role",
        ),
    ],
)
def test_functions(
    template: dict[str, Any],
    names: dict[str, str],
    name: str,
    handler: str,
    timeout: int,
    memory: int,
    role: str,
) -> None:
    props = properties(template, logical_id_of(names, name))
    assert props["Handler"] == handler
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["x86_64"]
    assert (props["Timeout"], props["MemorySize"]) == (timeout, memory)
    assert props["Role"] == {"Fn::GetAtt": [logical_id_of(names, role), "Arn"]}
    variables = props["Environment"]["Variables"]
    only = PRODUCER_ONLY_VARIABLES if name == SPEC_PRODUCER else CONSUMER_ONLY_VARIABLES
    assert set(variables) == ENVIRONMENT_VARIABLES | only
    # Values come from Ref/GetAtt/If, never literals repeated from elsewhere in the template.
    assert all(isinstance(value, dict) for value in variables.values()), variables
    assert variables["STREAM_NAME"] == {"Ref": logical_id_of(names, SPEC_STREAM)}


def test_bucket_notifies_the_producer_for_each_suffix(template: dict[str, Any], names: dict[str, str]) -> None:
    bucket = template["Resources"]["TripsBucket"]
    condition, notification, otherwise = bucket["Properties"]["NotificationConfiguration"]["Fn::If"]
    assert condition == "IsLambdaRuntime"
    assert otherwise == {"Ref": "AWS::NoValue"}
    configurations = notification["LambdaConfigurations"]
    producer_arn = {"Fn::GetAtt": [logical_id_of(names, SPEC_PRODUCER), "Arn"]}
    suffixes = []
    for configuration in configurations:
        assert configuration["Event"] == "s3:ObjectCreated:*"
        assert configuration["Function"] == producer_arn
        (rule,) = configuration["Filter"]["S3Key"]["Rules"]
        assert rule["Name"] == "suffix"
        suffixes.append(rule["Value"])
    assert sorted(suffixes) == [".CSV", ".CSV.GZ", ".PARQUET", ".csv", ".csv.gz", ".parquet"]
    assert sorted(notification_suffixes(template)) == sorted(suffixes)


def test_s3_may_invoke_the_producer_before_the_bucket_exists(template: dict[str, Any], names: dict[str, str]) -> None:
    permissions = resources_of_type(template, "AWS::Lambda::Permission")
    ((permission_id, permission),) = permissions.items()
    props = permission["Properties"]
    assert props["Principal"] == "s3.amazonaws.com"
    assert props["Action"] == "lambda:InvokeFunction"
    assert props["FunctionName"] == {"Fn::GetAtt": [logical_id_of(names, SPEC_PRODUCER), "Arn"]}
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    # The bucket's name as a string, not a Ref of the bucket (that would be a cycle).
    assert "TripsBucket" not in str(props["SourceArn"])
    assert permission_id in as_list(template["Resources"]["TripsBucket"]["DependsOn"])


def test_event_source_mapping(template: dict[str, Any], names: dict[str, str]) -> None:
    ((_, mapping),) = resources_of_type(template, "AWS::Lambda::EventSourceMapping").items()
    assert mapping["Condition"] == "IsLambdaRuntime"
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [logical_id_of(names, SPEC_STREAM), "Arn"]}
    assert props["FunctionName"] == {"Ref": logical_id_of(names, SPEC_CONSUMER)}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": ["OnFailureQueue", "Arn"]}}}
    # Lambda checks the execution role when it creates the mapping.
    assert {"LambdaKinesisReadPolicy", "ConsumerOnFailurePolicy"} <= set(as_list(mapping["DependsOn"]))


def test_event_source_mapping_settings_default(template: dict[str, Any]) -> None:
    assert event_source_mapping_settings(template) == {
        "BatchSize": 500,
        "MaximumBatchingWindowInSeconds": 1,
        "MaximumRetryAttempts": 5,
        "MaximumRecordAgeInSeconds": 3600,
        "BisectBatchOnFunctionError": True,
        "ParallelizationFactor": 1,
        "StartingPosition": "TRIM_HORIZON",
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }


def test_event_source_mapping_settings_resolve_parameters(template: dict[str, Any]) -> None:
    resolved = event_source_mapping_settings(
        template, {"BatchSize": "100", "MaximumRetryAttempts": "-1", "ParallelizationFactor": "4"}
    )
    assert (resolved["BatchSize"], resolved["MaximumRetryAttempts"], resolved["ParallelizationFactor"]) == (
        100,
        -1,
        4,
    )


def test_event_source_mapping_settings_refuse_unknown_or_bad_parameters(template: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="NoSuchParameter"):
        event_source_mapping_settings(template, {"NoSuchParameter": "1"})
    with pytest.raises(TemplateError, match="BatchSize"):
        event_source_mapping_settings(template, {"BatchSize": "many"})


def test_resource_names_cover_the_fixed_names_only(template: dict[str, Any], names: dict[str, str]) -> None:
    assert "TripsBucket" not in names  # a parameter, not a fixed name
    assert names["OnFailureQueue"] == properties(template, "OnFailureQueue")["QueueName"]
