"""Every knob of tripstream, read once from environment variables into one typed object.

The Lambda functions get these variables from the CloudFormation template; the local runtime passes the
same variables to the handlers it invokes, so both read their configuration the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from tripstream.trips.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_RATIO, DEFAULT_MAX_ROWS, ObjectLimits
from tripstream.trips.thresholds import Thresholds

T = TypeVar("T")

STREAM_NAME = "taxi_trips"
HIGH_VALUE_TABLE = "high_value_trips"
DURATION_TABLE = "trip_duration_analysis"
FARE_RATIO_TABLE = "distance_to_fare_ratio"
ZONE_HOURLY_STATS_TABLE = "zone_hourly_stats"
COUNTED_TRIPS_TABLE = "zone_hourly_counted_trips"
PER_TRIP_TABLES = (HIGH_VALUE_TABLE, DURATION_TABLE, FARE_RATIO_TABLE)
COUNTED_TRIPS_TTL_DAYS = 90


class SettingsError(ValueError):
    """An environment variable holds a value tripstream cannot use."""


@dataclass(frozen=True)
class Settings:
    """Configuration shared by the producer, the consumer and the local runtime."""

    stream_name: str = STREAM_NAME
    high_value_table: str = HIGH_VALUE_TABLE
    duration_table: str = DURATION_TABLE
    fare_ratio_table: str = FARE_RATIO_TABLE
    # The aggregates: the zone x hour cells, and the marker of every trip counted into them.
    zone_hourly_stats_table: str = ZONE_HOURLY_STATS_TABLE
    counted_trips_table: str = COUNTED_TRIPS_TABLE
    # Days a marker is kept (its DynamoDB TTL): a trip seen again after that is counted again (docs/aggregates.md).
    counted_trips_ttl_days: int = COUNTED_TRIPS_TTL_DAYS
    thresholds: Thresholds = field(default_factory=Thresholds)
    # The stack's bucket: the producer reads objects of this bucket only (None: any bucket, for tests and tools).
    source_bucket: str | None = None
    # Where rejected rows and records go; the producer defaults to the source object's bucket.
    rejects_bucket: str | None = None
    rejects_prefix: str = "rejects/"
    # Transient-failure retries (PutRecords entries, BatchWriteItem UnprocessedItems, throttling, 5xx).
    retry_max_attempts: int = 8
    retry_base_delay: float = 0.05
    retry_max_delay: float = 2.0
    retry_max_elapsed: float = 60.0
    # Concurrent PutRecords / BatchWriteItem calls in one invocation.
    max_in_flight: int = 4
    # Producer: stop this many seconds before the invocation's deadline and continue in a follow-up.
    deadline_margin_seconds: float = 30.0
    # Consumer: start no DynamoDB retry later than this many seconds before the invocation's deadline (what is
    # still unwritten then goes back to Lambda in batchItemFailures, instead of the invocation timing out).
    consumer_deadline_margin_seconds: float = 10.0
    # Per object: beyond these it is refused whole before anything is sent (trips/limits.py has the reasons).
    max_object_bytes: int = DEFAULT_MAX_BYTES
    max_object_rows: int = DEFAULT_MAX_ROWS
    max_compression_ratio: float = DEFAULT_MAX_RATIO
    # "invoke": continue a large file by invoking the producer again (AWS); "return": hand the
    # continuation back to the caller (the local runtime).
    continuation_mode: str = "invoke"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        thresholds = Thresholds(
            **{f.name: _decimal(env, f.name.upper(), getattr(defaults.thresholds, f.name)) for f in fields(Thresholds)}
        )
        return cls(
            stream_name=env.get("STREAM_NAME", defaults.stream_name),
            high_value_table=env.get("HIGH_VALUE_TABLE", defaults.high_value_table),
            duration_table=env.get("DURATION_TABLE", defaults.duration_table),
            fare_ratio_table=env.get("FARE_RATIO_TABLE", defaults.fare_ratio_table),
            zone_hourly_stats_table=env.get("ZONE_HOURLY_STATS_TABLE", defaults.zone_hourly_stats_table),
            counted_trips_table=env.get("COUNTED_TRIPS_TABLE", defaults.counted_trips_table),
            counted_trips_ttl_days=_positive(env, "COUNTED_TRIPS_TTL_DAYS", defaults.counted_trips_ttl_days),
            thresholds=thresholds,
            source_bucket=env.get("SOURCE_BUCKET") or None,
            rejects_bucket=env.get("REJECTS_BUCKET") or None,
            rejects_prefix=env.get("REJECTS_PREFIX", defaults.rejects_prefix),
            retry_max_attempts=_int(env, "RETRY_MAX_ATTEMPTS", defaults.retry_max_attempts),
            retry_base_delay=_float(env, "RETRY_BASE_DELAY", defaults.retry_base_delay),
            retry_max_delay=_float(env, "RETRY_MAX_DELAY", defaults.retry_max_delay),
            retry_max_elapsed=_float(env, "RETRY_MAX_ELAPSED", defaults.retry_max_elapsed),
            max_in_flight=_int(env, "MAX_IN_FLIGHT", defaults.max_in_flight),
            deadline_margin_seconds=_float(env, "DEADLINE_MARGIN_SECONDS", defaults.deadline_margin_seconds),
            consumer_deadline_margin_seconds=_float(
                env, "CONSUMER_DEADLINE_MARGIN_SECONDS", defaults.consumer_deadline_margin_seconds
            ),
            max_object_bytes=_int(env, "MAX_OBJECT_BYTES", defaults.max_object_bytes),
            max_object_rows=_int(env, "MAX_OBJECT_ROWS", defaults.max_object_rows),
            max_compression_ratio=_float(env, "MAX_COMPRESSION_RATIO", defaults.max_compression_ratio),
            continuation_mode=_choice(env, "CONTINUATION_MODE", defaults.continuation_mode, ("invoke", "return")),
        )

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def object_limits(self) -> ObjectLimits:
        return ObjectLimits(self.max_object_bytes, self.max_object_rows, self.max_compression_ratio)

    @property
    def table_names(self) -> tuple[str, str, str]:
        return (self.high_value_table, self.duration_table, self.fare_ratio_table)


def _decimal(env: Mapping[str, str], name: str, default: Decimal) -> Decimal:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise SettingsError(f"{name}={raw!r} is not a decimal number") from None
    if not value.is_finite():
        raise SettingsError(f"{name}={raw!r} is not a finite number")
    # Thresholds are written into the items (high_value_trips.threshold): DynamoDB refuses a number of more than
    # 38 significant digits (moto does not) or beyond its range, and so every batch holding one.
    significant = "".join(map(str, value.as_tuple().digits)).strip("0")  # normalize() would round to 28 digits
    if len(significant) > 38 or (value and not Decimal("1e-130") <= abs(value) < Decimal("1e126")):
        raise SettingsError(f"{name}={raw!r} is not a number DynamoDB can store (38 significant digits at most)")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _parsed(env, name, default, int, "an integer")


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SettingsError(f"{name}={value} must be at least 1")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _parsed(env, name, default, float, "a number")


def _parsed(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], what: str) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {what}") from None


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, default).strip().lower()
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw
