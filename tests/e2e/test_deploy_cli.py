"""`tripstream deploy | status | destroy` end to end: offline dry run, then the real commands against the emulator.

The Lambda package is built once per session into a shared cache folder (the same one
tests/integration/test_lambda_package.py uses), so the CLI finds it there and does not rebuild.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.endpoint import Endpoint
from click.testing import CliRunner

from tripstream.cli import main
from tripstream.infra.artifacts import LambdaPackage, build_lambda_package
from tripstream.infra.deploy import lambda_target
from tripstream.infra.template import load_template, resource_names, resources_of_type

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEMPLATE = load_template()
NAMES = resource_names(TEMPLATE)
TABLES = sorted(NAMES[logical_id] for logical_id in resources_of_type(TEMPLATE, "AWS::DynamoDB::Table"))


@pytest.fixture(scope="session")
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "lambda-package-cache"


@pytest.fixture(scope="session")
def lambda_package(package_cache: Path) -> LambdaPackage:
    return build_lambda_package(package_cache, target=lambda_target(TEMPLATE))


def test_dry_run_is_offline_and_lists_what_would_be_created(
    lambda_package: LambdaPackage, package_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No credentials anywhere, and any AWS request fails the test.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))

    def no_aws(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("deploy --dry-run made an AWS request")

    monkeypatch.setattr(Endpoint, "make_request", no_aws)
    build = tmp_path / "build"
    arguments = [
        "deploy",
        "--dry-run",
        "--region",
        "eu-west-1",
        "--build-dir",
        str(build),
        "--cache-dir",
        str(package_cache),
        "--bucket-name",
        "my-trips-bucket",
        "--parameter",
        "ShardCount=4",
    ]
    CliRunner().invoke(main, arguments)  # builds, unless the session's package is still current
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "nothing was sent to AWS" in out
    assert "from the cache" in out  # the second run does not build again
    for logical_id, name in NAMES.items():
        assert logical_id in out
        assert name in out
    for logical_id, resource in TEMPLATE["Resources"].items():
        assert f"{logical_id:<30}{resource['Type']}" in out
    assert "my-trips-bucket" in out
    assert "ShardCount                      4" in out
    assert "left out: HasAlarmEmail is false" in out
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in json.loads((build / "parameters.json").read_text())}
    assert parameters["ShardCount"] == "4"
    assert parameters["LocalRuntime"] == "false"
    zip_path = build / Path(parameters["ArtifactKey"]).name
    assert parameters["ArtifactKey"] == f"lambda/{zip_path.name}"
    assert zip_path.stat().st_size > 1_000_000
    assert (build / "template.packaged.yaml").read_text().startswith("AWSTemplateFormatVersion")


def test_deploy_status_destroy_against_the_emulator(
    lambda_package: LambdaPackage, package_cache: Path, fresh_endpoint: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    common = ["--endpoint-url", fresh_endpoint, "--region", "us-east-1"]
    # --package: the session's package for both deploys (other work in the tree may change the code meanwhile).
    deploy = ["deploy", *common, "--build-dir", str(tmp_path / "build"), "--package", str(lambda_package.path)]

    first = runner.invoke(main, deploy)
    assert first.exit_code == 0, first.output
    assert "CREATE_COMPLETE" in first.stdout
    for output in ("BucketName", "StreamName", "HighValueTableName", "ProducerFunctionName", "DashboardUrl"):
        assert output in first.stdout
    assert "#dashboards:name=tripstream-us-east-1" in first.stdout

    # The real package was uploaded and the functions point at it.
    lambda_client = boto3.client("lambda", endpoint_url=fresh_endpoint, region_name="us-east-1")
    code = lambda_client.get_function(FunctionName=NAMES["ProducerFunction"])["Code"]
    assert code["Location"]
    assert lambda_client.get_function_configuration(FunctionName=NAMES["ConsumerFunction"])["Runtime"] == "python3.12"

    again = runner.invoke(main, deploy)
    assert again.exit_code == 0, again.output
    assert "no changes" in again.stdout

    state = runner.invoke(main, ["status", *common, "--json"])
    assert state.exit_code == 0, state.output
    data = json.loads(state.stdout)
    assert data["status"] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
    assert data["stream"]["open_shards"] == 2 and data["stream"]["mode"] == "PROVISIONED"
    assert data["tables"] == dict.fromkeys(TABLES, "0")
    assert data["iterator_age"] == "n/a"  # the emulator's CloudWatch has no Lambda metrics

    refused = runner.invoke(main, ["destroy", *common], input="n\n")
    assert refused.exit_code != 0  # asked, and said no

    gone = runner.invoke(main, ["destroy", *common, "--yes"])
    assert gone.exit_code == 0, gone.output
    assert "deleted" in gone.stdout
    assert "tables retained: " + ", ".join(TABLES) in gone.stdout
    dynamodb = boto3.client("dynamodb", endpoint_url=fresh_endpoint, region_name="us-east-1")
    assert set(TABLES) <= set(dynamodb.list_tables()["TableNames"])

    # --delete-tables after the stack is gone deletes what the stack retained.
    tables_gone = runner.invoke(main, ["destroy", *common, "--yes", "--delete-tables"])
    assert tables_gone.exit_code == 0, tables_gone.output
    assert "did not exist" in tables_gone.stdout
    assert not set(TABLES) & set(dynamodb.list_tables()["TableNames"])


def test_an_unknown_parameter_is_a_usage_error(package_cache: Path, fresh_endpoint: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "deploy",
            "--endpoint-url",
            fresh_endpoint,
            "--build-dir",
            str(tmp_path),
            "--cache-dir",
            str(package_cache),
            "--parameter",
            "NoSuchParameter=1",
        ],
    )
    assert result.exit_code == 2
    assert "NoSuchParameter" in result.output


def test_an_on_demand_stream_deploys_and_status_shows_the_mode(
    lambda_package: LambdaPackage, fresh_endpoint: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    common = ["--endpoint-url", fresh_endpoint, "--region", "us-east-1"]
    deploy = ["deploy", *common, "--build-dir", str(tmp_path / "build"), "--package", str(lambda_package.path)]
    deployed = runner.invoke(main, [*deploy, "--parameter", "StreamMode=ON_DEMAND"])
    assert deployed.exit_code == 0, deployed.output
    kinesis = boto3.client("kinesis", endpoint_url=fresh_endpoint, region_name="us-east-1")
    summary = kinesis.describe_stream_summary(StreamName=NAMES["TripsStream"])["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
    state = runner.invoke(main, ["status", *common, "--json"])
    assert state.exit_code == 0, state.output
    assert json.loads(state.stdout)["stream"]["mode"] == "ON_DEMAND"
    plain = runner.invoke(main, ["status", *common])
    assert "ON_DEMAND" in plain.stdout
