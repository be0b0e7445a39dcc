"""The bucket's ObjectCreated notifications under `up`: an SQS queue in the emulator, filtered as the template says.

The template's bucket notifies the producer Lambda (LambdaConfigurations), but only on AWS: moto would try to run
the Lambda in Docker, and its CloudFormation ignores a bucket's NotificationConfiguration anyway. So the live
runtime creates a queue, points the bucket at it with put_bucket_notification_configuration (QueueConfigurations
carrying the template's own events and filters) and long-polls it. What moto 5.2 delivers there (measured):

- an `s3:TestEvent` message without `Records` when the configuration is set (skipped);
- for a multipart upload, TWO messages for one object: `ObjectCreated:Put` and then
  `ObjectCreated:CompleteMultipartUpload`, same key, ETag with a `-N` part-count suffix. Real S3 sends only the
  second, so a `Put` whose ETag has a multipart suffix is dropped (a real PutObject never has one);
- keys quote_plus-encoded as S3 does (the handler unquotes them); no `sequencer`; filters case-sensitive.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson

from tripstream.aws.clients import AwsClients
from tripstream.aws.s3 import put_queue_notifications
from tripstream.aws.sqs import ensure_queue, queue_tags, queue_url_or_none, set_queue_tags

EVENTS_QUEUE: Final = "tripstream-live-s3-events"
# Where the live runtime leaves what it did with each object, for `tripstream run` to read.
RESULTS_PREFIX: Final = "tripstream-live/results/"
HEARTBEAT_TAG: Final = "tripstream-live-heartbeat"
HEARTBEAT_SECONDS: Final = 5.0
_MULTIPART_ETAG = re.compile(r"-\d+$")


@dataclass(frozen=True)
class ObjectEvent:
    key: str  # decoded
    etag: str
    event: dict[str, Any]  # what the producer is invoked with: one record, as Lambda delivers S3 events


def setup_notifications(
    clients: AwsClients, bucket: str, filters: Sequence[Mapping[str, Any]], *, visibility_timeout: int
) -> tuple[str, str]:
    """Create the events queue and point the bucket's notifications at it; returns the queue's URL and ARN."""
    url, arn = ensure_queue(clients.sqs, EVENTS_QUEUE, visibility_timeout=visibility_timeout)
    configurations = [
        {
            "QueueArn": arn,
            "Events": list(f["Events"]),
            **({"Filter": {"Key": {"FilterRules": list(f["FilterRules"])}}} if f["FilterRules"] else {}),
        }
        for f in filters
    ]
    put_queue_notifications(clients.s3, bucket, configurations)
    return url, arn


def matches(key: str, filters: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an ObjectCreated notification with these filters fires for `key` (case-sensitive, as S3)."""
    for f in filters:
        rules = {rule["Name"].lower(): rule["Value"] for rule in f["FilterRules"]}
        if key.startswith(rules.get("prefix", "")) and key.endswith(rules.get("suffix", "")):
            return True
    return False


def parse_message(body: str) -> list[ObjectEvent]:
    """The object events of one queue message (none for a test event or a moto duplicate)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    events: list[ObjectEvent] = []
    for record in document.get("Records", []) if isinstance(document, dict) else []:
        s3 = record.get("s3", {})
        key = unquote_plus(str(s3.get("object", {}).get("key", "")))
        etag = str(s3.get("object", {}).get("eTag", "")).strip('"')
        name = str(record.get("eventName", ""))
        if not name.startswith("ObjectCreated:") or not key:
            continue
        if name == "ObjectCreated:Put" and _MULTIPART_ETAG.search(etag):
            continue  # moto's extra event for a multipart upload (see the module's docstring)
        events.append(ObjectEvent(key=key, etag=etag, event={"Records": [record]}))
    return events


def result_key(key: str, etag: str) -> str:
    return f"{RESULTS_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:40]}/{etag.strip(chr(34))}.json"


def beat(clients: AwsClients, queue_url: str) -> None:
    set_queue_tags(clients.sqs, queue_url, {HEARTBEAT_TAG: f"{time.time():.0f}"})


def live_runtime_running(clients: AwsClients, *, max_age: float = 3 * HEARTBEAT_SECONDS) -> bool:
    """Whether a live `up` runtime serves this endpoint (its heartbeat on the events queue is fresh)."""
    url = queue_url_or_none(clients.sqs, EVENTS_QUEUE)
    if url is None:
        return False
    stamp = queue_tags(clients.sqs, url).get(HEARTBEAT_TAG)
    try:
        return stamp is not None and time.time() - float(stamp) < max_age
    except ValueError:
        return False


def stop_beating(clients: AwsClients, queue_url: str) -> None:
    set_queue_tags(clients.sqs, queue_url, {HEARTBEAT_TAG: "0"})
