"""The cyclic garbage collector's policy for tripstream's long-lived processes: a Lambda execution environment
between invocations, the emulator between requests.

At CPython's default thresholds (700, 10, 10) a batch of 500 records, or a 100-action transaction, holds tens of
thousands of containers alive at once: young collections run in the middle of it, promote all of it, and full
collections then scan everything the process has loaded (modules, botocore's service models) again and again. Measured
with ``gc.callbacks`` on 50,000 trips: 2.6 s of the emulator's 22 s of CPU and ~0.7 s of each consumer's ~8 s went to
the collector. Freezing what the process holds when it is ready and letting the young generation grow to
:data:`YOUNG_OBJECTS` cut that to ~0.4 s; reference counting still frees the acyclic garbage at once, and cycles are
still collected, in bounded batches."""

from __future__ import annotations

import gc
from typing import Final

#: Net container allocations between two young collections: more than the largest request or batch holds at once.
YOUNG_OBJECTS: Final = 10_000
#: Young collections between two collections of the middle generation.
YOUNG_COLLECTIONS_PER_MIDDLE: Final = 50


def collect_rarely() -> None:
    """Move what the process holds now out of the collector's scans (it lives as long as the process) and set the
    thresholds above. Call it once the process is ready to serve; calling it again freezes what was added since."""
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, YOUNG_COLLECTIONS_PER_MIDDLE, gc.get_threshold()[2])
