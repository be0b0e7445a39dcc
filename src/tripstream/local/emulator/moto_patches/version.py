"""The moto these patches were written against, and the check that the installed one is shaped like it."""

from __future__ import annotations

import inspect
from typing import Any, Final

import moto

#: The moto version these patches were written against and measured on (pinned in pyproject.toml).
TESTED_MOTO_VERSION: Final = "5.2.1"


class MotoVersionError(RuntimeError):
    """The installed moto's classes are not shaped the way these patches expect."""


def parameter_names(function: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(function).parameters)


def shape_error(what: str, problems: list[str]) -> MotoVersionError:
    return MotoVersionError(
        f"tripstream.local.emulator.moto_patches was written for moto {TESTED_MOTO_VERSION}'s {what}, "
        f"but moto {moto.__version__} differs: {'; '.join(problems)}. "
        f"Install moto=={TESTED_MOTO_VERSION} or update the patches."
    )
