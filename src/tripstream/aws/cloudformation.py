"""Deploy a CloudFormation stack into any endpoint: the embedded moto server, another emulator, or AWS.

:func:`deploy_stack` is declarative and idempotent: it creates the stack or updates it through a
change set, and deploying an unchanged template with unchanged parameters again changes nothing
(``DeployResult.changed is False``). A failure raises :class:`DeployError`, whose message names the
failing resources and CloudFormation's reasons.

Change sets on emulators: moto 5.2's CloudFormation creates and executes change sets, but a stack
made or updated by executing one never gets its ``Outputs`` (moto rebuilds them only in
CreateStack/UpdateStack), and a failing resource makes ExecuteChangeSet answer HTTP 500. So for an
endpoint that is not AWS, :func:`deploy_stack` first checks once, with a tiny probe stack, whether
change sets work there, and falls back to CreateStack/UpdateStack only where they do not (in that
mode it detects "no changes" itself by comparing the deployed template and parameters). AWS itself
always gets change sets.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType, ChangeSetTypeType
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackTypeDef

DeployMethod = Literal["auto", "change_set", "direct"]
Operation = Literal["CREATE", "UPDATE", "NONE"]

MAX_TEMPLATE_BODY_BYTES: Final = 51_200  # larger templates must be uploaded and passed as TemplateURL
DEFAULT_TIMEOUT_SECONDS: Final = 3600.0
_FIRST_POLL_SECONDS: Final = 0.1
_MAX_POLL_SECONDS: Final = 5.0
_MAX_EVENTS_SCANNED: Final = 500

_SUCCESS_STATUSES: Final = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
_OPERATION_START_STATUSES: Final = frozenset(
    {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS"}
)
_NO_CHANGE_MARKERS: Final = ("didn't contain changes", "No updates are to be performed")
_CANCELLED_MARKERS: Final = ("cancelled", "canceled")
_AWS_HOST_SUFFIXES: Final = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")

_PROBE_TEMPLATE: Final = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: tripstream checks whether this endpoint's change sets give a stack its outputs.
Resources:
  Nothing:
    Type: AWS::CloudFormation::WaitConditionHandle
Outputs:
  Probe:
    Value: change-sets-work
"""
# What a call to an endpoint can raise; ResponseParserError (an emulator answering an error in
# the wrong protocol, as moto does when a resource of a stack fails) is no BotoCoreError.
_ENDPOINT_ERRORS: Final = (ClientError, BotoCoreError, ResponseParserError)

# moto answers a failing resource of a stack with that service's JSON error, which botocore cannot
# parse as CloudFormation's XML: b'{"__type": "...Exception", "message": "..."}'.
_JSON_ERROR: Final = re.compile(r'"__type":\s*"(?P<type>[^"]+)",\s*"message":\s*"(?P<message>(?:[^"\\]|\\.)*)"')

_change_set_support: dict[str, bool] = {}
_change_set_support_lock = threading.Lock()


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


def _status_if_known(cfn: CloudFormationClient, stack_name: str) -> str | None:
    """The stack's status for an error message, or ``None`` (no stack, or the endpoint cannot say).

    moto resolves a stack's outputs, and so retries creating its missing resources, in every
    DescribeStacks: a stack whose creation failed there can make DescribeStacks fail as well.
    """
    try:
        stack = describe_stack(cfn, stack_name)
    except _ENDPOINT_ERRORS:
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


def _outputs(stack: StackTypeDef) -> dict[str, str]:
    return {
        output["OutputKey"]: output.get("OutputValue", "")
        for output in stack.get("Outputs", [])
        if "OutputKey" in output
    }


def _poll_delays(timeout: float) -> list[float]:
    """Sleeps between polls: quick at first (emulators finish at once), then up to every 5 s."""
    delays: list[float] = []
    delay, total = _FIRST_POLL_SECONDS, 0.0
    while total < timeout:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, _MAX_POLL_SECONDS)
    return delays


def _wait_for_stack(cfn: CloudFormationClient, stack_name: str, timeout: float) -> StackTypeDef | None:
    """Poll until the stack is in no ``*_IN_PROGRESS`` state; ``None`` once it is deleted."""
    for delay in [0.0, *_poll_delays(timeout)]:
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
    except _ENDPOINT_ERRORS:
        pass  # the error being reported matters more than its details
    return _causes_first(failures)


