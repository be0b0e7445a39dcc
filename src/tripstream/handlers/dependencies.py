"""What a handler needs, built once per Lambda execution environment (not at import time)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tripstream import gc_policy
from tripstream.aws.clients import AwsClients
from tripstream.settings import Settings


@dataclass(frozen=True)
class Dependencies:
    clients: AwsClients
    settings: Settings

    @classmethod
    def from_environment(cls) -> Dependencies:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        # Retries of data-plane calls are tripstream's own (tripstream.retry), so botocore's are off.
        return cls(
            clients=AwsClients.create(endpoint_url=None, region=region, max_attempts=1),
            settings=Settings.from_env(),
        )


def lazy_lambda_dependencies() -> Callable[[], Dependencies]:
    """Dependencies built from the environment on the first invocation, then reused by the execution
    environment's later invocations (clients are expensive to build; they are thread-safe to share). What the
    environment holds once they are built lives as long as it does: it is frozen out of the collector's scans."""
    built: list[Dependencies] = []
    lock = threading.Lock()

    def get() -> Dependencies:
        if not built:
            with lock:
                if not built:
                    built.append(Dependencies.from_environment())
                    gc_policy.collect_rarely()
        return built[0]

    return get
