"""Benchmark 5: the producer against a stream that enforces AWS's per-shard write limits.

A small HTTP proxy sits in front of the embedded emulator. For PutRecords/PutRecord it maps each record to its shard
(MD5 of the partition key against the shards' hash key ranges) and admits it only if that shard's token buckets
(1,000 records/s and 1 MiB/s, refilled continuously, starting empty) allow; the others are answered per entry with
ProvisionedThroughputExceededException, as AWS does. Everything else passes through unchanged.

tripstream.pipeline.producer.produce_object then sends --seconds worth of the combined limit for 1, 2 and 4 shards; the
figure is records sent / wall time / combined limit, and the stream is read back to check that nothing was lost.
Target: >= 90% of the combined limit, 0 lost.

Usage: .venv/bin/python bench/throttle.py [--shards 1 2 4] [--seconds 15]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REGION, deployed, report, sample

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.kinesis import iter_stream_records
from tripstream.pipeline.producer import produce_object

RECORDS_PER_SECOND = 1000
BYTES_PER_SECOND = 1024 * 1024


class Bucket:
    """Token buckets of one shard (records and bytes), capacity one second of each, starting empty."""

    def __init__(self) -> None:
        self.records = 0.0
        self.bytes = 0.0
        self.at = time.monotonic()

    def take(self, size: int) -> bool:
        now = time.monotonic()
        elapsed, self.at = now - self.at, now
        self.records = min(RECORDS_PER_SECOND, self.records + elapsed * RECORDS_PER_SECOND)
        self.bytes = min(BYTES_PER_SECOND, self.bytes + elapsed * BYTES_PER_SECOND)
        if self.records >= 1 and self.bytes >= size:
            self.records -= 1
            self.bytes -= size
            return True
        return False


class Throttle:
    def __init__(self, upstream: str, shards: list[dict[str, Any]]) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.ranges = [
            (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]), s["ShardId"])
            for s in shards
        ]
        self.buckets = {shard_id: Bucket() for _, _, shard_id in self.ranges}
        self.lock = threading.Lock()
        self.local = threading.local()
        self.throttled = 0
        self.admitted = 0

    def shard_of(self, record: dict[str, Any]) -> str:
        key = record.get("ExplicitHashKey")
        value = int(key) if key else int.from_bytes(hashlib.md5(record["PartitionKey"].encode()).digest(), "big")
        for start, end, shard_id in self.ranges:
            if start <= value <= end:
                return shard_id
        raise ValueError(value)

    def admit(self, record: dict[str, Any]) -> bool:
        size = len(base64.b64decode(record["Data"])) + len(record["PartitionKey"].encode())
        shard_id = self.shard_of(record)
        with self.lock:
            ok = self.buckets[shard_id].take(size)
            if ok:
                self.admitted += 1
            else:
                self.throttled += 1
        return ok

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:  # type: ignore[type-arg]
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
        headers["Content-Length"] = str(len(body))
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        except (http.client.HTTPException, OSError):
            connection.close()
            self.local.connection = None
            raise
        return response.status, response.getheaders(), response.read()


def make_handler(throttle: Throttle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, headers: list, body: bytes) -> None:  # type: ignore[type-arg]
            self.send_response(status)
            head = self.command == "HEAD"
            for name, value in headers:
                skipped = ("transfer-encoding", "connection", "server", "date") + (() if head else ("content-length",))
                if name.lower() not in skipped:
                    self.send_header(name, value)
            if not head:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target", "")
            headers = dict(self.headers.items())
            if target.endswith(".PutRecords"):
                request = json.loads(body)
                records = request["Records"]
                admitted = [throttle.admit(r) for r in records]
                results: list[dict[str, Any] | None] = [None] * len(records)
                failed = 0
                passing = [r for r, ok in zip(records, admitted, strict=True) if ok]
                upstream_headers: list = [("Content-Type", "application/x-amz-json-1.1")]  # type: ignore[type-arg]
                if passing:
                    status, upstream_headers, upstream_body = throttle.forward(
                        "POST", self.path, headers, json.dumps({**request, "Records": passing}).encode()
                    )
                    if status != 200:
                        self._reply(status, upstream_headers, upstream_body)
                        return
                    upstream = json.loads(upstream_body)
                    failed += upstream.get("FailedRecordCount", 0)
                    answers = iter(upstream["Records"])
                    for index, ok in enumerate(admitted):
                        if ok:
                            results[index] = next(answers)
                for index, ok in enumerate(admitted):
                    if not ok:
                        failed += 1
                        results[index] = {
                            "ErrorCode": "ProvisionedThroughputExceededException",
                            "ErrorMessage": "Rate exceeded for shard in stream under account 123456789012.",
                        }
                payload = json.dumps({"FailedRecordCount": failed, "Records": results}).encode()
                self._reply(200, [("Content-Type", "application/x-amz-json-1.1")], payload)
                return
            if target.endswith(".PutRecord") and not throttle.admit(json.loads(body)):
                payload = json.dumps(
                    {"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded for shard"}
                ).encode()
                self._reply(400, [("Content-Type", "application/x-amz-json-1.1")], payload)
                return
            status, response_headers, response_body = throttle.forward(self.command, self.path, headers, body)
            self._reply(status, response_headers, response_body)

        do_POST = _handle  # noqa: N815
        do_GET = _handle  # noqa: N815
        do_PUT = _handle  # noqa: N815
        do_HEAD = _handle  # noqa: N815
        do_DELETE = _handle  # noqa: N815

    return Handler


def run(shards: int, seconds: float, settings_changes: dict[str, Any]) -> dict[str, Any]:
    with deployed(shards=shards) as bench:
        kinesis = bench.clients.kinesis
        shard_list = kinesis.list_shards(StreamName=bench.stack.stream_name)["Shards"]
        throttle = Throttle(bench.emulator.endpoint_url, list(shard_list))
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(throttle))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        proxied = AwsClients.create(
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            region=REGION,
            max_attempts=1,
            credentials=EMULATOR_CREDENTIALS,
        )
        rows = int(shards * RECORDS_PER_SECOND * seconds)
        path = sample(rows, seed=7)
        bench.clients.s3.upload_file(str(path), bench.stack.bucket, "taxi_trips.csv")
        throttle.buckets = {shard_id: type(b)() for shard_id, b in throttle.buckets.items()}  # start empty, now
        started = time.perf_counter()
        error = None
        try:
            result = produce_object(
                bench.handler_clients.s3,
                proxied.kinesis,
                bench.producer_settings(**settings_changes),
                bench.stack.bucket,
                "taxi_trips.csv",
            )
            sent = result.records_sent
        except Exception as exc:  # RecordsNotSent: the figure says so
            error, sent = f"{type(exc).__name__}: {exc}", -1
        elapsed = time.perf_counter() - started
        server.shutdown()
        in_stream = len({r["PartitionKey"] for r in iter_stream_records(kinesis, bench.stack.stream_name)})
    limit = shards * RECORDS_PER_SECOND
    rate = in_stream / elapsed
    return {
        "shards": shards,
        "rows": rows,
        "seconds": round(elapsed, 2),
        "records_per_s": round(rate),
        "combined_limit": limit,
        "fraction_of_limit": round(rate / limit, 3),
        "distinct_trips_in_stream": in_stream,
        "lost": rows - in_stream,
        "throttled_entries": throttle.throttled,
        "error": error,
        "sent_reported": sent,
        "target": ">= 0.9 and 0 lost ("
        + (
            "met"
            if rate / limit >= 0.9 and in_stream == rows
            else f"NOT met: {rate / limit:.2f}, {rows - in_stream} lost"
        )
        + ")",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=15.0, help="how many seconds of the combined limit to send")
    parser.add_argument(
        "--retry-max-attempts", type=int, help="override the producer's RETRY_MAX_ATTEMPTS (default: the template's)"
    )
    args = parser.parse_args()
    changes: dict[str, Any] = {}
    if args.retry_max_attempts is not None:
        changes = {"retry_max_attempts": args.retry_max_attempts, "retry_max_elapsed": 600.0}
    figures: dict[str, Any] = {f"shards_{n}": run(n, args.seconds, changes) for n in args.shards}
    figures["settings_changes"] = changes
    report("5 throttled stream", figures)


if __name__ == "__main__":
    main()