def _causes_first(failures: list[ResourceFailure]) -> list[ResourceFailure]:
    def cancelled(failure: ResourceFailure) -> bool:
        return any(marker in failure.reason.lower() for marker in _CANCELLED_MARKERS)

    return sorted(failures, key=cancelled)  # stable: newest first within each group


def _stack_reason(stack: StackTypeDef | None) -> str:
    reason = stack.get("StackStatusReason") if stack is not None else None
    return f" ({reason})" if reason else ""


# --- deploy -----------------------------------------------------------------------------------


def _is_aws_endpoint(endpoint_url: str) -> bool:
    host = urlparse(endpoint_url).hostname or ""
    return host.endswith(_AWS_HOST_SUFFIXES)


def change_sets_work(cfn: CloudFormationClient) -> bool:
    """Whether the endpoint's change sets give a stack its outputs (checked once per endpoint).

    AWS is not probed. Elsewhere a throw-away stack with one output is created through a change set
    and deleted again (a few milliseconds on moto).
    """
    endpoint = cfn.meta.endpoint_url
    if _is_aws_endpoint(endpoint):
        return True
    key = f"{endpoint}|{cfn.meta.region_name}"
    with _change_set_support_lock:
        if key not in _change_set_support:
            _change_set_support[key] = _probe_change_sets(cfn)
        return _change_set_support[key]


def _probe_change_sets(cfn: CloudFormationClient) -> bool:
    stack_name = f"tripstream-change-set-probe-{uuid.uuid4().hex[:12]}"
    change_set_name = _change_set_name()
    try:
        cfn.create_change_set(
            StackName=stack_name,
            ChangeSetName=change_set_name,
            ChangeSetType="CREATE",
            TemplateBody=_PROBE_TEMPLATE,
        )
        if _wait_for_change_set(cfn, stack_name, change_set_name, timeout=60.0)[0] != "CREATE_COMPLETE":
            return False
        cfn.execute_change_set(StackName=stack_name, ChangeSetName=change_set_name)
        stack = _wait_for_stack(cfn, stack_name, timeout=120.0)
        return stack is not None and _outputs(stack).get("Probe") == "change-sets-work"
    except _ENDPOINT_ERRORS:
        return False
    finally:
        with contextlib.suppress(*_ENDPOINT_ERRORS):
            cfn.delete_stack(StackName=stack_name)


def _change_set_name() -> str:
    return f"tripstream-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def _wait_for_change_set(
    cfn: CloudFormationClient, stack_name: str, change_set_name: str, timeout: float
) -> tuple[str, str]:
    """Poll until the change set is created or failed: (status, status reason)."""
    for delay in [0.0, *_poll_delays(timeout)]:
        time.sleep(delay)
        change_set = cfn.describe_change_set(StackName=stack_name, ChangeSetName=change_set_name)
        status = change_set["Status"]
        if status not in {"CREATE_PENDING", "CREATE_IN_PROGRESS"}:
            return status, change_set.get("StatusReason", "")
    raise DeployError(
        f"change set {change_set_name} of {stack_name} was not ready after {timeout:g} s",
        stack_name=stack_name,
    )


def _is_no_change(reason: str) -> bool:
    return any(marker in reason for marker in _NO_CHANGE_MARKERS)


def deploy_stack(
    cfn: CloudFormationClient,
    *,
    stack_name: str,
    template_body: str,
    parameters: Mapping[str, str],
    capabilities: Sequence[CapabilityType] = ("CAPABILITY_NAMED_IAM",),
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    method: DeployMethod = "auto",
) -> DeployResult:
    """Create or update ``stack_name`` so that it runs ``template_body`` with ``parameters``.

    Parameters left out take the template's defaults (also on an update). ``method="auto"`` uses a
    change set wherever the endpoint supports change sets (see :func:`change_sets_work`), otherwise
    CreateStack/UpdateStack. A stack left in ROLLBACK_COMPLETE by a failed first deploy (it holds
    nothing and cannot be updated) is deleted and created again. With ``wait=False`` the result is
    returned once the operation has started (``status`` is then an ``*_IN_PROGRESS`` one).

    Raises :class:`DeployError` naming the failing resources and their reasons.
    """
    if len(template_body.encode("utf-8")) > MAX_TEMPLATE_BODY_BYTES:
        raise ValueError(f"the template is larger than {MAX_TEMPLATE_BODY_BYTES} bytes: pass it as a TemplateURL")
    try:
        return _deploy(
            cfn,
            stack_name=stack_name,
            template_body=template_body,
            parameters=parameters,
            capabilities=capabilities,
            wait=wait,
            timeout=timeout,
            method=method,
        )
    except _ENDPOINT_ERRORS as error:
        status = _status_if_known(cfn, stack_name)
        raise DeployError(
            f"deploying stack {stack_name} failed: {describe_error(error)}",
            stack_name=stack_name,
            status=status,
            failures=stack_failures(cfn, stack_name) if status is not None else (),
        ) from error


