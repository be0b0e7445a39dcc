"""A per-service endpoint override that leaves other services to real AWS is refused unless asked for (issue 15,
case 3), and what goes where is said before anything is sent."""

from __future__ import annotations

import pytest

from support.cli import run_cli
from tripstream.local.endpoint import SERVICE_ENDPOINT_VARIABLES, PartialEndpoints, endpoint_routing

LOCAL = "http://127.0.0.1:5999"


def test_s3_alone_is_refused_and_names_every_service_it_would_send_to_aws() -> None:
    with pytest.raises(PartialEndpoints) as raised:
        endpoint_routing({"AWS_ENDPOINT_URL_S3": LOCAL})
    message = str(raised.value)
    assert f"s3 -> {LOCAL}" in message
    assert "cloudformation, dynamodb, iam, kinesis, lambda, sqs, sts -> real AWS" in message
    assert "TRIPSTREAM_ALLOW_PARTIAL_ENDPOINTS=1" in message


def test_an_explicit_allowance_sends_the_rest_to_aws_and_says_so() -> None:
    routing = endpoint_routing({"AWS_ENDPOINT_URL_S3": LOCAL, "TRIPSTREAM_ALLOW_PARTIAL_ENDPOINTS": "1"})
    assert routing is not None and "kinesis" in routing and "real AWS" in routing


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"AWS_ENDPOINT_URL": LOCAL, "AWS_ENDPOINT_URL_S3": LOCAL},
        {"AWS_ENDPOINT_URL_DYNAMODB": LOCAL},  # the embedded emulator serves the rest
    ],
    ids=["nothing", "base_url_covers_the_rest", "dynamodb_alone"],
)
def test_nothing_to_refuse(environ: dict[str, str]) -> None:
    assert endpoint_routing(environ) is None


def test_every_service_overridden_is_whole() -> None:
    routing = endpoint_routing({name: LOCAL for name in SERVICE_ENDPOINT_VARIABLES.values()})
    assert routing is not None and "real AWS" not in routing


@pytest.mark.parametrize("command", [["run", "--rows", "10"], ["query", "SELECT * FROM high_value_trips"]])
def test_the_cli_refuses_before_anything_is_started_or_sent(command: list[str]) -> None:
    result = run_cli(*command, env={"AWS_ENDPOINT_URL_S3": LOCAL}, isolated=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "only some services have an endpoint" in result.stderr
    assert "deployed" not in result.stderr and "emulator" not in result.stderr
