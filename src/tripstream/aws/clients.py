"""`AwsClients`: the typed boto3 clients tripstream uses, made for one endpoint and region.

Nothing is created at import time: callers build one :class:`AwsClients` (the CLI, the local
runtime, the tests, a Lambda handler on its cold start) and pass it, or single clients from it, in.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader

from tripstream.aws.endpoint_params import resolve_write_tables_directly
from tripstream.aws.json_bodies import write_bodies_with_orjson

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

CONNECT_TIMEOUT_SECONDS: Final = 5.0
# Long enough for a 5 MB PutRecords or a large GetRecords on a slow emulator, short enough that a
# hung connection is retried well within a Lambda invocation.
READ_TIMEOUT_SECONDS: Final = 60.0
MAX_POOL_CONNECTIONS: Final = 32
DEFAULT_TOTAL_MAX_ATTEMPTS: Final = 3  # botocore's own default for the "standard" retry mode


class Credentials(NamedTuple):
    """Explicit credentials, replacing boto3's credential chain."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


# Any fixed key pair will do for an emulator; moto maps this one to its default account 123456789012.
EMULATOR_CREDENTIALS: Final = Credentials("testing", "testing")


def client_config(
    max_attempts: int | None = None,
    *,
    path_style: bool = False,
    read_timeout: float = READ_TIMEOUT_SECONDS,
    validate: bool = True,
) -> Config:
    """The one botocore configuration of every tripstream client.

    ``max_attempts`` is the *total* number of attempts of one call (1 = no retry at all). It is
    passed as ``total_max_attempts``: botocore's ``max_attempts`` key counts retries, so
    ``{"max_attempts": 1}`` would still retry once. ``validate=False`` skips botocore's client-side
    parameter validation (the service still validates every request).
    """
    total_attempts = DEFAULT_TOTAL_MAX_ATTEMPTS if max_attempts is None else max_attempts
    if total_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout,
        max_pool_connections=MAX_POOL_CONNECTIONS,
        retries={"mode": "standard", "total_max_attempts": total_attempts},
        tcp_keepalive=True,
        s3={"addressing_style": "path"} if path_style else None,
        parameter_validation=validate,
    )


@functools.cache
def _shared_loader() -> Loader:
    """botocore's loader of the service models, one per process: a session's own loader reads and parses every
    service's JSON model again, ~0.1 s of each :meth:`AwsClients.create` (the CLI makes several: the endpoint's,
    the handlers', each role's). The loader only reads files and caches what it read."""
    return create_loader()


def _session(region: str, credentials: Credentials | None) -> boto3.session.Session:
    """A session of its own (sessions are not thread-safe, the clients made from them are), on the shared loader."""
    core = botocore.session.Session()
    loader = _shared_loader()
    core.register_component("data_loader", loader)
    if credentials is None:
        session = boto3.session.Session(botocore_session=core, region_name=region)
    else:
        session = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=region,
        )
    # Each boto3 session adds its data folder to the loader's paths: once is enough.
    loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


def has_credentials() -> bool:
    """Whether boto3's standard credential chain finds any credentials (environment, profile, role...)."""
    return boto3.session.Session().get_credentials() is not None


_SERVICES: Final = frozenset({"s3", "kinesis", "dynamodb", "cloudformation", "iam", "lambda", "sqs", "sts"})