def _deploy(
    cfn: CloudFormationClient,
    *,
    stack_name: str,
    template_body: str,
    parameters: Mapping[str, str],
    capabilities: Sequence[CapabilityType],
    wait: bool,
    timeout: float,
    method: DeployMethod,
) -> DeployResult:
    started = time.monotonic()
    existing = _settled_stack(cfn, stack_name, timeout)
    use_change_set = method == "change_set" or (method == "auto" and change_sets_work(cfn))
    used: Literal["change_set", "direct"] = "change_set" if use_change_set else "direct"
    # Every parameter is passed, the defaults too: "left out" then means "the default" on every
    # endpoint (moto only re-resolves the parameters passed, so a value reverting to its default
    # by being left out would never reach the resources there).
    effective = _effective_parameters(cfn, template_body, parameters)
    parameter_list: list[ParameterTypeDef] = [
        {"ParameterKey": key, "ParameterValue": value} for key, value in effective.items()
    ]
    operation: Operation = "CREATE" if existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"
    if use_change_set:
        executed = _deploy_with_change_set(
            cfn,
            stack_name=stack_name,
            template_body=template_body,
            parameter_list=parameter_list,
            capabilities=capabilities,
            operation=operation,
            timeout=timeout,
        )
    else:
        executed = _deploy_directly(
            cfn,
            stack_name=stack_name,
            template_body=template_body,
            parameters=effective,
            parameter_list=parameter_list,
            capabilities=capabilities,
            existing=existing,
            timeout=timeout,
        )

    final = describe_stack(cfn, stack_name) if not (executed and wait) else _wait_for_stack(cfn, stack_name, timeout)
    if final is None:
        raise DeployError(f"stack {stack_name} disappeared while being deployed", stack_name=stack_name)
    status = final["StackStatus"]
    if executed and status not in _SUCCESS_STATUSES and not (not wait and status.endswith("_IN_PROGRESS")):
        raise DeployError(
            f"deploying stack {stack_name} ended in {status}{_stack_reason(final)}",
            stack_name=stack_name,
            status=status,
            failures=stack_failures(cfn, stack_name),
        )
    return DeployResult(
        stack_name=stack_name,
        stack_id=final["StackId"],
        operation=operation if executed else "NONE",
        changed=executed,
        status=status,
        method=used,
        elapsed_seconds=time.monotonic() - started,
        outputs=_outputs(final),
    )


def _settled_stack(cfn: CloudFormationClient, stack_name: str, timeout: float) -> StackTypeDef | None:
    """The stack once no operation is running on it; ``None`` if there is (or now is) no stack."""
    stack = describe_stack(cfn, stack_name)
    if (
        stack is not None
        and stack["StackStatus"].endswith("_IN_PROGRESS")
        and (stack["StackStatus"] != "REVIEW_IN_PROGRESS")
    ):
        stack = _wait_for_stack(cfn, stack_name, timeout)
    if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        # A failed first deploy: the stack holds nothing (retained resources aside), and AWS only
        # allows deleting it.
        delete_stack(cfn, stack_name, timeout=timeout)
        stack = None
    if stack is not None and stack["StackStatus"] in {
        "ROLLBACK_FAILED",
        "DELETE_FAILED",
        "UPDATE_ROLLBACK_FAILED",
    }:
        raise DeployError(
            f"stack {stack_name} is in {stack['StackStatus']}{_stack_reason(stack)}: "
            "fix or delete it before deploying again",
            stack_name=stack_name,
            status=stack["StackStatus"],
            failures=stack_failures(cfn, stack_name),
        )
    return stack


