"""The one table from exceptions to exit codes (README "Exit codes"), and the context manager every command runs in.

0 ok; 1 something not delivered, or an endpoint failed (no answer, an error answer); 2 usage (including a
statement the endpoint refuses, tables that are not there); 3 the file was refused as a whole.
`tripstream --debug COMMAND` adds the traceback to the one line.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import click

from tripstream.aws.errors import error_code, error_message, http_status, is_endpoint_error, is_unreachable

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3

# Set by `tripstream --debug`: a known failure also prints its traceback.
DEBUG = {"traceback": False}


class CommandError(Exception):
    """A command's own refusal (no credentials, a port in use...): its message and exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _exit_codes() -> tuple[tuple[type[BaseException], int, str], ...]:
    """(exception, exit code, line prefix), first match wins; imported on failure only, to keep startup quick."""
    from tripstream.aws.cloudformation import DeployError
    from tripstream.infra.artifacts import PackageError
    from tripstream.infra.template import TemplateError
    from tripstream.local.commands.snapshot import SnapshotError
    from tripstream.local.emulator.dynamodb_local_install import DynamoDBLocalError, DynamoDBLocalUnavailable
    from tripstream.local.emulator.server import EmulatorError
    from tripstream.trips.normalise import FileRefused

    return (
        (CommandError, EXIT_USAGE, "error: "),
        (FileRefused, EXIT_REFUSED, "REFUSED "),
        (DynamoDBLocalUnavailable, EXIT_USAGE, "error: "),
        (DynamoDBLocalError, EXIT_FAILED, "error: "),
        (EmulatorError, EXIT_USAGE, "error: "),
        (SnapshotError, EXIT_USAGE, "error: "),
        (TemplateError, EXIT_USAGE, "error: "),
        (DeployError, EXIT_FAILED, "error: "),
        (PackageError, EXIT_FAILED, "error: "),
        (ValueError, EXIT_USAGE, "error: "),
    )


@dataclass
class ErrorContext:
    """What a command is talking to: set ``where`` once known, so an endpoint's errors name it."""

    where: str | None = None
    statement: bool = False

    def set_where(self, where: str) -> None:
        self.where = where


def _endpoint_failure(error: BaseException, where: str, statement: bool) -> tuple[str, int]:
    if is_unreachable(error):
        return f"error: cannot reach {where}: {error}", EXIT_FAILED
    code, status = error_code(error), http_status(error)
    if not code and not status:
        return f"error: {error}", EXIT_FAILED
    message = error_message(error)
    if code == "ResourceNotFoundException":
        return f"error: {message} at {where} (is the stack deployed there? `tripstream up`)", EXIT_USAGE
    if status >= 500 or message.lstrip().lower().startswith("<!doctype"):
        message = f"{where} failed on this request (HTTP {status or code})" + (
            "; moto's PartiQL handles only SELECT with literal values" if statement else ""
        )
    # A statement refused: DynamoDB answers ValidationException, moto a 500 for what its parser cannot read.
    refused = statement and (code == "ValidationException" or status == 500)
    return f"error: {code or 'HTTP ' + str(status)}: {message}", EXIT_USAGE if refused else EXIT_FAILED


def failure(error: BaseException, context: ErrorContext) -> tuple[str, int] | None:
    """The one line to print and the exit code for ``error`` (None: not one of ours, let it raise)."""
    if is_endpoint_error(error):
        return _endpoint_failure(error, context.where or "the endpoint", context.statement)
    for kind, exit_code, prefix in _exit_codes():
        if isinstance(error, kind):
            return f"{prefix}{error}", getattr(error, "exit_code", exit_code)
    return None


@contextlib.contextmanager
def command_errors(where: str | None = None, *, statement: bool = False) -> Iterator[ErrorContext]:
    """Every command runs in this: a known failure is one clear line on stderr and its exit code, no traceback."""
    context = ErrorContext(where, statement)
    try:
        yield context
    except Exception as error:
        outcome = failure(error, context)
        if outcome is None:
            raise
        if DEBUG["traceback"]:
            traceback.print_exc()
        click.echo(outcome[0], err=True)
        sys.exit(outcome[1])
