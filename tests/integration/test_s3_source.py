"""The producer's S3 reads at the edges of an object, against the emulator's S3."""

from __future__ import annotations

import boto3
import pytest

from tripstream.aws.s3 import S3ObjectSource

pytestmark = pytest.mark.integration


def test_a_stream_resumed_exactly_at_the_end_is_empty(fresh_endpoint: str) -> None:
    """A continuation whose previous invocation stopped after the last row resumes at the object's size: that is
    nothing left to read, not S3's InvalidRange (which sent such files to the dead-letter queue)."""
    s3 = boto3.client("s3", endpoint_url=fresh_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="edges")
    body = b"a,b\n1,2\n3,4\n"
    s3.put_object(Bucket="edges", Key="trips.csv", Body=body)
    source = S3ObjectSource(s3, "edges", "trips.csv")
    with source.open_stream(len(body)) as stream:
        assert stream.read() == b""
    with source.open_stream(len(body) - 4) as stream:
        assert stream.read() == b"3,4\n"
    with pytest.raises(Exception, match="InvalidRange"):
        s3.get_object(Bucket="edges", Key="trips.csv", Range=f"bytes={len(body)}-")
