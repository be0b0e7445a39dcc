"""Benchmark 4: producer peak memory (RSS) on a small and a large generated file, CSV and Parquet.

Each run is a fresh child process that runs produce_object over the file through an S3 stand-in
that serves the local file (head_object, ranged get_object) and a Kinesis stand-in that accepts every PutRecords
without keeping it: what is measured is the producer's own memory (reader, normaliser, batching), not an emulator's.
The figure is the child's peak RSS (ru_maxrss). Target: large run <= 1.2x the small run.

Usage: .venv/bin/python bench/memory.py [--small-mb 10] [--large-mb 1024]
(Generating 1 GB takes minutes; files are cached in $TRIPSTREAM_BENCH_CACHE, default /tmp/tripstream-bench.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE, peak_rss_mib, report, verdict

from tripstream.trips.generate import write_sample


class _Body:
    def __init__(self, handle: Any, remaining: int) -> None:
        self._handle, self._remaining = handle, remaining

    def read(self, size: int = -1) -> bytes:
        size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        data = self._handle.read(size)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


class FileS3:
    """head_object / get_object (with Range) / put_object over one local file."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def head_object(self, **_: Any) -> dict[str, Any]:
        return {"ContentLength": self._path.stat().st_size, "ETag": '"bench"'}

    def get_object(self, *, Range: str | None = None, **_: Any) -> dict[str, Any]:  # noqa: N803
        size = self._path.stat().st_size
        start, end = 0, size - 1
        if Range:
            first, _, last = Range.removeprefix("bytes=").partition("-")
            start, end = int(first), (int(last) if last else size - 1)
        handle = self._path.open("rb")
        handle.seek(start)
        return {"Body": _Body(handle, end - start + 1)}

    def put_object(self, **_: Any) -> dict[str, Any]:
        return {}


class NullKinesis:
    def put_records(self, *, Records: list[dict[str, Any]], **_: Any) -> dict[str, Any]:  # noqa: N803
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": "s"} for _ in Records]}


def child(path: Path) -> None:
    from tripstream.pipeline.producer import produce_object
    from tripstream.settings import Settings

    started = time.perf_counter()
    result = produce_object(FileS3(path), NullKinesis(), Settings(rejects_bucket="bench"), "bench", path.name)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    print(json.dumps({"peak_rss_mib": peak_rss_mib(), "records": result.records_sent, "seconds": seconds}))


def generated(megabytes: int, suffix: str) -> Path:
    csv_path = CACHE / f"memory-{megabytes}mb.csv"
    if not csv_path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        probe = write_sample(CACHE / "memory-probe.csv", 20_000)
        rows = int(megabytes * 1024 * 1024 / (probe.stat().st_size / 20_000))
        partial = csv_path.with_name("partial-" + csv_path.name)
        write_sample(partial, rows)
        partial.replace(csv_path)
    if suffix == ".csv":
        return csv_path
    parquet_path = csv_path.with_suffix(".parquet")
    if not parquet_path.exists():
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        # Streamed conversion (the generator's own Parquet path reads the whole CSV into memory).
        reader = pacsv.open_csv(csv_path, read_options=pacsv.ReadOptions(block_size=64 << 20))
        partial = parquet_path.with_name("partial-" + parquet_path.name)
        with pq.ParquetWriter(partial, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch, row_group_size=100_000)
        partial.replace(parquet_path)
    return parquet_path


def measure(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path)], check=True, capture_output=True, text=True
    ).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    figures["file_mib"] = round(path.stat().st_size / 2**20, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-mb", type=int, default=10)
    parser.add_argument("--large-mb", type=int, default=1024)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    figures: dict[str, Any] = {}
    for suffix in (".csv", ".parquet"):
        small = measure(generated(args.small_mb, suffix))
        large = measure(generated(args.large_mb, suffix))
        ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        name = suffix.lstrip(".")
        figures[f"{name}_small"] = small
        figures[f"{name}_large"] = large
        figures[f"{name}_ratio"] = round(ratio, 3)
        figures[f"{name}_target"] = "<= 1.2 (" + verdict(ratio, 1.2, at_most=True) + ")"
    report(f"4 memory ({args.small_mb} MB vs {args.large_mb} MB)", figures)


if __name__ == "__main__":
    main()
