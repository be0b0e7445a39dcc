"""A Lambda-like context object for handlers invoked by the local runtime."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field


@dataclass
class LocalLambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900.0
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Set when the local Lambda service stops: from then on no time remains (the handlers' own budget checks then
    # wind the invocation down: no new retry, a continuation for the rest of a file).
    stopped: threading.Event | None = field(default=None, repr=False, compare=False)
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        if self.stopped is not None and self.stopped.is_set():
            return 0
        return max(0, int((self._deadline - time.monotonic()) * 1000))
