"""`emulator`: tripstream's patched moto served in the foreground, an endpoint of its own for `--endpoint-url`."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True, help="0 picks a free port.")
def emulator(host: str, port: int) -> None:
    """Serve the emulator `run` embeds (moto with tripstream's fixes) until Ctrl-C (or SIGTERM).

    What `moto_server` serves, with the fixes the pipeline needs to be exact (concurrent Kinesis writers,
    TransactWriteItems under concurrent writes): point `run`, `replay` and `up` at it with --endpoint-url.
    """
    from tripstream.local.emulator.server import main as serve

    serve(["--host", host, "--port", str(port)])
