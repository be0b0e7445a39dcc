"""The progress display's ETA on a long run, with a fake clock: right within 20 % once a tenth is done (issue 21)."""

from __future__ import annotations

import io
import random

import pytest

from tripstream.cli.progress import RECORDS_CONSUMED, RECORDS_SENT, LiveProgress, RateEstimate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(
    clock: FakeClock, progress: LiveProgress, total: int, *, startup: float, rate: float, jitter: float
) -> list[tuple[float, float]]:
    """Feed a run: `startup` seconds of nothing (emulator, deploy), the producer ahead, then batches of 500 consumed
    at about `rate` trips/s (each batch's time varies by +-`jitter`). Returns (share done, ETA / true remaining)."""
    randomness = random.Random(21)
    clock.now = startup
    progress.add(RECORDS_SENT, total)
    batch_seconds = [500 / rate * (1 + randomness.uniform(-jitter, jitter)) for _ in range(total // 500)]
    ratios = []
    done = 0
    for index, seconds in enumerate(batch_seconds):
        clock.now += seconds
        progress.add(RECORDS_CONSUMED, 500)
        done += 500
        eta = progress.eta_seconds()
        if done < total and eta is not None:
            true_remaining = sum(batch_seconds[index + 1 :])
            ratios.append((done / total, eta, true_remaining))
    return ratios


@pytest.mark.parametrize(("startup", "rate", "jitter"), [(40.0, 300.0, 0.0), (90.0, 2000.0, 0.3), (5.0, 50.0, 0.5)])
def test_eta_is_right_within_a_fifth_once_a_tenth_is_done(startup: float, rate: float, jitter: float) -> None:
    clock = FakeClock()
    total = 100_000
    progress = LiveProgress(total=total, stream=io.StringIO(), enabled=False, clock=clock)
    with progress:
        ratios = _run(clock, progress, total, startup=startup, rate=rate, jitter=jitter)
    duration = total / rate
    late = [(share, eta, true) for share, eta, true in ratios if share >= 0.1]
    assert late, "no ETA after a tenth"
    # Within 20 % of the time remaining; in the last 5 % (seconds left, a few batches' jitter) within 1 % of the run.
    wrong = [
        (share, eta, true)
        for share, eta, true in late
        if not (abs(eta - true) <= 0.2 * true or (share >= 0.95 and abs(eta - true) <= 0.01 * duration))
    ]
    assert not wrong, wrong[:3]


def test_the_start_of_the_run_does_not_count_against_the_rate() -> None:
    """Counted from the start, 40 s of start-up would make a 300/s run look like 127/s at a tenth done."""
    estimate = RateEstimate()
    estimate.observe(45.0, 500)
    assert estimate.rate(45.0, 500) is None  # one increment: no rate yet
    assert estimate.remaining_seconds(45.0, 500, 100_000) is None
    rate = estimate.rate(45.0 + 9_500 / 300, 10_000)
    assert rate == pytest.approx(300.0)
    assert estimate.remaining_seconds(45.0 + 9_500 / 300, 10_000, 100_000) == pytest.approx(300.0)
    assert estimate.remaining_seconds(500.0, 100_000, 100_000) is None  # done


def test_plain_line_shows_the_estimate() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    progress = LiveProgress(total=1_000, stream=stream, plain=True, interval=3600, clock=clock)
    with progress:
        clock.now = 30.0
        progress.add(RECORDS_CONSUMED, 100)
        clock.now = 31.0
        progress.add(RECORDS_CONSUMED, 100)
        assert progress.line().endswith("ETA 8s")  # 100/s since the first batch, 800 to go
    assert stream.getvalue().rstrip().endswith("done")
