"""`tripstream up`: the stack deployed for the local runtime, and the live runtime serving it until stopped.

By default on a new embedded emulator (its tables and stream kept in `--state-dir`, its bucket snapshotted there);
with an endpoint URL, on a stack at that endpoint (a moto server, LocalStack), whose data is that endpoint's own to
keep.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tripstream.aws.clients import EMULATOR_CREDENTIALS
from tripstream.infra.stack import DeployedStack
from tripstream.local.commands.live import serve_live
from tripstream.local.commands.options import StackOptions
from tripstream.local.commands.snapshot import emulator_state_dir, load_snapshot
from tripstream.local.commands.stack import open_stack
from tripstream.local.endpoint import Endpoint, region_from_env


@dataclass(frozen=True)
class UpOptions:
    stack: StackOptions = field(default_factory=StackOptions)
    port: int = 4566
    env_file: Path | None = None
    status_seconds: float = 5.0


def exports(endpoint: Endpoint, region: str, stack: DeployedStack) -> dict[str, str]:
    """The variables that point the AWS CLI, boto3 and tripstream at this stack (and name its bucket, for
    `aws s3 cp FILE s3://$TRIPSTREAM_BUCKET/`)."""
    variables = {"AWS_ENDPOINT_URL": endpoint.clients.endpoint_url or ""}
    if endpoint.credentials == EMULATOR_CREDENTIALS:
        variables["AWS_ACCESS_KEY_ID"] = EMULATOR_CREDENTIALS.access_key_id
        variables["AWS_SECRET_ACCESS_KEY"] = EMULATOR_CREDENTIALS.secret_access_key
    variables |= {"AWS_DEFAULT_REGION": region, "AWS_REGION": region}
    if endpoint.dynamodb_endpoint_url:
        variables["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint.dynamodb_endpoint_url
    variables["TRIPSTREAM_BUCKET"] = stack.bucket
    return variables


def banner(endpoint: Endpoint, stack: DeployedStack, options: UpOptions, lines: list[str]) -> list[str]:
    where = f"emulator at {endpoint.clients.endpoint_url}" if endpoint.embedded else endpoint.description
    saved = ""
    if options.stack.state_dir is not None:
        saved = (
            f" (the data is saved in {options.stack.state_dir})"
            if endpoint.embedded
            else f" (state: {options.stack.state_dir})"
        )
    return [
        f"tripstream is up: {where}, stack {options.stack.stack_name} deployed",
        f"  bucket  {stack.bucket}",
        f"  stream  {stack.stream_name}",
        f"  tables  {', '.join(stack.tables.values())}",
        f"  aggregates  {', '.join(stack.aggregate_tables.values())}",
        "Point the AWS CLI, boto3 and tripstream at it with:",
        *lines,
        f"Ctrl-C stops it{saved}.",
    ]


def run_up(
    options: UpOptions,
    stop: threading.Event,
    *,
    echo: Callable[[str], None],
    note: Callable[[str], None],
    on_status: Callable[[str], None] | None = None,
) -> None:
    """Deploy, serve the live runtime until `stop` is set, then (embedded, with a state dir) save the snapshot."""
    region = region_from_env(options.stack.region)
    with (
        tempfile.TemporaryDirectory(prefix="tripstream-up-") as scratch,
        open_stack(
            replace(options.stack, region=region),
            scratch=options.stack.state_dir or Path(scratch),
            note=lambda line: None,  # the banner below says where and what
            emulator_port=options.port,
            use_environment=False,
            endpoint_state_dir=None,
            # An embedded emulator keeps its tables and stream there: the next one re-attaches to them.
            emulator_state_dir=emulator_state_dir(options.stack.state_dir) if options.stack.state_dir else None,
        ) as local,
    ):
        endpoint, stack = local.endpoint, local.stack
        # An embedded emulator dies with `up`: its bucket lives in the state dir's snapshot (its tables and stream in
        # its store there).
        snapshots = options.stack.state_dir if endpoint.embedded else None
        if snapshots is not None:
            restored = load_snapshot(endpoint.clients, stack, snapshots)
            note(f"restored from {restored.path}: {restored.describe()}" if restored else f"state: {snapshots}")
        lines = [f"export {name}={value}" for name, value in exports(endpoint, region, stack).items()]
        if options.env_file is not None:
            options.env_file.parent.mkdir(parents=True, exist_ok=True)
            options.env_file.write_text("\n".join(lines) + "\n")
        for line in banner(endpoint, stack, options, lines):
            echo(line)
        saved = serve_live(
            endpoint.clients,
            endpoint.handler_clients,
            stack,
            stop,
            echo=echo,
            state_dir=options.stack.state_dir,
            snapshot=snapshots is not None,
            status_seconds=options.status_seconds,
            on_status=on_status,
            in_process=options.stack.in_process,
            credentials=endpoint.credentials,
        )
        if saved is not None:
            note(f"saved to {saved.path}: {saved.describe()}")
