"""The live runtime's ledger (local.commands.live.Ledger): what a restarted `up` reads back from the state folder.
An object whose records were all sent is not sent again, but only into the very stream they went to, and only
until it is done."""

from __future__ import annotations

from pathlib import Path

from tripstream.local.commands.live import Ledger

STREAM = "taxi_trips@2026-12-07T04:31:31.314000+00:00"


def test_a_sent_object_is_known_after_a_restart_for_its_own_stream_only(tmp_path: Path) -> None:
    path = tmp_path / "live" / "ledger.jsonl"
    produced = {"results": [{"rows_read": 3, "records_sent": 3}], "gave_up": False, "errors": [], "stream": STREAM}
    Ledger(path).add_sent("trips.csv", "etag1", produced)
    with path.open("ab") as out:
        out.write(b'{"key": "torn.csv", "et')  # a line torn by a kill
    again = Ledger(path)
    assert again.sent("trips.csv", "etag1", STREAM) == produced
    assert again.sent("trips.csv", "etag1", "taxi_trips@another creation") is None  # a stream created again
    assert again.sent("trips.csv", "etag2", STREAM) is None  # another version of the object
    assert ("trips.csv", "etag1") not in again  # sent is not done


def test_a_done_object_is_sent_again_when_it_arrives_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.add_sent("trips.csv", "etag1", {"results": [], "stream": STREAM})
    ledger.add("trips.csv", "etag1")
    for reader in (ledger, Ledger(path)):
        assert ("trips.csv", "etag1") in reader
        assert reader.sent("trips.csv", "etag1", STREAM) is None
