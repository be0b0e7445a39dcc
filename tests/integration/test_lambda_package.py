"""The built Lambda package works as Lambda's Python runtime would run it.

The zip is unpacked into a folder put first on ``sys.path`` (Lambda's ``/var/task``) of a fresh
virtual environment that has only boto3 (what the runtime provides); there both handlers are
imported and run on sample events against the emulator, a CSV and a Parquet file.

Which package: the template's runtime is python3.12 on x86_64 and this machine runs CPython 3.11,
so the wheels of the real package (cp312 extension modules: orjson, pyarrow) cannot load here. The
test builds the same package with the same builder (:func:`build_lambda_package`: same requirements,
same pruning, same layout) for ``python_version="3.11"``; only the wheel tags differ. That checks
what can break: the pruning (pyarrow without Flight/Substrait/tests still reads Parquet), that
nothing but boto3 is needed from outside the zip, and the handler paths of the template.
The real cp312 package is built and size-checked in tests/e2e/test_deploy_cli.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.infra.artifacts import LAMBDA_UNZIPPED_LIMIT_BYTES, LambdaTarget, build_lambda_package
from tripstream.infra.stack import deploy_tripstream
from tripstream.infra.template import load_template, resource_names
from tripstream.local.lambda_service.events import kinesis_event, s3_object_created_event
from tripstream.trips.generate import write_sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = resource_names(load_template())
REGION = "us-east-1"
ROWS = 300

RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])  # Lambda's /var/task
import importlib.util
assert importlib.util.find_spec("moto") is None and importlib.util.find_spec("click") is None
import boto3  # from the runtime (this virtual environment)
from tripstream.handlers import consumer, producer
import pyarrow, orjson, aws_lambda_powertools
assert pyarrow.__file__.startswith(sys.argv[1]), pyarrow.__file__

class Context:
    function_name = sys.argv[2]
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[2]
    memory_limit_in_mb = 512
    aws_request_id = "test-request"
    log_group_name = "/aws/lambda/" + sys.argv[2]
    log_stream_name = "test"
    def get_remaining_time_in_millis(self):
        return 600_000

event = json.load(open(sys.argv[4]))
module = producer if sys.argv[3] == "producer" else consumer
response = module.handler(event, Context())
print("RESPONSE " + json.dumps(response))
"""


# This machine's Python, for the venv below; manylinux_2_28 wheels, as the pins need (glibc >= 2.28 here).
LOCAL_TARGET = LambdaTarget(
    python_version=f"{sys.version_info[0]}.{sys.version_info[1]}", platform="manylinux_2_28_x86_64"
)


def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "lambda-package-cache"


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = build_lambda_package(package_cache(tmp_path_factory), target=LOCAL_TARGET)
    assert package.unzipped_bytes < LAMBDA_UNZIPPED_LIMIT_BYTES
    target = tmp_path_factory.mktemp("var-task")
    with zipfile.ZipFile(package.path) as archive:
        names = archive.namelist()
        assert not [n for n in names if "/tests/" in n or "__pycache__" in n or n.endswith(".pyx")]
        assert not [n for n in names if n.startswith(("boto3/", "botocore/"))]
        archive.extractall(target)
    return target


