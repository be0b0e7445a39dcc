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
    message_id: str = ""
    sent_timestamp_ms: int | None = None  # when SQS accepted it (epoch milliseconds)


def ensure_queue(sqs: SQSClient, name: str, *, visibility_timeout: int) -> tuple[str, str]:
    """Create the queue (idempotent) and return its URL and ARN."""
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive_messages(
    sqs: SQSClient,
    queue_url: str,
    *,
    wait_seconds: int = 20,
    limit: int = 1,
    visibility_timeout: int | None = None,
) -> list[Message]:
    """Long-poll the queue (the client's read timeout must exceed wait_seconds); `visibility_timeout` replaces the
    queue's for these messages (0: a peek, they stay visible)."""
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=limit,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        **({} if visibility_timeout is None else {"VisibilityTimeout": visibility_timeout}),  # type: ignore[arg-type]
    )
    messages = []
    for m in answer.get("Messages", []):
        attributes = m.get("Attributes", {})
        sent = attributes.get("SentTimestamp")
        messages.append(
            Message(
                body=m.get("Body", ""),
                receipt_handle=m["ReceiptHandle"],
                receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
                message_id=m.get("MessageId", ""),
                sent_timestamp_ms=int(sent) if sent else None,
            )
        )
    return messages


def release_message(sqs: SQSClient, queue_url: str, receipt_handle: str) -> None:
    """Make a received message visible again at once (its visibility timeout set to 0)."""
    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)


@dataclass(frozen=True)
class QueueCounts:
    """SQS's approximate counts of a queue's messages."""

    visible: int
    in_flight: int  # received and not deleted yet (invisible until their visibility timeout)
    delayed: int


def queue_counts(sqs: SQSClient, queue_url: str) -> QueueCounts:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return QueueCounts(
        visible=int(attributes.get("ApproximateNumberOfMessages", "0")),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", "0")),
    )


def delete_message(sqs: SQSClient, queue_url: str, receipt_handle: str) -> None:
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)


def queue_depth(sqs: SQSClient, queue_url: str) -> int:
    """Messages waiting in the queue (approximate, as SQS counts them)."""
    return queue_counts(sqs, queue_url).visible


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
