"""The catalogue of bad input: every kind of broken row, record and file, with the exact reason it gets.

Each row case is one bad line between two good ones, read through the readers and the normaliser exactly as the
producer reads a file. It checks the reject (line number, reason code, column) and that both good rows still
arrive as the same trips they are without the bad line in between. The end-to-end versions (rejects as JSON lines
in S3, nothing sent for a refused file) are in tests/e2e/test_bad_files.py.
"""

# ruff: noqa: E501 - the catalogue tables read best one case a line
from __future__ import annotations

import bz2
import gzip
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tripstream.trips.normalise import FileRefused, RejectReason, RowError, TripNormaliser, resolve_header
from tripstream.trips.readers import MAX_LINE_BYTES, LocalFileSource, open_trip_file
from tripstream.trips.records import decode_trip, encode_trip
from tripstream.trips.rows import trip_rows

HEADER = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
    "improvement_surcharge,total_amount,congestion_surcharge"
)
COLUMNS = HEADER.split(",")
GOOD_1 = "2,2019-01-17 18:25:20,2019-01-17 18:45:00,6,3.39,1,N,144,237,1,20.5,1,0.5,4.46,0,0.3,26.76,"
GOOD_2 = "1,2019-01-03 08:49:53,2019-01-03 08:57:12,1,1.10,1,N,249,144,1,7,0,0.5,1.55,0,0.3,9.35,"
OLD_HEADER = (
    "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,"
    "rate_code,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,surcharge,mta_tax,"
    "tip_amount,tolls_amount,total_amount"
)


def changed(**fields: str) -> str:
    """GOOD_1 with some fields replaced (by column name); a value with a comma or quote is quoted."""
    values = GOOD_1.split(",")
    for name, text in fields.items():
        quoted = '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text
        values[COLUMNS.index(name)] = quoted
    return ",".join(values)


@dataclass
class Outcome:
    trips: list[dict[str, Any]]
    rejects: list[tuple[int, str, str | None]]
    details: list[str]


def read_all(path: Path) -> Outcome:
    """What the producer does with a file: readers + normaliser, rows to trips or to rejects."""
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket="bucket", source_key=path.name)
    outcome = Outcome([], [], [])
    for row in trip_file.rows():
        error = row.error
        if error is None:
            assert row.fields is not None
            try:
                outcome.trips.append(normaliser.normalise(row.fields, row.row_number))
            except RowError as row_error:
                error = row_error
        if error is not None:
            outcome.rejects.append((row.row_number, str(error.reason), error.column))
            outcome.details.append(error.detail)
            assert row.text  # what the rejects file shows of the row
    return outcome


def write(tmp_path: Path, name: str, lines: list[str | bytes], *, newline: bytes = b"\n") -> Path:
    path = tmp_path / name
    path.write_bytes(newline.join(line if isinstance(line, bytes) else line.encode() for line in lines) + newline)
    return path


@pytest.fixture
def good_ids(tmp_path: Path) -> list[str]:
    """The trip ids of the two good rows in a file of their own."""
    outcome = read_all(write(tmp_path, "good.csv", [HEADER, GOOD_1, GOOD_2]))
    assert outcome.rejects == []
    return [trip["trip_id"] for trip in outcome.trips]


