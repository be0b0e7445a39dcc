"""Live progress of a pipeline run: rows read, records sent, records consumed, items written.

On a terminal: rich progress bars with counts, rates and an ETA. Otherwise (a pipe, a CI log): one plain line
every few seconds and a last one at the end. Progress goes to standard error, so that standard output keeps only
the summary (or the `--json` document). The counters are fed by `tripstream.local.commands.progress.Progress` callbacks,
from any thread.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Self

from tripstream.local.commands.progress import Progress

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

ROWS_READ: Final = "rows read"
RECORDS_SENT: Final = "records sent"
RECORDS_CONSUMED: Final = "records consumed"
ITEMS_WRITTEN: Final = "items written"
COUNTERS: Final = (ROWS_READ, RECORDS_SENT, RECORDS_CONSUMED, ITEMS_WRITTEN)
PLAIN_INTERVAL_SECONDS: Final = 5.0
_CHUNK: Final = 1 << 20


_GZIP_SAMPLE = 8 << 20


def estimate_rows(path: Path) -> int | None:
    """How many data rows a trip file has (lines minus the header; Parquet: its metadata), None if unknown.

    Used only for the bars' totals and ETA: blank lines count, so it can be a little high.
    """
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic == b"PAR1":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(str(path)).metadata.num_rows)
        lines, last, out = 0, b"\n", 0
        packed = magic[:2] == b"\x1f\x8b"
        with path.open("rb") as raw, gzip.GzipFile(fileobj=raw) if packed else raw as stream:
            while chunk := stream.read(_CHUNK):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
                out += len(chunk)
                if packed and out >= _GZIP_SAMPLE:
                    # Decompressing all of it would be a third pass (and unbounded for a bomb): extrapolate.
                    return int(lines * path.stat().st_size / max(raw.tell(), 1))
        if last != b"\n":
            lines += 1  # a last line without a newline
        return max(0, lines - 1)
    except (OSError, EOFError, ValueError, ImportError):
        return None


class RateEstimate:
    """A counter's rate and time remaining, measured from its first increment, not from the start of the run.

    A run spends its first seconds (the emulator, the deploy) and the consumer's first batch waits on the producer:
    counted from the start, the rate is low for a long time and the ETA of a month-long file is off by minutes for
    its whole first half. Counted from the first increment (whose count is left out: it arrived in no time), the rate
    is the steady one as soon as a few batches are done, and the ETA is right within 20 % once a tenth is done
    (tests/unit/test_progress_eta.py).
    """

    def __init__(self) -> None:
        self.first_time: float | None = None
        self.first_count = 0

    def observe(self, now: float, count: int) -> None:
        """The counter reached ``count`` at ``now``."""
        if self.first_time is None and count > 0:
            self.first_time, self.first_count = now, count

    def rate(self, now: float, count: int) -> float | None:
        if self.first_time is None or now <= self.first_time or count <= self.first_count:
            return None
        return (count - self.first_count) / (now - self.first_time)

    def remaining_seconds(self, now: float, count: int, total: int | None) -> float | None:
        """Seconds until ``count`` reaches ``total`` at the rate so far; None before a rate is known."""
        rate = self.rate(now, count)
        if rate is None or not total or count >= total:
            return None
        return (total - count) / rate


class _Counters:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.values = dict.fromkeys(COUNTERS, 0)
        self.estimates = {name: RateEstimate() for name in COUNTERS}
        self.lock = threading.Lock()
        self._clock = clock

    def add(self, name: str, count: int) -> int:
        with self.lock:
            self.values[name] += count
            self.estimates[name].observe(self._clock(), self.values[name])
            return self.values[name]

    def remaining_seconds(self, name: str, total: int | None) -> float | None:
        with self.lock:
            return self.estimates[name].remaining_seconds(self._clock(), self.values[name], total)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.values)


class LiveProgress:
    """The four counters, shown live while the `with` block runs.

    `plain=None` picks bars when `stream` is a terminal, plain lines otherwise; `enabled=False` shows nothing
    (the counters still count).
    """

    def __init__(
        self,
        *,
        total: int | None = None,
        stream: IO[str] | None = None,
        plain: bool | None = None,
        enabled: bool = True,
        interval: float = PLAIN_INTERVAL_SECONDS,
        counters: tuple[str, ...] = COUNTERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self._stream = stream if stream is not None else sys.stderr
        is_terminal = bool(getattr(self._stream, "isatty", lambda: False)())
        self.plain = (not is_terminal) if plain is None else plain
        self.enabled = enabled
        self._interval = interval
        self._names = counters
        self._clock = clock
        self._counters = _Counters(clock)
        self._status = ""
        self._started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rich: RichProgress | None = None
        self._tasks: dict[str, TaskID] = {}

    # -- feeding

    def callbacks(self) -> Progress:
        """The callbacks that `run_file` (and the replay) call."""
        return Progress(
            rows_read=lambda n: self.add(ROWS_READ, n),
            records_sent=lambda n: self.add(RECORDS_SENT, n),
            records_consumed=lambda n: self.add(RECORDS_CONSUMED, n),
            items_written=lambda n: self.add(ITEMS_WRITTEN, n),
        )

    def add(self, name: str, count: int) -> None:
        value = self._counters.add(name, count)
        if self._rich is not None and name in self._tasks:
            task = self._tasks[name]
            total = self._rich.tasks[self._tasks[name]].total
            if total is not None and value > total:
                self._rich.update(task, total=value)
            self._rich.update(task, completed=value)

    def set_total(self, total: int | None) -> None:
        """The expected number of records (e.g. once a replay has read its file)."""
        self.total = total
        if self._rich is not None:
            for name, task in self._tasks.items():
                if name != ITEMS_WRITTEN:
                    self._rich.update(task, total=total)

    def set_status(self, text: str) -> None:
        """A short line shown beside the bars (e.g. the replay's clock)."""
        self._status = text

    @property
    def counts(self) -> dict[str, int]:
        return self._counters.snapshot()

    def eta_seconds(self) -> float | None:
        """Seconds until every expected record is consumed, at the consumed rate since the first one."""
        return self._counters.remaining_seconds(RECORDS_CONSUMED, self.total)

    # -- showing

    def __enter__(self) -> Self:
        self._started = self._clock()
        if not self.enabled:
            return self
        if self.plain:
            self._thread = threading.Thread(target=self._plain_loop, name="progress", daemon=True)
            self._thread.start()
        else:
            self._start_rich()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._rich is not None:
            counts = self.counts
            for name, task in self._tasks.items():
                if name in counts:
                    # The end: every bar is full at its real count (rejects make it lower than the estimate).
                    self._rich.update(task, total=counts[name] or None, completed=counts[name])
            self._rich.stop()
            self._rich = None
        elif self.enabled and self.plain:
            self._print_line(final=True)

    def _start_rich(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task: Any) -> Text:
                # While running: the recent rate; at the end: the average over the whole run.
                speed = task.speed if not task.finished else task.completed / max(task.elapsed or 0.0, 1e-9)
                return Text("" if speed is None else f"{speed:,.0f}/s", style="cyan")

        class CountColumn(ProgressColumn):
            def render(self, task: Any) -> Text:
                if task.total is None:
                    return Text(f"{int(task.completed):,}", style="green")
                return Text(f"{int(task.completed):,}/{int(task.total):,}", style="green")

        owner = self

        class EtaColumn(ProgressColumn):
            """The time remaining from the rate since the counter's first increment (RateEstimate), not rich's."""

            def render(self, task: Any) -> Text:
                name = task.description
                if task.finished or name not in COUNTERS or task.total is None:
                    return Text("-:--:--", style="progress.remaining")
                seconds = owner._counters.remaining_seconds(name, int(task.total))
                if seconds is None:
                    return Text("-:--:--", style="progress.remaining")
                minutes, secs = divmod(int(seconds), 60)
                hours, minutes = divmod(minutes, 60)
                return Text(f"{hours}:{minutes:02d}:{secs:02d}", style="progress.remaining")

        class StatusProgress(RichProgress):
            def get_renderables(self) -> Any:
                if owner._status:
                    yield Text(owner._status, style="bold")
                yield self.make_tasks_table(self.tasks)

        console = Console(file=self._stream, stderr=self._stream is sys.stderr)
        self._rich = StatusProgress(
            TextColumn("{task.description:<17}"),
            BarColumn(bar_width=32),
            CountColumn(),
            RateColumn(),
            TextColumn("ETA"),
            EtaColumn(),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=4,
            speed_estimate_period=15,
        )
        for name in self._names:
            total = None if name == ITEMS_WRITTEN else self.total
            self._tasks[name] = self._rich.add_task(name, total=total)
        self._rich.start()

    def _plain_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._print_line(final=False)

    def line(self, *, final: bool = False) -> str:
        """One plain progress line: counts, rates and (while running, with a total) the ETA."""
        counts = self.counts
        elapsed = max(1e-9, self._clock() - self._started)
        parts = []
        for name in self._names:
            count = counts[name]
            total = f"/{self.total:,}" if self.total and name in (ROWS_READ, RECORDS_SENT) else ""
            parts.append(f"{name} {count:,}{total} ({count / elapsed:,.0f}/s)")
        text = f"[{elapsed:6.1f}s] " + " · ".join(parts)
        eta = None if final else self.eta_seconds()
        if eta is not None:
            text += f" · ETA {eta:,.0f}s"
        if self._status:
            text += f" · {self._status}"
        return text + (" · done" if final else "")

    def _print_line(self, *, final: bool) -> None:
        print(self.line(final=final), file=self._stream, flush=True)
