"""Deploy the template for the local runtime (into the embedded emulator or any endpoint)."""

from __future__ import annotations

from collections.abc import Mapping

from tripstream.aws.clients import AwsClients
from tripstream.aws.cloudformation import DeployResult
from tripstream.infra.stack import deploy_tripstream
from tripstream.infra.template import DEFAULT_STACK_NAME, load_template
from tripstream.local.pipeline import DeployedStack, read_stack
from tripstream.local.tables import ensure_tables, table_definitions

__all__ = ["DEFAULT_STACK_NAME", "deploy_for_local_runtime"]


def deploy_for_local_runtime(
    clients: AwsClients, *, stack_name: str = DEFAULT_STACK_NAME, parameters: Mapping[str, str] | None = None
) -> tuple[DeployedStack, DeployResult]:
    """Deploy (or update) the stack with LocalRuntime=true; the handlers then run in this process."""
    result = deploy_tripstream(clients, local_runtime=True, stack_name=stack_name, parameters=parameters)
    stack = read_stack(clients, stack_name)
    if "dynamodb" in clients.service_endpoints:
        # DynamoDB is elsewhere (DynamoDB Local): CloudFormation made the tables where it runs, not there.
        ensure_tables(clients.dynamodb, table_definitions(load_template(), stack.parameters))
    return stack, result
