"""STS calls: who the credentials belong to."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient


def account_id(sts: STSClient) -> str:
    """The account of the caller's credentials."""
    return sts.get_caller_identity()["Account"]
