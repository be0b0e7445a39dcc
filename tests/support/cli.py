"""How tests run the tripstream CLI as a user does (a real process), and empty the shared emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request


def local_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any endpoint or profile, with the emulator's dummy credentials:
    what a user has who never touched AWS."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_ENDPOINT_URL") and name not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
    }
    environment.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    return {**environment, **(extra or {})}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, isolated: bool = False
) -> subprocess.CompletedProcess[str]:
    """`tripstream ARGS` in a child process; `isolated` drops the caller's endpoints and credentials first."""
    environment = local_environment(env) if isolated else {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tripstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )


def reset_emulator(endpoint: str) -> None:
    """Empty a moto server (much faster than a new process)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
