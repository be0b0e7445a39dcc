"""Which AWS endpoint a local command talks to: the embedded emulator, or one that is already running."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.local.emulator import Emulator

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Endpoint:
    clients: AwsClients  # for the CLI and the local runtime (botocore's standard retries)
    handler_clients: AwsClients  # what the handlers get: retries are tripstream's own, as in Lambda
    embedded: bool
    description: str


def configured_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """An endpoint the user already set with the standard boto3 variables, if any."""
    env = os.environ if environ is None else environ
    if env.get("AWS_ENDPOINT_URL"):
        return env["AWS_ENDPOINT_URL"]
    per_service = [name for name in env if name.startswith("AWS_ENDPOINT_URL_") and env[name]]
    return "per-service endpoints (" + ", ".join(sorted(per_service)) + ")" if per_service else None


def region_from_env(region: str | None = None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


@contextmanager
def open_endpoint(
    endpoint_url: str | None, *, region: str | None = None, emulator_log: Path | None = None
) -> Iterator[Endpoint]:
    """`--endpoint-url`, else the AWS_ENDPOINT_URL* variables, else a new embedded emulator (stopped on exit)."""
    region = region_from_env(region)
    if endpoint_url or configured_endpoint():
        credentials = None if _has_credentials() else EMULATOR_CREDENTIALS
        yield Endpoint(
            clients=AwsClients.create(endpoint_url=endpoint_url, region=region, credentials=credentials),
            handler_clients=AwsClients.create(
                endpoint_url=endpoint_url, region=region, max_attempts=1, credentials=credentials
            ),
            embedded=False,
            description=endpoint_url or configured_endpoint() or "",
        )
        return
    with Emulator(log_path=emulator_log) as emulator:
        url = emulator.endpoint_url
        yield Endpoint(
            clients=AwsClients.create(endpoint_url=url, region=region, credentials=EMULATOR_CREDENTIALS),
            handler_clients=AwsClients.create(
                endpoint_url=url, region=region, max_attempts=1, credentials=EMULATOR_CREDENTIALS
            ),
            embedded=True,
            description=f"embedded emulator at {url}",
        )


def _has_credentials() -> bool:
    import boto3

    return boto3.session.Session().get_credentials() is not None
