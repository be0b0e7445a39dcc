"""The live runtime's reading of S3 notification messages (shapes as moto 5.2 delivers them) and the template's
notification filters."""

from __future__ import annotations

import orjson

from tripstream.infra.template import bucket_notification_filters, load_template
from tripstream.local.lambda_service.s3_notifications import matches, parse_message, result_key


def message(name: str, key: str, etag: str) -> str:
    record = {"eventName": name, "s3": {"bucket": {"name": "b"}, "object": {"key": key, "eTag": etag, "size": 1}}}
    return orjson.dumps({"Records": [record]}).decode()


def test_filters_come_from_the_template() -> None:
    filters = bucket_notification_filters(load_template())
    suffixes = sorted(rule["Value"] for f in filters for rule in f["FilterRules"] if rule["Name"] == "suffix")
    assert suffixes == [".CSV", ".CSV.GZ", ".PARQUET", ".csv", ".csv.gz", ".parquet"]
    assert all(f["Events"] == ["s3:ObjectCreated:*"] for f in filters)


def test_filters_match_as_s3_does() -> None:
    filters = bucket_notification_filters(load_template())
    assert matches("taxi_trips.csv", filters) and matches("a/b.csv.gz", filters)
    assert matches("taxi_trips.CSV", filters)  # the template lists the upper-case suffixes too
    assert not matches("taxi_trips.Csv", filters)  # case-sensitive, as S3
    assert not matches("notes.txt", filters)
    prefixed = [{"Events": ["s3:ObjectCreated:*"], "FilterRules": [{"Name": "prefix", "Value": "in/"}]}]
    assert matches("in/x", prefixed) and not matches("out/x", prefixed)


def test_test_event_and_garbage_are_skipped() -> None:
    assert parse_message(orjson.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}).decode()) == []
    assert parse_message("not json") == []


def test_keys_are_decoded_and_the_event_kept_whole() -> None:
    (event,) = parse_message(message("ObjectCreated:Put", "a+b%2Bc+%C3%A9.csv", "abc"))
    assert event.key == "a b+c é.csv" and event.etag == "abc"
    assert event.event["Records"][0]["s3"]["object"]["key"] == "a+b%2Bc+%C3%A9.csv"  # the handler unquotes


def test_motos_extra_put_for_a_multipart_upload_is_dropped() -> None:
    assert parse_message(message("ObjectCreated:Put", "big.csv", "0123-2")) == []
    (event,) = parse_message(message("ObjectCreated:CompleteMultipartUpload", "big.csv", "0123-2"))
    assert event.etag == "0123-2"


def test_result_keys_differ_by_key_and_etag() -> None:
    assert len({result_key("a.csv", "1"), result_key("a.csv", "2"), result_key("b.csv", "1")}) == 3
