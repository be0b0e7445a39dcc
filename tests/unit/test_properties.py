"""Properties over arbitrary input (hypothesis): the parser only ever refuses with RowError, normalisation is
idempotent, numbers round by the one rule, and a record survives the trip through Kinesis unchanged."""

from __future__ import annotations

import contextlib
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tripstream.trips.analytics import classify
from tripstream.trips.normalise import (
    FileRefused,
    RowError,
    TripNormaliser,
    parse_coordinate,
    parse_money,
    resolve_header,
    trip_as_row,
)
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.records import decode_trip, encode_trip
from tripstream.trips.rows import trip_rows
from tripstream.trips.schema import CANONICAL_FIELDS
from tripstream.trips.thresholds import Thresholds

HEADER = [
    "VendorID",
    "tpep_pickup_datetime",
    "tpep_dropoff_datetime",
    "passenger_count",
    "trip_distance",
    "RatecodeID",
    "store_and_fwd_flag",
    "PULocationID",
    "payment_type",
    "fare_amount",
    "tip_amount",
    "total_amount",
    "pickup_longitude",
    "trip_type",
    "unknown_column",
]
NORMALISER = TripNormaliser(resolve_header(HEADER, source_name="prop.csv"))

plain_timestamps = st.builds(
    lambda d, sep, fraction: d.replace(microsecond=0).isoformat(sep=sep) + fraction,
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from(" T"),
    st.sampled_from(["", ".5", ".000000", " UTC", "Z", "+02:00"]),
)
decimals = st.decimals(min_value=-(10**9) + 1, max_value=10**9 - 1, allow_nan=False, places=None).map(str)
floats_as_text = st.floats(allow_nan=True, allow_infinity=True).map(repr)
short_scientific = st.builds("{}.{}e{}".format, st.integers(-99, 99), st.integers(0, 999), st.integers(-12, 8))
odd_numbers = st.sampled_from(["", " ", ".76", "0.56999999999999995", "1e3", "-0", "NaN", "inf", "1_0", "\u0661"])
amounts = st.one_of(decimals, st.floats(-1e8, 1e8).map(repr), odd_numbers)
numbers = st.one_of(amounts, floats_as_text)
wholes = st.one_of(st.integers(-(10**6), 10**6).map(str), st.sampled_from(["", "1.0", "2e1", "1.5"]))
codes = st.one_of(wholes, st.sampled_from(["VTS", "CMT", "DDS", "CSH", "CRD", "No Charge", "Dispute", "NA ", "Y", "N"]))
anything = st.text(max_size=80)
# Rows of values of the right kind (a few still bad: NaN, 1_0, 1.5 passengers...), and rows of anything.
valid_values = {
    "VendorID": codes,
    "tpep_pickup_datetime": plain_timestamps,
    "tpep_dropoff_datetime": plain_timestamps,
    "passenger_count": wholes,
    "RatecodeID": wholes,
    "PULocationID": wholes,
    "trip_type": wholes,
    "store_and_fwd_flag": st.one_of(codes, anything),
    "payment_type": codes,
    "unknown_column": anything,
}
plausible_row = st.tuples(*(valid_values.get(name, amounts) for name in HEADER)).map(list)
mixed_row = st.tuples(*(st.one_of(valid_values.get(name, numbers), anything) for name in HEADER)).map(list)
any_row = st.lists(st.text(), max_size=len(HEADER) + 3)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | plain_timestamps,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(plausible_row, mixed_row, any_row))
def test_the_parser_never_raises_anything_but_row_error(fields: list[str]) -> None:
    try:
        trip = NORMALISER.normalise(fields, 2)
    except RowError as error:
        assert error.reason and error.detail
        return
    # What it accepts is a valid record that the consumer can classify without an error.
    decoded = decode_trip(encode_trip(trip))
    assert decoded == trip
    classify(decoded, Thresholds())


@settings(max_examples=200, deadline=None)
@given(plausible_row)
def test_normalisation_is_idempotent(fields: list[str]) -> None:
    try:
        trip = NORMALISER.normalise(fields, 2)
    except RowError:
        event("rejected")
        return
    event("normalised")
    canonical = TripNormaliser(
        resolve_header(list(CANONICAL_FIELDS), source_name="again.csv", service_hint=trip["service"])
    )
    again = canonical.normalise(trip_as_row(trip), 2)
    assert again == trip  # every value, and so the derived trip_id


@settings(max_examples=500, deadline=None)
@given(st.one_of(decimals, floats_as_text, short_scientific))
def test_numbers_round_half_even_on_the_shortest_form_of_their_double(text: str) -> None:
    try:
        money = parse_money(text)
    except RowError:
        value = float(text)
        assert not -1e9 < value < 1e9
        return
    shortest = Decimal(repr(float(text)))
    assert Decimal(repr(money)) == shortest.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    coordinate = parse_coordinate(text)
    assert Decimal(repr(coordinate)) == shortest.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.sampled_from(["", "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime\n"]))
def test_any_bytes_are_a_refused_file_or_rows_never_a_crash(tmp_path: Path, data: bytes, header: str) -> None:
    path = tmp_path / "any.csv"
    path.write_bytes(header.encode() + data)
    try:
        trip_file = open_trip_file(LocalFileSource(path))
    except FileRefused as refused:
        assert str(refused).startswith(str(path))
        return
    normaliser = TripNormaliser(trip_file.header)
    for row in trip_file.rows():
        if row.error is not None:
            continue
        assert row.fields is not None
        with contextlib.suppress(RowError):
            normaliser.normalise(row.fields, row.row_number)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*CANONICAL_FIELDS, "trip_id", "schema_version", "service"]), json_values))
def test_a_decoded_record_is_either_refused_or_classifiable(changes: dict[str, Any]) -> None:
    trip = NORMALISER.normalise(
        [
            "1",
            "2019-01-01 00:00:00",
            "2019-01-01 00:10:00",
            "1",
            "2.5",
            "1",
            "N",
            "4",
            "1",
            "10",
            "2",
            "12.3",
            "",
            "",
            "",
        ],
        2,
    )
    trip.update(changes)
    try:
        data = encode_trip(trip)
    except TypeError:
        return  # not JSON at all: nothing a producer could send
    try:
        decoded = decode_trip(data)
    except RowError:
        return
    classify(decoded, Thresholds())


csv_bytes = st.lists(
    st.one_of(
        st.sampled_from([b",", b'"', b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b" ", b"1", b"2019-01-17 18:25:20"]),
        st.binary(max_size=8),
    ),
    max_size=80,
).map(b"".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_bytes)
def test_any_bytes_under_a_good_header_never_raise_and_every_row_is_sent_or_rejected(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "any.csv"
    path.write_bytes(b"VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,fare_amount\n" + data)
    trip_file = open_trip_file(LocalFileSource(path))
    outcomes = list(trip_rows(trip_file, TripNormaliser(trip_file.header), {"key": "any.csv"}))
    sent = sum(1 for outcome in outcomes if outcome.trip is not None)
    rejected = sum(1 for outcome in outcomes if outcome.reject is not None)
    assert len(outcomes) == sent + rejected
    lines = data.replace(b"\r\n", b"\n").count(b"\n") + data.count(b"\r") - data.count(b"\r\n") + 1
    assert len(outcomes) + trip_file.stats.blank_lines <= lines
