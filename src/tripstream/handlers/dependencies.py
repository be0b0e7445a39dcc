"""What a handler needs, built once per Lambda execution environment (not at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
