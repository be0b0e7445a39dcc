"""Deploy, destroy and inspect the tripstream stack: the operations behind ``tripstream deploy|destroy|status``.

Plain functions over :class:`~tripstream.aws.clients.AwsClients`; the CLI only parses options and prints.

- :func:`plan` is offline (no AWS call at all, no credentials needed): it builds the Lambda package,
  writes the packaged template, the parameters and the zip to a folder, and lists what the stack
  would hold. ``deploy --dry-run`` is exactly that.
- :func:`deploy` does the same and then uploads the package to the artefacts bucket (created if
  absent) and creates or updates the stack through a change set (:mod:`tripstream.aws.cloudformation`).
- :func:`destroy` deletes the stack; the tables and the bucket have ``DeletionPolicy: Retain`` and
  stay, unless ``delete_tables`` (the tables) is asked for.
- ``status`` is :mod:`tripstream.infra.status`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tripstream.aws.cloudformation import DeployError, DeployResult, delete_stack, describe_stack
from tripstream.aws.dynamodb import delete_table_if_present, describe_table
from tripstream.aws.iam import detach_role_policy_if_attached
from tripstream.aws.s3 import object_exists, upload_artifact
from tripstream.aws.stack_deploy import deploy_stack
from tripstream.aws.sts import account_id
from tripstream.infra.artifacts import LambdaPackage, LambdaTarget, build_lambda_package
from tripstream.infra.stack import artifact_bucket_name
from tripstream.infra.template import (
    DEFAULT_STACK_NAME,
    TemplateError,
    effective_parameters,
    load_template,
    resource_names,
    resources_of_type,
    template_body,
)

if TYPE_CHECKING:
    from tripstream.aws.clients import AwsClients

DEFAULT_BUILD_DIR: Final = Path("build")
PLACEHOLDER_ACCOUNT: Final = "<account-id>"
PACKAGED_TEMPLATE_NAME: Final = "template.packaged.yaml"
PARAMETERS_FILE_NAME: Final = "parameters.json"
TABLE_TYPE: Final = "AWS::DynamoDB::Table"


@dataclass(frozen=True)
class PlannedResource:
    logical_id: str
    resource_type: str
    name: str  # the physical name, or "(generated)"
    condition: str | None
    retained: bool


@dataclass(frozen=True)
class Plan:
    """What a deploy would do: the files written, the parameters, the resources."""

    stack_name: str
    region: str
    build_dir: Path
    package: LambdaPackage
    artifact_bucket: str
    parameters: dict[str, str]
    resources: list[PlannedResource]

    @property
    def template_path(self) -> Path:
        return self.build_dir / PACKAGED_TEMPLATE_NAME

    @property
    def parameters_path(self) -> Path:
        return self.build_dir / PARAMETERS_FILE_NAME

    @property
    def package_path(self) -> Path:
        """The package's copy in the build folder, under its content-addressed name."""
        return self.build_dir / Path(self.package.key).name

    @property
    def artifact_key(self) -> str:
        return self.package.key

    @property
    def included(self) -> list[PlannedResource]:
        return [r for r in self.resources if r.condition is None or _condition_true(r.condition, self.parameters)]


def _condition_true(condition: str, parameters: Mapping[str, str]) -> bool:
    """The template's conditions, for the resources that carry one (evaluated from the parameters)."""
    checks: dict[str, Callable[[], bool]] = {
        "IsLambdaRuntime": lambda: parameters.get("LocalRuntime", "false") == "false",
        "HasAlarmEmail": lambda: bool(parameters.get("AlarmEmail", "")),
    }
    check = checks.get(condition)
    return True if check is None else check()


def lambda_target(template: Mapping[str, Any] | None = None) -> LambdaTarget:
    """The runtime and architecture of the template's functions (they must agree)."""
    template = template or load_template()
    targets = {
        (fn["Properties"]["Runtime"], tuple(fn["Properties"].get("Architectures", ["x86_64"])))
        for fn in resources_of_type(template, "AWS::Lambda::Function").values()
    }
    if len(targets) != 1:
        raise TemplateError(f"the functions must share one runtime and architecture, found {sorted(targets)}")
    ((runtime, architectures),) = targets
    return LambdaTarget.from_runtime(runtime, architectures[0])


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tripstream" / "lambda"


