"""The live `tripstream up`: upload-to-first-item latency, idle CPU, and live throughput against `tripstream run`.

    PYTHONPATH=src python bench/live.py [--idle-seconds 60] [--throughput-rows 100000]

Starts a real `up` (a free port, its own temporary folder), uploads with tripstream's typed S3 call (as any
client would: a plain PutObject), prints figures; no assertions.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import item_count
from tripstream.aws.s3 import upload_file_and_head
from tripstream.local.lambda_service.s3_notifications import result_key
from tripstream.trips.generate import write_sample

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def start_up(folder: Path) -> tuple[subprocess.Popen[bytes], dict[str, str], str]:
    env_file, log = folder / "up.env", folder / "up.log"
    environment = {n: v for n, v in os.environ.items() if not n.startswith("AWS_")}
    environment["PYTHONPATH"] = str(REPO / "src")
    command = [sys.executable, "-m", "tripstream.cli", "up", "--port", "0", "--env-file", str(env_file)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    while "live: S3 events" not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.2)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines())
    bucket = next(line.split()[1] for line in log.read_text().splitlines() if line.strip().startswith("bucket "))
    return process, exports, bucket


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the emulator), from /proc."""
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids += [int(child) for child in children]
    return total


def wait_for_result(clients: AwsClients, bucket: str, key: str, etag: str) -> None:
    at = result_key(key, etag)
    while True:
        try:
            clients.s3.head_object(Bucket=bucket, Key=at)
            return
        except clients.s3.exceptions.ClientError:
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--throughput-rows", type=int, default=0, help="0 skips the throughput comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tripstream-bench-live-") as scratch:
        folder = Path(scratch)
        process, exports, bucket = start_up(folder)
        try:
            clients = AwsClients.create(
                endpoint_url=exports["AWS_ENDPOINT_URL"], region="us-east-1", credentials=EMULATOR_CREDENTIALS
            )
            latencies = []
            for sample in range(args.samples):
                path = write_sample(folder / f"latency-{sample}.csv", 100, seed=1000 + sample)
                before = item_count(clients.dynamodb, "trip_duration_analysis")
                started = time.monotonic()
                _, etag = upload_file_and_head(clients.s3, path, bucket, path.name)
                while item_count(clients.dynamodb, "trip_duration_analysis") == before:
                    time.sleep(0.02)
                latencies.append(time.monotonic() - started)
                wait_for_result(clients, bucket, path.name, etag.strip('"'))
            print(
                f"upload-to-first-item, 100-row file: median {statistics.median(latencies):.2f} s "
                f"(min {min(latencies):.2f}, max {max(latencies):.2f}, n={len(latencies)})"
            )
            time.sleep(3)
            cpu, wall = cpu_seconds(process.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            used = (cpu_seconds(process.pid) - cpu) / (time.monotonic() - wall)
            print(f"idle `up` (with its emulator) over {args.idle_seconds:.0f} s: {used * 100:.2f}% of one core")
            if args.throughput_rows:
                path = write_sample(folder / "big.csv", args.throughput_rows, seed=7)
                started = time.monotonic()
                _, etag = upload_file_and_head(clients.s3, path, bucket, "big.csv")
                wait_for_result(clients, bucket, "big.csv", etag.strip('"'))
                live = time.monotonic() - started
                environment = {n: v for n, v in os.environ.items() if not n.startswith("AWS_")}
                environment["PYTHONPATH"] = str(REPO / "src")
                started = time.monotonic()
                subprocess.run(
                    [sys.executable, "-m", "tripstream.cli", "run", str(path), "--no-progress"],
                    env=environment,
                    check=True,
                    capture_output=True,
                )
                batch = time.monotonic() - started
                rows = args.throughput_rows
                print(
                    f"{rows:,} trips: live {rows / live:,.0f} trips/s ({live:.1f} s), `run` {rows / batch:,.0f} "
                    f"trips/s ({batch:.1f} s, including its emulator start): live/run {batch / live:.2f}x"
                )
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)


if __name__ == "__main__":
    main()
