"""The producer reads only its own bucket: jobs naming another bucket, the rejects prefix or the rejects bucket
are refused, logged and counted, and never read (issue 15, case 2)."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest

from tripstream.infra.template import load_template, resources_of_type
from tripstream.pipeline.producer import MAX_KEY_BYTES, foreign_job, produce_event, rejects_key
from tripstream.settings import Settings

SETTINGS = Settings.from_env({"SOURCE_BUCKET": "own", "REJECTS_BUCKET": "own", "REJECTS_PREFIX": "rejects/"})


@pytest.mark.parametrize(
    ("job", "problem"),
    [
        ({"bucket": "someone-elses", "key": "secrets.csv"}, "foreign_bucket"),
        ({"bucket": "own", "key": "rejects/producer/x.csv/abc/rows-000000000002.jsonl"}, "rejects_object"),
        (
            {"bucket": "someone-elses", "key": "big.csv", "resume": {"row_number": 5, "byte_offset": 100}},
            "foreign_bucket",
        ),
        ({"key": "no-bucket.csv"}, "invalid_job"),
        ({"bucket": "own", "key": ["not", "a", "key"]}, "invalid_job"),
    ],
    ids=["other_bucket", "rejects_prefix", "continuation_of_another_bucket", "no_bucket", "key_not_text"],
)
def test_a_job_outside_the_stacks_bucket_is_refused_unread(job: dict[str, Any], problem: str) -> None:
    s3, kinesis, seen = MagicMock(), MagicMock(), []
    outcome = produce_event(s3, kinesis, SETTINGS, [job], on_result=seen.append)
    assert s3.method_calls == [] and kinesis.method_calls == []  # never read, nothing written or sent
    (result,) = outcome.results
    assert result.refused is not None and result.refused["problem"] == problem
    assert seen == [result]  # logged by the handler's on_result
    assert outcome.refused_jobs == 1 and outcome.response()["refused_jobs"] == 1


def test_a_separate_rejects_bucket_is_never_a_source() -> None:
    settings = Settings.from_env({"SOURCE_BUCKET": "own", "REJECTS_BUCKET": "rejects-bucket"})
    outcome = produce_event(MagicMock(), MagicMock(), settings, [{"bucket": "rejects-bucket", "key": "t.csv"}])
    assert outcome.refused_jobs == 1


def test_without_a_source_bucket_setting_only_the_rejects_prefix_is_refused() -> None:
    settings = Settings.from_env({"REJECTS_BUCKET": "b"})
    jobs = [{"bucket": "b", "key": "rejects/producer/a.csv/e/file.jsonl"}]
    assert produce_event(MagicMock(), MagicMock(), settings, jobs).refused_jobs == 1
    assert foreign_job(settings, {"bucket": "b", "key": "taxi_trips.csv"}) is None


def test_the_settings_read_the_source_bucket() -> None:
    assert SETTINGS.source_bucket == "own"
    assert Settings.from_env({}).source_bucket is None


@pytest.mark.parametrize("first_row", [1, None])
@pytest.mark.parametrize("key", ["k" * 1020, "é" * 510, "dir/" * 200 + "trips.csv"])
def test_rejects_keys_fit_s3s_limit_and_stay_distinct(key: str, first_row: int | None) -> None:
    etag = '"0123456789abcdef0123456789abcdef-12"'
    made = rejects_key(SETTINGS, key, etag, first_row)
    other = rejects_key(SETTINGS, key[:-1] + "x", etag, first_row)
    assert len(made.encode()) <= MAX_KEY_BYTES and len(other.encode()) <= MAX_KEY_BYTES
    assert made != other and made.startswith("rejects/producer/")
    assert made.endswith("file.jsonl" if first_row is None else "rows-000000000001.jsonl")


def test_a_short_key_keeps_its_rejects_key() -> None:
    assert rejects_key(SETTINGS, "a/b.csv", '"e"', 2) == "rejects/producer/a/b.csv/e/rows-000000000002.jsonl"


def test_the_template_gives_the_producer_its_stacks_bucket() -> None:
    template = load_template()
    (producer,) = [
        resource["Properties"]
        for resource in resources_of_type(template, "AWS::Lambda::Function").values()
        if resource["Properties"]["FunctionName"] == "lambda-kinesis-producer"
    ]
    variables = producer["Environment"]["Variables"]
    assert variables["SOURCE_BUCKET"] == variables["REJECTS_BUCKET"]
    assert template["Resources"]["TripsBucket"]["Properties"]["BucketName"] == variables["SOURCE_BUCKET"]
