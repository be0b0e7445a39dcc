"""The `tripstream` command line: a thin layer over the library."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click
import orjson

from tripstream.local.pipeline import RunSummary, run_file
from tripstream.local.session import open_endpoint
from tripstream.local.stack import DEFAULT_STACK_NAME, deploy_for_local_runtime
from tripstream.trips.generate import write_sample

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


def _parameters(values: tuple[str, ...]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--parameter")
        parameters[name.strip()] = setting.strip()
    return parameters


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tripstream")
def main() -> None:
    """Real-time NYC taxi trip analytics: S3 -> Kinesis -> Lambda -> DynamoDB, on AWS or on this machine."""


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--endpoint-url",
    help="Use this running endpoint (LocalStack, moto, ...) instead of the embedded emulator.",
)
@click.option("--region", help="AWS region (default: AWS_REGION, else us-east-1).")
@click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True)
@click.option("--key", help="S3 key to upload FILE as (default: the file's name).")
@click.option("--shards", type=click.IntRange(1, 64), help="Shards of the stream (template parameter ShardCount).")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE", help="Template parameter (repeatable).")
@click.option("--rows", type=click.IntRange(1), default=20_000, show_default=True, help="Rows of the generated sample.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the generated sample.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the shard checkpoints (default: .tripstream/ with --endpoint-url, temporary otherwise).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(
    file: Path | None,
    endpoint_url: str | None,
    region: str | None,
    stack_name: str,
    key: str | None,
    shards: int | None,
    parameters: tuple[str, ...],
    rows: int,
    seed: int,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Run FILE (CSV, CSV.GZ or Parquet) through the whole pipeline and print a summary.

    Without FILE, a realistic sample of --rows generated trips is used. Without --endpoint-url (or the
    AWS_ENDPOINT_URL variables), an AWS emulator is started on 127.0.0.1 for the run and stopped after it.
    """
    _quiet_handler_logs()
    template_parameters = _parameters(parameters)
    if shards is not None:
        template_parameters["ShardCount"] = str(shards)
    with tempfile.TemporaryDirectory(prefix="tripstream-") as scratch:
        if file is None:
            file = write_sample(Path(scratch) / "taxi_trips.csv", rows, seed=seed)
            _note(f"generated {rows:,} trips (seed {seed}) in {file}")
        with open_endpoint(endpoint_url, region=region, emulator_log=Path(scratch) / "emulator.log") as endpoint:
            _note(f"endpoint: {endpoint.description}")
            stack, deployed = deploy_for_local_runtime(
                endpoint.clients, stack_name=stack_name, parameters=template_parameters
            )
            _note(f"stack {stack_name}: {'deployed' if deployed.changed else 'up to date'}")
            if state_dir is None and not endpoint.embedded:
                state_dir = Path(".tripstream")
            summary = run_file(endpoint.clients, endpoint.handler_clients, stack, file, key=key, state_dir=state_dir)
    if as_json:
        click.echo(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_summary(summary))
    if summary.refused:
        sys.exit(EXIT_REFUSED)
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
def generate(path: Path, rows: int, seed: int) -> None:
    """Write a realistic generated trips file (CSV, or Parquet for a .parquet PATH)."""
    write_sample(path, rows, seed=seed)
    click.echo(f"wrote {rows:,} trips to {path}")


def _quiet_handler_logs() -> None:
    """The handlers log JSON lines for CloudWatch; on a terminal only their warnings are worth showing."""
    from tripstream.handlers import consumer, producer

    for handler_module in (producer, consumer):
        handler_module.logger.setLevel("WARNING")


def _note(message: str) -> None:
    # Notes go to stderr, so that stdout stays the summary alone (plain or --json).
    click.echo(message, err=True)


def format_summary(summary: RunSummary) -> str:
    lines = [f"file            {summary.file} -> s3://{summary.bucket}/{summary.key}"]
    if summary.refused:
        lines.append(f"REFUSED         {summary.refused}")
        return "\n".join(lines)
    lines += [
        f"format          {summary.format} ({summary.service})",
        f"rows read       {summary.rows_read:,}",
        f"records sent    {summary.records_sent:,}",
        f"rows rejected   {sum(summary.rows_rejected.values()):,}"
        + "".join(f"\n  {reason:<22}{count:,}" for reason, count in summary.rows_rejected.items()),
        f"records consumed {summary.records_consumed:,} (rejected {sum(summary.records_rejected.values()):,})"
        + "".join(f"\n  {reason:<22}{count:,}" for reason, count in summary.records_rejected.items()),
        "items written",
        *(f"  {table:<24}{count:,}" for table, count in summary.table_items.items()),
        "duration categories",
        *(f"  {category:<24}{count:,}" for category, count in summary.duration_categories.items()),
        f"time            {summary.seconds:.1f} s ({summary.records_sent / summary.seconds:,.0f} trips/s)"
        if summary.seconds
        else "",
    ]
    if summary.blank_lines:
        lines.insert(3, f"blank lines     {summary.blank_lines:,} (skipped)")
    if summary.producer_errors:
        lines.append("producer errors " + "; ".join(summary.producer_errors[:3]))
    if summary.records_to_on_failure:
        lines.append(f"ON-FAILURE      {summary.records_to_on_failure:,} records sent to the on-failure queue")
    return "\n".join(line for line in lines if line)


if __name__ == "__main__":
    main()
