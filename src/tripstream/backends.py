"""Where a local command's DynamoDB runs: the names the CLI offers and the endpoint module starts."""

from __future__ import annotations

from typing import Final, Literal, get_args

Backend = Literal["moto", "dynamodb-local"]
BACKENDS: Final[tuple[Backend, ...]] = get_args(Backend)
DEFAULT_BACKEND: Final[Backend] = "moto"
