"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tripstream.local.emulator import Emulator

# Dummy credentials from the start, so that boto3 never goes looking for real ones.
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def emulator_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One patched emulator for the whole session; tests must use their own resource names."""
    log_path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with Emulator(log_path=log_path) as emulator:
        yield emulator.endpoint_url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region; no endpoint, profile or session token from the caller's shell."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def fresh_endpoint(emulator_endpoint: str, aws_env: None) -> str:
    """The session emulator, emptied first: the stack's names are fixed (one stack per endpoint), so a
    test that deploys it needs an endpoint of its own. Resetting moto is much faster than a new process."""
    import urllib.request

    request = urllib.request.Request(f"{emulator_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    return emulator_endpoint
