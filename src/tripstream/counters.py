"""Counters that several threads add to: the calls in flight of one invocation, the pollers of the shards."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self


@dataclass
class Counters:
    """Subclasses declare their counters as int fields; `add` is atomic across threads."""

    def __post_init__(self) -> None:
        # Not a field: the counts compare, print and serialise (`dataclasses.asdict`) without it.
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The counts again from their `dataclasses.asdict` (a log line's); names this class does not know are
        left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in names})
