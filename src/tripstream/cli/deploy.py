"""`deploy`, `destroy` and `status`: the stack on AWS, or on any endpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from tripstream.cli.errors import command_errors
from tripstream.cli.options import (
    endpoint_url_option,
    json_option,
    parameter_option,
    region_option,
    stack_name_option,
    template_parameters,
)
from tripstream.cli.terminal import deploy_clients, note

DEPLOY_ENDPOINT_HELP = "Deploy into this endpoint (moto server, LocalStack, ...) instead of AWS."

if TYPE_CHECKING:
    from tripstream.aws.cloudformation import DeployResult


@click.command()
@stack_name_option()
@region_option()
@click.option("--bucket-name", help="Name of the trips bucket (default: tripstream-<account>-<region>).")
@parameter_option()
@endpoint_url_option(DEPLOY_ENDPOINT_HELP)
@click.option(
    "--artifact-bucket", help="Bucket for the Lambda package (default: tripstream-artifacts-<account>-<region>)."
)
@click.option("--dry-run", is_flag=True, help="Build and write everything to --build-dir and list it; no AWS call.")
@click.option(
    "--build-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Where the packaged template, parameters and zip are written.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of built packages, keyed by content hash (default: ~/.cache/tripstream/lambda).",
)
@click.option(
    "--package",
    "package_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Deploy this Lambda package (a zip a previous deploy or dry run wrote) instead of building one.",
)
@click.option(
    "--local-runtime",
    is_flag=True,
    help="Deploy with LocalRuntime=true (no event source mapping, no bucket notification): for an emulator "
    "whose Lambda cannot run the functions, with tripstream's local runtime running them instead.",
)
def deploy(
    stack_name: str,
    region: str | None,
    bucket_name: str | None,
    parameters: tuple[str, ...],
    endpoint_url: str | None,
    artifact_bucket: str | None,
    dry_run: bool,
    build_dir: Path,
    cache_dir: Path | None,
    package_path: Path | None,
    local_runtime: bool,
) -> None:
    """Build the Lambda package, upload it, and create or update the stack through a change set.

    Without --endpoint-url the account of the standard AWS credential chain is used. --dry-run stops
    before the first AWS call: it writes the packaged template, its parameters and the zip, and prints
    what the stack would hold.
    """
    from tripstream.infra import deploy as operations
    from tripstream.infra.artifacts import package_from_zip
    from tripstream.local.endpoint import region_from_env

    with command_errors():
        package = package_from_zip(package_path) if package_path is not None else None
        request = operations.DeployRequest(
            stack_name=stack_name,
            parameters=template_parameters(parameters),
            bucket_name=bucket_name,
            artifact_bucket=artifact_bucket,
            build_dir=build_dir,
            cache_dir=cache_dir,
            package=package,
            local_runtime=local_runtime,
            log=note,
        )
        if dry_run:
            click.echo(operations.format_plan(operations.plan(request, region=region_from_env(region))))
            return
        clients = deploy_clients(endpoint_url, region)
        note(f"deploying stack {stack_name} to {endpoint_url or f'AWS ({clients.region})'}")
        deployment = operations.deploy(clients, request)
    print_deploy_result(stack_name, deployment.result)


def print_deploy_result(stack_name: str, result: DeployResult) -> None:
    if result.changed:
        click.echo(f"stack {stack_name}: {result.status} ({result.operation.lower()}, {result.elapsed_seconds:.0f} s)")
    else:
        click.echo(f"stack {stack_name}: no changes (already deployed as asked)")
    for key, value in sorted(result.outputs.items()):
        click.echo(f"  {key:<28}{value}")


@click.command()
@stack_name_option()
@region_option()
@endpoint_url_option(DEPLOY_ENDPOINT_HELP)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--delete-tables",
    is_flag=True,
    help="Also delete the tables, the aggregates' included (retained by default: DeletionPolicy Retain keeps them).",
)
def destroy(stack_name: str, region: str | None, endpoint_url: str | None, yes: bool, delete_tables: bool) -> None:
    """Delete the stack. The tables and the bucket are retained (their data outlives the stack) unless
    --delete-tables; the bucket is never deleted (empty and delete it yourself)."""
    from tripstream.infra import deploy as operations

    with command_errors():
        clients = deploy_clients(endpoint_url, region)
    what = f"stack {stack_name}" + (" AND the tables " + ", ".join(operations.table_names()) if delete_tables else "")
    if not yes:
        click.confirm(f"delete {what} in {endpoint_url or clients.region}?", abort=True)
    with command_errors():
        outcome = operations.destroy(clients, stack_name=stack_name, delete_tables=delete_tables)
    click.echo(f"stack {stack_name}: {'deleted' if outcome.stack_deleted else 'did not exist'}")
    if outcome.tables_deleted:
        click.echo("tables deleted: " + ", ".join(outcome.tables_deleted))
    if outcome.tables_retained:
        click.echo("tables retained: " + ", ".join(outcome.tables_retained) + " (delete with --delete-tables)")
    if outcome.bucket_retained:
        click.echo(f"bucket retained: {outcome.bucket_retained} (holds the uploads and rejects)")


@click.command()
@stack_name_option()
@region_option()
@endpoint_url_option(DEPLOY_ENDPOINT_HELP)
@json_option("status")
def status(stack_name: str, region: str | None, endpoint_url: str | None, as_json: bool) -> None:
    """Stack state, stream shards, table item counts and the consumer's iterator age."""
    from tripstream.infra import status as infra_status

    with command_errors() as errors:
        clients = deploy_clients(endpoint_url, region)
        errors.where = clients.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or f"AWS ({clients.region})"
        state = infra_status.status(clients, stack_name=stack_name)
    if as_json:
        click.echo(orjson.dumps(state.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(infra_status.format_status(state))