def _s3_endpoint_overridden(endpoint_url: str | None, environ: Mapping[str, str]) -> bool:
    # Buckets as host names (bucket.127.0.0.1, bucket.localhost) do not reach an emulator.
    return bool(endpoint_url or environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL"))


@dataclass(frozen=True)
class AwsClients:
    """The boto3 clients of one endpoint and region (boto3 clients are thread-safe)."""

    region: str
    endpoint_url: str | None
    s3: S3Client
    kinesis: KinesisClient
    dynamodb: DynamoDBClient
    cloudformation: CloudFormationClient
    iam: IAMClient
    lambda_: LambdaClient
    sqs: SQSClient
    sts: STSClient
    # Services whose endpoint differs from ``endpoint_url`` (boto3 service name -> URL).
    service_endpoints: Mapping[str, str] = field(default_factory=dict)
    # What they were made with (None: the standard chain), for `with_options`.
    credentials: Credentials | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        *,
        endpoint_url: str | None,
        region: str,
        max_attempts: int | None = None,
        credentials: Credentials | None = None,
        service_endpoints: Mapping[str, str] | None = None,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> AwsClients:
        """Clients for ``endpoint_url`` (``None``: boto3's own resolution) in ``region``.

        With ``endpoint_url=None`` boto3 applies ``AWS_ENDPOINT_URL`` /
        ``AWS_ENDPOINT_URL_<SERVICE>`` (and the config file's ``endpoint_url``) itself, and real
        AWS is used when none is set. ``max_attempts`` is the total attempts per call (see
        :func:`client_config`). ``credentials`` replaces the standard credential chain, e.g.
        :data:`EMULATOR_CREDENTIALS` for the embedded emulator. ``service_endpoints`` overrides
        the endpoint of single services by their boto3 name (``{"dynamodb": url}``: DynamoDB Local
        beside the embedded emulator).
        """
        session = _session(region, credentials)
        config = client_config(max_attempts, read_timeout=read_timeout)
        # The per-trip data plane: every request is built by tripstream's own typed code, and botocore's
        # validation of it was a fifth of the consumer's CPU (the service validates each request anyway).
        data_plane = client_config(max_attempts, read_timeout=read_timeout, validate=False)
        overrides = dict(service_endpoints or {})
        unknown = sorted(set(overrides) - _SERVICES)
        if unknown:
            raise ValueError(f"no tripstream client for service(s) {', '.join(unknown)}")

        def url(service: str) -> str | None:
            return overrides.get(service, endpoint_url)

        s3_config = client_config(
            max_attempts, path_style=_s3_endpoint_overridden(url("s3"), os.environ), read_timeout=read_timeout
        )
        dynamodb = session.client("dynamodb", endpoint_url=url("dynamodb"), config=data_plane)
        write_bodies_with_orjson(dynamodb)  # the consumer's writes: another fifth of its CPU
        resolve_write_tables_directly(dynamodb)  # and their endpoint parameters without JMESPath
        return cls(
            region=region,
            endpoint_url=endpoint_url,
            s3=session.client("s3", endpoint_url=url("s3"), config=s3_config),
            kinesis=session.client("kinesis", endpoint_url=url("kinesis"), config=data_plane),
            dynamodb=dynamodb,
            cloudformation=session.client("cloudformation", endpoint_url=url("cloudformation"), config=config),
            iam=session.client("iam", endpoint_url=url("iam"), config=config),
            lambda_=session.client("lambda", endpoint_url=url("lambda"), config=config),
            sqs=session.client("sqs", endpoint_url=url("sqs"), config=config),
            sts=session.client("sts", endpoint_url=url("sts"), config=config),
            service_endpoints=overrides,
            credentials=credentials,
        )

    def with_options(
        self, *, max_attempts: int | None = None, read_timeout: float = READ_TIMEOUT_SECONDS
    ) -> AwsClients:
        """New clients of the same endpoints, region and credentials, with other retries or read timeout (the
        handlers' clients retry nothing; a synchronous Lambda invocation waits as long as the function runs)."""
        return AwsClients.create(
            endpoint_url=self.endpoint_url,
            region=self.region,
            max_attempts=max_attempts,
            credentials=self.credentials,
            service_endpoints=self.service_endpoints,
            read_timeout=read_timeout,
        )


def chain_credentials() -> Credentials | None:
    """What boto3's standard credential chain resolves to now (None: nothing), as explicit credentials."""
    found = boto3.session.Session().get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    return Credentials(frozen.access_key or "", frozen.secret_key or "", frozen.token)


def credentials_environment(credentials: Credentials) -> dict[str, str]:
    """The standard variables that hand `credentials` to a process (as Lambda hands a function its role's)."""
    environment = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
    }
    if credentials.session_token:
        environment["AWS_SESSION_TOKEN"] = credentials.session_token
    return environment