def _deploy_with_change_set(
    cfn: CloudFormationClient,
    *,
    stack_name: str,
    template_body: str,
    parameter_list: list[ParameterTypeDef],
    capabilities: Sequence[CapabilityType],
    operation: Operation,
    timeout: float,
) -> bool:
    """Create, wait for and execute a change set; ``False`` when it holds no changes (it is then deleted)."""
    change_set_name = _change_set_name()
    change_set_type: ChangeSetTypeType = "CREATE" if operation == "CREATE" else "UPDATE"
    try:
        cfn.create_change_set(
            StackName=stack_name,
            ChangeSetName=change_set_name,
            ChangeSetType=change_set_type,
            TemplateBody=template_body,
            Parameters=parameter_list,
            Capabilities=list(capabilities),
            Description="tripstream deploy",
        )
    except ClientError as error:
        if _is_no_change(error.response.get("Error", {}).get("Message", "")):
            return False
        raise
    status, reason = _wait_for_change_set(cfn, stack_name, change_set_name, timeout)
    if status != "CREATE_COMPLETE":
        cfn.delete_change_set(StackName=stack_name, ChangeSetName=change_set_name)
        if _is_no_change(reason):
            return False
        raise DeployError(
            f"the change set for stack {stack_name} failed: {reason or status}",
            stack_name=stack_name,
            status=status,
        )
    cfn.execute_change_set(StackName=stack_name, ChangeSetName=change_set_name)
    return True


def _deploy_directly(
    cfn: CloudFormationClient,
    *,
    stack_name: str,
    template_body: str,
    parameters: Mapping[str, str],
    parameter_list: list[ParameterTypeDef],
    capabilities: Sequence[CapabilityType],
    existing: StackTypeDef | None,
    timeout: float,
) -> bool:
    """CreateStack/UpdateStack, for endpoints whose change sets do not work (see the module docstring)."""
    if existing is not None and existing["StackStatus"] == "REVIEW_IN_PROGRESS":
        delete_stack(cfn, stack_name, timeout=timeout)  # a change set never executed: nothing in it
        existing = None
    if existing is None:
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=template_body,
            Parameters=parameter_list,
            Capabilities=list(capabilities),
        )
        return True
    if _deployed_as(cfn, existing, template_body, parameters):
        return False
    try:
        cfn.update_stack(
            StackName=stack_name,
            TemplateBody=template_body,
            Parameters=parameter_list,
            Capabilities=list(capabilities),
        )
    except ClientError as error:
        if _is_no_change(error.response.get("Error", {}).get("Message", "")):
            return False
        raise
    return True


def _deployed_as(
    cfn: CloudFormationClient, stack: StackTypeDef, template_body: str, parameters: Mapping[str, str]
) -> bool:
    """Whether the stack already runs this exact template with exactly these parameter values."""
    # Typed as a dict (botocore parses JSON templates); a YAML template comes back as its text.
    deployed_body: object = cfn.get_template(StackName=stack["StackName"]).get("TemplateBody")
    if deployed_body != template_body:
        return False
    deployed = {p["ParameterKey"]: str(p.get("ParameterValue", "")) for p in stack.get("Parameters", [])}
    return all(deployed.get(key) == value for key, value in parameters.items())


def _effective_parameters(
    cfn: CloudFormationClient, template_body: str, parameters: Mapping[str, str]
) -> dict[str, str]:
    """``parameters`` over the template's defaults (as the endpoint reads the template)."""
    declared = {
        p["ParameterKey"]: p.get("DefaultValue")
        for p in cfn.get_template_summary(TemplateBody=template_body).get("Parameters", [])
        if "ParameterKey" in p
    }
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"the template has no parameter(s) {', '.join(unknown)}")
    defaults = {key: str(value) for key, value in declared.items() if value is not None}
    return {**defaults, **parameters}


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
    except _ENDPOINT_ERRORS as error:
        raise DeployError(
            f"deleting stack {stack_name} failed: {describe_error(error)}",
            stack_name=stack_name,
            status=_status_if_known(cfn, stack_name),
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
    for delay in [0.0, *_poll_delays(timeout)]:
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
                f"deleting stack {stack_name} failed{_stack_reason(stacks[0])}",
                stack_name=stack_name,
                status=status,
                failures=stack_failures(cfn, stack_name),
            )
    raise DeployError(f"stack {stack_name} was still being deleted after {timeout:g} s", stack_name=stack_name)
