"""What `run`, `replay` and `up` share: where the stack is, and how it is deployed (declared once)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tripstream.backends import DEFAULT_BACKEND
from tripstream.infra.template import DEFAULT_STACK_NAME


@dataclass(frozen=True)
class StackOptions:
    """The endpoint (None: the AWS_ENDPOINT_URL* variables, else the embedded emulator), its region, the stack's
    name and template parameters, where DynamoDB runs, the folder that keeps state across runs, and how the functions
    run: as Lambda runs them (the default: the deployment package in processes of their own, each with its role, the
    embedded emulator enforcing IAM) or `in_process` (the source tree's handlers in the CLI's process: fast, for
    debugging and tests)."""

    endpoint_url: str | None = None
    region: str | None = None
    stack_name: str = DEFAULT_STACK_NAME
    parameters: Mapping[str, str] = field(default_factory=dict)
    backend: str = DEFAULT_BACKEND
    state_dir: Path | None = None
    in_process: bool = False
