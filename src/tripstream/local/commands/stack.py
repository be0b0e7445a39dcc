"""The preamble `run`, `replay` and `up` share: the endpoint opened (the embedded emulator started when there is no
other), the stack deployed there for the local Lambda service (or found served by a live `up`), and where the
shard checkpoints go."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime, read_stack
from tripstream.local.commands.options import StackOptions
from tripstream.local.emulator.server import set_iam_enforcement
from tripstream.local.endpoint import Endpoint, open_endpoint
from tripstream.local.lambda_service.s3_notifications import live_runtime_running

# With an endpoint of one's own, the checkpoints outlive the command here (an embedded emulator dies with it).
ENDPOINT_STATE_DIR = Path(".tripstream")


@dataclass(frozen=True)
class LocalStack:
    endpoint: Endpoint
    stack: DeployedStack
    state_dir: Path | None
    # A live `tripstream up` runs the functions on this endpoint: only upload (or send) and let it work.
    served_by_live_up: bool = False


@contextmanager
def open_stack(
    options: StackOptions,
    *,
    scratch: Path,
    note: Callable[[str], None],
    on_endpoint: Callable[[str], None] = lambda where: None,
    join_live_up: bool = False,
    emulator_port: int = 0,
    use_environment: bool = True,
    endpoint_state_dir: Path | None = ENDPOINT_STATE_DIR,
    emulator_state_dir: Path | None = None,
) -> Iterator[LocalStack]:
    """Open the endpoint and deploy the stack (stopped on exit); say whether a live `up` serves it.

    `join_live_up`: a stack a live `up` serves is read, not deployed again. `use_environment=False` ignores the
    AWS_ENDPOINT_URL* variables (`up` starts its own emulator unless given an endpoint). Without
    `options.state_dir`, an endpoint of one's own keeps the checkpoints in `endpoint_state_dir`. An embedded emulator
    keeps its tables and stream in `emulator_state_dir` (`up --state-dir`)."""
    with open_endpoint(
        options.endpoint_url,
        region=options.region,
        emulator_log=scratch / "emulator.log",
        backend=options.backend,
        state_dir=options.state_dir,
        dynamodb_local_log=scratch / "dynamodb-local.log",
        emulator_port=emulator_port,
        use_environment=use_environment,
        emulator_state_dir=emulator_state_dir,
    ) as endpoint:
        on_endpoint(endpoint.description)
        note(f"endpoint: {endpoint.description}")
        live_up = not endpoint.embedded and live_runtime_running(endpoint.clients)
        if live_up and join_live_up:
            stack = read_stack(endpoint.clients, options.stack_name)
            note(f"a live `tripstream up` serves this endpoint: {options.stack_name} processes what arrives")
        else:
            stack, deployed = deploy_for_local_runtime(
                endpoint.clients, stack_name=options.stack_name, parameters=options.parameters
            )
            note(f"stack {options.stack_name}: {'deployed' if deployed.changed else 'up to date'}")
            if not options.in_process:
                enforce_iam(endpoint, note)
        state_dir = options.state_dir
        if state_dir is None and not endpoint.embedded:
            state_dir = endpoint_state_dir
        yield LocalStack(endpoint, stack, state_dir, live_up)


def enforce_iam(endpoint: Endpoint, note: Callable[[str], None]) -> None:
    """IAM enforced from now on where tripstream runs the endpoint (the embedded emulator; its own key stays an
    administrator), so that each function's role is put to the test; elsewhere, said once."""
    if not endpoint.embedded:
        note("IAM: enforced only as the endpoint itself does (tripstream switches it on in its embedded emulator)")
        return
    assert endpoint.clients.endpoint_url is not None
    set_iam_enforcement(endpoint.clients.endpoint_url, True)  # with DynamoDB Local, LocalFunctions says what differs
