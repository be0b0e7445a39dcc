"""The analytics rules of ARCHITECTURE.md, with their defaults; each one is a template parameter."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Thresholds:
    high_value_threshold: Decimal = Decimal("50.00")
    short_trip_minutes: Decimal = Decimal("10")
    long_trip_minutes: Decimal = Decimal("30")
    max_duration_hours: Decimal = Decimal("24")
    low_fare_per_mile: Decimal = Decimal("3.00")
    high_fare_per_mile: Decimal = Decimal("6.00")
