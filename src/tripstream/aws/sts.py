"""STS calls: who the credentials belong to; a role's temporary credentials."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tripstream.aws.clients import Credentials

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient


def account_id(sts: STSClient) -> str:
    """The account of the caller's credentials."""
    return sts.get_caller_identity()["Account"]


def assume_role(sts: STSClient, role_arn: str, session_name: str, duration_seconds: int = 3600) -> Credentials:
    """Temporary credentials of `role_arn` (what Lambda gives a function of its execution role)."""
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64], DurationSeconds=duration_seconds)
    credentials = issued["Credentials"]
    return Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
