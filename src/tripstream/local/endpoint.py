"""Which AWS endpoint a local command talks to: the embedded emulator, or one that is already running.

Backends: ``moto`` (the default) serves every service from the embedded emulator. ``dynamodb-local``
sends the DynamoDB calls to Amazon DynamoDB Local, started here (see
:mod:`tripstream.local.emulator.dynamodb_local`), while S3, Kinesis and the rest stay where they are. The
standard ``AWS_ENDPOINT_URL_DYNAMODB`` variable also sends DynamoDB elsewhere (e.g. to a DynamoDB
Local that is already running), with either backend; on its own it does not turn the embedded
emulator off for the other services.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients, Credentials, has_credentials
from tripstream.backends import BACKENDS, DEFAULT_BACKEND, Backend
from tripstream.local.emulator.server import Emulator, identify

DEFAULT_REGION = "us-east-1"

DYNAMODB_ENDPOINT_VARIABLE: Final = "AWS_ENDPOINT_URL_DYNAMODB"


@dataclass(frozen=True)
class Endpoint:
    clients: AwsClients  # for the CLI and the local runtime (botocore's standard retries)
    handler_clients: AwsClients  # what the handlers get: retries are tripstream's own, as in Lambda
    embedded: bool
    description: str
    backend: Backend = DEFAULT_BACKEND
    # Where DynamoDB is when it is not where the other services are (None: with them).
    dynamodb_endpoint_url: str | None = None
    # The emulator's dummy credentials when those are what the clients use (None: the standard chain's).
    credentials: Credentials | None = None


def configured_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """An endpoint the user already set with the standard boto3 variables, if any.

    ``AWS_ENDPOINT_URL_DYNAMODB`` alone is not one: it moves DynamoDB only, and the embedded
    emulator still serves the rest (see :func:`configured_dynamodb_endpoint`).
    """
    env = os.environ if environ is None else environ
    if env.get("AWS_ENDPOINT_URL"):
        return env["AWS_ENDPOINT_URL"]
    per_service = [name for name in env if name.startswith("AWS_ENDPOINT_URL_") and env[name]]
    if not [name for name in per_service if name != DYNAMODB_ENDPOINT_VARIABLE]:
        return None
    return "per-service endpoints (" + ", ".join(sorted(per_service)) + ")"


# The services tripstream's clients use, by the name of their boto3 endpoint variable.
SERVICE_ENDPOINT_VARIABLES: Final = {
    service: f"AWS_ENDPOINT_URL_{service.upper()}"
    for service in ("cloudformation", "dynamodb", "iam", "kinesis", "lambda", "s3", "sqs", "sts")
}
# Set to 1 to let a partial per-service override send the other services to real AWS on purpose.
ALLOW_PARTIAL_VARIABLE: Final = "TRIPSTREAM_ALLOW_PARTIAL_ENDPOINTS"


class PartialEndpoints(ValueError):
    """Some services are overridden and the others would go to real AWS, which nobody asked for."""


def endpoint_routing(environ: Mapping[str, str] | None = None) -> str | None:
    """What goes where when per-service variables are set without ``AWS_ENDPOINT_URL`` (None otherwise).

    Raises `PartialEndpoints` when services are left to real AWS, unless ``TRIPSTREAM_ALLOW_PARTIAL_ENDPOINTS=1``:
    ``AWS_ENDPOINT_URL_S3`` alone would otherwise send CloudFormation, IAM, Lambda, Kinesis, DynamoDB and STS to
    the account the credential chain finds, from a command meant for a local stack.
    """
    env = os.environ if environ is None else environ
    if env.get("AWS_ENDPOINT_URL"):
        return None
    overridden = {service: env[name] for service, name in SERVICE_ENDPOINT_VARIABLES.items() if env.get(name)}
    if not overridden or set(overridden) == {"dynamodb"}:  # DynamoDB alone: the embedded emulator serves the rest
        return None
    to_aws = sorted(SERVICE_ENDPOINT_VARIABLES.keys() - overridden.keys())
    routing = "; ".join(f"{service} -> {url}" for service, url in sorted(overridden.items()))
    if not to_aws:
        return routing
    routing += f"; {', '.join(to_aws)} -> real AWS (the boto3 credential chain)"
    if env.get(ALLOW_PARTIAL_VARIABLE, "").strip().lower() not in {"1", "true", "yes"}:
        variables = ", ".join(SERVICE_ENDPOINT_VARIABLES[service] for service in to_aws)
        raise PartialEndpoints(
            f"only some services have an endpoint ({routing}). Set AWS_ENDPOINT_URL (or --endpoint-url) for all "
            f"of them, or {variables}; or set {ALLOW_PARTIAL_VARIABLE}=1 to send the others to AWS on purpose"
        )
    return routing


def configured_dynamodb_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """``AWS_ENDPOINT_URL_DYNAMODB``, if set."""
    env = os.environ if environ is None else environ
    return env.get(DYNAMODB_ENDPOINT_VARIABLE) or None


def region_from_env(region: str | None = None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def check_backend(backend: str) -> Backend:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


@contextmanager
def open_endpoint(
    endpoint_url: str | None,
    *,
    region: str | None = None,
    emulator_log: Path | None = None,
    backend: str = DEFAULT_BACKEND,
    state_dir: Path | None = None,
    dynamodb_local_log: Path | None = None,
    emulator_port: int = 0,
    use_environment: bool = True,
    emulator_state_dir: Path | None = None,
) -> Iterator[Endpoint]:
    """`--endpoint-url`, else the AWS_ENDPOINT_URL* variables, else a new embedded emulator (stopped on exit).

    ``use_environment=False`` ignores the AWS_ENDPOINT_URL* variables (`up` starts its own emulator unless it is
    given an endpoint: variables left over from an earlier `up` must not redirect it).

    ``backend="dynamodb-local"`` starts DynamoDB Local (in memory; with ``state_dir``, its tables
    are kept in ``state_dir/dynamodb-local``) and points the DynamoDB clients at it, unless
    ``AWS_ENDPOINT_URL_DYNAMODB`` names a DynamoDB endpoint already. Both are stopped on exit.

    ``emulator_state_dir``: an embedded emulator keeps its tables and stream there (`up --state-dir`).
    """
    checked_backend = check_backend(backend)
    region = region_from_env(region)
    with ExitStack() as stack:
        dynamodb_url = configured_dynamodb_endpoint() if use_environment else None
        dynamodb_description = f"DynamoDB at {dynamodb_url} ({DYNAMODB_ENDPOINT_VARIABLE})" if dynamodb_url else ""
        dynamodb_local_started: Future[str] | None = None
        starts_dynamodb_local = dynamodb_url is None and checked_backend == "dynamodb-local"
        # Before anything is started: a plain moto for the stream or the tables is refused at once.
        refuse_plain_moto(
            {
                "kinesis": _service_url("kinesis", endpoint_url, use_environment),
                "dynamodb": None
                if starts_dynamodb_local
                else dynamodb_url or _service_url("dynamodb", endpoint_url, use_environment),
            }
        )
        if starts_dynamodb_local:
            from tripstream.local.emulator.dynamodb_local import DynamoDBLocal

            dynamodb_local = DynamoDBLocal(
                state_dir=state_dir / "dynamodb-local" if state_dir is not None else None,
                log_path=dynamodb_local_log,
            )
            stack.callback(dynamodb_local.stop)
            # Java starts while the emulator does (a few seconds each): in a thread, awaited below.
            dynamodb_local_started = stack.enter_context(ThreadPoolExecutor(1, "dynamodb-local")).submit(
                dynamodb_local.start
            )

        base_url: str | None
        credentials: Credentials | None
        # Refuses a partial override before anything is started or sent.
        routing = None if endpoint_url or not use_environment else endpoint_routing()
        if endpoint_url or (use_environment and configured_endpoint()):
            base_url, embedded = endpoint_url, False
            credentials = credentials_for(endpoint_url or configured_endpoint())
            description = endpoint_url or routing or configured_endpoint() or ""
        else:
            emulator = stack.enter_context(Emulator(emulator_port, log_path=emulator_log, state_dir=emulator_state_dir))
            base_url, embedded, credentials = emulator.endpoint_url, True, EMULATOR_CREDENTIALS
            description = f"embedded emulator at {base_url}"
        if dynamodb_local_started is not None:
            dynamodb_url = dynamodb_local_started.result()
            dynamodb_description = dynamodb_local.description
        service_endpoints = {"dynamodb": dynamodb_url} if dynamodb_url else {}
        if dynamodb_description:
            description = f"{description}; {dynamodb_description}"
        clients = AwsClients.create(
            endpoint_url=base_url, region=region, credentials=credentials, service_endpoints=service_endpoints
        )
        yield Endpoint(
            clients=clients,
            # The handlers' retries are tripstream's own (so fault injection sees them): botocore's are off.
            handler_clients=clients.with_options(max_attempts=1),
            embedded=embedded,
            description=description,
            backend=checked_backend,
            dynamodb_endpoint_url=dynamodb_url,
            credentials=credentials,
        )


# What a moto server without tripstream's patches gets wrong, by the service it gets it wrong in (measured,
# moto 5.2.1: docs/design.md "Plain moto as an endpoint").
PLAIN_MOTO_FAULTS: Final = {
    "kinesis": "its Kinesis loses records under concurrent writers",
    "dynamodb": "its TransactWriteItems fails under concurrent writes (HTTP 500), which stalls the aggregates",
}


class PlainMoto(ValueError):
    """An endpoint the pipeline cannot be exact on: a moto server without tripstream's patches."""


