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
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from tripstream.aws.cloudformation import (
    DEFAULT_TIMEOUT_SECONDS,
    ENDPOINT_ERRORS,
    DeployError,
    DeployResult,
    Operation,
    delete_stack,
    describe_error,
    describe_stack,
    outputs_of,
    poll_delays,
    stack_failures,
    stack_reason,
    status_if_known,
    wait_for_stack,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType, ChangeSetTypeType
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackTypeDef

DeployMethod = Literal["auto", "change_set", "direct"]

MAX_TEMPLATE_BODY_BYTES: Final = 51_200  # larger templates must be uploaded and passed as TemplateURL
_SUCCESS_STATUSES: Final = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
_NO_CHANGE_MARKERS: Final = ("didn't contain changes", "No updates are to be performed")
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

_change_set_support: dict[str, bool] = {}
_change_set_support_lock = threading.Lock()


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
        stack = wait_for_stack(cfn, stack_name, timeout=120.0)
        return stack is not None and outputs_of(stack).get("Probe") == "change-sets-work"
    except ENDPOINT_ERRORS:
        return False
    finally:
        with contextlib.suppress(*ENDPOINT_ERRORS):
            cfn.delete_stack(StackName=stack_name)


def _change_set_name() -> str:
    return f"tripstream-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def _wait_for_change_set(
    cfn: CloudFormationClient, stack_name: str, change_set_name: str, timeout: float
) -> tuple[str, str]:
    """Poll until the change set is created or failed: (status, status reason)."""
    for delay in [0.0, *poll_delays(timeout)]:
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
    with _as_deploy_error(cfn, stack_name):
        started = time.monotonic()
        existing = _settled_stack(cfn, stack_name, timeout)
        use_change_set = method == "change_set" or (method == "auto" and change_sets_work(cfn))
        used: Literal["change_set", "direct"] = "change_set" if use_change_set else "direct"
        # Every parameter is passed, the defaults too: "left out" then means "the default" on every
        # endpoint (moto only re-resolves the parameters passed, so a value reverting to its default
        # by being left out would never reach the resources there).
        effective = _effective_parameters(cfn, template_body, parameters)
        change = _StackChange(stack_name, template_body, effective, list(capabilities), timeout)
        operation: Operation = (
            "CREATE" if existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"
        )
        if use_change_set:
            executed = _deploy_with_change_set(cfn, change, operation)
        else:
            executed = _deploy_directly(cfn, change, existing)

        final = describe_stack(cfn, stack_name) if not (executed and wait) else wait_for_stack(cfn, stack_name, timeout)
        if final is None:
            raise DeployError(f"stack {stack_name} disappeared while being deployed", stack_name=stack_name)
        status = final["StackStatus"]
        if executed and status not in _SUCCESS_STATUSES and not (not wait and status.endswith("_IN_PROGRESS")):
            raise DeployError(
                f"deploying stack {stack_name} ended in {status}{stack_reason(final)}",
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
            outputs=outputs_of(final),
        )


@contextlib.contextmanager
def _as_deploy_error(cfn: CloudFormationClient, stack_name: str) -> Iterator[None]:
    """An endpoint's error while deploying, as a `DeployError` naming the failing resources and their reasons."""
    try:
        yield
    except ENDPOINT_ERRORS as error:
        status = status_if_known(cfn, stack_name)
        raise DeployError(
            f"deploying stack {stack_name} failed: {describe_error(error)}",
            stack_name=stack_name,
            status=status,
            failures=stack_failures(cfn, stack_name) if status is not None else (),
        ) from error


def _settled_stack(cfn: CloudFormationClient, stack_name: str, timeout: float) -> StackTypeDef | None:
    """The stack once no operation is running on it; ``None`` if there is (or now is) no stack."""
    stack = describe_stack(cfn, stack_name)
    if (
        stack is not None
        and stack["StackStatus"].endswith("_IN_PROGRESS")
        and (stack["StackStatus"] != "REVIEW_IN_PROGRESS")
    ):
        stack = wait_for_stack(cfn, stack_name, timeout)
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
            f"stack {stack_name} is in {stack['StackStatus']}{stack_reason(stack)}: "
            "fix or delete it before deploying again",
            stack_name=stack_name,
            status=stack["StackStatus"],
            failures=stack_failures(cfn, stack_name),
        )
    return stack


@dataclass(frozen=True)
class _StackChange:
    """What a deploy asks of CloudFormation, however it asks (a change set, or CreateStack/UpdateStack)."""

    stack_name: str
    template_body: str
    parameters: Mapping[str, str]  # every parameter, the defaults too
    capabilities: list[CapabilityType]
    timeout: float

    @property
    def parameter_list(self) -> list[ParameterTypeDef]:
        return [{"ParameterKey": key, "ParameterValue": value} for key, value in self.parameters.items()]


def _deploy_with_change_set(cfn: CloudFormationClient, change: _StackChange, operation: Operation) -> bool:
    """Create, wait for and execute a change set; ``False`` when it holds no changes (it is then deleted)."""
    stack_name, change_set_name = change.stack_name, _change_set_name()
    change_set_type: ChangeSetTypeType = "CREATE" if operation == "CREATE" else "UPDATE"
    try:
        cfn.create_change_set(
            StackName=stack_name,
            ChangeSetName=change_set_name,
            ChangeSetType=change_set_type,
            TemplateBody=change.template_body,
            Parameters=change.parameter_list,
            Capabilities=change.capabilities,
            Description="tripstream deploy",
        )
    except ClientError as error:
        if _is_no_change(error.response.get("Error", {}).get("Message", "")):
            return False
        raise
    status, reason = _wait_for_change_set(cfn, stack_name, change_set_name, change.timeout)
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


def _deploy_directly(cfn: CloudFormationClient, change: _StackChange, existing: StackTypeDef | None) -> bool:
    """CreateStack/UpdateStack, for endpoints whose change sets do not work (see the module docstring)."""
    if existing is not None and existing["StackStatus"] == "REVIEW_IN_PROGRESS":
        delete_stack(cfn, change.stack_name, timeout=change.timeout)  # a change set never executed: nothing in it
        existing = None
    if existing is None:
        cfn.create_stack(
            StackName=change.stack_name,
            TemplateBody=change.template_body,
            Parameters=change.parameter_list,
            Capabilities=change.capabilities,
        )
        return True
    if _deployed_as(cfn, existing, change.template_body, change.parameters):
        return False
    try:
        cfn.update_stack(
            StackName=change.stack_name,
            TemplateBody=change.template_body,
            Parameters=change.parameter_list,
            Capabilities=change.capabilities,
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
