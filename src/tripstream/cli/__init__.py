"""The `tripstream` command line: a thin layer over the library (each command parses, calls, prints)."""

from __future__ import annotations

import click

from tripstream.cli.aggregates import aggregates
from tripstream.cli.deploy import deploy, destroy, status
from tripstream.cli.read import query, report
from tripstream.cli.run import generate, replay, run
from tripstream.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tripstream")
def main() -> None:
    """Real-time NYC taxi trip analytics: S3 -> Kinesis -> Lambda -> DynamoDB, on AWS or on this machine."""


for command in (run, generate, report, query, replay, up, deploy, destroy, status, aggregates):
    main.add_command(command)

__all__ = ["main"]
