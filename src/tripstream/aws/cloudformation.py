"""CloudFormation stacks on any endpoint: read a stack's state and failures, wait for it, delete it.

Deploying (create or update, through change sets where the endpoint supports them) is
:mod:`tripstream.aws.stack_deploy`; both raise :class:`DeployError`, whose message names the failing
resources and CloudFormation's reasons.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackTypeDef

Operation = Literal["CREATE", "UPDATE", "NONE"]

DEFAULT_TIMEOUT_SECONDS: Final = 3600.0
_FIRST_POLL_SECONDS: Final = 0.1
_MAX_POLL_SECONDS: Final = 5.0
_MAX_EVENTS_SCANNED: Final = 500

_OPERATION_START_STATUSES: Final = frozenset(
    {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS"}
)
_CANCELLED_MARKERS: Final = ("cancelled", "canceled")

# What a call to an endpoint can raise; ResponseParserError (an emulator answering an error in
# the wrong protocol, as moto does when a resource of a stack fails) is no BotoCoreError.
ENDPOINT_ERRORS: Final = (ClientError, BotoCoreError, ResponseParserError)

# moto answers a failing resource of a stack with that service's JSON error, which botocore cannot
# parse as CloudFormation's XML: b'{"__type": "...Exception", "message": "..."}'.
_JSON_ERROR: Final = re.compile(r'"__type":\s*"(?P<type>[^"]+)",\s*"message":\s*"(?P<message>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ResourceFailure:
    """One failed resource operation, as the stack's events report it."""

    logical_id: str
    resource_type: str
    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.resource_type}) {self.status}: {self.reason}"


class DeployError(RuntimeError):
    """A deploy (or delete) did not end well; ``failures`` are the resources that failed, causes first."""

    def __init__(
        self,
        message: str,
        *,
        stack_name: str,
        status: str | None = None,
        failures: Sequence[ResourceFailure] = (),
    ) -> None:
        self.stack_name = stack_name
        self.status = status
        self.failures: tuple[ResourceFailure, ...] = tuple(failures)
        details = "".join(f"\n  - {failure}" for failure in self.failures)
        super().__init__(message + details)


@dataclass(frozen=True)
class DeployResult:
    stack_name: str
    stack_id: str
    operation: Operation
    changed: bool
    status: str
    method: Literal["change_set", "direct"]
    elapsed_seconds: float
    outputs: dict[str, str] = field(default_factory=dict)


# --- stack state ------------------------------------------------------------------------------


def _is_missing_stack(error: ClientError) -> bool:
    message = error.response.get("Error", {}).get("Message", "")
    return "does not exist" in message


def describe_stack(cfn: CloudFormationClient, stack_name: str) -> StackTypeDef | None:
    """The stack, or ``None`` if there is none of that name (deleted stacks are not returned)."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if _is_missing_stack(error):
            return None
        raise
    live = [stack for stack in stacks if stack["StackStatus"] != "DELETE_COMPLETE"]
    return live[0] if live else None


def stack_outputs(cfn: CloudFormationClient | None, stack_name: str | None) -> dict[str, str]:
    """The stack's outputs (key -> value); none without a client, a name, or such a stack."""
    stack = describe_stack(cfn, stack_name) if cfn is not None and stack_name else None
    return outputs_of(stack) if stack is not None else {}


def status_if_known(cfn: CloudFormationClient, stack_name: str) -> str | None:
    """The stack's status for an error message, or ``None`` (no stack, or the endpoint cannot say).

    moto resolves a stack's outputs, and so retries creating its missing resources, in every
    DescribeStacks: a stack whose creation failed there can make DescribeStacks fail as well.
    """
    try:
        stack = describe_stack(cfn, stack_name)
    except ENDPOINT_ERRORS:
        return None
    return stack["StackStatus"] if stack is not None else None


def describe_error(error: Exception) -> str:
    """The error's text; for an emulator's JSON error in a query-protocol answer, just its type and message."""
    text = str(error)
    if isinstance(error, ResponseParserError):
        match = _JSON_ERROR.search(text)
        if match is not None:
            return f"{match['type'].rpartition('#')[2]}: {match['message']}"
    return text


def outputs_of(stack: StackTypeDef) -> dict[str, str]:
    return {
        output["OutputKey"]: output.get("OutputValue", "")
        for output in stack.get("Outputs", [])
        if "OutputKey" in output
    }


