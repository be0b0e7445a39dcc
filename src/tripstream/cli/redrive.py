"""`redrive`: the consumer's on-failure queue and the producer's dead-letter queue, handed to the functions again."""

from __future__ import annotations

import sys

import click
import orjson

from tripstream.cli.errors import EXIT_FAILED, command_errors
from tripstream.cli.options import endpoint_url_option, json_option, region_option, stack_name_option
from tripstream.cli.terminal import existing_endpoint, note, quiet_handler_logs


@click.command()
@endpoint_url_option("The endpoint of the stack (default: AWS_ENDPOINT_URL*, e.g. from `tripstream up`; else AWS).")
@region_option()
@stack_name_option("Where the queues, the stream and the functions come from.")
@click.option("--dry-run", is_flag=True, help="List what would be redriven; invoke, delete and change nothing.")
@click.option(
    "--delete-expired",
    is_flag=True,
    help="Also delete the on-failure messages whose records are past the stream's retention (after listing "
    "the objects to upload again); by default they are kept.",
)
@json_option("report")
def redrive(
    endpoint_url: str | None, region: str | None, stack_name: str, dry_run: bool, delete_expired: bool, as_json: bool
) -> None:
    """Redrive what Lambda gave up on: each on-failure message's records are read again from the stream and
    handed to the consumer; each dead-letter event is handed to the producer again.

    \b
    On AWS the deployed functions are invoked (lambda:InvokeFunction, synchronously); on a stack deployed for the
    local runtime (the emulator runs no function) the handlers run in this process. A message is deleted only
    once its work succeeded, so a second redrive does nothing; writes are keyed by trip_id and the aggregates
    count each trip once, so nothing is written twice. Records already past the stream's retention cannot be
    read again: the objects to upload again are listed (exit 1).
    """
    from tripstream.local.commands.redrive import redrive_stack

    quiet_handler_logs()
    with command_errors() as errors:
        clients, errors.where = existing_endpoint(endpoint_url, region)
        note(f"redrive{' (dry run)' if dry_run else ''}: stack {stack_name} on {errors.where}")
        report, runner = redrive_stack(
            clients,
            clients.with_options(max_attempts=1),  # the handlers' clients: their retries are tripstream's own
            stack_name,
            dry_run=dry_run,
            delete_expired=delete_expired,
            on_outcome=None if as_json else lambda outcome: click.echo(outcome.line()),
        )
    if as_json:
        click.echo(orjson.dumps({**report.to_dict(), "functions": runner}, option=orjson.OPT_INDENT_2).decode())
    else:
        verb = "would be handed" if dry_run else "handed"
        click.echo(f"{len(report.outcomes)} messages; work {verb} to the {runner} functions")
        if report.upload_again:
            click.echo("upload again (records past the stream's retention): " + ", ".join(report.upload_again))
        if report.kept:
            click.echo(f"{len(report.kept)} messages kept (see above)")
    if not report.ok:
        sys.exit(EXIT_FAILED)
