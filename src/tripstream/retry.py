"""Exponential backoff with full jitter, bounded by attempts and by elapsed time.

Used for the transient failures that AWS expects callers to retry themselves: failed PutRecords entries,
UnprocessedItems, throttling and 5xx answers, dropped connections (which errors those are:
:func:`tripstream.aws.errors.is_transient`). The handlers' clients have the SDK's own retries switched off, so every
retry of a data-plane call is one of these, counted and bounded here. Pure Python: no AWS in it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tripstream.settings import Settings

# One generator for every Backoff: seeding a new one from os.urandom per call costs ~2% of a run.
_SHARED_RNG = random.Random()


@dataclass
class Backoff:
    """One retry sequence: call `wait()` before each retry; it says False when the budget is spent.

    `max_attempts` counts every attempt, the first included (1 = never retry). `max_elapsed` bounds the
    time from the creation of the Backoff (just before the first attempt) to the start of the last retry.
    """

    max_attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 2.0
    max_elapsed: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=lambda: _SHARED_RNG)
    attempts: int = 1
    slept: float = 0.0
    _started: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    @property
    def retries(self) -> int:
        return self.attempts - 1

    def progressed(self) -> None:
        """Part of the work went through (some entries or items accepted): the attempt count starts again,
        so a stream or table that throttles but keeps accepting is not given up on. `max_elapsed` still bounds
        the whole sequence."""
        self.attempts = 1

    def wait(self) -> bool:
        """Sleep before the next attempt; False (without sleeping) once attempts or time are used up."""
        if self.attempts >= self.max_attempts:
            return False
        # Full jitter: uniform in [0, min(cap, base * 2^n)] (AWS Architecture Blog, "Exponential Backoff And Jitter").
        delay = self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (self.attempts - 1)))
        if self.clock() - self._started + delay > self.max_elapsed:
            return False
        self.sleep(delay)
        self.slept += delay
        self.attempts += 1
        return True


def backoff_factory(settings: Settings) -> Callable[[], Backoff]:
    """New retry sequences with the RETRY_* settings (one per call that may need retrying)."""
    return lambda: Backoff(
        max_attempts=settings.retry_max_attempts,
        base_delay=settings.retry_base_delay,
        max_delay=settings.retry_max_delay,
        max_elapsed=settings.retry_max_elapsed,
    )
