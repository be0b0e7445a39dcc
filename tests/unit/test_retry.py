"""Backoff with full jitter and what counts as transient: everything of the retry layer that needs no AWS client.

The retry loops of PutRecords and BatchWriteItem are tested over real HTTP against the emulator, with injected
faults, in tests/integration/test_retry_loops.py (no hand-written fakes of AWS services)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from tripstream.aws.errors import is_transient
from tripstream.retry import Backoff, backoff_factory
from tripstream.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def backoff(clock: FakeClock, **kwargs: Any) -> Backoff:
    return Backoff(sleep=clock.sleep, clock=clock.clock, rng=random.Random(1), **kwargs)


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


# ---------------------------------------------------------------- Backoff


def test_max_attempts_counts_the_first_attempt() -> None:
    clock = FakeClock()
    sequence = backoff(clock, max_attempts=3)
    assert sequence.wait() and sequence.wait()
    assert not sequence.wait()
    assert sequence.attempts == 3 and sequence.retries == 2 and len(clock.sleeps) == 2
    assert not backoff(FakeClock(), max_attempts=1).wait()


def test_full_jitter_stays_under_the_exponential_cap() -> None:
    clock = FakeClock()
    sequence = backoff(clock, max_attempts=50, base_delay=0.1, max_delay=1.0, max_elapsed=1e9)
    while sequence.wait():
        pass
    assert len(clock.sleeps) == 49
    for retry, delay in enumerate(clock.sleeps):
        assert 0 <= delay <= min(1.0, 0.1 * 2**retry)
    # Jitter, not a fixed schedule: the late delays (cap 1 s) are spread over [0, 1].
    late = clock.sleeps[10:]
    assert min(late) < 0.3 and max(late) > 0.7
    assert sequence.slept == pytest.approx(sum(clock.sleeps))


def test_elapsed_time_bounds_the_retries_from_the_first_attempt() -> None:
    clock = FakeClock()
    sequence = backoff(clock, max_attempts=1000, base_delay=0.5, max_delay=0.5, max_elapsed=3.0)
    clock.now += 2.9  # the first attempt itself took 2.9 s
    waits = 0
    while sequence.wait():
        waits += 1
    assert clock.now - 100.0 <= 3.0
    assert waits <= 1


def test_progress_starts_the_attempt_count_again_within_the_time_bound() -> None:
    clock = FakeClock()
    sequence = backoff(clock, max_attempts=3, base_delay=0.1, max_delay=0.1, max_elapsed=1.0)
    assert sequence.wait() and sequence.wait() and sequence.attempts == 3
    sequence.progressed()  # part of the last attempt went through
    assert sequence.attempts == 1 and sequence.retries == 0
    waits = 2
    while True:
        if not sequence.wait():
            break
        waits += 1
        sequence.progressed()
    # Progress on every attempt: only max_elapsed stops it (each delay is at most 0.1 s).
    assert waits > 3 and clock.now - 100.0 <= 1.0
    assert sequence.slept == pytest.approx(sum(clock.sleeps))


def test_without_progress_the_attempts_stay_counted() -> None:
    sequence = backoff(FakeClock(), max_attempts=3, max_elapsed=1e9)
    assert sequence.wait() and sequence.wait() and not sequence.wait()
    assert sequence.attempts == 3


def test_backoff_factory_reads_the_retry_settings() -> None:
    settings = Settings.from_env(
        {"RETRY_MAX_ATTEMPTS": "4", "RETRY_BASE_DELAY": "0.01", "RETRY_MAX_DELAY": "0.2", "RETRY_MAX_ELAPSED": "9"}
    )
    made = backoff_factory(settings)()
    assert (made.max_attempts, made.base_delay, made.max_delay, made.max_elapsed) == (4, 0.01, 0.2, 9.0)


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException", 400),
        client_error("ThrottlingException", 400),
        client_error("RequestLimitExceeded", 400),
        client_error("LimitExceededException", 400),
        client_error("InternalFailure", 500),
        client_error("ServiceUnavailable", 503),
        client_error("SomethingNew", 502),
        client_error("TooManyRequests", 429),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=repr,
)
def test_transient_errors(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error("ValidationException", 400),
        client_error("ResourceNotFoundException", 400),
        client_error("AccessDeniedException", 400),
        ValueError("a bug"),
        RuntimeError("a crash"),
    ],
    ids=repr,
)
def test_permanent_errors(error: BaseException) -> None:
    assert not is_transient(error)
