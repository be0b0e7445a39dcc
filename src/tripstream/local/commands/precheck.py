"""A local trip file checked before anything starts: a regular, readable file whose format and header are a trip
file's. Refused in milliseconds, with the same `FileRefused` the producer raises (exit code 3)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tripstream.trips.normalise import FileRefused
from tripstream.trips.readers import LocalFileSource, open_trip_file


def check_local_file(path: Path) -> None:
    """Raise `FileRefused` unless `path` could be sent: reads the header only (a device or FIFO is never read)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise FileRefused(str(path), "unreadable", f"cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise FileRefused(str(path), "not_a_regular_file", "is not a regular file (a device, FIFO or socket)")
    if not os.access(path, os.R_OK):
        raise FileRefused(str(path), "unreadable", "cannot be read (permission denied)")
    try:
        open_trip_file(LocalFileSource(path))
    except OSError as error:
        raise FileRefused(str(path), "unreadable", f"cannot be read ({error.strerror or error})") from None
