"""moto's IAM enforcement made to judge what AWS judges, so that a policy statement too narrow fails locally.

moto enforces IAM only once `INITIAL_NO_AUTH_ACTION_COUNT` requests have passed (`POST /moto-api/reset-auth` sets
it at run time), and then gets five things wrong that a stack scoped to its own ARNs runs into:

- Kinesis, DynamoDB and Lambda requests are checked against the resource `"*"`, so a statement scoped to a stream,
  table or function ARN denies everything. Here: the stream's ARN (`StreamName` or `StreamARN`), the table's
  (`TableName`; each table of a BatchWriteItem/BatchGetItem; each item of a TransactWriteItems as its own action,
  `PutItem`/`UpdateItem`/`DeleteItem`/`ConditionCheckItem`, on its own table, as IAM knows them; there is no
  `dynamodb:TransactWriteItems` action), the function's (`Invoke` checked as `lambda:InvokeFunction`, its real name).
- CloudFormation ignores a role's `ManagedPolicyArns`: attached here, as IAM attaches them.
- A trust policy with a service principal (`"Service": "lambda.amazonaws.com"`) crashes the AssumeRole check. Here
  a service principal trusts the emulator's administrator (the local Lambda service acts for the service), and no
  one else.
- A request without a body (Lambda's GETs: GetFunctionConfiguration, ListFunctions) is checked against a signature
  of moto's `data`, which then holds the request's headers, as a form body: every such request failed
  `SignatureDoesNotMatch`. Here it is checked with the empty payload the client signed.
- The emulator's own key (`testing`, what the CLI and `up`'s printed credentials use) is an administrator:
  enforcement changes nothing for the CLI, only for the functions' role credentials.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote, unquote, urlparse

from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam import access_control
from moto.iam import models as iam_models
from moto.kinesis import utils as kinesis_utils
from moto.utilities.utils import get_partition

from tripstream.local.emulator.moto_patches.dispatch import json_body
from tripstream.local.emulator.moto_patches.version import parameter_names, shape_error

ADMIN_ACCESS_KEY: Final = "testing"
ADMIN_USER: Final = "tripstream-local-admin"
_ADMINISTRATOR_POLICY: Final = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
_TRANSACT_ACTIONS: Final = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_MARKER: Final = "_tripstream_iam"
_originals: dict[str, Any] = {}


class _AdministratorKey:
    """The emulator's own key: an administrator of the default account (no IAM user needs to exist)."""

    def __init__(self, account_id: str, partition: str) -> None:
        self.account_id = account_id
        self.partition = partition

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:user/{ADMIN_USER}"

    def create_credentials(self) -> Any:
        credentials_class: Any = vars(access_control)["Credentials"]  # botocore's, as moto signs with it
        return credentials_class(ADMIN_ACCESS_KEY, ADMIN_ACCESS_KEY)

    def collect_policies(self) -> list[str]:
        return [_ADMINISTRATOR_POLICY]


def _check_shapes() -> None:
    problems = []
    if parameter_names(access_control.create_access_key) != ("account_id", "partition", "access_key_id", "headers"):
        problems.append("access_control.create_access_key's parameters changed")
    if parameter_names(ActionAuthenticatorMixin._authenticate_and_authorize_normal_action) != ("self", "resource"):
        problems.append("_authenticate_and_authorize_normal_action's parameters changed")
    if not hasattr(access_control.IAMPolicyStatement, "_check_principal"):
        problems.append("IAMPolicyStatement._check_principal is gone")
    if not hasattr(kinesis_utils, "decompose_shard_iterator"):
        problems.append("kinesis.utils.decompose_shard_iterator is gone")
    if not hasattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT"):
        problems.append("moto.settings.INITIAL_NO_AUTH_ACTION_COUNT is gone")
    if problems:
        raise shape_error("IAM access control", problems)


# -- what a request is checked against


def _json_body(response: Any) -> dict[str, Any]:
    body = json_body(response)  # parsed once for the request, shared with moto's _get_param
    return body if isinstance(body, dict) else {}


def _arn(response: Any, service: str, resource: str) -> str:
    region = response.region
    return f"arn:{get_partition(region)}:{service}:{region}:{response.current_account}:{resource}"


def _kinesis_checks(response: Any, action: str) -> list[tuple[str, str]]:
    body = _json_body(response)
    if arn := body.get("StreamARN"):
        return [(action, str(arn))]
    name = body.get("StreamName")
    if not name and (iterator := body.get("ShardIterator")):  # GetRecords: the iterator names its stream
        try:
            name = kinesis_utils.decompose_shard_iterator(str(iterator))[0]
        except (ValueError, IndexError, UnicodeDecodeError):
            name = None
    if name:
        return [(action, _arn(response, "kinesis", f"stream/{name}"))]
    return [(action, "*")]


def _dynamodb_checks(response: Any, action: str) -> list[tuple[str, str]]:
    body = _json_body(response)

    def table(name: str) -> str:
        return name if name.startswith("arn:") else _arn(response, "dynamodb", f"table/{name}")

    if action in ("BatchWriteItem", "BatchGetItem"):
        return [(action, table(name)) for name in body.get("RequestItems") or {}] or [(action, "*")]
    if action in ("TransactWriteItems", "TransactGetItems"):
        checks = []
        for item in body.get("TransactItems") or []:
            for kind, request in item.items():
                item_action = "GetItem" if kind == "Get" else _TRANSACT_ACTIONS.get(kind, kind)
                checks.append((item_action, table(str(request.get("TableName", "*")))))
        return checks or [(action, "*")]
    if name := body.get("TableName"):
        return [(action, table(str(name)))]
    return [(action, "*")]


