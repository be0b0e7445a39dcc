"""``python -m support.cli_with_faults ARGS``: the tripstream CLI, with the fault plan of ``TRIPSTREAM_FAULTS``
installed on the clients its handlers use (those made with ``max_attempts=1``: retries are tripstream's own).

Test code only: it is how a test slows down or breaks a command running in another process, while the
tripstream package itself has no fault-injection hook at all. Run it with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from typing import Any

from support.faults import ENVIRONMENT_VARIABLE, FaultInjector, FaultPlan
from tripstream.aws.clients import AwsClients


def install_from_environment() -> None:
    text = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not text:
        return
    injector = FaultInjector(FaultPlan.from_json(text))
    create = AwsClients.create.__func__  # type: ignore[attr-defined]

    def create_with_faults(cls: type[AwsClients], **options: Any) -> AwsClients:
        clients: AwsClients = create(cls, **options)
        if options.get("max_attempts") == 1:
            injector.install(clients)
        return clients

    AwsClients.create = classmethod(create_with_faults)  # type: ignore[method-assign, assignment]


if __name__ == "__main__":
    install_from_environment()
    from tripstream.cli import main

    main()