@dataclass(frozen=True)
class DeployRequest:
    """What the user asked to deploy: the same for a dry run (`plan`) and a deploy."""

    stack_name: str = DEFAULT_STACK_NAME
    parameters: Mapping[str, str] | None = None
    bucket_name: str | None = None
    artifact_bucket: str | None = None
    build_dir: Path = DEFAULT_BUILD_DIR
    cache_dir: Path | None = None
    package: LambdaPackage | None = None
    local_runtime: bool = False
    log: Callable[[str], None] | None = None


def plan(request: DeployRequest, *, region: str, account_id: str | None = None) -> Plan:
    """Build (or take from the cache) the package and write what a deploy sends, without any AWS call.

    ``account_id`` only fills in names derived from it; unknown (a dry run) it shows as ``<account-id>``.
    """
    template = load_template()
    given = dict(request.parameters or {})
    if request.bucket_name:
        given["BucketName"] = request.bucket_name
    package = request.package or build_lambda_package(
        request.cache_dir or default_cache_dir(), target=lambda_target(template), log=request.log
    )
    account = account_id or PLACEHOLDER_ACCOUNT
    bucket = request.artifact_bucket or artifact_bucket_name(account, region)
    local_runtime = "true" if request.local_runtime else "false"
    given.update({"ArtifactBucket": bucket, "ArtifactKey": package.key, "LocalRuntime": local_runtime})
    effective = effective_parameters(template, given)

    request.build_dir.mkdir(parents=True, exist_ok=True)
    the_plan = Plan(
        stack_name=request.stack_name,
        region=region,
        build_dir=request.build_dir,
        package=package,
        artifact_bucket=bucket,
        parameters=effective,
        resources=_planned_resources(template, effective, request.stack_name, region, account),
    )
    if not the_plan.package_path.exists() or the_plan.package_path.stat().st_size != package.zipped_bytes:
        shutil.copyfile(package.path, the_plan.package_path)
    the_plan.template_path.write_text(template_body(), encoding="utf-8")
    rows = [{"ParameterKey": key, "ParameterValue": value} for key, value in sorted(effective.items())]
    the_plan.parameters_path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return the_plan


def _planned_resources(
    template: Mapping[str, Any], parameters: Mapping[str, str], stack_name: str, region: str, account: str
) -> list[PlannedResource]:
    names = resource_names(template)
    derived = {
        "TripsBucket": parameters.get("BucketName") or f"tripstream-{account}-{region}",
        "Dashboard": f"{stack_name}-{region}",
        "AlarmTopic": f"{stack_name}-alarms",
    }
    planned = []
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        name = names.get(logical_id) or derived.get(logical_id)
        if name is None:
            for key in ("AlarmName", "LogGroupName"):
                value = properties.get(key)
                if isinstance(value, str):
                    name = value
                elif isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
                    name = value["Fn::Sub"].replace("${AWS::StackName}", stack_name)
        planned.append(
            PlannedResource(
                logical_id=logical_id,
                resource_type=resource["Type"],
                name=name or "(generated)",
                condition=resource.get("Condition"),
                retained=resource.get("DeletionPolicy") == "Retain",
            )
        )
    return planned


def format_plan(the_plan: Plan) -> str:
    package = the_plan.package
    lines = [
        f"dry run: nothing was sent to AWS (stack {the_plan.stack_name}, region {the_plan.region})",
        f"wrote   {the_plan.template_path}",
        f"        {the_plan.parameters_path}",
        f"        {the_plan.package_path} ({package.zipped_bytes / 2**20:.1f} MiB zipped, "
        f"{package.unzipped_bytes / 2**20:.1f} MiB unzipped of Lambda's 250; "
        f"{'built' if package.built else 'from the cache'})",
        f"upload  s3://{the_plan.artifact_bucket}/{the_plan.artifact_key}",
        "",
        "parameters",
        *(f"  {key:<32}{value}" for key, value in sorted(the_plan.parameters.items())),
        "",
        f"resources ({len(the_plan.included)} to create)",
    ]
    for resource in the_plan.resources:
        included = resource in the_plan.included
        marks = []
        if resource.retained:
            marks.append("retained on delete")
        if not included:
            marks.append(f"left out: {resource.condition} is false")
        lines.append(
            f"  {'+' if included else '-'} {resource.logical_id:<30}{resource.resource_type:<34}{resource.name}"
            + (f"  ({'; '.join(marks)})" if marks else "")
        )
    return "\n".join(lines)


# --- deploy ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    plan: Plan
    result: DeployResult
    uploaded: bool


