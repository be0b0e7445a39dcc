"""SQS calls of tripstream: what the local runtime sends to the dead-letter and on-failure queues."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef


def send_message(
    sqs: SQSClient, queue_url: str, body: str, attributes: Mapping[str, MessageAttributeValueTypeDef] | None = None
) -> str:
    """Send one message; returns its message id."""
    if attributes:
        answer = sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=dict(attributes))
    else:
        answer = sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    return answer["MessageId"]
