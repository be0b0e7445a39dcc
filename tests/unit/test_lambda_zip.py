"""The Lambda zip holds what Lambda runs and nothing else, and every tripstream import in it resolves inside it."""

from __future__ import annotations

import ast
import io
import zipfile

from tripstream.infra.artifacts import build_source_zip


def zip_modules() -> dict[str, str]:
    """Module name -> source of every Python file in the source zip."""
    with zipfile.ZipFile(io.BytesIO(build_source_zip())) as archive:
        return {
            name.removesuffix(".py").removesuffix("/__init__").replace("/", "."): archive.read(name).decode()
            for name in archive.namelist()
            if name.endswith(".py")
        }


def test_the_zip_holds_no_cli_local_runtime_read_side_or_test_code() -> None:
    modules = zip_modules()
    assert {"tripstream.handlers.producer", "tripstream.handlers.consumer", "tripstream.settings"} <= set(modules)
    leaked = sorted(
        name
        for name in modules
        if name.startswith(("tripstream.cli", "tripstream.local", "tripstream.views", "tripstream.infra"))
        or "testing" in name
        or "fault" in name
    )
    assert leaked == []


def test_every_tripstream_import_in_the_zip_resolves_inside_it() -> None:
    modules = zip_modules()
    missing: list[str] = []
    for name, source in modules.items():
        for node in ast.walk(ast.parse(source)):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tripstream"):
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
                if not any(target in modules for target in targets):
                    missing.append(f"{name}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                missing += [
                    f"{name}: import {a.name}"
                    for a in node.names
                    if a.name.startswith("tripstream") and a.name not in modules
                ]
    assert missing == []