def _lambda_checks(response: Any, action: str) -> list[tuple[str, str]]:
    if action != "Invoke":
        return [(action, "*")]
    name = unquote(response.path.rstrip("/").rsplit("/", 2)[-2])
    arn = name if name.startswith("arn:") else _arn(response, "lambda", f"function:{name}")
    return [("InvokeFunction", arn)]


_CHECKS: Final[dict[str, Callable[[Any, str], list[tuple[str, str]]]]] = {
    "kinesis": _kinesis_checks,
    "dynamodb": _dynamodb_checks,
    "awslambda": _lambda_checks,
}


#: (access key, action, resource) already judged permitted. A decision depends only on the key's policies (moto
#: passes no request data to a policy's evaluation), so it holds until IAM changes: any IAM or CloudFormation
#: request empties it (and a judgement begun before such a request is not kept). Judging each of a transaction's
#: 100 items anew was ~13 % of the emulator's CPU.
_permitted: set[tuple[str, str, str]] = set()
_policy_changes = itertools.count()
_policy_generation = [next(_policy_changes)]
_POLICY_SERVICES: Final = frozenset({"iam", "cloudformation"})


def _authorize(self: Any, resource: str = "*") -> None:
    service = getattr(self, "service_name", "") or ""
    if service in _POLICY_SERVICES:
        _policy_generation[0] = next(_policy_changes)
        _permitted.clear()
    checks_of = _CHECKS.get(service)
    if checks_of is None or resource != "*":
        _originals["authorize"](self, resource)
        return
    if ActionAuthenticatorMixin.request_count < moto_settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return

    parsed = urlparse(self.uri)
    # The path as the client signed it: moto holds it decoded, and a function named by its ARN (`arn%3Aaws...`)
    # would otherwise never match its signature.
    path = quote(unquote(parsed.path), safe="/-_.~") + (f"?{parsed.query}" if parsed.query else "")
    access_key_id = _access_key_id(self.headers)
    generation = _policy_generation[0]
    signature_checked = False
    for action, arn in dict.fromkeys(checks_of(self, self._get_action())):
        decision = (access_key_id, action, arn)
        if signature_checked and decision in _permitted:
            continue
        request = access_control.IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=path,
            # A request without a body (Lambda's GETs) was signed with an empty payload: moto's `data` then holds
            # the request's headers, which would be signed as a form body (every such request refused).
            data=self.data if self.raw_body else {},
            body=self.raw_body,
            headers=self.headers,
            action=action,
        )
        if not signature_checked:  # every request proves its key, whatever was judged before
            request.check_signature()
            signature_checked = True
            if decision in _permitted:
                continue
        request.check_action_permitted(arn)
        if generation == _policy_generation[0]:
            _permitted.add(decision)


def _access_key_id(headers: Any) -> str:
    """The key a request is signed with (`Credential=<key>/<date>/...` in its Authorization header)."""
    authorization = str(headers.get("Authorization") or "")
    return authorization.partition("Credential=")[2].partition("/")[0]


# -- who is asking, whom a role trusts


def _create_access_key(account_id: str, partition: str, access_key_id: str, headers: dict[str, str]) -> Any:
    if access_key_id == ADMIN_ACCESS_KEY:
        return _AdministratorKey(account_id, partition)
    return _originals["create_access_key"](account_id, partition, access_key_id, headers)


def _check_principal(self: Any, principal: str) -> bool:
    expected = self._statement.get("Principal")
    if isinstance(expected, dict) and "AWS" not in expected:
        # A service principal: the local Lambda service (the administrator) assumes the role for the service.
        return "Service" in expected and principal.endswith(f":user/{ADMIN_USER}")
    return bool(_originals["check_principal"](self, principal))


# -- CloudFormation: a role's ManagedPolicyArns


def _create_role(
    cls: Any, /, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
) -> Any:
    role = _originals["create_role"](resource_name, cloudformation_json, account_id, region_name, **kwargs)
    backend = iam_models.iam_backends[account_id][get_partition(region_name)]
    for policy_arn in cloudformation_json.get("Properties", {}).get("ManagedPolicyArns") or []:
        if policy_arn:  # an `!If [..., !Ref AWS::NoValue]` left out
            backend.attach_role_policy(policy_arn, role.name)
    return role


def apply() -> None:
    """Patch moto's access control and IAM roles from CloudFormation. Idempotent."""
    if getattr(access_control, _MARKER, False):
        return
    _check_shapes()
    _originals["authorize"] = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action
    _originals["create_access_key"] = access_control.create_access_key
    _originals["check_principal"] = access_control.IAMPolicyStatement._check_principal
    _originals["create_role"] = iam_models.Role.create_from_cloudformation_json
    _originals["create_role_descriptor"] = vars(iam_models.Role)["create_from_cloudformation_json"]
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _authorize  # type: ignore[method-assign]
    access_control.create_access_key = _create_access_key
    access_control.IAMPolicyStatement._check_principal = _check_principal  # type: ignore[method-assign]
    setattr(iam_models.Role, "create_from_cloudformation_json", classmethod(_create_role))  # noqa: B010
    setattr(access_control, _MARKER, True)


def revert() -> None:
    if not getattr(access_control, _MARKER, False):
        return
    _permitted.clear()
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _originals["authorize"]  # type: ignore[method-assign]
    access_control.create_access_key = _originals["create_access_key"]
    access_control.IAMPolicyStatement._check_principal = _originals["check_principal"]  # type: ignore[method-assign]
    setattr(iam_models.Role, "create_from_cloudformation_json", _originals["create_role_descriptor"])  # noqa: B010
    setattr(access_control, _MARKER, False)
