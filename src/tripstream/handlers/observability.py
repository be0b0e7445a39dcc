"""CloudWatch metrics (embedded metric format, through Powertools for AWS Lambda Metrics) of both functions.

The handlers already log a result object per object / batch (``ProducerResult.to_dict()``,
``ConsumerResult``); this module turns those into EMF metrics, flushed as one JSON log line per
invocation by :func:`instrument` (``Metrics.log_metrics``). Metric names (namespace = the
``POWERTOOLS_METRICS_NAMESPACE`` / service name, dimensions ``service`` and ``function``):

- producer: ``RowsRead``, ``RecordsSent``, ``RowsRejected`` (total, and per ``reason``),
  ``RecordsRetried`` (entries PutRecords failed and that were sent again), ``RecordsNotSent``
  (an invocation that gave up), ``FilesRefused``;
- consumer: ``RecordsRead``, ``RecordsRejected`` (total, and per ``reason``), ``ItemsWritten``
  (per ``table``), ``ItemsRetried`` (UnprocessedItems sent again), ``BatchFailures`` (batches that
  reported a failed record back to Lambda).

Per-reason and per-table figures use their own metric set (:class:`aws_lambda_powertools.metrics.EphemeralMetrics`
would lose the namespace defaults, so a single-metric context is used): each is one extra EMF
line, written only when non-zero. Only the Lambda entry points (``handlers.*.handler``) are
instrumented: the local runtime calls the undecorated handlers and prints its own summary.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

DEFAULT_NAMESPACE: Final = "tripstream"
COUNT: Final = MetricUnit.Count

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def namespace() -> str:
    return (
        os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_NAMESPACE
    )


def new_metrics() -> Metrics:
    """A Metrics object; :func:`instrument` adds the ``function`` dimension per invocation."""
    # No default dimensions: Powertools shares them between Metrics objects of one process.
    return Metrics(namespace=namespace(), service=os.environ.get("POWERTOOLS_SERVICE_NAME", DEFAULT_NAMESPACE))


def _by_dimension(metrics: Metrics, name: str, dimension: str, counts: Mapping[str, int], function: str) -> None:
    for value, count in sorted(counts.items()):
        if count:
            with single_metric(name=name, unit=COUNT, value=count, namespace=metrics.namespace) as metric:
                metric.add_dimension(name="service", value=str(metrics.service))
                metric.add_dimension(name="function", value=function)
                metric.add_dimension(name=dimension, value=str(value))


def record_producer_result(metrics: Metrics, result: Mapping[str, Any]) -> None:
    """Metrics of one object the producer processed (``ProducerResult.to_dict()``)."""
    rejected: Mapping[str, int] = result.get("rows_rejected") or {}
    metrics.add_metric(name="RowsRead", unit=COUNT, value=int(result.get("rows_read", 0)))
    metrics.add_metric(name="RecordsSent", unit=COUNT, value=int(result.get("records_sent", 0)))
    metrics.add_metric(name="RowsRejected", unit=COUNT, value=sum(rejected.values()))
    metrics.add_metric(name="RecordsRetried", unit=COUNT, value=int(result.get("entries_retried", 0)))
    metrics.add_metric(name="FilesRefused", unit=COUNT, value=1 if result.get("refused") else 0)
    _by_dimension(metrics, "RowsRejected", "reason", rejected, "producer")


def record_consumer_result(metrics: Metrics, result: Any) -> None:
    """Metrics of one consumer batch (a ``ConsumerResult``, or its ``to_dict()``)."""
    data: Mapping[str, Any] = result if isinstance(result, Mapping) else result.to_dict()
    rejected: Mapping[str, int] = data.get("records_rejected") or {}
    written: Mapping[str, int] = data.get("items_written") or {}
    metrics.add_metric(name="RecordsRead", unit=COUNT, value=int(data.get("records_received", 0)))
    metrics.add_metric(name="RecordsRejected", unit=COUNT, value=sum(rejected.values()))
    metrics.add_metric(name="ItemsWritten", unit=COUNT, value=sum(written.values()))
    retried = (data.get("writes") or {}).get("unprocessed_retried", 0)
    metrics.add_metric(name="ItemsRetried", unit=COUNT, value=int(retried))
    metrics.add_metric(name="BatchFailures", unit=COUNT, value=0 if data.get("first_failed_sequence") is None else 1)
    _by_dimension(metrics, "RecordsRejected", "reason", rejected, "consumer")
    _by_dimension(metrics, "ItemsWritten", "table", written, "consumer")


def instrument(function: str, logger: Logger, handler: Handler) -> Handler:
    """The Lambda entry point: Powertools' Lambda context in the logs, and one EMF flush per invocation.

    For the producer the metrics are read from the handler's response (``results``: one
    ``ProducerResult.to_dict()`` per object); a failed invocation counts ``RecordsNotSent``. The
    consumer's batches are recorded through its ``on_result`` hook instead (see :func:`consumer_hook`).
    """
    metrics = new_metrics()

    @functools.wraps(handler)
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics.add_dimension(name="function", value=function)
        try:
            response = handler(event, context)
        except Exception as error:
            not_sent = getattr(error, "count", None)
            if isinstance(not_sent, int):
                metrics.add_metric(name="RecordsNotSent", unit=COUNT, value=not_sent)
            raise
        if function == "producer":
            for result in response.get("results", []):
                record_producer_result(metrics, result)
        return response

    wrapped: Handler = metrics.log_metrics(logger.inject_lambda_context(handle))
    return wrapped


def consumer_hook() -> Callable[[Any], None]:
    """An ``on_result`` callback for the consumer's ``make_handler`` that records each batch's metrics
    into the same (singleton) Metrics store :func:`instrument` flushes."""
    metrics = new_metrics()
    return functools.partial(record_consumer_result, metrics)


__all__ = [
    "DEFAULT_NAMESPACE",
    "consumer_hook",
    "instrument",
    "namespace",
    "new_metrics",
    "record_consumer_result",
    "record_producer_result",
]
