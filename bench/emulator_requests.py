"""Benchmark: what one request costs the embedded emulator (issue 21), apart from the work it asks for.

Starts the embedded emulator and sends, with boto3 as tripstream does: ListTables (nothing to do: the fixed cost of a
request), then BatchWriteItem of 25 consumer-sized items (18 attributes) from 1 and from 8 client threads. Prints the
emulator's CPU per request (from /proc: user + system) and requests/s. The emulator is one process: its CPU per
request bounds the pipeline's rate.

A/B against an older commit: `git archive <commit> src | tar -x -C /tmp/base` and run this script with
`PYTHONPATH=/tmp/base/src`.

Usage: .venv/bin/python bench/emulator_requests.py [--requests 1500]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REGION, report

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.local.emulator.server import Emulator

_ITEM = {
    **{f"attribute_{n}": {"S": f"value-{'x' * 20}"} for n in range(12)},
    **{f"number_{n}": {"N": "12.34"} for n in range(6)},
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _emulator_pid() -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"tripstream.local.emulator.server" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError("no emulator process found")


def _measure(pid: int, threads: int, requests: int, send: Any) -> dict[str, float]:
    per_thread = max(1, requests // threads)

    def work(thread: int) -> None:
        for number in range(per_thread):
            send(thread, number)

    workers = [threading.Thread(target=work, args=(thread,)) for thread in range(threads)]
    cpu, started = _cpu_seconds(pid), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed, used = time.perf_counter() - started, _cpu_seconds(pid) - cpu
    done = per_thread * threads
    return {
        "requests_per_s": round(done / elapsed),
        "emulator_cpu_ms_per_request": round(1000 * used / done, 3),
        "emulator_cpu_share": round(used / elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    with Emulator() as emulator:
        clients = AwsClients.create(endpoint_url=emulator.endpoint_url, region=REGION, credentials=EMULATOR_CREDENTIALS)
        dynamodb = clients.dynamodb
        dynamodb.create_table(
            TableName="items",
            KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        pid = _emulator_pid()
        for _ in range(200):  # warm: moto's lazily built backends, the first connections
            dynamodb.list_tables()

        def put_batch(thread: int, number: int) -> None:
            batch = [{"PutRequest": {"Item": {"trip_id": {"S": f"{thread}-{number}-{n}"}, **_ITEM}}} for n in range(25)]
            dynamodb.batch_write_item(RequestItems={"items": batch})  # type: ignore[dict-item]

        figures: dict[str, Any] = {
            "list_tables": _measure(pid, 1, args.requests, lambda thread, number: dynamodb.list_tables()),
            "batch_write_25_one_thread": _measure(pid, 1, args.requests, put_batch),
            "batch_write_25_eight_threads": _measure(pid, 8, args.requests, put_batch),
        }
    report("emulator requests", figures)


if __name__ == "__main__":
    main()
