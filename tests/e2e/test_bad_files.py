"""Bad input end to end, on the emulator: rejected rows as JSON lines in S3 (line number and reason) while every good
row arrives; refused files with one clear message and nothing in the stream; Kinesis records the consumer cannot use
set aside with their sequence number, never blocking the records behind them.

The module shares one deployment of the stack on the session emulator (reset once): a deploy costs more than a run.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import support.cli as support_cli
from expected import expected_for
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.aws.kinesis import iter_stream_records
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers.dependencies import Dependencies
from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime
from tripstream.local.lambda_service.context import LocalLambdaContext
from tripstream.local.lambda_service.functions import handler_settings
from tripstream.pipeline.consumer import ConsumerResult
from tripstream.trips.normalise import TripNormaliser, resolve_header

pytestmark = pytest.mark.e2e
EVENTS = Path(__file__).parents[1] / "fixtures" / "events"
TABLES = ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")
HEADER = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
    "improvement_surcharge,total_amount,congestion_surcharge"
)
GOOD = [
    "2,2019-01-17 18:25:20,2019-01-17 19:00:00,6,13.39,1,N,144,132,1,40.5,1,0.5,9.46,5.76,0.3,57.52,",
    "2,2019-01-19 01:18:30,2019-01-19 01:37:44,5,4.92,1,N,50,209,1,18,0.5,0.5,2.9,0,0.3,22.2,",
    "1,2019-01-03 08:49:53,2019-01-03 08:57:12,1,1.10,1,N,249,144,1,7,0,0.5,1.55,0,0.3,9.35,",
    "1,2019-01-04 08:49:53,2019-01-04 08:52:12,1,0,1,N,249,249,3,-2.5,0,-0.5,0,0,-0.3,-3.3,",
    "2,2019-01-05 10:00:00,2019-01-05 09:00:00,1,2.5,1,N,1,2,2,10,0,0.5,0,0,0.3,10.8,",
]
# (bad line, reason): a few of the catalogue's kinds (tests/unit/test_bad_input_catalogue.py has them all).
BAD: list[tuple[bytes, str]] = [
    (GOOD[1].replace("2019-01-19 01:18:30", "not a time").encode(), "invalid_timestamp"),
    (GOOD[1].replace(",18,", ",eighteen,").encode(), "invalid_number"),
    (GOOD[1].replace(",18,", ",NaN,").encode(), "non_finite_number"),
    (GOOD[1].replace(",N,", "," + "N" * 500 + ",").encode(), "field_too_long"),
    (GOOD[1].replace(",N,", ",\xe9,").encode("latin-1"), "invalid_utf8"),
    (GOOD[1][:30].encode(), "wrong_field_count"),
    (HEADER.encode(), "repeated_header"),
    (('"2"' + GOOD[1][1:] + "\rjunk").encode(), "malformed_csv"),  # crashed the whole file before (issue 15)
]


@dataclass(frozen=True)
class Deployed:
    endpoint: str
    clients: AwsClients
    stack: DeployedStack
    state_dir: Path


@pytest.fixture(scope="module")
def deployed(emulator_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    support_cli.reset_emulator(emulator_endpoint)
    clients = AwsClients.create(endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    stack, _ = deploy_for_local_runtime(clients)
    return Deployed(emulator_endpoint, clients, stack, tmp_path_factory.mktemp("state"))


def run_cli(deployed: Deployed, path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = ["run", str(path), "--endpoint-url", deployed.endpoint, "--state-dir", str(deployed.state_dir)]
    return support_cli.run_cli(*command, *options, timeout=600, isolated=True)


def json_lines(deployed: Deployed, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    s3 = deployed.clients.s3
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=deployed.stack.bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=deployed.stack.bucket, Key=entry["Key"])["Body"].read()
            for line in body.splitlines():
                yield entry["Key"], json.loads(line)


def stream_size(deployed: Deployed) -> int:
    return sum(1 for _ in iter_stream_records(deployed.clients.kinesis, deployed.stack.stream_name))


def item_counts(deployed: Deployed) -> dict[str, int]:
    return {table: len(scan_all(deployed.clients.dynamodb, table)) for table in TABLES}


# ---------------------------------------------------------------- refused files


def _parquet(**columns: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, row_group_size=2)
    return sink.getvalue()


def _damaged_parquet() -> bytes:
    data = bytearray(
        _parquet(
            tpep_pickup_datetime=["2019-01-17 18:25:20"] * 8,
            tpep_dropoff_datetime=["2019-01-17 18:45:00"] * 8,
            fare_amount=[float(i) for i in range(8)],
        )
    )
    column = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(2).column(2)
    for offset in range(column.data_page_offset + 8, column.data_page_offset + column.total_compressed_size - 2):
        data[offset] ^= 0x5A
    return bytes(data)


GOOD_CSV = (HEADER + "\n" + "\n".join(GOOD) + "\n").encode()
REFUSED: list[tuple[str, bytes, str]] = [
    ("no_pickup.csv", GOOD_CSV.replace(b"tpep_pickup_datetime", b"pickup_time"), "no pickup time"),
    ("empty.csv", b"", "the file is empty"),
    ("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10", "not a CSV"),
    ("cut.csv.gz", gzip.compress(GOOD_CSV * 200)[:-40], "gzip stream is truncated"),
    ("damaged.parquet", _damaged_parquet(), "row group 3 of 4 cannot be read"),
    ("bomb.csv.gz", gzip.compress(GOOD_CSV * 300_000, compresslevel=9), "MAX_COMPRESSION_RATIO"),
    ("huge_header.csv", HEADER.encode() + b',"' + b"x" * 200_000 + b'"\n' + GOOD_CSV, "field larger than field limit"),
]


@pytest.mark.parametrize(("name", "data", "problem"), REFUSED, ids=[case[0] for case in REFUSED])
def test_a_refused_file_gets_one_clear_message_and_sends_nothing(
    deployed: Deployed, tmp_path: Path, name: str, data: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    # These run first in the module, on a stream nothing was ever sent to.
    assert stream_size(deployed) == 0
    result = run_cli(deployed, path)
    assert result.returncode == 3, result.stdout + result.stderr
    # One message, on stderr: from the check before anything starts (the header), else from the producer.
    assert result.stdout == "" and [line[:8] for line in result.stderr.splitlines()] == ["REFUSED "], result.stderr
    refused = result.stderr.strip()
    assert f"{name}: " in refused and problem in refused, refused
    assert stream_size(deployed) == 0, "a refused file sent records"
    assert item_counts(deployed) == dict.fromkeys(TABLES, 0)
    reports = list(json_lines(deployed, f"rejects/producer/{name}/"))
    if f"s3://{deployed.stack.bucket}/{name}: " in refused:  # uploaded, then refused by the producer
        ((_, report),) = reports
        assert report["source"]["key"] == name and problem in report["detail"]
    else:
        assert reports == [], "refused before the upload"


# ---------------------------------------------------------------- bad rows, and bad records in the stream


def test_bad_rows_and_bad_records_are_set_aside_and_every_good_trip_arrives(deployed: Deployed, tmp_path: Path) -> None:
    # The file: a blank line after the header, then good and bad rows in turn (line numbers: header 1, blank 2).
    lines: list[bytes] = [HEADER.encode(), b""]
    expected_rejects: list[tuple[int, str]] = []
    for index, good in enumerate(GOOD):
        lines.append(good.encode())
        if index < len(BAD):
            bad, reason = BAD[index]
            lines.append(bad)
            expected_rejects.append((len(lines), reason))
    for bad, reason in BAD[len(GOOD) :]:
        lines.append(bad)
        expected_rejects.append((len(lines), reason))
    path = tmp_path / "mixed_trips.csv"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    good_only = tmp_path / "good_only.csv"
    good_only.write_bytes(GOOD_CSV)
    expected = expected_for(good_only)

    # Two records no producer of ours would write, already in the stream ahead of the file's trips.
    kinesis = deployed.clients.kinesis
    garbage = [
        (b"not json at all", "undecodable_record"),
        (orjson.dumps({"schema_version": 99, "trip_id": "x"}), "invalid_record"),
    ]
    put = [
        (kinesis.put_record(StreamName=deployed.stack.stream_name, Data=data, PartitionKey=reason), reason)
        for data, reason in garbage
    ]
    sequence_numbers = {(response["ShardId"], response["SequenceNumber"]): reason for response, reason in put}

    result = run_cli(deployed, path, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == len(GOOD) + len(BAD)
    assert summary["records_sent"] == len(GOOD)
    assert summary["blank_lines"] == 1
    assert summary["rows_rejected"] == {reason: 1 for _, reason in BAD}
    assert summary["records_rejected"] == {"undecodable_record": 1, "invalid_record": 1}
    assert summary["trips_processed"] == len(GOOD)

    # Each rejected row: a JSON line with its line number and reason, under the rejects prefix of the bucket.
    rows = [report for key, report in json_lines(deployed, "rejects/producer/mixed_trips.csv/")]
    assert sorted((row["line"], row["reason"]) for row in rows) == sorted(expected_rejects)
    assert all(row["source"]["key"] == "mixed_trips.csv" and row["text"] for row in rows)
    # Each rejected record: its sequence number and reason, under the consumer's rejects prefix.
    records = [report for key, report in json_lines(deployed, "rejects/consumer/")]
    assert {
        (record["source"]["shard_id"], record["source"]["sequence_number"]): record["reason"] for record in records
    } == sequence_numbers

    # Every good trip arrived, with the values the reference computes.
    for table, want in expected.tables.items():
        got = {item["trip_id"]: item for item in scan_all(deployed.clients.dynamodb, table)}
        for trip_id, values in want.items():
            assert trip_id in got, (table, trip_id)
            assert {name: got[trip_id][name] for name in values} == values


# ---------------------------------------------------------------- the consumer handler with a Kinesis event


def test_the_consumer_handler_sets_aside_what_it_cannot_use_and_writes_the_rest(deployed: Deployed) -> None:
    """A Kinesis event in the documented shape (tests/fixtures/events/kinesis_batch.json): undecodable and invalid
    records between good ones go to the rejects with their sequence numbers; the good ones behind them are written;
    nothing is reported as a batch item failure, so Lambda does not retry them forever."""
    clients, stack = deployed.clients, deployed.stack
    documented: dict[str, Any] = json.loads((EVENTS / "kinesis_batch.json").read_text())
    template = documented["Records"][0]
    shard = template["eventID"].split(":")[0]
    good = [_trip(row) for row in GOOD[:2]]
    payloads: list[tuple[str, str]] = [  # (base64 data, what it is)
        (_b64(orjson.dumps(good[0])), "good"),
        (documented["Records"][0]["kinesis"]["data"], "undecodable_record"),  # "Hello, this is a test."
        ("!!! not base64 !!!", "undecodable_record"),
        (_b64(orjson.dumps({**good[1], "pickup_datetime": "yesterday"})), "invalid_record"),
        (_b64(orjson.dumps({**good[0], "total_amount": "57.52"})), "invalid_record"),
        (_b64(orjson.dumps(good[1])), "good"),
    ]
    base = int(template["kinesis"]["sequenceNumber"])
    event = {
        "Records": [
            {
                **template,
                "eventID": f"{shard}:{base + index}",
                "kinesis": {**template["kinesis"], "data": data, "sequenceNumber": str(base + index)},
            }
            for index, (data, _) in enumerate(payloads)
        ]
    }
    results: list[ConsumerResult] = []
    deps = Dependencies(clients, handler_settings(stack.consumer))
    handler = consumer_handler.make_handler(lambda: deps, results.append)
    context = LocalLambdaContext(function_name=stack.consumer.name, invoked_function_arn=stack.consumer.arn)
    for _ in range(2):  # delivered again (a retry of the whole batch): the same outcome, no duplicates
        assert handler(event, context) == {"batchItemFailures": []}
    result = results[-1]
    assert result.records_rejected == {"undecodable_record": 2, "invalid_record": 2}
    assert result.trips_processed == 2
    assert result.rejects_key is not None
    body = clients.s3.get_object(Bucket=stack.bucket, Key=result.rejects_key)["Body"].read()
    rejected = [json.loads(line) for line in body.splitlines()]
    assert [(r["source"]["sequence_number"], r["reason"]) for r in rejected] == [
        (str(base + index), what) for index, (_, what) in enumerate(payloads) if what != "good"
    ]
    assert all(r["source"]["shard_id"] == shard and r["detail"] for r in rejected)
    durations = {item["trip_id"] for item in scan_all(clients.dynamodb, "trip_duration_analysis")}
    assert {trip["trip_id"] for trip in good} <= durations


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _trip(row: str) -> dict[str, Any]:
    normaliser = TripNormaliser(resolve_header(HEADER.split(","), source_name="event.csv"))
    return normaliser.normalise(row.split(","), 2)
