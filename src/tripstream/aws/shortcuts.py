"""Shortcuts past parts of botocore, installed only where this botocore behaves as the shortcut assumes."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def install_where_botocore_agrees(what: str, agrees: Callable[[], bool], install: Callable[[], None]) -> bool:
    """Install a shortcut when `agrees` (botocore's own answers compared with the shortcut's, on samples) holds.
    False, nothing installed, when it does not or when the check itself fails (a botocore of another shape)."""
    try:
        usable = agrees()
    except Exception as error:
        log.debug("%s stay botocore's: %s", what, error)
        return False
    if usable:
        install()
    return usable
