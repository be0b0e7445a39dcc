"""Switches for looking inside the emulator's process (issue 21: measure before changing; names in .environment).

``TRIPSTREAM_EMULATOR_TRACEMALLOC=1``: trace allocations; on SIGUSR1 the emulator writes the 30 lines of code
holding the most memory to its log (with ``TRIPSTREAM_EMULATOR_REFERRERS=TypeName``, also who holds such objects).
``TRIPSTREAM_EMULATOR_PROFILE=PATH``: profile every request thread with cProfile and write the merged statistics to
PATH when the emulator stops (``python -m pstats PATH``). CPU sampling from outside needs no switch:
``py-spy record --pid <emulator pid>``.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import signal
import sys
import threading
from types import FrameType
from typing import Any

from tripstream.local.emulator.environment import (
    OBJECTS_VARIABLE,
    PROFILE_VARIABLE,
    REFERRERS_VARIABLE,
    TRACEMALLOC_VARIABLE,
)


def install() -> None:
    """Turn on what the environment asks for (nothing by default)."""
    if os.environ.get(TRACEMALLOC_VARIABLE):
        _install_tracemalloc()
    if os.environ.get(OBJECTS_VARIABLE):
        signal.signal(signal.SIGUSR2, _print_object_counts)
    if path := os.environ.get(PROFILE_VARIABLE):
        _install_profiler(path)


def _install_tracemalloc() -> None:
    import tracemalloc

    tracemalloc.start(1)

    def dump(signum: int, frame: FrameType | None) -> None:
        import gc

        current, peak = tracemalloc.get_traced_memory()
        print(f"tracemalloc: {current / 2**20:,.1f} MiB traced (peak {peak / 2**20:,.1f} MiB)", flush=True)
        print(f"gc: {gc.collect()} unreachable objects collected", flush=True)
        current, peak = tracemalloc.get_traced_memory()
        print(f"tracemalloc: {current / 2**20:,.1f} MiB traced after gc.collect()", flush=True)
        if type_name := os.environ.get(REFERRERS_VARIABLE):
            _print_referrers(type_name)
        for stat in tracemalloc.take_snapshot().statistics("lineno")[:30]:
            print(f"{stat.size / 2**20:9.1f} MiB {stat.count:9,} blocks  {stat.traceback}", flush=True)

    signal.signal(signal.SIGUSR1, dump)


def _print_object_counts(signum: int, frame: FrameType | None) -> None:
    """The 15 most numerous types of live objects (compare two signals to see what grows), and the thread count."""
    import collections
    import gc

    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    print(f"objects: {sum(counts.values()):,} tracked, {threading.active_count()} threads", flush=True)
    for name, count in counts.most_common(15):
        print(f"  {count:>10,} {name}", flush=True)
    if type_name := os.environ.get(REFERRERS_VARIABLE):
        _print_referrers(type_name)


def _print_referrers(type_name: str) -> None:
    """Who holds the objects of a type: the chain of referrers of one of them (a leak hunt)."""
    import gc

    objects = [o for o in gc.get_objects() if type(o).__name__ == type_name]
    print(f"{len(objects)} objects of type {type_name}", flush=True)
    if not objects:
        return
    target: Any = objects[len(objects) // 2]
    for depth in range(8):
        referrers = [r for r in gc.get_referrers(target) if r is not objects and type(r).__name__ != "frame"]
        print(
            f"  depth {depth}: "
            + ", ".join(f"{type(r).__name__}({len(r) if hasattr(r, '__len__') else ''})" for r in referrers[:6]),
            flush=True,
        )
        if not referrers:
            return
        target = referrers[0]
        if isinstance(target, dict) and len(referrers) > 1 and not isinstance(referrers[1], list):
            target = referrers[1]


def _install_profiler(path: str) -> None:
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]

    def write() -> None:
        with lock:
            finished = [profile for profile in profiles]
        if finished:
            stats: Any = pstats.Stats(finished[0])
            for profile in finished[1:]:
                stats.add(profile)
            stats.dump_stats(path)
            print(f"profile of {len(finished)} threads written to {path}", file=sys.stderr, flush=True)

    atexit.register(write)
