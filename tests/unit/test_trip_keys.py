"""`run` and the deployed stack agree on what counts as a trip file (issue 15, case 8): the keys the template's
bucket notification delivers, compared case-sensitively as S3 does; TRIPS.CSV is one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import run_cli
from tripstream.cli.errors import CommandError
from tripstream.cli.run import check_notified_key


@pytest.mark.parametrize("key", ["taxi_trips.csv", "TRIPS.CSV", "a/b.csv.gz", "B.CSV.GZ", "x.parquet", "X.PARQUET"])
def test_keys_the_notification_delivers_are_taken(key: str) -> None:
    check_notified_key(key)


@pytest.mark.parametrize("key", ["trips.Csv", "trips.csv.GZ", "trips.txt", "trips.csv.bak", "trips"])
def test_keys_it_would_never_deliver_are_refused(key: str) -> None:
    with pytest.raises(CommandError, match="case-sensitively"):
        check_notified_key(key)


def test_run_refuses_such_a_key_before_anything_starts(tmp_path: Path) -> None:
    path = tmp_path / "trips.Csv"
    path.write_text("tpep_pickup_datetime,tpep_dropoff_datetime\n2019-01-01 00:00:00,2019-01-01 00:10:00\n")
    result = run_cli("run", str(path), isolated=True, timeout=60)
    assert result.returncode == 2 and "would never reach the producer" in result.stderr, result.stderr
    assert "endpoint:" not in result.stderr
