"""moto's request dispatch without a directory listing per request (inside the emulator's process only).

moto 5.2.1's ``DomainDispatcherApplication.get_backend_for_host`` calls ``moto.backends.list_of_moto_modules()`` for
every request, which lists moto's package folder and stats every entry (about 2 % of the emulator's time under the
pipeline's load, measured with py-spy). The folders do not change while the server runs: :func:`apply` lists them
once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from moto import backends

from tripstream.local.emulator.moto_patches.version import parameter_names, shape_error

_MARKER: Final = "_tripstream_original_list_of_moto_modules"


def _cached(original: Callable[[], Iterable[str]]) -> Callable[[], tuple[str, ...]]:
    modules = tuple(original())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    return list_of_moto_modules


def apply() -> None:
    """List moto's service folders once. Idempotent; the caller holds the patches' lock."""
    if hasattr(backends, _MARKER):
        return
    original: Any = backends.list_of_moto_modules
    if parameter_names(original) != ():
        raise shape_error("backends.list_of_moto_modules", [f"it takes {parameter_names(original)}"])
    setattr(backends, _MARKER, original)
    backends.list_of_moto_modules = _cached(original)


def revert() -> None:
    original = getattr(backends, _MARKER, None)
    if original is not None:
        backends.list_of_moto_modules = original
        delattr(backends, _MARKER)
