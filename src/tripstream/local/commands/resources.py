"""What a run's processes use: the CLI and every descendant (the emulator, DynamoDB Local, function processes).

:class:`ProcessTreeSampler` walks ``/proc`` from a root process every ``interval`` seconds, in a daemon thread, and
keeps per process its peak resident memory and its last CPU time, and the peak of their sum. Linux only: elsewhere
(no ``/proc``) it records nothing and :attr:`ProcessTreeSampler.available` is false.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

_PROC: Final = Path("/proc")
_PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class ProcessUsage:
    pid: int
    name: str
    peak_rss_bytes: int = 0
    cpu_seconds: float = 0.0  # user + system, at the last sample that saw the process


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, resident bytes) of ``pid``; None when it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        statm = (_PROC / str(pid) / "statm").read_text().split()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS, int(statm[1]) * _PAGE_BYTES


_HAS_CHILDREN_FILES: Final = (_PROC / "self" / "task" / str(os.getpid()) / "children").exists()


def _children(pid: int) -> list[int]:
    """The children of ``pid`` from each of its threads' ``children`` file (no scan of every process)."""
    found: list[int] = []
    try:
        for task in os.scandir(_PROC / str(pid) / "task"):
            try:
                found.extend(int(child) for child in (Path(task.path) / "children").read_text().split())
            except OSError:
                continue
    except OSError:
        pass
    return found


def _children_by_scan() -> Callable[[int], list[int]]:
    """Where the kernel has no ``children`` files: every process's parent, read once per sample."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir(_PROC):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
    return lambda pid: parents.get(pid, [])


def _command_line_name(pid: int) -> str | None:
    """The module or script a Python process runs, else its command; None without a command line (exited)."""
    try:
        argv = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [word.decode(errors="replace") for word in argv if word]
    return command_name(words) if words else None


def _name(pid: int) -> str:
    """A short name: :func:`_command_line_name`, else (a process that has exited and left no command line) the
    kernel's name for it."""
    if (name := _command_line_name(pid)) is not None:
        return name
    try:
        return (_PROC / str(pid) / "comm").read_text().strip() or "?"
    except OSError:
        return "?"


# The interpreter's options that take a value, as the next word or glued on (`-W ignore::DeprecationWarning`).
_PYTHON_OPTIONS_WITH_VALUE = ("-W", "-X", "-c", "-m")


def command_name(words: list[str]) -> str:
    """The module (`-m`) or script a Python command runs, `python -c` for inline code; else the command's name."""
    base = os.path.basename(words[0])
    if not base.startswith("python"):
        return base
    index = 1
    while index < len(words) and words[index].startswith("-"):
        option = words[index]
        if option in _PYTHON_OPTIONS_WITH_VALUE:
            if option == "-m" and index + 1 < len(words):
                return words[index + 1]
            if option == "-c":
                return f"{base} -c"
            index += 2
        else:
            index += 1
    return os.path.basename(words[index]) if index < len(words) else base


class ProcessTreeSampler:
    """Peak memory and CPU of ``root`` (default: this process) and all its descendants, sampled in a thread."""

    def __init__(self, root: int | None = None, *, interval: float = 0.5) -> None:
        self.root = os.getpid() if root is None else root
        self.interval = interval
        self.available = (_PROC / str(self.root) / "stat").exists()
        self.processes: dict[int, ProcessUsage] = {}
        self.peak_total_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """One walk of the tree (the thread calls it; callable directly)."""
        if not self.available:
            return
        seen: dict[int, tuple[float, int]] = {}
        tree, pending = [], [self.root]
        children = _children if _HAS_CHILDREN_FILES else _children_by_scan()
        while pending:
            pid = pending.pop()
            if (stat := _stat(pid)) is not None:
                seen[pid] = stat[1:]
                tree.append(pid)
                pending.extend(children(pid))
        with self._lock:
            total = 0
            for pid in tree:
                cpu, rss = seen[pid]
                usage = self.processes.get(pid)
                if usage is None:
                    usage = self.processes[pid] = ProcessUsage(pid, _name(pid))
                elif (name := _command_line_name(pid)) is not None:
                    usage.name = name  # a process first seen between its fork and its exec had its parent's
                usage.peak_rss_bytes = max(usage.peak_rss_bytes, rss)
                usage.cpu_seconds = cpu
                total += rss
            self.peak_total_bytes = max(self.peak_total_bytes, total)

    def usage(self) -> list[ProcessUsage]:
        with self._lock:
            return [ProcessUsage(u.pid, u.name, u.peak_rss_bytes, u.cpu_seconds) for u in self.processes.values()]

    def __enter__(self) -> Self:
        self.sample()
        if self.available:
            self._thread = threading.Thread(target=self._loop, name="process-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