@pytest.fixture(scope="session")
def runtime_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only boto3 in it."""
    home = tmp_path_factory.mktemp("runtime-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    python = home / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "boto3"], check=True)
    return python


def _run(python: Path, package_dir: Path, function: str, which: str, event: dict[str, Any], tmp: Path,
         endpoint: str) -> dict[str, Any]:  # fmt: skip
    event_path = tmp / f"{which}-event.json"
    event_path.write_text(json.dumps(event))
    script = tmp / "runner.py"
    script.write_text(RUNNER)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS.access_key_id,
        "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS.secret_access_key,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "STREAM_NAME": NAMES["TripsStream"],
        "HIGH_VALUE_TABLE": NAMES["HighValueTripsTable"],
        "DURATION_TABLE": NAMES["TripDurationTable"],
        "FARE_RATIO_TABLE": NAMES["FareRatioTable"],
        "POWERTOOLS_SERVICE_NAME": "tripstream",
        "POWERTOOLS_METRICS_NAMESPACE": "tripstream",
        "CONTINUATION_MODE": "return",
    }
    done = subprocess.run(
        [str(python), str(script), str(package_dir), function, which, str(event_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESPONSE ")]
    emf = [json.loads(line) for line in done.stdout.splitlines() if '"_aws"' in line]
    assert emf, f"no CloudWatch embedded metric format line in: {done.stdout[-3000:]}"
    response: dict[str, Any] = json.loads(line.removeprefix("RESPONSE "))
    response["_emf"] = emf
    return response


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_package_runs_both_handlers_in_a_venv_with_only_boto3(
    package_dir: Path, runtime_python: Path, fresh_endpoint: str, tmp_path: Path, suffix: str
) -> None:
    clients = AwsClients.create(endpoint_url=fresh_endpoint, region=REGION, credentials=EMULATOR_CREDENTIALS)
    deployed = deploy_tripstream(clients, local_runtime=True)
    bucket = deployed.outputs["BucketName"]
    sample = write_sample(tmp_path / f"taxi_trips{suffix}", ROWS, seed=7)
    clients.s3.upload_file(str(sample), bucket, sample.name)
    head = clients.s3.head_object(Bucket=bucket, Key=sample.name)
    s3_event = s3_object_created_event(
        bucket=bucket,
        key=sample.name,
        size=head["ContentLength"],
        etag=head["ETag"].strip('"'),
        region=REGION,
        account_id="123456789012",
        sequencer="0001",
    )
    produced = _run(
        runtime_python, package_dir, NAMES["ProducerFunction"], "producer", s3_event, tmp_path, fresh_endpoint
    )
    (result,) = produced["results"]
    assert result["rows_read"] == ROWS
    assert result["records_sent"] == ROWS - sum(result["rows_rejected"].values())
    metric_names = {
        m["Name"] for line in produced["_emf"] for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    assert {"RowsRead", "RecordsSent", "RowsRejected", "RecordsRetried"} <= metric_names

    stream = clients.kinesis.describe_stream(StreamName=NAMES["TripsStream"])["StreamDescription"]
    written = 0
    for shard in stream["Shards"]:
        iterator = clients.kinesis.get_shard_iterator(
            StreamName=NAMES["TripsStream"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = clients.kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
        if not records:
            continue
        event = kinesis_event(
            records,
            shard_id=shard["ShardId"],
            stream_arn=stream["StreamARN"],
            region=REGION,
            role_arn="arn:aws:iam::123456789012:role/lambda-kinesis-streams-consumer-role",
        )
        for record in event["Records"]:  # valid base64, as Lambda delivers it
            base64.b64decode(record["kinesis"]["data"], validate=True)
        consumed = _run(
            runtime_python, package_dir, NAMES["ConsumerFunction"], "consumer", event, tmp_path, fresh_endpoint
        )
        assert consumed["batchItemFailures"] == []
        names = {
            m["Name"] for line in consumed["_emf"] for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
        }
        assert {"RecordsRead", "ItemsWritten", "BatchFailures"} <= names
        written += len(records)
    assert written == result["records_sent"]
    counts = {
        table: clients.dynamodb.scan(TableName=table, Select="COUNT")["Count"]
        for table in (NAMES["HighValueTripsTable"], NAMES["TripDurationTable"], NAMES["FareRatioTable"])
    }
    assert all(count > 0 for count in counts.values()), counts


@pytest.mark.slow
def test_the_package_is_built_from_the_pins_and_is_reproducible(tmp_path: Path) -> None:
    """constraints.txt pins the Lambda's dependencies; two builds from nothing give the same bytes."""
    from tripstream.infra.artifacts import lambda_requirements, pinned_versions

    pins = pinned_versions()
    assert lambda_requirements() == [f"{name}=={pins[name]}" for name in ("orjson", "pyarrow", "aws-lambda-powertools")]
    first = build_lambda_package(tmp_path / "first", target=LambdaTarget())
    second = build_lambda_package(tmp_path / "second", target=LambdaTarget())
    assert first.built and second.built
    assert first.sha256 == second.sha256


def test_a_change_to_the_code_rebuilds_the_zip_without_installing_the_dependencies_again(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The dependencies are kept per (target, requirements, pins): with them installed (the session's package),
    editing tripstream's code rebuilds the zip from them, without pip (it was most of a rebuild's time)."""
    from tripstream.infra.artifacts import PACKAGE_ROOT

    root = tmp_path / "src" / "tripstream"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    cache = package_cache(tmp_path_factory)
    installs: list[str] = []
    same = build_lambda_package(cache, target=LOCAL_TARGET, package_root=root, log=installs.append)
    changed = root / "trips" / "__init__.py"
    changed.write_text(changed.read_text() + "\n# changed\n")
    rebuilt = build_lambda_package(cache, target=LOCAL_TARGET, package_root=root, log=installs.append)
    assert not same.built  # the same code: the session's zip
    assert rebuilt.built and rebuilt.sha256 != same.sha256
    assert installs == []  # no pip for a change to the code
    with zipfile.ZipFile(rebuilt.path) as archive:
        assert archive.read("tripstream/trips/__init__.py").endswith(b"# changed\n")
        assert any(name.startswith("orjson/") for name in archive.namelist())
        assert not any(name.startswith("botocore/") for name in archive.namelist())
