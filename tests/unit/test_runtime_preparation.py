"""One preparer of a folder's Lambda runtime and packages at a time, across processes (two test workers or `run`
beside `up` on a fresh clone built one venv over the other: pip failed on a file the other had removed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tripstream.local.lambda_service import runtime_environment

_TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "w") as lock_file:
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("held")
    else:
        print("free")
"""


def _other_process_sees(lock_file: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, str(lock_file)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_another_process_waits_while_one_prepares(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with runtime_environment._preparing(root):
        assert _other_process_sees(root / ".preparing.lock") == "held"
    assert _other_process_sees(root / ".preparing.lock") == "free"