def deploy(clients: AwsClients, request: DeployRequest) -> Deployment:
    """Build, upload, and create or update the stack through a change set; waits for the end.

    Raises :class:`~tripstream.aws.cloudformation.DeployError` naming the failing resources.
    """
    the_plan = plan(request, region=clients.region, account_id=account_id(clients.sts))
    log = request.log
    uploaded = _upload(clients, the_plan)
    if log is not None:
        log(
            f"package {'uploaded to' if uploaded else 'already in'} s3://{the_plan.artifact_bucket}/{the_plan.artifact_key}"
        )
    result = deploy_stack(
        clients.cloudformation,
        stack_name=request.stack_name,
        template_body=template_body(),
        parameters=the_plan.parameters,
    )
    return Deployment(plan=the_plan, result=result, uploaded=uploaded)


def _upload(clients: AwsClients, the_plan: Plan) -> bool:
    if object_exists(clients.s3, the_plan.artifact_bucket, the_plan.artifact_key):
        return False
    upload_artifact(
        clients.s3,
        bucket=the_plan.artifact_bucket,
        key=the_plan.artifact_key,
        body=the_plan.package_path.read_bytes(),
        region=clients.region,
    )
    return True


# --- destroy --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destruction:
    stack_deleted: bool
    tables_retained: list[str] = field(default_factory=list)
    tables_deleted: list[str] = field(default_factory=list)
    bucket_retained: str | None = None


def table_names(template: Mapping[str, Any] | None = None) -> list[str]:
    template = template or load_template()
    names = resource_names(template)
    return sorted(names[logical_id] for logical_id in resources_of_type(template, TABLE_TYPE))


def destroy(clients: AwsClients, *, stack_name: str = DEFAULT_STACK_NAME, delete_tables: bool = False) -> Destruction:
    """Delete the stack. The tables and the bucket are retained (DeletionPolicy Retain) and stay;
    ``delete_tables`` then deletes the tables through DynamoDB. The bucket is never deleted here: it
    holds the uploads and the rejects (empty and delete it yourself).
    """
    stack = describe_stack(clients.cloudformation, stack_name)
    bucket = _output(stack, "BucketName")
    try:
        deleted = delete_stack(clients.cloudformation, stack_name)
    except DeployError as error:
        if "DeleteConflict" not in str(error) or _is_aws(clients):
            raise
        # moto 5.2 deletes a stack's roles before the customer managed policies attached to them
        # (AWS deletes in reverse dependency order: the policy, then the role) and fails with
        # DeleteConflict. Only on an emulator: detach this stack's named policies, delete again.
        # moto has by then marked the stack deleted; the retry finds none, or finishes the job.
        _detach_named_policies(clients)
        delete_stack(clients.cloudformation, stack_name)
        deleted = describe_stack(clients.cloudformation, stack_name) is None
    tables = table_names()
    existing = [name for name in tables if _table_exists(clients, name)]
    removed: list[str] = []
    if delete_tables:
        for name in existing:
            if delete_table_if_present(clients.dynamodb, name):
                removed.append(name)
    return Destruction(
        stack_deleted=deleted,
        tables_retained=[name for name in existing if name not in removed],
        tables_deleted=removed,
        bucket_retained=bucket,
    )


def _is_aws(clients: AwsClients) -> bool:
    endpoint = clients.cloudformation.meta.endpoint_url
    return (
        endpoint.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0].endswith((".amazonaws.com", ".amazonaws.com.cn"))
    )


def _detach_named_policies(clients: AwsClients) -> None:
    """Detach the template's customer managed policies from their roles (the emulator workaround in destroy)."""
    template = load_template()
    names = resource_names(template)
    account = account_id(clients.sts)
    for logical_id, policy in resources_of_type(template, "AWS::IAM::ManagedPolicy").items():
        arn = f"arn:aws:iam::{account}:policy/{names[logical_id]}"
        for role in policy["Properties"].get("Roles", []):
            role_name = names.get(role.get("Ref", "")) if isinstance(role, dict) else None
            if role_name is None:
                continue
            detach_role_policy_if_attached(clients.iam, role_name, arn)  # False: already detached or deleted


def _output(stack: Any, key: str) -> str | None:
    if stack is None:
        return None
    for output in stack.get("Outputs", []):
        if output.get("OutputKey") == key:
            return str(output.get("OutputValue"))
    return None


def _table_exists(clients: AwsClients, name: str) -> bool:
    return describe_table(clients.dynamodb, name) is not None


__all__ = [
    "Deployment",
    "Destruction",
    "Plan",
    "PlannedResource",
    "default_cache_dir",
    "deploy",
    "destroy",
    "format_plan",
    "lambda_target",
    "plan",
    "table_names",
]
