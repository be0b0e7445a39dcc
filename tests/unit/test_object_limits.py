"""Limits per object (issue 15, case 4): beyond them a file is refused whole, before any row is handed out."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tripstream.infra.template import load_template
from tripstream.settings import Settings
from tripstream.trips.limits import ObjectLimits
from tripstream.trips.normalise import FileRefused
from tripstream.trips.readers import LocalFileSource, open_trip_file

HEADER = b"VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,fare_amount\n"
ROW = b"1,2019-01-17 18:25:20,2019-01-17 18:45:00,20.5\n"


def refused(path: Path, limits: ObjectLimits | None = None) -> FileRefused:
    with pytest.raises(FileRefused) as raised:
        open_trip_file(LocalFileSource(path), limits=limits)
    return raised.value


def test_a_gzip_bomb_is_refused_by_its_ratio_with_the_default_limits(tmp_path: Path) -> None:
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(HEADER + ROW * 1_500_000, compresslevel=9))  # 70 MB from ~200 KB
    problem = refused(path)
    assert problem.problem == "compression_ratio" and "MAX_COMPRESSION_RATIO" in str(problem)


def test_a_small_repetitive_gzip_is_no_bomb(tmp_path: Path) -> None:
    path = tmp_path / "small.csv.gz"
    path.write_bytes(gzip.compress(HEADER + ROW * 10_000))
    assert open_trip_file(LocalFileSource(path)).format == "csv.gz"


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_too_many_rows_refuses_the_file(tmp_path: Path, fmt: str) -> None:
    data = HEADER + ROW * 30
    path = tmp_path / f"trips.{fmt}"
    if fmt == "csv":
        path.write_bytes(data)
    elif fmt == "csv.gz":
        path.write_bytes(gzip.compress(data))
    else:
        pq.write_table(pa_csv.read_csv(io.BytesIO(data)), path)
    assert refused(path, ObjectLimits(max_rows=20)).problem == "too_many_rows"
    assert open_trip_file(LocalFileSource(path), limits=ObjectLimits(max_rows=30)).format == fmt


@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_too_many_bytes_refuses_the_file(tmp_path: Path, fmt: str) -> None:
    data = HEADER + ROW * 100
    path = tmp_path / f"trips.{fmt}"
    path.write_bytes(gzip.compress(data) if fmt == "csv.gz" else data)
    assert refused(path, ObjectLimits(max_bytes=1000)).problem == "too_large"


def test_a_parquet_file_of_millions_of_rows_in_a_few_kb_is_refused_from_its_footer(tmp_path: Path) -> None:
    rows = 2_000_000
    table = pa.table(
        {
            "tpep_pickup_datetime": pa.array(["2019-01-17 18:25:20"]).take([0] * rows),
            "tpep_dropoff_datetime": pa.array(["2019-01-17 18:45:00"]).take([0] * rows),
        }
    )
    path = tmp_path / "bomb.parquet"
    pq.write_table(table, path, compression="zstd", row_group_size=rows)
    assert path.stat().st_size < 200_000
    assert refused(path).problem == "compression_ratio"


def test_the_limits_are_settings_and_template_parameters_with_the_same_defaults() -> None:
    defaults = Settings()
    parameters = load_template()["Parameters"]
    assert int(parameters["MaxObjectBytes"]["Default"]) == defaults.max_object_bytes
    assert int(parameters["MaxObjectRows"]["Default"]) == defaults.max_object_rows
    assert float(parameters["MaxCompressionRatio"]["Default"]) == defaults.max_compression_ratio
    # Well above a real TLC month: ~15 M rows and ~2.5 GB of CSV at most.
    assert defaults.max_object_rows >= 3 * 15_000_000 and defaults.max_object_bytes >= 4 * 2_500_000_000
    settings = Settings.from_env({"MAX_OBJECT_BYTES": "5", "MAX_OBJECT_ROWS": "6", "MAX_COMPRESSION_RATIO": "7.5"})
    assert settings.object_limits == ObjectLimits(5, 6, 7.5)
