"""Trip files by content: CSV, gzip CSV and Parquet, the raw-file quirks, Parquet types, resuming."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tripstream.trips.normalise import TripNormaliser
from tripstream.trips.readers import LocalFileSource, RawRow, ResumePoint, TripFile, open_trip_file

HEADER = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
    "improvement_surcharge,total_amount,congestion_surcharge"
)
ROWS = [
    "2,2019-01-17 18:25:20,2019-01-18 18:00:00,6,3.39,1,N,144,237,1,20.5,1,0.5,4.46,0,0.3,26.76,",
    "2,2019-01-19 01:18:30,2019-01-19 01:37:44,5,4.92,1,N,50,209,1,18,0.5,0.5,2.9,0,0.3,22.2,",
    "1,2019-01-03 08:49:53,2019-01-03 08:57:12,1,1.10,1,N,249,144,1,7,0,0.5,1.55,0,0.3,9.35,",
    ",2019-01-05 10:00:00,2019-01-05 10:20:00,,.76,1,N,1,2,2,5.5,0,0.5,0,0,0.3,6.3,2.5",
]


def trips_of(path: Path, resume: ResumePoint | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    trip_file = open_trip_file(LocalFileSource(path))
    return normalised(trip_file, resume, limit)


def normalised(
    trip_file: TripFile, resume: ResumePoint | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    normaliser = TripNormaliser(trip_file.header)
    trips = []
    for row in itertools.islice(trip_file.rows(resume), limit):
        assert row.error is None, row
        assert row.fields is not None
        trips.append(normaliser.normalise(row.fields, row.row_number))
    return trips


def without_source(trips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in trip.items() if k != "source"} for trip in trips]


def csv_bytes(lines: list[str], newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode()


def parquet_from_csv(source: Path, target: Path, *, row_group_size: int = 1000, rows: int | None = None) -> Path:
    """A Parquet made from a CSV the way people make one (pyarrow's CSV reader infers the types). The CSV is
    tidied first the way any CSV tool needs: no blank lines, no empty fields beyond the header."""
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        tidy = io.StringIO()
        writer = csv.writer(tidy, lineterminator="\n")
        writer.writerow(header)
        kept = (row[: len(header)] for row in reader if "".join(row).strip())
        writer.writerows(kept if rows is None else itertools.islice(kept, rows))
    table = pacsv.read_csv(io.BytesIO(tidy.getvalue().encode()))
    pq.write_table(table, target, row_group_size=row_group_size)
    return target


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.csv"
    path.write_bytes(csv_bytes([HEADER, *ROWS]))
    return path


# ---------------------------------------------------------------- format by content


@pytest.mark.parametrize("name", ["taxi_trips.csv", "taxi_trips.parquet", "taxi_trips.csv.gz", "trips", "x.txt"])
def test_the_format_comes_from_the_content_not_the_name(tmp_path: Path, plain: Path, name: str) -> None:
    expected = without_source(trips_of(plain))
    for fmt, data in (
        ("csv", plain.read_bytes()),
        ("csv.gz", gzip.compress(plain.read_bytes())),
        ("parquet", parquet_from_csv(plain, tmp_path / "made.parquet").read_bytes()),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        trip_file = open_trip_file(LocalFileSource(path))
        assert trip_file.format == fmt
        assert without_source(normalised(trip_file)) == expected, fmt


def test_raw_file_quirks_give_the_same_trips_as_a_clean_file(tmp_path: Path, plain: Path) -> None:
    """BOM, CRLF, a blank line after the header, empty fields beyond the header, quoted fields, long float text,
    blank VendorID and passenger_count, spaces around names: the trips are those of the clean file."""
    quirky_rows = [row + ",," for row in ROWS]
    quirky_rows[0] = quirky_rows[0].replace(",3.39,", ",3.3900000000000001,").replace(",20.5,", ',"20.5",')
    quirky_rows[1] = quirky_rows[1].replace(",4.92,", ",4.9199999999999999,")
    header = " " + HEADER.replace(",", " , ").replace("VendorID", '"VendorID"')
    data = b"\xef\xbb\xbf" + csv_bytes([header, "", *quirky_rows], newline="\r\n")
    path = tmp_path / "quirky.csv"
    path.write_bytes(data)
    trip_file = open_trip_file(LocalFileSource(path))
    assert without_source(normalised(trip_file)) == without_source(trips_of(plain))
    assert [row.row_number for row in trip_file.rows()] == [3, 4, 5, 6]  # the header is line 1, the blank line 2
    assert trip_file.stats.blank_lines == 1
    assert trip_file.header.ignored == ()


def test_blank_and_comma_only_lines_are_skipped_and_counted_not_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_bytes(csv_bytes([HEADER, ROWS[0], "", ",,,,", "  ", ROWS[1], ""]))
    trip_file = open_trip_file(LocalFileSource(path))
    assert [row.row_number for row in trip_file.rows()] == [2, 6]
    assert trip_file.stats.blank_lines == 4


def test_a_header_only_file_is_read_with_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header_only.csv"
    path.write_bytes(csv_bytes([HEADER]))
    assert trips_of(path) == []


def test_a_last_line_without_newline_is_a_row(tmp_path: Path) -> None:
    path = tmp_path / "no_final_newline.csv"
    path.write_bytes(csv_bytes([HEADER, *ROWS])[:-1])
    assert len(trips_of(path)) == len(ROWS)


def test_concatenated_gzip_members_are_one_file(tmp_path: Path, plain: Path) -> None:
    path = tmp_path / "members.csv.gz"
    path.write_bytes(gzip.compress(csv_bytes([HEADER, *ROWS[:2]])) + gzip.compress(csv_bytes(ROWS[2:])))
    assert without_source(trips_of(path)) == without_source(trips_of(plain))


def test_reader_errors_keep_the_line_numbers_of_the_lines_after_them(tmp_path: Path) -> None:
    path = tmp_path / "errors.csv"
    path.write_bytes(csv_bytes([HEADER, ROWS[0]]) + b"x" * 100_000 + b"\n\xff\xfe\n" + csv_bytes([ROWS[1]]))
    rows = list(open_trip_file(LocalFileSource(path)).rows())
    assert [(row.row_number, row.error and str(row.error.reason)) for row in rows] == [
        (2, None),
        (3, "line_too_long"),
        (4, "invalid_utf8"),
        (5, None),
    ]
    assert len(rows[1].text) <= 2000


# ---------------------------------------------------------------- every real sample as Parquet

PER_SAMPLE = 4000


def test_every_real_sample_gives_the_same_trip_ids_from_csv_and_from_parquet(tlc_samples: Path, tmp_path: Path) -> None:
    """The same trip, read from a CSV and from a Parquet made from it (typed columns, doubles, timestamps, several
    row groups), is the same canonical trip with the same trip_id: values round the same way from both."""
    for sample in sorted(tlc_samples.glob("*_sample*.csv")):
        # The first rows of each sample: every era and quirk, at a fifth of the time of whole files (the
        # end-to-end test runs a whole one).
        parquet = parquet_from_csv(sample, tmp_path / (sample.stem + ".parquet"), row_group_size=1000, rows=PER_SAMPLE)
        assert pq.ParquetFile(parquet).num_row_groups >= 1
        from_parquet = without_source(trips_of(parquet))
        from_csv = without_source(trips_of(sample, limit=PER_SAMPLE))
        assert len(from_parquet) == min(PER_SAMPLE, len(from_csv)), sample.name
        mismatched = [(a, b) for a, b in zip(from_csv, from_parquet, strict=True) if a != b]
        assert not mismatched, (sample.name, mismatched[:2])


# ---------------------------------------------------------------- Parquet types


def _parquet(tmp_path: Path, columns: dict[str, Any], **options: Any) -> Path:
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table(columns), path, **options)
    return path


def test_parquet_timestamps_naive_fractional_and_zoned(tmp_path: Path) -> None:
    wall = [datetime(2019, 1, 17, 18, 25, 20, 999_999), datetime(2019, 7, 4, 23, 59, 59, 500_000)]
    dropoff = pa.array([datetime(2019, 1, 17, 18, 45), datetime(2019, 7, 5, 0, 10)], pa.timestamp("s"))
    expected = ["2019-01-17T18:25:20", "2019-07-04T23:59:59"]
    for unit in ("ms", "us", "ns"):
        path = _parquet(
            tmp_path, {"tpep_pickup_datetime": pa.array(wall, pa.timestamp(unit)), "tpep_dropoff_datetime": dropoff}
        )
        assert [t["pickup_datetime"] for t in trips_of(path)] == expected, unit
    # An instant in a named zone or offset: its NYC wall time (EST in January, EDT in July).
    instants = pa.array(
        [datetime(2019, 1, 17, 23, 25, 20), datetime(2019, 7, 5, 3, 59, 59)], pa.timestamp("us", tz="UTC")
    )
    for zone in ("America/New_York", "+02:00", "Europe/Paris"):
        path = _parquet(
            tmp_path,
            {"tpep_pickup_datetime": instants.cast(pa.timestamp("us", tz=zone)), "tpep_dropoff_datetime": dropoff},
        )
        assert [t["pickup_datetime"] for t in trips_of(path)] == ["2019-01-17T18:25:20", "2019-07-04T23:59:59"], zone
    # Marked UTC: taken as NYC wall time, like text marked UTC (BigQuery TIMESTAMP exports, Spark in UTC).
    path = _parquet(
        tmp_path,
        {"tpep_pickup_datetime": pa.array(wall, pa.timestamp("us", tz="UTC")), "tpep_dropoff_datetime": dropoff},
    )
    assert [t["pickup_datetime"] for t in trips_of(path)] == expected
    text_path = tmp_path / "utc.csv"
    text_path.write_text(
        "tpep_pickup_datetime,tpep_dropoff_datetime\n2019-01-17T18:25:20.999999Z,2019-01-17 18:45:00\n"
    )
    assert trips_of(text_path)[0]["pickup_datetime"] == expected[0]


def test_parquet_numbers_of_every_type_read_as_the_csv_text_would(tmp_path: Path) -> None:
    path = _parquet(
        tmp_path,
        {
            "VendorID": pa.array([2, None], pa.int32()),
            "tpep_pickup_datetime": ["2019-01-17T18:25:20", "2019-01-17 18:25:20"],
            "tpep_dropoff_datetime": ["2019-01-17 18:45:00", "2019-01-17 18:45:00"],
            "passenger_count": pa.array([1.0, None], pa.float64()),
            "trip_distance": pa.array([0.56999999999999995, 3.39], pa.float32()),
            "fare_amount": pa.array([Decimal("20.50"), Decimal("-3.25")], pa.decimal128(8, 2)),
            "store_and_fwd_flag": pa.array([True, False]),
            "payment_type": pa.array(["CRD", "CSH"]).dictionary_encode(),
            "pickup_longitude": pa.array([-73.950552999999999, 0.0]),
            "extra": pa.array([None, None], pa.null()),
        },
    )
    first, second = trips_of(path)
    assert (first["vendor_id"], second["vendor_id"]) == (2, None)
    assert (first["passenger_count"], second["passenger_count"]) == (1, None)
    assert (first["trip_distance"], second["trip_distance"]) == (0.57, 3.39)
    assert (first["fare_amount"], second["fare_amount"]) == (20.5, -3.25)
    assert (first["store_and_fwd_flag"], second["store_and_fwd_flag"]) == ("Y", "N")
    assert (first["payment_type"], second["payment_type"]) == (1, 2)
    assert first["pickup_longitude"] == -73.950553
    assert first["extra"] is None
    assert first["pickup_datetime"] == second["pickup_datetime"] == "2019-01-17T18:25:20"


def test_parquet_is_read_one_row_group_at_a_time_and_only_the_trip_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 5000
    path = _parquet(
        tmp_path,
        {
            "tpep_pickup_datetime": pa.array(
                [datetime(2019, 1, 1, 0, 0, i % 60) for i in range(count)], pa.timestamp("us")
            ),
            "tpep_dropoff_datetime": pa.array(
                [datetime(2019, 1, 1, 1, 0, i % 60) for i in range(count)], pa.timestamp("us")
            ),
            "fare_amount": [float(i) for i in range(count)],
            "not_a_trip_column": ["x" * 50] * count,
        },
        row_group_size=1000,
    )
    calls: list[tuple[Any, Any]] = []
    original = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        calls.append((kwargs.get("row_groups"), kwargs.get("columns")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail("read the whole table"))
    trip_file = open_trip_file(LocalFileSource(path))
    assert trip_file.header.ignored == ("not_a_trip_column",)
    trips = normalised(trip_file)
    assert [t["fare_amount"] for t in trips] == [float(i) for i in range(count)]
    assert all(groups is not None and len(groups) == 1 for groups, _ in calls)
    assert all("not_a_trip_column" not in columns for _, columns in calls)


# ---------------------------------------------------------------- resuming where a previous invocation stopped


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_a_follow_up_resumes_right_after_the_last_row_done(tmp_path: Path, fmt: str) -> None:
    lines = [HEADER, ""] + [ROWS[i % 4].replace("18:25:20", f"18:25:{i % 60:02d}") for i in range(300)]
    path = tmp_path / "many.csv"
    path.write_bytes(csv_bytes(lines))
    if fmt == "csv.gz":
        path = tmp_path / "many.csv.gz"
        path.write_bytes(gzip.compress(csv_bytes(lines)))
    elif fmt == "parquet":
        path = parquet_from_csv(path, tmp_path / "many.parquet", row_group_size=64)
    trip_file = open_trip_file(LocalFileSource(path))
    rows = list(trip_file.rows())
    stop: RawRow = rows[130]
    resume = ResumePoint(stop.row_number, stop.end_offset)
    assert (resume.byte_offset is not None) == (fmt == "csv")
    after = list(open_trip_file(LocalFileSource(path)).rows(resume))
    assert [(r.row_number, list(r.fields or ())) for r in after] == [
        (r.row_number, list(r.fields or ())) for r in rows[131:]
    ]


# ---------------------------------------------------------------- service


@pytest.mark.parametrize(
    ("header", "name", "service"),
    [
        ("lpep_pickup_datetime,Lpep_dropoff_datetime", "trips.csv", "green"),
        ("tpep_pickup_datetime,tpep_dropoff_datetime", "green_trips.csv", "yellow"),
        ("pickup_datetime,dropoff_datetime,trip_type", "x.csv", "green"),
        ("pickup_datetime,dropoff_datetime", "green_2019-01.csv", "green"),
        ("pickup_datetime,dropoff_datetime", "fhv_tripdata_2019-01.csv", "fhv"),
        ("pickup_datetime,dropoff_datetime", "taxi_trips.csv", "yellow"),
    ],
)
def test_the_service_comes_from_the_header_then_the_name(tmp_path: Path, header: str, name: str, service: str) -> None:
    path = tmp_path / name
    path.write_text(header + "\n")
    assert open_trip_file(LocalFileSource(path)).header.service == service


# ---------------------------------------------------------------- the real-samples fixture


def test_missing_real_samples_skip_locally_and_fail_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import require_tlc_samples

    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    (empty / "taxi_zone_lookup.csv").write_text("LocationID,Borough\n")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="does not exist"):
        require_tlc_samples(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="does not exist"):
        require_tlc_samples(missing)
    with pytest.raises(pytest.fail.Exception, match="holds no trip samples"):
        require_tlc_samples(empty)
    (empty / "yellow_2019-01_sample.csv").write_text(HEADER + "\n")
    assert require_tlc_samples(empty) == empty