def _service_url(service: str, endpoint_url: str | None, use_environment: bool) -> str | None:
    """Where `service` goes when it is not the embedded emulator (as boto3 resolves it: the explicit URL, else
    AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL); None: the embedded emulator (or AWS)."""
    if endpoint_url or not use_environment:
        return endpoint_url
    return os.environ.get(SERVICE_ENDPOINT_VARIABLES[service]) or os.environ.get("AWS_ENDPOINT_URL") or None


def refuse_plain_moto(service_urls: Mapping[str, str | None]) -> None:
    """Raise `PlainMoto` (one line: the cause and what to use instead) when Kinesis or DynamoDB is served by a plain
    moto server; one request or two per URL, answered at once (anything that is not moto passes)."""
    kinds = {url: identify(url) for url in set(service_urls.values()) if url}
    plain = {service: url for service, url in service_urls.items() if url and kinds[url] == "moto"}
    if not plain:
        return
    urls = sorted(set(plain.values()))
    port = urlsplit(urls[0]).port or 5000
    faults = "; ".join(PLAIN_MOTO_FAULTS[service] for service in sorted(plain, reverse=True))
    instead = (
        "or run without an endpoint (the embedded emulator)"
        if "kinesis" in plain
        else "or send DynamoDB to DynamoDB Local (--backend dynamodb-local)"
    )
    raise PlainMoto(
        f"{' and '.join(urls)} is a moto server without tripstream's fixes ({faults}): serve tripstream's patched "
        f"moto there instead (`tripstream emulator --port {port}`), {instead}"
    )


