"""The `tripstream` command line: a thin layer over the library (each command parses, calls, prints)."""

from __future__ import annotations

import click

from tripstream.cli.aggregates import aggregates
from tripstream.cli.deploy import deploy, destroy, status
from tripstream.cli.emulator import emulator
from tripstream.cli.read import query, report, watch
from tripstream.cli.redrive import redrive
from tripstream.cli.run import generate, replay, run
from tripstream.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tripstream")
@click.option("--debug", is_flag=True, help="Print the traceback of a failure, not just its one line.")
def main(debug: bool) -> None:
    """Real-time NYC taxi trip analytics: S3 -> Kinesis -> Lambda -> DynamoDB, on AWS or on this machine."""
    from tripstream.cli.errors import DEBUG

    DEBUG["traceback"] = debug


for command in (
    run,
    generate,
    report,
    watch,
    query,
    replay,
    up,
    emulator,
    deploy,
    destroy,
    status,
    aggregates,
    redrive,
):
    main.add_command(command)

__all__ = ["main"]
