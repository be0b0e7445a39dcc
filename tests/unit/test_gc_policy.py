"""The collector's policy of tripstream's long-lived processes (tripstream.gc_policy)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tripstream import gc_policy
from tripstream.handlers.dependencies import lazy_lambda_dependencies


@pytest.fixture
def collector_as_it_was() -> Iterator[None]:
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if frozen:
        gc.freeze()


def test_what_the_process_holds_is_frozen_and_young_objects_get_room(collector_as_it_was: None) -> None:
    held = [[index] for index in range(1000)]  # lists are always tracked (dicts of atoms may not be)
    gc_policy.collect_rarely()
    assert gc.get_freeze_count() >= len(held)
    scanned = {id(tracked) for tracked in gc.get_objects()}
    assert all(gc.is_tracked(item) and id(item) not in scanned for item in held)  # tracked, but out of the scans
    young, middle, _ = gc.get_threshold()
    assert (young, middle) == (gc_policy.YOUNG_OBJECTS, gc_policy.YOUNG_COLLECTIONS_PER_MIDDLE)


def test_cycles_are_still_collected(collector_as_it_was: None) -> None:
    gc_policy.collect_rarely()
    collected_before = sum(generation["collected"] for generation in gc.get_stats())
    for _ in range(gc_policy.YOUNG_OBJECTS * 3):
        cycle: list[object] = []
        cycle.append(cycle)
    assert sum(generation["collected"] for generation in gc.get_stats()) > collected_before


def test_a_lambda_environment_freezes_what_it_built(collector_as_it_was: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    get_dependencies = lazy_lambda_dependencies()
    assert gc.get_freeze_count() == 0
    built = get_dependencies()
    assert gc.get_freeze_count() > 0 and gc.get_threshold()[0] == gc_policy.YOUNG_OBJECTS
    assert get_dependencies() is built