# (case id, the bad line, reason, column the reject names (None: the row as a whole))
ROW_CASES: list[tuple[str, str | bytes, RejectReason, str | None]] = [
    ("text_as_pickup_time", changed(tpep_pickup_datetime="not a date"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("february_30th", changed(tpep_pickup_datetime="2019-02-30 10:00:00"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("hour_25", changed(tpep_dropoff_datetime="2019-01-17 25:00:00"), RejectReason.INVALID_TIMESTAMP, "tpep_dropoff_datetime"),
    ("month_13", changed(tpep_pickup_datetime="2019-13-01 10:00:00"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("leap_second", changed(tpep_dropoff_datetime="2019-01-17 23:59:60"), RejectReason.INVALID_TIMESTAMP, "tpep_dropoff_datetime"),
    ("date_without_time", changed(tpep_pickup_datetime="2019-01-17"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("day_first_date", changed(tpep_pickup_datetime="17/01/2019 18:25"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("epoch_seconds", changed(tpep_pickup_datetime="1547749520"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("iso_week_date", changed(tpep_pickup_datetime="2019-W03-4 18:25:20"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("iso_week_date_with_t", changed(tpep_dropoff_datetime="2019-W03-4T18:45:00"), RejectReason.INVALID_TIMESTAMP, "tpep_dropoff_datetime"),
    ("ordinal_date", changed(tpep_pickup_datetime="2019-017 18:25:20"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("utc_offset_over_a_day", changed(tpep_pickup_datetime="2019-01-17T18:25:20+25:00"), RejectReason.INVALID_TIMESTAMP, "tpep_pickup_datetime"),
    ("empty_pickup_time", changed(tpep_pickup_datetime=""), RejectReason.MISSING_TIMESTAMP, "tpep_pickup_datetime"),
    ("blank_dropoff_time", changed(tpep_dropoff_datetime="   "), RejectReason.MISSING_TIMESTAMP, "tpep_dropoff_datetime"),
    ("text_in_fare", changed(fare_amount="abc"), RejectReason.INVALID_NUMBER, "fare_amount"),
    ("currency_symbol", changed(fare_amount="$20.50"), RejectReason.INVALID_NUMBER, "fare_amount"),
    ("thousands_separator", changed(total_amount="1,234.50"), RejectReason.INVALID_NUMBER, "total_amount"),
    ("decimal_comma", changed(tip_amount="4,46"), RejectReason.INVALID_NUMBER, "tip_amount"),
    ("unit_after_number", changed(trip_distance="3.39 mi"), RejectReason.INVALID_NUMBER, "trip_distance"),
    ("percent_sign", changed(tip_amount="15%"), RejectReason.INVALID_NUMBER, "tip_amount"),
    ("spreadsheet_error", changed(total_amount="#VALUE!"), RejectReason.INVALID_NUMBER, "total_amount"),
    ("hex_number", changed(fare_amount="0x14"), RejectReason.INVALID_NUMBER, "fare_amount"),
    ("underscore_digits", changed(fare_amount="1_000"), RejectReason.INVALID_NUMBER, "fare_amount"),
    ("non_ascii_digits", changed(fare_amount="\u0662\u0660"), RejectReason.INVALID_NUMBER, "fare_amount"),
    ("fractional_passengers", changed(passenger_count="1.5"), RejectReason.INVALID_NUMBER, "passenger_count"),
    ("boolean_as_count", changed(passenger_count="true"), RejectReason.INVALID_NUMBER, "passenger_count"),
    ("zone_name_as_location_id", changed(PULocationID="Manhattan"), RejectReason.INVALID_NUMBER, "PULocationID"),
    ("nan", changed(fare_amount="NaN"), RejectReason.NON_FINITE_NUMBER, "fare_amount"),
    ("infinity", changed(fare_amount="inf"), RejectReason.NON_FINITE_NUMBER, "fare_amount"),
    ("minus_infinity_spelled_out", changed(tolls_amount="-Infinity"), RejectReason.NON_FINITE_NUMBER, "tolls_amount"),
    ("overflows_a_double", changed(total_amount="1e309"), RejectReason.NON_FINITE_NUMBER, "total_amount"),
    ("absurd_amount", changed(total_amount="1e12"), RejectReason.NUMBER_OUT_OF_RANGE, "total_amount"),
    ("absurd_location_id", changed(DOLocationID="99999999999"), RejectReason.NUMBER_OUT_OF_RANGE, "DOLocationID"),
    ("invalid_utf8_byte", changed(store_and_fwd_flag="N").encode().replace(b",N,", b",\xff,"), RejectReason.INVALID_UTF8, None),
    ("latin1_text", changed(store_and_fwd_flag="caf\u00e9").encode("latin-1"), RejectReason.INVALID_UTF8, None),
    ("field_far_too_long", changed(store_and_fwd_flag="N" * 1000), RejectReason.FIELD_TOO_LONG, "store_and_fwd_flag"),
    ("line_far_too_long", GOOD_1 + "," * (MAX_LINE_BYTES * 3), RejectReason.LINE_TOO_LONG, None),
    ("truncated_row", GOOD_1[:40], RejectReason.WRONG_FIELD_COUNT, None),
    ("extra_non_empty_fields", GOOD_1 + "7,8", RejectReason.WRONG_FIELD_COUNT, None),
    ("unclosed_quote", GOOD_1.replace(",20.5,", ',"20.5,'), RejectReason.WRONG_FIELD_COUNT, None),
    ("semicolon_separated_row", GOOD_1.replace(",", ";"), RejectReason.WRONG_FIELD_COUNT, None),
    ("repeated_header", HEADER, RejectReason.REPEATED_HEADER, None),
    ("header_of_another_era", OLD_HEADER, RejectReason.REPEATED_HEADER, None),
    ("nul_byte_in_a_field", changed(store_and_fwd_flag="N\x00"), RejectReason.BINARY_DATA, None),
    ("nul_padding", b"\x00" * 300, RejectReason.BINARY_DATA, None),
    ("quoted_field_then_lone_cr", changed(store_and_fwd_flag="N,") + "\rjunk", RejectReason.MALFORMED_CSV, None),
    ("quoted_field_with_a_stray_cr_after_it", '"2",2019-01-17 18:25:20\r,x', RejectReason.MALFORMED_CSV, None),
]  # fmt: skip


@pytest.mark.parametrize(("line", "reason", "column"), [case[1:] for case in ROW_CASES], ids=[c[0] for c in ROW_CASES])
def test_a_bad_row_is_rejected_with_its_reason_and_the_good_rows_arrive(
    tmp_path: Path, good_ids: list[str], line: str | bytes, reason: RejectReason, column: str | None
) -> None:
    outcome = read_all(write(tmp_path, "trips.csv", [HEADER, GOOD_1, line, GOOD_2]))
    assert outcome.rejects == [(3, str(reason), column)], outcome.details
    assert [trip["trip_id"] for trip in outcome.trips] == good_ids
    assert [trip["source"]["row"] for trip in outcome.trips] == [2, 4]


def test_the_catalogue_has_at_least_30_kinds_and_every_reason_of_a_row() -> None:
    assert len({case[0] for case in ROW_CASES}) == len(ROW_CASES) >= 30
    # Those of the trip_id column have their own tests below.
    trip_id_reasons = {RejectReason.INVALID_TRIP_ID, RejectReason.CONFLICTING_TRIP_ID}
    row_reasons = set(RejectReason) - {*trip_id_reasons, *RECORD_REASONS}
    assert {case[2] for case in ROW_CASES} == row_reasons


def test_a_lone_cr_in_an_unquoted_row_ends_a_row_instead_of_merging_two(tmp_path: Path, good_ids: list[str]) -> None:
    outcome = read_all(write(tmp_path, "glued.csv", [HEADER, GOOD_1 + "\r" + GOOD_2, changed(fare_amount="abc")]))
    assert [trip["trip_id"] for trip in outcome.trips] == good_ids
    assert [trip["source"]["row"] for trip in outcome.trips] == [2, 3]
    assert outcome.rejects == [(4, "invalid_number", "fare_amount")]


def test_a_bad_row_in_crlf_gzip_is_still_that_line(tmp_path: Path, good_ids: list[str]) -> None:
    plain = write(tmp_path, "plain.csv", [HEADER, "", GOOD_1, changed(fare_amount="abc"), GOOD_2], newline=b"\r\n")
    packed = tmp_path / "trips.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    outcome = read_all(packed)
    assert outcome.rejects == [(4, "invalid_number", "fare_amount")]
    assert [trip["trip_id"] for trip in outcome.trips] == good_ids


@pytest.mark.parametrize(
    ("trip_id", "reason"),
    [
        ("", RejectReason.INVALID_TRIP_ID),
        ("   ", RejectReason.INVALID_TRIP_ID),
        ("x" * 300, RejectReason.FIELD_TOO_LONG),
    ],
    ids=["empty_trip_id", "blank_trip_id", "trip_id_far_too_long"],
)
def test_a_file_with_a_trip_id_column_rejects_a_row_without_a_usable_one(
    tmp_path: Path, trip_id: str, reason: RejectReason
) -> None:
    lines = [HEADER + ",trip_id", GOOD_1 + ",a-1", GOOD_1 + "," + trip_id, GOOD_2 + ",a-2"]
    outcome = read_all(write(tmp_path, "with_ids.csv", lines))
    assert outcome.rejects == [(3, str(reason), "trip_id")]
    assert [trip["trip_id"] for trip in outcome.trips] == ["a-1", "a-2"]


def test_rows_sharing_a_trip_id_with_other_content_are_a_conflict_and_duplicates_are_not(tmp_path: Path) -> None:
    lines = [HEADER + ",trip_id", GOOD_1 + ",a-1", GOOD_2 + ",a-1", GOOD_1 + ",a-1", GOOD_2 + ",a-2"]
    path = write(tmp_path, "with_ids.csv", lines)
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket="bucket", source_key=path.name)
    outcomes = list(trip_rows(trip_file, normaliser, {"key": path.name}))
    assert [o.trip["trip_id"] for o in outcomes if o.trip] == ["a-1", "a-1", "a-2"]  # line 4: the same trip again
    (reject,) = [o.reject for o in outcomes if o.reject]
    assert (reject.line, reject.reason, reject.error.column) == (3, "conflicting_trip_id", "trip_id")
    assert "line 2" in reject.error.detail and reject.text == GOOD_2 + ",a-1"  # kept in the rejects


# ---------------------------------------------------------------- odd but real rows: sent, not rejected

ODD_BUT_REAL = [
    ("refund_negative_amounts", changed(fare_amount="-20.5", total_amount="-26.76", mta_tax="-0.5")),
    ("zero_distance", changed(trip_distance="0")),
    ("dropoff_before_pickup", changed(tpep_dropoff_datetime="2019-01-17 18:00:00")),
    ("same_pickup_and_dropoff", changed(tpep_dropoff_datetime="2019-01-17 18:25:20")),
    ("trip_over_a_day", changed(tpep_dropoff_datetime="2019-01-19 18:00:00")),
    ("year_2088_pickup", changed(tpep_pickup_datetime="2088-01-24 00:25:39")),
    ("no_passengers", changed(passenger_count="0")),
    ("blank_vendor_and_passengers", changed(VendorID="", passenger_count="")),
    ("rate_code_99", changed(RatecodeID="99")),
    ("unknown_payment_text", changed(payment_type="XYZ")),
    ("vendor_without_a_code", changed(VendorID="DDS")),
    ("fractional_seconds", changed(tpep_pickup_datetime="2019-01-17 18:25:20.5")),
    ("count_written_as_float", changed(passenger_count="6.0")),
    ("exponent_notation", changed(fare_amount="2.05e1")),
    ("spaces_around_numbers", changed(fare_amount=" 20.5 ")),
    ("ridiculous_but_finite_tip", changed(tip_amount="999999.99")),
]


@pytest.mark.parametrize("line", [case[1] for case in ODD_BUT_REAL], ids=[case[0] for case in ODD_BUT_REAL])
def test_an_odd_but_real_row_is_sent(tmp_path: Path, line: str) -> None:
    outcome = read_all(write(tmp_path, "odd.csv", [HEADER, GOOD_1, line, GOOD_2]))
    assert outcome.rejects == []
    assert len(outcome.trips) == 3


# ---------------------------------------------------------------- Parquet rows


def test_bad_parquet_values_are_rejected_by_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "VendorID": pa.array([b"2", b"\xff\xfe", b"1", b"1", b"2", b"2"], pa.binary()),
            "tpep_pickup_datetime": pa.array(
                ["2019-01-17 18:25:20", "2019-01-17 18:25:21", None, "2019-01-17 18:25:23", "x", "2019-01-17 18:25:25"]
            ),
            "tpep_dropoff_datetime": ["2019-01-17 18:45:00"] * 6,
            "fare_amount": pa.array([20.5, 21.0, 22.0, float("nan"), 1.0, float("inf")]),
            "total_amount": ["26.76", "27", "28", "29", "30", "abc"],
        }
    )
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    outcome = read_all(path)
    assert outcome.rejects == [
        (2, "invalid_utf8", None),
        (3, "missing_timestamp", "tpep_pickup_datetime"),
        (4, "non_finite_number", "fare_amount"),
        (5, "invalid_timestamp", "tpep_pickup_datetime"),
        (6, "non_finite_number", "fare_amount"),
    ]
    assert [trip["source"]["row"] for trip in outcome.trips] == [1]


# ---------------------------------------------------------------- Kinesis records the consumer cannot use


def a_record() -> dict[str, Any]:
    trip = TripNormaliser(resolve_header(COLUMNS, source_name="t.csv")).normalise(GOOD_1.split(","), 2)
    return orjson.loads(encode_trip(trip))


def with_changes(**changes: Any) -> bytes:
    record = a_record()
    record.update(changes)
    return orjson.dumps(record)


RECORD_REASONS = {RejectReason.UNDECODABLE_RECORD, RejectReason.INVALID_RECORD}
RECORD_CASES: list[tuple[str, bytes, RejectReason]] = [
    ("not_json", b"VendorID,tpep_pickup_datetime", RejectReason.UNDECODABLE_RECORD),
    ("truncated_json", encode_trip(a_record())[:50], RejectReason.UNDECODABLE_RECORD),
    ("not_utf8", b'{"trip_id": "\xff"}', RejectReason.UNDECODABLE_RECORD),
    ("json_array", b"[1, 2, 3]", RejectReason.UNDECODABLE_RECORD),
    ("json_string", b'"a trip"', RejectReason.UNDECODABLE_RECORD),
    ("empty", b"", RejectReason.UNDECODABLE_RECORD),
    ("nan_literal", encode_trip(a_record()).replace(b'"fare_amount":20.5', b'"fare_amount":NaN'), RejectReason.UNDECODABLE_RECORD),
    ("unknown_schema_version", with_changes(schema_version=99), RejectReason.INVALID_RECORD),
    ("no_schema_version", with_changes(schema_version=None), RejectReason.INVALID_RECORD),
    ("no_trip_id", with_changes(trip_id=None), RejectReason.INVALID_RECORD),
    ("numeric_trip_id", with_changes(trip_id=123), RejectReason.INVALID_RECORD),
    ("trip_id_too_long", with_changes(trip_id="x" * 300), RejectReason.INVALID_RECORD),
    ("pickup_not_iso", with_changes(pickup_datetime="17/01/2019 18:25"), RejectReason.INVALID_RECORD),
    ("pickup_missing", with_changes(pickup_datetime=None), RejectReason.INVALID_RECORD),
    ("amount_as_text", with_changes(total_amount="26.76"), RejectReason.INVALID_RECORD),
    ("amount_as_boolean", with_changes(fare_amount=True), RejectReason.INVALID_RECORD),
    ("amount_out_of_range", with_changes(total_amount=1e300), RejectReason.INVALID_RECORD),
    ("payment_as_object", with_changes(payment_type={"code": 1}), RejectReason.INVALID_RECORD),
    ("service_as_list", with_changes(service=["yellow"]), RejectReason.INVALID_RECORD),
]  # fmt: skip


@pytest.mark.parametrize(("data", "reason"), [c[1:] for c in RECORD_CASES], ids=[c[0] for c in RECORD_CASES])
def test_a_record_the_consumer_cannot_use_is_refused_with_its_reason(data: bytes, reason: RejectReason) -> None:
    with pytest.raises(RowError) as raised:
        decode_trip(data)
    assert raised.value.reason == reason


def test_a_good_record_decodes() -> None:
    assert decode_trip(encode_trip(a_record()))["total_amount"] == 26.76


# ---------------------------------------------------------------- files refused as a whole


def _parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _good_parquet() -> bytes:
    return _parquet_bytes(
        pa.table(
            {
                "tpep_pickup_datetime": ["2019-01-17 18:25:20"] * 1000,
                "tpep_dropoff_datetime": ["2019-01-17 18:45:00"] * 1000,
                "fare_amount": [float(i) for i in range(1000)],
            }
        ),
        compression="snappy",
        row_group_size=100,
    )


def _damaged_page() -> bytes:
    data = bytearray(_good_parquet())
    metadata = pq.ParquetFile(io.BytesIO(bytes(data))).metadata
    column = metadata.row_group(5).column(2)
    start = column.data_page_offset
    for offset in range(start + 20, start + column.total_compressed_size - 4):
        data[offset] ^= 0x5A
    return bytes(data)


def _zip() -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        archive.writestr("trips.csv", HEADER + "\n" + GOOD_1 + "\n")
    return sink.getvalue()


def _csv() -> bytes:
    return (HEADER + "\n" + GOOD_1 + "\n" + GOOD_2 + "\n").encode()


def _flipped_gzip() -> bytes:
    data = bytearray(gzip.compress(_csv() * 50))
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    return bytes(data)


REFUSED_CASES: list[tuple[str, bytes, str, str]] = [
    ("no_pickup_column", b"VendorID,tpep_dropoff_datetime,fare_amount\n1,2019-01-01 00:00:00,5\n", "missing_columns", "pickup"),
    ("no_dropoff_column", b"VendorID,tpep_pickup_datetime,fare_amount\n1,2019-01-01 00:00:00,5\n", "missing_columns", "dropoff"),
    ("no_time_columns", b"VendorID,trip_distance,fare_amount\n1,2.5,10\n", "missing_columns", "no pickup time"),
    ("empty_file", b"", "empty_file", "empty"),
    ("only_blank_lines", b"\n\r\n  \n", "empty_file", "empty"),
    ("zone_lookup_csv", b'"LocationID","Borough","Zone","service_zone"\r\n1,"EWR","Newark Airport","EWR"\r\n', "unknown_format", "LocationID"),
    ("json_document", b'[{"VendorID": 1, "tpep_pickup_datetime": "2019-01-01 00:00:00"}]\n', "unknown_format", "not a TLC trip file"),
    ("html_page", b"<!DOCTYPE html><html><body>Not Found</body></html>\n", "unknown_format", "not a TLC trip file"),
    ("png_image", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10", "unknown_format", "binary"),
    ("zip_archive", _zip(), "unknown_format", "ZIP"),
    ("bzip2_csv", bz2.compress(_csv()), "unknown_format", "bzip2"),
    ("utf16_csv", _csv().decode().encode("utf-16"), "unknown_format", "UTF-16"),
    ("semicolon_separated", _csv().replace(b",", b";"), "unknown_format", "semicolons"),
    ("classic_mac_line_endings", _csv().replace(b"\n", b"\r"), "unknown_format", "CR"),
    ("truncated_gzip", gzip.compress(_csv() * 50)[:-30], "truncated_gzip", "truncated"),
    ("corrupt_gzip", _flipped_gzip(), "corrupt_gzip", "not a valid gzip"),
    ("empty_gzip", gzip.compress(b""), "empty_file", "no data"),
    ("gzip_of_a_parquet", gzip.compress(_good_parquet()), "unknown_format", "gzip-compressed Parquet"),
    ("parquet_without_footer", _good_parquet()[:-100], "unreadable_parquet", "not a readable Parquet"),
    ("parquet_magic_then_junk", b"PAR1" + b"\x00junk" * 40, "unreadable_parquet", "not a readable Parquet"),
    ("parquet_damaged_page", _damaged_page(), "corrupt_parquet", "row group 6 of 10"),
    ("parquet_without_time_columns", _parquet_bytes(pa.table({"VendorID": [1], "fare_amount": [2.5]})), "missing_columns", "no pickup time"),
    ("parquet_without_dropoff", _parquet_bytes(pa.table({"tpep_pickup_datetime": ["2019-01-01 00:00:00"], "fare_amount": [2.5]})), "missing_columns", "dropoff"),
    ("parquet_two_columns_of_one_name", _parquet_bytes(pa.table([["2019-01-01 00:00:00"], ["2019-01-01 00:10:00"], ["x"]], names=["tpep_pickup_datetime", "tpep_dropoff_datetime", "tpep_dropoff_datetime"])), "duplicate_columns", "'tpep_dropoff_datetime'"),
    ("header_field_over_the_csv_limit", (HEADER + ',"' + "x" * 200_000 + '"\n' + GOOD_1 + "\n").encode(), "malformed_header", "field larger than field limit"),
    ("parquet_list_column", _parquet_bytes(pa.table({"tpep_pickup_datetime": [["2019-01-01 00:00:00"]], "tpep_dropoff_datetime": ["2019-01-01 00:10:00"]})), "unsupported_column_type", "tpep_pickup_datetime"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "problem", "mentions"), [c[1:] for c in REFUSED_CASES], ids=[c[0] for c in REFUSED_CASES]
)
def test_a_file_that_cannot_be_read_is_refused_whole_with_one_clear_message(
    tmp_path: Path, data: bytes, problem: str, mentions: str
) -> None:
    path = tmp_path / "taxi_trips.csv"
    path.write_bytes(data)
    with pytest.raises(FileRefused) as raised:
        open_trip_file(LocalFileSource(path))
    refused = raised.value
    assert refused.problem == problem
    message = str(refused)
    assert message.startswith(str(path) + ": "), message  # names the file
    assert mentions in message, message
    assert "\n" not in message and len(message) < 600, message
