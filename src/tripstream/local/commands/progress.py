"""How a local command reports its progress as it goes: callbacks, each optional, called from any thread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Progress:
    """Increments of rows read, records sent, records consumed and items written."""

    rows_read: Callable[[int], None] | None = None
    records_sent: Callable[[int], None] | None = None
    records_consumed: Callable[[int], None] | None = None
    items_written: Callable[[int], None] | None = None


class ProgressDisplay(Protocol):
    """What shows a command's progress (the CLI's bars or plain lines)."""

    def callbacks(self) -> Progress: ...

    def set_total(self, total: int | None) -> None: ...

    def set_status(self, text: str) -> None: ...
