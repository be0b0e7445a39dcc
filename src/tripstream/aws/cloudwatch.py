"""CloudWatch reads of tripstream: the consumer's iterator age for `tripstream status`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3

from tripstream.aws.errors import ENDPOINT_ERRORS


def max_iterator_age_seconds(
    region: str, endpoint_url: str | None, function_name: str, minutes: int = 15
) -> float | None:
    """The highest IteratorAge of the function over the last ``minutes``, in seconds (None: no data or no answer)."""
    # No boto3-stubs for CloudWatch are installed: typed as Any here, in the one place it is used.
    cloudwatch: Any = boto3.session.Session(region_name=region).client("cloudwatch", endpoint_url=endpoint_url)
    end = dt.datetime.now(dt.UTC)
    try:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="IteratorAge",
            Dimensions=[{"Name": "FunctionName", "Value": function_name}],
            StartTime=end - dt.timedelta(minutes=minutes),
            EndTime=end,
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
    except ENDPOINT_ERRORS:
        return None
    if not points:
        return None
    return float(max(point["Maximum"] for point in points)) / 1000
