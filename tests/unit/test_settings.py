"""Settings are read once from environment variables into one typed object."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tripstream.settings import Settings, SettingsError


def test_defaults_are_the_architecture_ones() -> None:
    settings = Settings.from_env({})
    assert settings.stream_name == "taxi_trips"
    assert settings.table_names == ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")
    assert settings.thresholds.high_value_threshold == Decimal("50.00")
    assert settings.thresholds.short_trip_minutes == 10
    assert settings.thresholds.long_trip_minutes == 30
    assert settings.thresholds.max_duration_hours == 24


def test_every_threshold_is_configurable_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "HIGH_VALUE_THRESHOLD": "75.5",
            "SHORT_TRIP_MINUTES": "5",
            "LONG_TRIP_MINUTES": "45",
            "MAX_DURATION_HOURS": "12",
            "LOW_FARE_PER_MILE": "2",
            "HIGH_FARE_PER_MILE": "8",
            "STREAM_NAME": "other",
            "REJECTS_BUCKET": "bucket",
            "CONTINUATION_MODE": "return",
        }
    )
    assert settings.thresholds.high_value_threshold == Decimal("75.5")
    assert settings.thresholds.short_trip_minutes == 5
    assert settings.thresholds.long_trip_minutes == 45
    assert settings.thresholds.max_duration_hours == 12
    assert settings.thresholds.low_fare_per_mile == 2
    assert settings.thresholds.high_fare_per_mile == 8
    assert settings.stream_name == "other"
    assert settings.rejects_bucket == "bucket"
    assert settings.continuation_mode == "return"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HIGH_VALUE_THRESHOLD", "fifty"),
        ("HIGH_VALUE_THRESHOLD", "NaN"),
        ("RETRY_MAX_ATTEMPTS", "3.5"),
        ("RETRY_BASE_DELAY", "soon"),
        ("CONTINUATION_MODE", "maybe"),
    ],
)
def test_a_bad_value_is_a_clear_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