def poll_delays(timeout: float) -> list[float]:
    """Sleeps between polls: quick at first (emulators finish at once), then up to every 5 s."""
    delays: list[float] = []
    delay, total = _FIRST_POLL_SECONDS, 0.0
    while total < timeout:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, _MAX_POLL_SECONDS)
    return delays


def wait_for_stack(cfn: CloudFormationClient, stack_name: str, timeout: float) -> StackTypeDef | None:
    """Poll until the stack is in no ``*_IN_PROGRESS`` state; ``None`` once it is deleted."""
    for delay in [0.0, *poll_delays(timeout)]:
        time.sleep(delay)
        stack = describe_stack(cfn, stack_name)
        if stack is None or not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
    raise DeployError(f"stack {stack_name} was still in progress after {timeout:g} s", stack_name=stack_name)


def stack_failures(cfn: CloudFormationClient, stack_name: str) -> list[ResourceFailure]:
    """The failed resource events of the stack's latest operation, root causes before cancellations."""
    failures: list[ResourceFailure] = []
    scanned = 0
    try:
        for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_name):
            for event in page["StackEvents"]:  # newest first
                scanned += 1
                logical_id = event.get("LogicalResourceId", "?")
                status = event.get("ResourceStatus", "")
                is_stack = event.get("ResourceType") == "AWS::CloudFormation::Stack"
                if is_stack and logical_id == stack_name and status in _OPERATION_START_STATUSES:
                    return _causes_first(failures)
                if status.endswith("_FAILED") and not (is_stack and logical_id == stack_name):
                    failures.append(
                        ResourceFailure(
                            logical_id=logical_id,
                            resource_type=event.get("ResourceType", "?"),
                            status=status,
                            reason=event.get("ResourceStatusReason", "(no reason given)"),
                        )
                    )
                if scanned >= _MAX_EVENTS_SCANNED:
                    return _causes_first(failures)
    except ENDPOINT_ERRORS:
        pass  # the error being reported matters more than its details
    return _causes_first(failures)


def _causes_first(failures: list[ResourceFailure]) -> list[ResourceFailure]:
    def cancelled(failure: ResourceFailure) -> bool:
        return any(marker in failure.reason.lower() for marker in _CANCELLED_MARKERS)

    return sorted(failures, key=cancelled)  # stable: newest first within each group


def stack_reason(stack: StackTypeDef | None) -> str:
    reason = stack.get("StackStatusReason") if stack is not None else None
    return f" ({reason})" if reason else ""


# --- delete -----------------------------------------------------------------------------------


def delete_stack(
    cfn: CloudFormationClient,
    stack_name: str,
    *,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> bool:
    """Delete the stack; ``False`` if there was none. Resources with DeletionPolicy Retain stay.

    Raises :class:`DeployError` if the deletion fails (DELETE_FAILED).
    """
    try:
        return _delete(cfn, stack_name, wait=wait, timeout=timeout)
    except ENDPOINT_ERRORS as error:
        raise DeployError(
            f"deleting stack {stack_name} failed: {describe_error(error)}",
            stack_name=stack_name,
            status=status_if_known(cfn, stack_name),
            failures=stack_failures(cfn, stack_name),
        ) from error


def _delete(cfn: CloudFormationClient, stack_name: str, *, wait: bool, timeout: float) -> bool:
    stack = describe_stack(cfn, stack_name)
    if stack is None:
        return False
    cfn.delete_stack(StackName=stack["StackId"])
    if not wait:
        return True
    # By id: a deleted stack is found by its id (and then reports DELETE_COMPLETE), not by its name.
    for delay in [0.0, *poll_delays(timeout)]:
        time.sleep(delay)
        try:
            stacks = cfn.describe_stacks(StackName=stack["StackId"])["Stacks"]
        except ClientError as error:
            if _is_missing_stack(error):
                return True
            raise
        status = stacks[0]["StackStatus"] if stacks else "DELETE_COMPLETE"
        if status == "DELETE_COMPLETE":
            return True
        if status == "DELETE_FAILED":
            raise DeployError(
                f"deleting stack {stack_name} failed{stack_reason(stacks[0])}",
                stack_name=stack_name,
                status=status,
                failures=stack_failures(cfn, stack_name),
            )
    raise DeployError(f"stack {stack_name} was still being deleted after {timeout:g} s", stack_name=stack_name)
