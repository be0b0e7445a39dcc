"""IAM calls of tripstream (only the emulator workaround of `destroy` needs one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


def detach_role_policy_if_attached(iam: IAMClient, role_name: str, policy_arn: str) -> bool:
    """Detach a managed policy from a role; False when it was not attached (or either is gone already)."""
    try:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    except ClientError:
        return False
    return True
