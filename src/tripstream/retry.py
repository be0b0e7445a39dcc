"""Exponential backoff with full jitter, bounded by attempts and by elapsed time.

Used for the transient failures that AWS expects callers to retry themselves: failed PutRecords entries,
UnprocessedItems, throttling and 5xx answers, dropped connections.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

# Error codes of a whole call that mean "try again later" (throttling, AWS-side faults).
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSThrottlingException",
        "TransactionInProgressException",
    }
)
TRANSIENT_EXCEPTIONS = (ConnectionClosedError, EndpointConnectionError, ReadTimeoutError, ConnectTimeoutError)


def is_transient(error: BaseException) -> bool:
    """Whether a failed call is worth retrying."""
    if isinstance(error, TRANSIENT_EXCEPTIONS):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_ERROR_CODES or status >= 500 or status == 429
    return False


@dataclass
class Backoff:
    """One retry sequence: call `wait()` before each retry; it says False when the budget is spent."""

    max_attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 2.0
    max_elapsed: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 1
    _started: float | None = None

    def wait(self) -> bool:
        """Sleep before the next attempt; False (without sleeping) once attempts or time are used up."""
        if self._started is None:
            self._started = self.clock()
        if self.attempts >= self.max_attempts:
            return False
        # Full jitter: uniform in [0, min(cap, base * 2^n)] (AWS Architecture Blog, "Exponential Backoff And Jitter").
        delay = self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (self.attempts - 1)))
        if self.clock() - self._started + delay > self.max_elapsed:
            return False
        self.sleep(delay)
        self.attempts += 1
        return True
