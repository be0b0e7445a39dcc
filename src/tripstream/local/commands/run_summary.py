"""What one file's run through the pipeline gave (`run`, and `run` against a live `up`), summed from the
producer's results and the consumer's totals."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from tripstream.local.commands.resources import ProcessTreeSampler
from tripstream.local.lambda_service.functions import ConsumerTotals
from tripstream.pipeline.producer import SentFigures


@dataclass(kw_only=True)
class ConsumedFigures:
    """What the consumer made of a run's or a replay's records."""

    records_consumed: int = 0
    records_rejected: dict[str, int] = field(default_factory=dict)
    items_written: dict[str, int] = field(default_factory=dict)
    records_to_on_failure: int = 0
    seconds: float = 0.0


@dataclass
class RunSummary(SentFigures, ConsumedFigures):
    file: str
    bucket: str
    key: str
    refused: str | None = None
    blank_lines: int = 0
    producer_invocations: int = 0
    producer_errors: list[str] = field(default_factory=list)
    # The producer gave up on the event and it went to the producer's dead-letter queue (its SQS message id).
    producer_dead_letter_message_id: str | None = None
    trips_processed: int = 0
    table_items: dict[str, int] = field(default_factory=dict)
    duration_categories: dict[str, int] = field(default_factory=dict)
    consumer_invocations: int = 0
    consumer_retries: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    rejects_keys: list[str] = field(default_factory=list)
    # The run's processes (the CLI and every descendant, sampled from /proc every 0.5 s; empty where there is none):
    # the peak of their summed resident memory, and each one's peak and CPU time by process name.
    peak_memory_bytes: int | None = None
    processes: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def trips_per_second(self) -> float | None:
        """Trips consumed per second of the whole run (start, deploy and drain included)."""
        return self.records_consumed / self.seconds if self.seconds else None

    @property
    def ok(self) -> bool:
        return self.refused is None and not self.producer_errors_final and self.records_to_on_failure == 0

    producer_errors_final: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "trips_per_second": self.trips_per_second}


def summarise_producer(summary: RunSummary, results: list[dict[str, Any]]) -> None:
    rejected: Counter[str] = Counter()
    for result in results:
        summary.format = summary.format or result.get("format")
        summary.service = summary.service or result.get("service")
        if result.get("refused"):
            summary.refused = result["refused"]["detail"]
        summary.rows_read += result["rows_read"]
        summary.records_sent += result["records_sent"]
        summary.blank_lines += result["blank_lines"]
        rejected.update(result["rows_rejected"])
        summary.rejects_keys.extend(result["rejects_keys"])
        for name in ("entries_retried", "calls_retried"):
            summary.retries[f"producer_{name}"] = summary.retries.get(f"producer_{name}", 0) + result[name]
    summary.rows_rejected = dict(sorted(rejected.items()))


def summarise_consumer(summary: RunSummary, totals: ConsumerTotals) -> None:
    summary.trips_processed = totals.trips_processed
    summary.records_consumed = totals.records_consumed
    summary.records_rejected = totals.rejected()
    summary.items_written = totals.written()
    summary.duration_categories = totals.categories()
    summary.retries["consumer_unprocessed_items_retried"] = totals.unprocessed_items_retried
    summary.retries["consumer_calls_retried"] = totals.calls_retried
    summary.rejects_keys.extend(totals.rejects_keys)


def record_resources(summary: RunSummary, sampler: ProcessTreeSampler) -> None:
    """The sampled processes' peaks and CPU into the summary (nothing where /proc is missing)."""
    sampler.sample()
    if not sampler.available:
        return
    summary.peak_memory_bytes = sampler.peak_total_bytes
    for usage in sampler.usage():
        entry = summary.processes.setdefault(usage.name, {"count": 0, "peak_rss_bytes": 0, "cpu_seconds": 0.0})
        entry["count"] += 1
        entry["peak_rss_bytes"] = max(entry["peak_rss_bytes"], usage.peak_rss_bytes)
        entry["cpu_seconds"] = round(entry["cpu_seconds"] + usage.cpu_seconds, 2)
