"""SQS calls of tripstream: the dead-letter and on-failure queues, and the live runtime's S3 event queue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from tripstream.aws.errors import error_code

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


@dataclass(frozen=True)
class Message:
    body: str
    receipt_handle: str
    receive_count: int


def ensure_queue(sqs: SQSClient, name: str, *, visibility_timeout: int) -> tuple[str, str]:
    """Create the queue (idempotent) and return its URL and ARN."""
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive_messages(sqs: SQSClient, queue_url: str, *, wait_seconds: int = 20, limit: int = 1) -> list[Message]:
    """Long-poll the queue (the client's read timeout must exceed wait_seconds)."""
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=limit,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )
    return [
        Message(
            body=m.get("Body", ""),
            receipt_handle=m["ReceiptHandle"],
            receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
        )
        for m in answer.get("Messages", [])
    ]


def delete_message(sqs: SQSClient, queue_url: str, receipt_handle: str) -> None:
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)


def queue_depth(sqs: SQSClient, queue_url: str) -> int:
    """Messages waiting in the queue (approximate, as SQS counts them)."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"].get("ApproximateNumberOfMessages", "0"))


def queue_url_or_none(sqs: SQSClient, name: str) -> str | None:
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if error_code(error) in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
            return None
        raise


def set_queue_tags(sqs: SQSClient, queue_url: str, tags: Mapping[str, str]) -> None:
    sqs.tag_queue(QueueUrl=queue_url, Tags=dict(tags))


def queue_tags(sqs: SQSClient, queue_url: str) -> dict[str, str]:
    return dict(sqs.list_queue_tags(QueueUrl=queue_url).get("Tags", {}))
