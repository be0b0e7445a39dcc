"""The producer's per-object log line names its own object (read as CloudWatch Logs would be)."""

from __future__ import annotations

import io
import json
import logging

from tripstream.handlers import producer
from tripstream.pipeline.producer import ProducerResult


def test_each_object_line_names_its_own_object_and_no_later_line_keeps_it() -> None:
    out = io.StringIO()
    handler = producer.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(out)
    # The CLI run in-process by other tests of this worker quiets the handlers' loggers (terminal.quiet_handler_logs):
    # at INFO here, whatever ran before.
    level = producer.logger.log_level
    producer.logger.setLevel("INFO")
    try:
        producer._log_result(ProducerResult(bucket="trips", key="first.csv", rows_read=3, records_sent=3))
        producer._log_result(ProducerResult(bucket="trips", key="second.csv", rows_read=5, records_sent=5))
        producer.logger.info("a line about nothing in particular")
    finally:
        handler.setStream(previous)
        producer.logger.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("source_key") for line in lines] == ["first.csv", "second.csv", None]
    assert [line["result"]["key"] for line in lines[:2]] == ["first.csv", "second.csv"]
