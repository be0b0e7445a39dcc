"""Deploy the tripstream template, with its Lambda package, into any endpoint (the emulator, another, or AWS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tripstream.aws.cloudformation import DeployResult
from tripstream.aws.s3 import upload_artifact
from tripstream.aws.stack_deploy import deploy_stack
from tripstream.aws.sts import account_id
from tripstream.infra.artifacts import artifact_key, build_source_zip
from tripstream.infra.template import DEFAULT_STACK_NAME, template_body

if TYPE_CHECKING:
    from tripstream.aws.clients import AwsClients


def artifact_bucket_name(account_id: str, region: str) -> str:
    """The default bucket for the Lambda package (it must exist before the stack, so is not the stack's)."""
    return f"tripstream-artifacts-{account_id}-{region}"


def deploy_tripstream(
    clients: AwsClients,
    *,
    local_runtime: bool,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    artifact: bytes | None = None,
    artifact_bucket: str | None = None,
    wait: bool = True,
) -> DeployResult:
    """Upload the Lambda package and deploy the template into the clients' endpoint.

    ``local_runtime=True`` deploys for tripstream's local runtime (``LocalRuntime=true``: no event
    source mapping, no bucket notification); the package may then be the bare source zip, which is
    the default. For Lambda itself (``local_runtime=False``) pass ``artifact``: the package with
    its dependencies (see :mod:`tripstream.infra.artifacts`). ``parameters`` are the template's
    other parameters; those left out keep their defaults.
    """
    if artifact is None and not local_runtime:
        raise ValueError(
            "deploying for AWS Lambda needs the Lambda package with its dependencies (artifact=...): "
            "the bare source zip only serves the local runtime"
        )
    body = build_source_zip() if artifact is None else artifact
    bucket = artifact_bucket or artifact_bucket_name(account_id(clients.sts), clients.region)
    key = artifact_key(body)
    upload_artifact(clients.s3, bucket=bucket, key=key, body=body, region=clients.region)
    return deploy_stack(
        clients.cloudformation,
        stack_name=stack_name,
        template_body=template_body(),
        parameters={
            **(parameters or {}),
            "ArtifactBucket": bucket,
            "ArtifactKey": key,
            "LocalRuntime": "true" if local_runtime else "false",
        },
        wait=wait,
    )
