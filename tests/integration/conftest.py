"""Fixtures shared by the integration tests that compare tripstream's patched emulator with moto as released."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tripstream.local.emulator.server import Emulator


@pytest.fixture(scope="module")
def patched_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded emulator (moto with tripstream's patches), one per test module."""
    with Emulator(log_path=tmp_path_factory.mktemp("patched") / "emulator.log") as emulator:
        yield emulator.endpoint_url


@pytest.fixture(scope="module")
def unpatched_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto as released, served the same way, one per test module."""
    with Emulator(log_path=tmp_path_factory.mktemp("unpatched") / "emulator.log", patched=False) as emulator:
        yield emulator.endpoint_url
