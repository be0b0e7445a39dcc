"""Deploy the template for the local runtime (into the embedded emulator or any endpoint)."""

from __future__ import annotations

from collections.abc import Mapping

from tripstream.aws.clients import AwsClients
from tripstream.aws.cloudformation import DeployResult, deploy_stack
from tripstream.infra import template_body
from tripstream.infra.artifacts import artifact_key, build_source_zip, upload_artifact
from tripstream.local.pipeline import DeployedStack, read_stack

DEFAULT_STACK_NAME = "tripstream"


def deploy_for_local_runtime(
    clients: AwsClients, *, stack_name: str = DEFAULT_STACK_NAME, parameters: Mapping[str, str] | None = None
) -> tuple[DeployedStack, DeployResult]:
    """Deploy (or update) the stack with LocalRuntime=true; the handlers then run in this process."""
    account_id = clients.sts.get_caller_identity()["Account"]
    artifact_bucket = f"tripstream-artifacts-{account_id}-{clients.region}"
    body = build_source_zip()
    key = artifact_key(body)
    upload_artifact(clients.s3, bucket=artifact_bucket, key=key, body=body, region=clients.region)
    result = deploy_stack(
        clients.cloudformation,
        stack_name=stack_name,
        template_body=template_body(),
        parameters={
            "LocalRuntime": "true",
            "ArtifactBucket": artifact_bucket,
            "ArtifactKey": key,
            **(parameters or {}),
        },
    )
    return read_stack(clients, stack_name), result