class NoEndpoint(RuntimeError):
    """Neither an endpoint nor AWS credentials: nowhere to talk to."""


def credentials_for(endpoint_url: str | None) -> Credentials | None:
    """The one credential choice: the standard chain's when it has any (None); else, for an endpoint, the
    emulator's dummy ones (emulators take any key); for AWS without credentials, None (boto3 then says so)."""
    if has_credentials() or endpoint_url is None:
        return None
    return EMULATOR_CREDENTIALS


def existing_endpoint(
    endpoint_url: str | None, region: str | None, *, note: Callable[[str], None]
) -> tuple[AwsClients, str]:
    """Clients for where the tables already are: `endpoint_url`, the AWS_ENDPOINT_URL* variables, else AWS; and
    the description of where that is. A partial per-service override is refused, or its routing noted in full."""
    routing = None if endpoint_url else endpoint_routing()
    if routing is not None:
        note(f"endpoint: {routing}")
    configured = endpoint_url or routing or configured_endpoint() or configured_dynamodb_endpoint()
    if configured is None and not has_credentials():
        raise NoEndpoint(
            "no endpoint and no AWS credentials: start `tripstream up` and export the variables it prints, "
            "or pass --endpoint-url"
        )
    clients = AwsClients.create(
        endpoint_url=endpoint_url, region=region_from_env(region), credentials=credentials_for(configured)
    )
    return clients, configured or f"AWS ({clients.region})"


def deploy_clients(endpoint_url: str | None, region: str | None) -> AwsClients:
    """Clients for `endpoint_url` (emulator credentials when none are configured), else the AWS credential chain."""
    if endpoint_url is None and not has_credentials():
        raise NoEndpoint("no AWS credentials found (standard boto3 chain); or pass --endpoint-url")
    return AwsClients.create(
        endpoint_url=endpoint_url, region=region_from_env(region), credentials=credentials_for(endpoint_url)
    )
