"""`tripstream up --state-dir` holds its data in the state folder as it goes (issue 21 item 5): a real `up` process,
killed with SIGKILL while the stream still holds records the consumer has not read, started again: those records are
consumed from the checkpoints, none is sent again, and the tables end exactly as the independent reference
(tests/expected.py) says, zone_hourly_stats included; a clean stop and start gives everything back.

The first `up` runs its consumer in its own process (--in-process) with a fault plan that delays every BatchWriteItem
(support.faults): so the producer has sent the whole file long before the consumer is through it.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import orjson
import pytest

from expected import expected_for
from support.faults import FaultPlan
from support.live_up import TABLES, Up, assert_reference_holds, wait_for
from tripstream.trips.generate import write_sample

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SMALL_BATCHES = ("--in-process", "--parameter", "BatchSize=25", "--parameter", "MaximumBatchingWindowInSeconds=0")


def _sent(state: Path, key: str) -> bool:
    """The live runtime's ledger says the producer sent every record of `key`."""
    ledger = state / "live" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines() if ledger.exists() else []
    return any(b'"sent"' in line and orjson.loads(line)["key"] == key for line in lines)


def _stream_records(up: Up) -> int:
    """Every record the stream holds, from TRIM_HORIZON on every shard."""
    kinesis = up.client("kinesis")
    total = 0
    for shard in kinesis.list_shards(StreamName="taxi_trips")["Shards"]:
        iterator: Any = kinesis.get_shard_iterator(
            StreamName="taxi_trips", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            total += len(answer["Records"])
            iterator = answer.get("NextShardIterator") if answer["Records"] else None
    return total


def _checkpointed(state: Path) -> int:
    """How many records the consumer finished, by its checkpoints (moto numbers a shard's records 1, 2, 3...)."""
    return sum(int(orjson.loads(path.read_bytes())["sequence_number"]) for path in state.glob("checkpoints/*/*.json"))


def _trips(path: Path, rows: int, seed: int) -> Path:
    write_sample(path, rows, seed=seed)
    return path


def test_up_holds_its_data_through_a_kill_9_and_a_clean_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    trips, more = _trips(tmp_path / "trips.csv", 1200, 521), _trips(tmp_path / "more.csv", 200, 522)
    reference = expected_for(trips).tables

    # 1. Every record sent, some consumed (checkpointed), the consumer far behind: SIGKILL.
    first = Up(tmp_path, state, *SMALL_BATCHES, faults=FaultPlan(seed=3, write_delay=0.3).to_json()).start()
    try:
        first.client("s3").upload_file(str(trips), first.bucket, "trips.csv")
        wait_for(lambda: _sent(state, "trips.csv") and _checkpointed(state), "every record sent, some consumed", 120)
        behind = {table: len(reference[table]) - len(first.items(table)) for table in TABLES}
    finally:
        first.stop(signal.SIGKILL)
    assert all(missing > 0 for missing in behind.values()), behind
    consumed = _checkpointed(state)
    assert 0 < consumed < 1200, consumed

    # 2. Started again: the kept records are consumed from the checkpoints, none sent again, the tables exact.
    second = Up(tmp_path, state, "--in-process").start()
    try:
        result = wait_for(lambda: second.result("trips.csv"), "the result after the restart", 180)
        assert result["drained"] and not result["gave_up"]
        assert_reference_holds(second, trips)  # nothing lost, nothing counted twice
        assert _stream_records(second) == 1200  # the kept records, none sent again
        # Only what was not checkpointed before the kill was delivered.
        wait_for(lambda: f"status: 1 objects, {1200 - consumed:,} records consumed" in second.output(), "status", 10)
        second.client("s3").upload_file(str(more), second.bucket, "more.csv")
        wait_for(lambda: second.result("more.csv"), "the second result", 120)
    finally:
        second.stop()
    assert "saved to" in second.output()
    manifest = orjson.loads((state / "snapshot" / "snapshot.json").read_bytes())
    assert manifest["version"] == 2 and not (state / "snapshot" / "tables").exists()

    # 3. A clean stop and start: the tables, the bucket (the results with it) and the stream come back.
    third = Up(tmp_path, state, "--in-process").start()
    try:
        assert "restored from" in third.output()
        assert_reference_holds(third, trips, more)
        assert third.result("trips.csv") is not None and third.result("more.csv") is not None
        assert _stream_records(third) == 1200 + 200
        assert third.output().count("trips.csv: 1,200 rows read") == 1  # reported once, in 2.
        assert third.output().count("more.csv: 200 rows read") == 1  # not processed again in 3.
    finally:
        third.stop()
